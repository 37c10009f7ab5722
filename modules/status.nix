# `chainstead status`: the operator's one look at every enabled service.
# Renders /etc/chainstead/status.json (units, how to reach each daemon, the
# tools' state files, the tiers; never a secret value), checked when the
# system is built, installs the `chainstead` command and declares the
# operator group whose members may run it without sudo. See docs/status.md.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    mkOption
    mkIf
    types
    literalExpression
    ;
  chainstead = import ./lib.nix { inherit lib; };
  inherit (chainstead) connectHost hostPort;
  top = config.services.chainstead;
  cfg = top.status;
  inherit (top)
    bitcoind
    monerod
    fulcrum
    lnd
    thunderhub
    syncGate
    backup
    secrets
    storage
    ;

  group = "chainstead-operator";
  gates = lib.attrByPath [ "gates" ] { } syncGate;

  # monerod reports --regtest as nettype "fakechain" (get_info).
  nettypes = {
    mainnet = "mainnet";
    testnet = "testnet";
    stagenet = "stagenet";
    regtest = "fakechain";
  };

  # What a sync gate persists (crates/sync-gate): its flag and its metrics.
  gateOf = name: {
    inherit name;
    unit = "chainstead-sync-gate-${name}.service";
    flag_file = gates.${name}.flagFile;
    metrics_file = "${syncGate.metricsDir}/chainstead-sync-gate-${name}.prom";
  };

  # One entry per enabled service; the backend is the gate's own where a
  # gate watches the service, so both read the same credentials.
  service =
    name: extra:
    {
      inherit name;
      unit = "${name}.service";
    }
    // lib.optionalAttrs (gates ? ${name}) {
      inherit (gates.${name}) backend;
      gate = gateOf name;
    }
    // extra;

  services =
    lib.optional bitcoind.enable (service "bitcoind" { })
    ++ lib.optional monerod.enable (
      service "monerod" {
        backend = {
          kind = "monerod";
          rpc_url = "http://${hostPort (connectHost monerod.rpc.address) monerod.rpc.port}";
          nettype = nettypes.${monerod.network};
        };
      }
    )
    ++ lib.optional fulcrum.enable (service "fulcrum" { })
    ++ lib.optional lnd.enable (
      service "lnd" {
        # LND writes readonly.macaroon world-readable; the operator group
        # may traverse the macaroon directory to it (tmpfiles below).
        macaroon_file = "${lnd.macaroonDir}/readonly.macaroon";
      }
    )
    ++ lib.optional thunderhub.enable (service "thunderhub" { });

  # The onion services modules/tor.nix made, by their hostname files (read
  # when `status` runs; Tor keeps its onion directories 0700 unless told
  # HiddenServiceDirGroupReadable, so an operator may see a permission error
  # where root sees the name).
  onionAddresses = lib.mapAttrsToList (name: file: {
    service = lib.removePrefix "chainstead-" name;
    kind = "onion";
    port = null;
    address = null;
    hostname_file = file;
  }) (top.tor.onionServices or { });

  manifest = {
    version = 1;
    timeout_secs = cfg.timeoutSecs;
    inherit services;
    backup =
      if backup.enable then
        {
          unit = "chainstead-backup.service";
          state_dir = backup.stateDir;
          # The pusher's textfile (crates/backup/src/manifest.rs
          # `metrics_file`, no instance), world-readable: what an operator
          # reads when the 0700 state directory is closed to them.
          metrics_file =
            if backup.metricsDir != null then "${backup.metricsDir}/chainstead-backup.prom" else null;
          targets = lib.mapAttrsToList (name: t: {
            inherit name;
            # A target is tagged by its kind (modules/backup/targets.nix).
            kind = lib.head (lib.attrNames t);
          }) backup.targets;
          max_age_secs = cfg.backupMaxAgeSecs;
        }
      else
        null;
    secrets =
      if secrets.services != { } then
        {
          runtime_dir = secrets.runtimeDir;
          sets = lib.mapAttrs (name: svc: {
            unit = "chainstead-secrets-${name}.service";
            files = lib.mapAttrsToList (_: s: s.file) svc.secrets;
          }) secrets.services;
        }
      else
        null;
    tiers = lib.concatMap (
      tier:
      lib.optional (storage.${tier}.path != null) {
        name = tier;
        inherit (storage.${tier}) path;
      }
    ) [ "fast" "bulk" ];
    addresses = onionAddresses ++ map (a: {
      inherit (a)
        service
        kind
        port
        address
        ;
      hostname_file = a.hostnameFile;
    }) cfg.addresses;
  };

  checkedManifest = chainstead.checkedManifest {
    inherit pkgs;
    inherit (cfg) package;
    name = "chainstead-status";
    value = manifest;
    validate = "status --validate";
  };
