# chainstead-backup: LND's channel.backup off the host within a second of
# every change, to every configured target, plus snapshots of a few small
# files. The module renders two manifests (manifest.nix):
#   - the service's, naming credentials by their systemd credential path
#     (/run/credentials/chainstead-backup.service/<id>), without the age
#     identity (the pusher only encrypts);
#   - the operator's, /etc/chainstead/backup.json, naming the original files
#     (readable by root) and the age identity, for `status`, `verify` and
#     `restore` (docs/backup.md).
# Both are checked with `chainstead-backup validate` when the system is built.
#
# The target kinds and their options: targets.nix. The read-only access to
# LND's directory (ACLs applied by the unit, after LND's disk is mounted):
# lnd-access.nix.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    mkOption
    mkEnableOption
    mkIf
    types
    literalExpression
    ;
  chainstead = import ../lib.nix { inherit lib; };
  cfg = config.services.chainstead.backup;
  inherit (config.services.chainstead) lnd;
  inherit (import ./names.nix)
    user
    unit
    stateDir
    metricsGroup
    ;

  targets = import ./targets.nix {
    inherit
      config
      lib
      pkgs
      chainstead
      ;
  };
  manifests = import ./manifest.nix {
    inherit
      config
      lib
      pkgs
      chainstead
      targets
      ;
  };

  secretFile = chainstead.mkSecretFileOption;
  allCredentials = lib.concatLists (lib.mapAttrsToList targets.credentials cfg.targets);
  directoryPaths = targets.directoryPaths cfg.targets;

  # The setup units of the storage tiers that hold a directory target.
  tierSetups = lib.unique (
    lib.concatMap (
      path:
      lib.concatMap (
        tier:
        let
          root = config.services.chainstead.storage.${tier}.path;
        in
        lib.optional (
          root != null && lib.hasPrefix "${root}/" path
        ) "chainstead-storage-${tier}.service"
      ) [ "fast" "bulk" ]
    ) directoryPaths
  );
