# The sync gate: services that need a synced backend (Fulcrum and LND need
# bitcoind out of initial block download, ThunderHub needs LND's RPC) start
# by themselves once it is ready, and `nixos-rebuild switch` never waits for
# a sync that takes days.
#
# Per gate <name>, set by the modules that consume the backend:
#   chainstead-sync-gate-<name>.service  long-lived, Type=notify: ready as
#       soon as its manifest is loaded, so its start job ends at once; polls
#       the backend and writes /run/chainstead/sync/<name> when it is synced
#   <target>.path    PathExists= on that flag, starts the target
#   <target>.target  what dependents are wantedBy and ordered after, instead
#       of multi-user.target (chainstead-<name>-synced.target by default)
#
# The bitcoind gate is declared here once, from the bitcoind clients of the
# consumers it starts (`bitcoindClients`, set by Fulcrum and LND), which must
# agree: the one gate polls one bitcoind.
#
# Dependents put `after = [ "<target>.target" ]` next to their wantedBy: that
# explicit ordering also keeps systemd from adding the reverse default
# After= a target gets on the units it wants (systemd.target(5)), so the
# target's start job never waits for a dependent's start.
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
  cfg = config.services.chainstead.syncGate;
  inherit (config.services.chainstead) bitcoind;

  # The first consumer's client (by name) stands for all; they must agree.
  bitcoindClient = lib.head (lib.attrValues cfg.bitcoindClients);
  disagreeing = lib.filter (c: c.connection != bitcoindClient.connection) (
    lib.attrValues cfg.bitcoindClients
  );

  user = "chainstead-sync";
  flagDir = "/run/chainstead/sync";
  # Members may write textfiles into the metrics directory.
  metricsGroup = "chainstead-metrics";

  # The JSON values a manifest may hold (pkgs.formats.json's value type,
  # written out so the module needs nothing from pkgs to declare options).
  jsonValue =
    types.nullOr (
      types.oneOf [
        types.bool
        types.int
        types.float
        types.str
        (types.attrsOf jsonValue)
        (types.listOf jsonValue)
      ]
    )
    // {
      description = "JSON value";
    };

  gateType = types.submodule (
    { name, config, ... }:
    {
      options = {
        backend = mkOption {
          type = types.submodule {
            freeformType = types.attrsOf jsonValue;
            options.kind = mkOption {
              type = types.enum [
                "bitcoind"
                "monerod"
                "lnd"
                "electrum"
              ];
              description = "Which kind of backend the gate polls.";
            };
          };
          example = literalExpression ''
            {
              kind = "bitcoind";
              rpc_url = "http://127.0.0.1:8332";
              chain = "main";
              cookie_file = "/run/chainstead/bitcoind-rpc/cookie";
            }
          '';
          description = ''
            The manifest's `backend` object, as chainstead-sync-gate reads it:
            addresses and credential file names, never secret values.
          '';
        };
        target = mkOption {
          type = types.str;
          default = "chainstead-${name}-synced";
          defaultText = literalExpression ''"chainstead-<name>-synced"'';
          description = "Name (without `.target`) of the target the flag starts; dependents are wantedBy it.";
        };
        after = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "bitcoind.service" ];
          description = "Units the gate starts after: the backend's own unit when it runs on this host.";
        };
        wantedBy = mkOption {
          type = types.listOf types.str;
          default = [ "multi-user.target" ];
          description = "Units that pull the gate in.";
        };
        supplementaryGroups = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "bitcoin-rpc" ];
          description = "Groups the gate runs with, to read the backend's credential files (the bitcoind cookie).";
        };
        credentials = mkOption {
          type = types.attrsOf chainstead.secretFileType;
          default = { };
          example = {
            rpc-password = "/run/chainstead/secrets/sync-gate/bitcoind-rpc-password";
          };
          description = ''
            Secret files handed to the gate with systemd's `LoadCredential=`;
            the manifest names them as
            `/run/credentials/chainstead-sync-gate-<name>.service/<id>`.
          '';
        };
        flagFile = mkOption {
          type = types.str;
          default = "${flagDir}/${name}";
          readOnly = true;
          description = "The flag the gate writes once the backend is ready.";
        };
        manifest = mkOption {
          type = types.package;
          readOnly = true;
          description = "The gate's manifest, checked with `chainstead-sync-gate validate` when the system is built.";
        };
      };

      # A bad manifest fails the build of the system, not the boot.
      config.manifest = chainstead.checkedManifest {
        inherit pkgs;
        inherit (cfg) package;
        name = "chainstead-sync-gate-${name}";
        value = {
          version = 1;
          inherit name;
          flag_file = config.flagFile;
          metrics_dir = cfg.metricsDir;
          poll = {
            slow_secs = cfg.poll.slowSecs;
            fast_secs = cfg.poll.fastSecs;
          };
          inherit (config) backend;
        };
      };
    }
  );

  gateUnit = name: gate: {
    description = "Wait until ${name} is synced, then start ${gate.target}.target";
    inherit (gate) wantedBy;
    after = lib.unique gate.after;
    restartTriggers = [ gate.manifest ];

    serviceConfig = chainstead.hardening // {
      # exec
      ExecStart = "${lib.getExe cfg.package} wait --manifest ${gate.manifest}";
      # READY as soon as the manifest is loaded: the start job ends at once.
      Type = "notify";
      # A misconfiguration exits non-zero; retry with a growing delay.
      Restart = "on-failure";
      RestartSec = "5s";
      RestartSteps = 10;
      RestartMaxDelaySec = "5min";
      TimeoutStopSec = "10s";

      # identity and paths
      User = user;
      Group = user;
      SupplementaryGroups = lib.unique ([ metricsGroup ] ++ gate.supplementaryGroups);
      LoadCredential = lib.mapAttrsToList (id: path: "${id}:${path}") gate.credentials;
      # The flag directory comes from tmpfiles, not RuntimeDirectory=, so a
      # flag survives restarts of the gate; "-": the metrics directory may
      # be missing (then only the metrics are lost).
      ReadWritePaths = [
        flagDir
        "-${cfg.metricsDir}"
      ];
    };
  };

  pathUnit = _: gate: {
    description = "Start ${gate.target}.target once ${gate.flagFile} exists";
    wantedBy = [ "multi-user.target" ];
    pathConfig = {
      PathExists = gate.flagFile;
      Unit = "${gate.target}.target";
    };
  };

  targetUnit = name: _: {
    description = "${name} is synced (started by chainstead-sync-gate-${name})";
  };

  byTarget = f: lib.mapAttrs' (name: gate: lib.nameValuePair gate.target (f name gate)) cfg.gates;