in
{
  options.services.chainstead.status = {
    enable = mkOption {
      type = types.bool;
      default = lib.any (svc: svc.enable) [
        bitcoind
        monerod
        fulcrum
        lnd
        thunderhub
      ];
      defaultText = literalExpression "true when any chainstead service is enabled";
      description = ''
        Whether to install the `chainstead status` command, for root and the
        `${group}` group. On by default as soon as a service is: it only
        reads, and it is the first thing to run when something looks wrong.
      '';
    };

    package = chainstead.toolPackageOption pkgs "chainstead-cli" ../pkgs/chainstead-tools/cli.nix;

    operators = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "alice" ];
      description = ''
        Users who may run `chainstead status` without sudo: they join the
        `${group}` group and bitcoind's RPC cookie group. Each must be a user
        declared elsewhere (`users.users.<name>`).
      '';
    };

    addresses = mkOption {
      type = types.listOf (
        types.submodule {
          options = {
            service = mkOption {
              type = types.str;
              example = "lnd";
              description = "The service clients reach at this address.";
            };
            kind = mkOption {
              type = types.enum [
                "onion"
                "lan"
              ];
              description = "A Tor onion service or an address on the local network.";
            };
            address = mkOption {
              type = types.nullOr types.str;
              default = null;
              example = "192.168.1.20";
              description = "The address itself, when it is known at build time.";
            };
            hostnameFile = mkOption {
              type = types.nullOr types.str;
              default = null;
              example = "/var/lib/tor/onion/lnd/hostname";
              description = "A file holding the address (Tor's onion `hostname`), read when `status` runs.";
            };
            port = mkOption {
              type = types.nullOr types.port;
              default = null;
              description = "The port clients connect to.";
            };
          };
        }
      );
      default = [ ];
      description = ''
        More addresses clients connect to (LAN names, onion services made
        elsewhere), shown by `chainstead status` after the onion services of
        `services.chainstead.tor`.
      '';
    };

    timeoutSecs = mkOption {
      type = types.numbers.between 0.05 1.8;
      default = 1.5;
      description = "How long each probe may take; they run at once, so the command ends within 2 s.";
    };

    backupMaxAgeSecs = mkOption {
      type = types.ints.positive;
      default = 3600;
      description = "A backup target behind the newest channel.backup for longer than this needs attention.";
    };

    manifest = mkOption {
      type = types.package;
      readOnly = true;
      default = checkedManifest;
      defaultText = literalExpression "the rendered, checked manifest";
      description = "The manifest `chainstead status` reads (/etc/chainstead/status.json), checked with `chainstead status --validate`.";
    };
  };

  config = mkIf cfg.enable {
    environment.systemPackages = [ cfg.package ];
    environment.etc."chainstead/status.json".source = checkedManifest;
    system.build.chainstead-status-manifest = checkedManifest;

    users.groups.${group} = { };
    users.users = lib.genAttrs cfg.operators (_: {
      extraGroups = [ group ] ++ lib.optional bitcoind.enable bitcoind.rpc.group;
    });

    # readonly.macaroon is world-readable (LND writes only admin.macaroon
    # 0640); the operator group may traverse the 2750 macaroon directory to
    # it, never list or read admin.macaroon. `a+` adds to the ACL and leaves
    # a directory that does not exist yet alone; the mask keeps the owning
    # group's r-x.
    systemd.tmpfiles.rules = lib.optional lnd.enable "a+ ${lnd.macaroonDir} - - - - g:${group}:--x,m::r-x";
  };
}