in
{
  imports = [ ./lnd-access.nix ];

  options.services.chainstead.backup = {
    enable = mkEnableOption "chainstead-backup, which pushes LND's channel.backup to every target within a second of a change (unit `chainstead-backup.service`)";

    package = chainstead.toolPackageOption pkgs "chainstead-backup" ../../pkgs/chainstead-tools/backup.nix;

    channelBackupFile = mkOption {
      type = types.str;
      default = lnd.backupFile;
      defaultText = literalExpression "config.services.chainstead.lnd.backupFile";
      description = "LND's channel.backup (`<lnd dir>/data/chain/bitcoin/<network>/channel.backup`).";
    };

    stateDir = mkOption {
      type = types.str;
      default = stateDir;
      readOnly = true;
      description = "Local versioned copies (`versions/`, restorable as target `local`) and `state.json`.";
    };

    metricsDir = mkOption {
      type = types.nullOr types.str;
      default = config.services.chainstead.syncGate.metricsDir;
      defaultText = literalExpression "config.services.chainstead.syncGate.metricsDir";
      description = "node_exporter's textfile directory for `chainstead-backup.prom`; null for none.";
    };

    reconcileInterval = mkOption {
      type = types.ints.between 1 3600;
      default = 60;
      description = "Seconds between full re-reads of channel.backup that catch anything inotify missed.";
    };

    verifyWithLnd = mkOption {
      type = types.bool;
      default = lnd.enable;
      defaultText = literalExpression "config.services.chainstead.lnd.enable";
      description = ''
        Ask LND (REST `POST /v1/channels/backup/verify`, read-only macaroon)
        to accept each new channel.backup before it is pushed. When LND
        cannot answer, the file is pushed anyway with a warning.
      '';
    };

    encryption = {
      recipients = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "age1z8r7svzhml7seq633vnkeaw2qhle0nnzwyc7snzyyuaqy0frn3fsd30m6d" ];
        description = "age X25519 public keys that targets with `encrypt = true` encrypt to (these end up in the store, which is fine: they are public).";
      };
      identityFile = secretFile ''
        The matching age identity, used only by `verify` and `restore` (the
        operator's manifest); the service never reads it. Keep a copy off
        the host: without it the encrypted copies cannot be read.
      '';
    };

    retention = {
      keepLast = mkOption {
        type = types.ints.positive;
        default = 100;
        description = "Versions kept per target at least (directory, S3, WebDAV); the newest is never deleted.";
      };
      maxAgeDays = mkOption {
        type = types.nullOr types.ints.positive;
        default = null;
        description = "Beyond {option}`keepLast`, versions older than this are deleted; null deletes everything beyond.";
      };
    };

    snapshot = {
      files = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "/var/lib/chainstead/wallet/xpubs.json" ];
        description = ''
          Small files packed into a NAR snapshot on start, every
          {option}`interval` seconds and a second after one changes; an
          unchanged set is not pushed again. They must be readable by the
          `chainstead-backup` user. Not encrypted unless the target has
          `encrypt = true`.
        '';
      };
      interval = mkOption {
        type = types.ints.positive;
        default = 3600;
        description = "Seconds between snapshots.";
      };
    };

    secrets = mkOption {
      type = types.attrsOf (
        types.submodule {
          options = {
            path = mkOption {
              type = types.str;
              example = "chainstead/backup/garage";
              description = "KV path in OpenBao (the secret loader's mount).";
            };
            field = mkOption {
              type = types.str;
              description = "Field holding the value.";
            };
          };
        }
      );
      default = { };
      example = literalExpression ''
        { garage-secret = { path = "chainstead/backup/garage"; field = "secret-access-key"; }; }
      '';
      description = ''
        Target credentials the secret loader fetches from OpenBao before the
        service starts, each into
        `/run/chainstead/secrets/backup/<name>` (mode 0400, owner
        `chainstead-backup`); point a target's `...File` option there.
      '';
    };

    targets = mkOption {
      type = types.attrsOf targets.type;
      default = { };
      example = literalExpression ''
        {
          usb.directory.path = "/mnt/usb/lnd-backup";
          garage.s3 = {
            encrypt = true;
            endpoint = "https://s3.example.net"; bucket = "lnd"; region = "garage";
            accessKeyIdFile = "/run/chainstead/secrets/backup/garage-key-id";
            secretAccessKeyFile = "/run/chainstead/secrets/backup/garage-secret";
          };
        }
      '';
      description = ''
        Where channel.backup goes, by name (letters, digits, `-`, `_`; not
        `local`). Each target is one kind, `<name>.<kind> = { ... }`, with
        that kind's options: `directory`, `s3`, `webdav`, `openbao` or
        `pbs` (docs/backup.md).
      '';
    };

    manifest = mkOption {
      type = types.package;
      default = manifests.service;
      readOnly = true;
      description = "The service's manifest (checked when the system is built).";
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.targets != { };
        message = "services.chainstead.backup.targets is empty: configure at least one target (docs/backup.md).";
      }
      {
        assertion =
          !(lib.any (t: (targets.settingsOf t).encrypt) (lib.attrValues cfg.targets))
          || cfg.encryption.recipients != [ ];
        message = "services.chainstead.backup: a target has encrypt = true; set services.chainstead.backup.encryption.recipients.";
      }
    ]
    # What a kind needs without a default is a required option of the kind
    # (targets.nix); an OpenBao target needs one of two logins.
    ++ lib.mapAttrsToList (name: t: {
      assertion =
        t ? openbao
        -> t.openbao.tokenFile != null || (t.openbao.roleIdFile != null && t.openbao.secretIdFile != null);
      message = "services.chainstead.backup.targets.${name}.openbao: set tokenFile, or roleIdFile and secretIdFile (the secret loader's by default).";
    }) cfg.targets;

    warnings = targets.flatShapeWarnings cfg.targets;

    services.chainstead.secrets.services.backup = mkIf (cfg.secrets != { }) {
      owner = user;
      group = user;
      inherit unit;
      secrets = lib.mapAttrs (name: s: {
        inherit (s) path field;
        file = name;
      }) cfg.secrets;
    };

    users = {
      users.${user} = {
        isSystemUser = true;
        group = user;
        description = "chainstead backup pusher";
      };
      groups.${user} = { };
      groups.${metricsGroup} = { };
    };

    environment.systemPackages = [ cfg.package ];
    # For `status`, `verify` and `restore` as root (docs/backup.md).
    environment.etc."chainstead/backup.json".source = manifests.operator;
    system.build = {
      chainstead-backup-manifest = manifests.service;
      chainstead-backup-operator-manifest = manifests.operator;
    };

    services.chainstead.storage.reservedPaths = [ stateDir ];

    # The textfile directory, as the sync gate declares it (identical
    # settings merge): a pusher without any gate still has somewhere to write.
    systemd.tmpfiles.settings."10-chainstead" = lib.mkIf (cfg.metricsDir != null) {
      ${cfg.metricsDir}.d = {
        mode = "0775";
        user = "root";
        group = metricsGroup;
      };
    };

    systemd.services.${unit} = {
      description = "Push LND's channel.backup to every backup target";
      wantedBy = [ "multi-user.target" ];
      # After LND so a stop of both stops the pusher last; not Requires=: the
      # last channel.backup stays worth pushing while LND is down.
      # time-sync: version names carry the time; a clock stepped backwards
      # after they were named would make a new copy look older.
      # A directory target on a storage tier: start after the tier's setup
      # (its mount and folders) so the target is writable, but only wanted:
      # a dead disk fails that target, never the others.
      after = [
        "network-online.target"
        "time-sync.target"
      ]
      ++ lib.optional lnd.enable "lnd.service"
      ++ tierSetups;
      wants = [
        "network-online.target"
        "time-sync.target"
      ]
      ++ tierSetups;
      restartTriggers = [ manifests.service ];
      environment = {
        HOME = stateDir;
        # proxmox-backup-client keeps its ticket cache under XDG_RUNTIME_DIR.
        XDG_RUNTIME_DIR = "/run/${unit}";
      };

      serviceConfig = chainstead.hardening // {
        # exec (ExecStartPre, LND's ACLs: lnd-access.nix)
        ExecStart = "${lib.getExe cfg.package} watch --manifest ${manifests.service}";
        Type = "notify";
        Restart = "always";
        RestartSec = "5s";
        TimeoutStopSec = "15s";

        # identity and paths
        User = user;
        Group = user;
        SupplementaryGroups = [ metricsGroup ];
        StateDirectory = "chainstead/backup";
        StateDirectoryMode = "0700";
        RuntimeDirectory = unit;
        RuntimeDirectoryMode = "0700";
        LoadCredential = map (c: "${c.id}:${c.file}") allCredentials;
        # LND's directory stays read-only (ProtectSystem=strict); directory
        # targets and the metrics directory are the only writable paths
        # outside the state directory ("-": a missing one is skipped).
        ReadWritePaths =
          lib.optional (cfg.metricsDir != null) "-${cfg.metricsDir}"
          ++ map (path: "-${path}") directoryPaths;
        UMask = "0077"; # versions and state are for this user only
      };
    };
  };
}
