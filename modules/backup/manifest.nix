# The backup's two manifests (see default.nix): the service's, naming
# credentials by their systemd credential path and without the age
# identity, and the operator's, naming the original files and the identity.
# Both are checked with `chainstead-backup validate` when the system is
# built, so an invalid one fails the build, not the boot.
{
  config,
  lib,
  pkgs,
  chainstead,
  targets,
}:
let
  cfg = config.services.chainstead.backup;
  inherit (config.services.chainstead) lnd;
  inherit (import ./names.nix) stateDir;

  manifestFor =
    forService:
    {
      version = 1;
      channel_backup = cfg.channelBackupFile;
      state_dir = stateDir;
      metrics_dir = cfg.metricsDir;
      reconcile_interval_secs = cfg.reconcileInterval;
      retention = {
        keep_last = cfg.retention.keepLast;
        max_age_days = cfg.retention.maxAgeDays;
      };
      targets = lib.mapAttrsToList (targets.render forService) cfg.targets;
    }
    // lib.optionalAttrs cfg.verifyWithLnd {
      lnd = {
        rest_url = "https://${chainstead.hostPort (chainstead.connectHost lnd.restAddress) lnd.restPort}";
        tls_cert_file = lnd.tlsCertFile;
        macaroon_file = "${lnd.macaroonDir}/readonly.macaroon";
      };
    }
    // lib.optionalAttrs (cfg.encryption.recipients != [ ]) {
      encryption = {
        inherit (cfg.encryption) recipients;
        # The service only encrypts; the identity is for the operator.
        identity_file = if forService then null else cfg.encryption.identityFile;
      };
    }
    // lib.optionalAttrs (cfg.snapshot.files != [ ]) {
      snapshot = {
        inherit (cfg.snapshot) files;
        interval_secs = cfg.snapshot.interval;
      };
    };

  checked =
    name: value:
    chainstead.checkedManifest {
      inherit pkgs name value;
      inherit (cfg) package;
    };
in
{
  service = checked "chainstead-backup" (manifestFor true);
  operator = checked "chainstead-backup-operator" (manifestFor false);
}