in
{
  options.services.chainstead.syncGate = {
    package = chainstead.toolPackageOption pkgs "chainstead-sync-gate" ../pkgs/chainstead-tools/sync-gate.nix;

    poll = {
      slowSecs = mkOption {
        type = types.ints.between 1 300;
        default = 20;
        description = ''
          Seconds between polls while the backend is far from its tip: a
          multi-day initial sync costs the backend almost nothing.
        '';
      };
      fastSecs = mkOption {
        type = types.ints.between 1 60;
        default = 1;
        description = "Seconds between polls near the tip, so dependents start within about two seconds of readiness.";
      };
    };

    metricsDir = mkOption {
      type = types.str;
      default = "/var/lib/prometheus-node-exporter-text-files";
      description = ''
        Directory of node_exporter's textfile collector; each gate writes
        `chainstead-sync-gate-<name>.prom` there (progress, height, target,
        ready flag, last error).
      '';
    };

    gates = mkOption {
      type = types.attrsOf gateType;
      default = { };
      internal = true;
      description = ''
        One gate per backend, set by the modules that need the backend synced
        (this module the bitcoind gate, LND its own, Fulcrum its own).
      '';
    };

    bitcoindClients = mkOption {
      type = types.attrsOf types.raw;
      default = { };
      internal = true;
      description = ''
        The bitcoind clients (modules/bitcoind-client.nix) of the services the
        bitcoind gate starts, by consumer; set by Fulcrum and LND. The
        bitcoind gate, `chainstead-sync-gate-bitcoind.service`, exists when one
        is set and polls the bitcoind they all name.
      '';
    };
  };

  config = lib.mkMerge [
    (mkIf (cfg.bitcoindClients != { }) {
      assertions = [
        {
          assertion = disagreeing == [ ];
          message = ''
            ${lib.concatMapStringsSep " and " (c: c.option) (lib.attrValues cfg.bitcoindClients)}
            differ, but both start from the one bitcoind sync gate on this host.
            Point them at the same bitcoind with the same credential (host, port,
            network, cookieFile, or user and passwordFile or passwordSecret).
          '';
        }
      ];

      # chainstead-bitcoind-synced.target: bitcoind has left initial block
      # download; Fulcrum and LND are wanted by it.
      services.chainstead.syncGate.gates.bitcoind = bitcoindClient.gateFor "bitcoind" // {
        after = lib.optional bitcoind.enable "bitcoind.service";
      };

      # With a password from OpenBao, the gate loads it itself.
      services.chainstead.secrets.services = bitcoindClient.secretsFor {
        sync-gate-bitcoind = {
          unit = "chainstead-sync-gate-bitcoind";
          owner = "root";
        };
      };
    })
    (mkIf (cfg.gates != { }) {
      assertions = [
        {
          assertion = cfg.poll.fastSecs <= cfg.poll.slowSecs;
          message = ''
            services.chainstead.syncGate.poll.fastSecs (${toString cfg.poll.fastSecs}) must not exceed
            .slowSecs (${toString cfg.poll.slowSecs}): the fast interval is the one used near the tip.
          '';
        }
      ];

      users = {
        users.${user} = {
          isSystemUser = true;
          group = user;
          description = "chainstead sync gate";
        };
        groups.${user} = { };
        groups.${metricsGroup} = { };
      };

      system.build.chainstead-sync-gate-manifests = lib.mapAttrs (_: gate: gate.manifest) cfg.gates;

      systemd = {
        # The flags live as long as the boot: a reboot gates again, a restart of
        # a gate (a switch that changed it) does not re-gate started services.
        # (tmpfiles creates the missing parent /run/chainstead as root 0755.)
        tmpfiles.rules = [ "d ${flagDir} 0755 ${user} ${user} - -" ];
        # The metrics directory: writable by the chainstead-metrics group (every
        # chainstead tool that writes textfiles), readable by node_exporter.
        # A setting, so the backup pusher's identical one merges with it.
        tmpfiles.settings."10-chainstead".${cfg.metricsDir}.d = {
          mode = "0775";
          user = "root";
          group = metricsGroup;
        };

        services = lib.mapAttrs' (
          name: gate: lib.nameValuePair "chainstead-sync-gate-${name}" (gateUnit name gate)
        ) cfg.gates;
        paths = byTarget pathUnit;
        targets = byTarget targetUnit;
      };
    })
  ];
}
