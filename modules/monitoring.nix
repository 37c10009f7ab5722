# Monitoring: for every enabled chainstead service, the exporter that covers
# it, bound to loopback unless asked otherwise:
# - bitcoind: nixpkgs' services.prometheus.exporters.bitcoin (port 9332)
#   when an RPC password file is given (it cannot use the cookie);
# - LND: its own Prometheus endpoint (lnd.conf prometheus.enable /
#   prometheus.listen, port 8989; nixpkgs builds lnd with the `monitoring`
#   tag, pkgs/by-name/ln/lnd/package.nix);
# - node_exporter: the chainstead tools' textfile metrics, the storage
#   tiers' filesystems and failed units (systemd collector);
# - chainstead-exporter: LND channels, balances and HTLCs (read-only
#   macaroon), monerod, Fulcrum against bitcoind, bitcoind's height and peers.
# `scrapeConfigs` is the ready value for a Prometheus here or elsewhere; the
# alert rules come from ../monitoring/rules.nix with the thresholds below.
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
    mkDefault
    types
    literalExpression
    ;
  chainstead = import ./lib.nix { inherit lib; };
  inherit (chainstead) connectHost hostPort bitcoinNetworks;
  cfg = config.services.chainstead.monitoring;
  inherit (config.services.chainstead)
    bitcoind
    monerod
    lnd
    fulcrum
    storage
    syncGate
    ;

  user = "chainstead-exporter";
  unit = "chainstead-exporter";
  defaultThresholds = import ../monitoring/thresholds.nix;

  # Where a Prometheus reaches a target bound to `listenAddress`.
  scrapeHost = connectHost cfg.listenAddress;
  target = port: hostPort scrapeHost port;

  loopbackOnly = lib.elem cfg.listenAddress [
    "127.0.0.1"
    "::1"
  ];
  bitcoinExporter = bitcoind.enable && cfg.bitcoinExporter.rpcPasswordFile != null;
  lndMetrics = lnd.enable;

  localBitcoind = {
    rpc_url = "http://${hostPort (connectHost bitcoind.rpc.address) bitcoind.rpc.port}";
    chain = bitcoinNetworks.${bitcoind.network}.section;
    cookie_file = bitcoind.rpc.cookieFile;
  };
  monerodNettype = if monerod.network == "regtest" then "fakechain" else monerod.network;

  manifestValue = {
    version = 1;
    listen = hostPort cfg.listenAddress cfg.exporter.port;
    timeout_secs = cfg.exporter.timeoutSecs;
  }
  // lib.optionalAttrs bitcoind.enable { bitcoind = localBitcoind; }
  // lib.optionalAttrs monerod.enable {
    monerod = {
      rpc_url = "http://${hostPort (connectHost monerod.rpc.address) monerod.rpc.port}";
      nettype = monerodNettype;
    };
  }
  // lib.optionalAttrs lnd.enable {
    lnd = {
      rest_url = "https://${hostPort (connectHost lnd.restAddress) lnd.restPort}";
      tls_cert_file = lnd.tlsCertFile;
      macaroon_file = "${lnd.macaroonDir}/readonly.macaroon";
    };
  }
  // lib.optionalAttrs (fulcrum.enable && bitcoind.enable) {
    fulcrum = {
      address = hostPort (connectHost fulcrum.tcp.address) fulcrum.tcp.port;
      reference = localBitcoind;
    };
  };

  manifest = chainstead.checkedManifest {
    inherit pkgs;
    inherit (cfg) package;
    name = "chainstead-exporter";
    value = manifestValue;
  };

  job = name: port: {
    job_name = name;
    static_configs = [ { targets = [ (target port) ]; } ];
  };

  scrapeConfigs = [
    (job "chainstead" cfg.exporter.port)
    (job "chainstead-node" cfg.nodeExporter.port)
  ]
  ++ lib.optional bitcoinExporter (job "chainstead-bitcoind" cfg.bitcoinExporter.port)
  ++ lib.optional lndMetrics (job "chainstead-lnd" cfg.lndPort);

  rules = import ../monitoring/rules.nix {
    inherit (cfg) thresholds;
    mountpoints = cfg.storageMountpoints;
  };
  ruleFile = pkgs.writeText "chainstead.rules.yml" (builtins.toJSON rules);

  dashboards = pkgs.runCommand "chainstead-grafana-dashboards" { } ''
    mkdir -p $out
    cp ${../monitoring/grafana/chainstead.json} $out/chainstead.json
  '';

  # The exporter only traverses LND's macaroon directory (2750, LND's
  # macaroon group) to open readonly.macaroon, which LND writes 0644; it
  # stays out of the group that reads admin.macaroon. Applied as root before
  # each start, as modules/backup/lnd-access.nix does for the pusher.
  lndAccess = pkgs.writeText "chainstead-exporter-lnd-access.conf" ''
    a+ ${lnd.macaroonDir} - - - - u:${user}:--x,m::r-x
  '';

  thresholdOption =
    name: default:
    mkOption {
      type = if builtins.isFloat default then types.numbers.between 0 1 else types.ints.unsigned;
      inherit default;
      description = "Alert threshold `${name}` (docs/monitoring.md lists what each one bounds).";
    };
in
{
  options.services.chainstead.monitoring = {
    enable = mkEnableOption "Prometheus exporters for every enabled chainstead service, and chainstead's alert rules";

    package = chainstead.toolPackageOption pkgs "chainstead-exporter" ../pkgs/chainstead-tools/exporter.nix;

    listenAddress = mkOption {
      type = types.str;
      default = "127.0.0.1";
      example = "0.0.0.0";
      description = ''
        Address every exporter listens on (chainstead-exporter, node_exporter,
        the bitcoind exporter, LND's metrics). Loopback by default; set an
        address of this host (and {option}`openFirewall`) for a Prometheus on
        another host.
      '';
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open the exporters' ports in the firewall, for a Prometheus on another host.";
    };

    exporter = {
      port = mkOption {
        type = types.port;
        default = 9777;
        description = "Port of chainstead-exporter's `/metrics`.";
      };
      timeoutSecs = mkOption {
        type = types.ints.between 1 60;
        default = 5;
        description = "Seconds each backend may take to answer a scrape; a slower one is `chainstead_exporter_up 0`.";
      };
    };

    nodeExporter.port = mkOption {
      type = types.port;
      default = 9100;
      description = "Port of node_exporter (nixpkgs' default).";
    };

    bitcoinExporter = {
      port = mkOption {
        type = types.port;
        default = 9332;
        description = "Port of the bitcoind exporter (nixpkgs' default; the seed's `blockchain-stack:9332`).";
      };
      rpcUser = mkOption {
        type = types.str;
        default = "exporter";
        description = "bitcoind RPC user of the bitcoind exporter (declare it in services.chainstead.bitcoind.rpc.users).";
      };
      rpcPasswordFile = mkOption {
        type = types.nullOr (types.strMatching "/.*");
        default = null;
        example = "/run/keys/bitcoind-exporter-password";
        description = ''
          File holding {option}`rpcUser`'s password, outside the Nix store. The
          bitcoind exporter (jvstein's bitcoin-prometheus-exporter) cannot read
          the cookie, so it runs only when this is set; chainstead-exporter
          reports bitcoind's height and peers either way.
        '';
      };
    };

    lndPort = mkOption {
      type = types.port;
      default = 8989;
      description = "Port of LND's own Prometheus endpoint (LND's default; the seed's `blockchain-stack:8989`).";
    };

    storageMountpoints = mkOption {
      type = types.listOf types.str;
      default = lib.filter (p: p != null) [
        storage.fast.path
        storage.bulk.path
      ];
      defaultText = literalExpression "the storage tiers' paths";
      description = "Mount points whose filesystem use is alerted on (node_filesystem's `mountpoint` label).";
    };

    thresholds = lib.mapAttrs thresholdOption defaultThresholds;

    scrapeConfigs = mkOption {
      type = types.listOf types.attrs;
      readOnly = true;
      default = scrapeConfigs;
      defaultText = literalExpression "one job per enabled exporter";
      description = ''
        Scrape jobs for every exporter enabled here, targets at
        {option}`listenAddress`: splice them into `services.prometheus.scrapeConfigs`
        of this host or, with the host name in the targets, of another one.
      '';
    };

    ruleFile = mkOption {
      type = types.package;
      readOnly = true;
      default = ruleFile;
      defaultText = literalExpression "monitoring/rules.nix rendered with the thresholds";
      description = "The alert rules with these thresholds, for `services.prometheus.ruleFiles` here or elsewhere.";
    };

    prometheus.enable = mkEnableOption "a local Prometheus scraping {option}`scrapeConfigs` with the alert rules";

    grafana.provision = mkEnableOption ''
      provisioning chainstead's dashboard into an existing `services.grafana`
      (and, with the local Prometheus, its data source)
    '';
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion =
          cfg.bitcoinExporter.rpcPasswordFile == null
          || !lib.hasPrefix builtins.storeDir cfg.bitcoinExporter.rpcPasswordFile;
        message = "services.chainstead.monitoring.bitcoinExporter.rpcPasswordFile is in the Nix store, which is world-readable; point it at a file outside the store.";
      }
    ];

    system.build.chainstead-exporter-manifest = manifest;

    users = {
      users.${user} = {
        isSystemUser = true;
        group = user;
        description = "chainstead exporter";
      };
      groups.${user} = { };
    };

    services = {
      chainstead.lnd.settings = mkIf lndMetrics {
        "prometheus.enable" = true;
        "prometheus.listen" = hostPort cfg.listenAddress cfg.lndPort;
      };

      prometheus = lib.mkMerge [
        {
          exporters.node = {
            enable = true;
            inherit (cfg) listenAddress;
            inherit (cfg.nodeExporter) port;
            # textfile and filesystem are on by default; systemd reports failed units.
            enabledCollectors = [ "systemd" ];
            extraFlags = [ "--collector.textfile.directory=${syncGate.metricsDir}" ];
          };
          exporters.bitcoin = mkIf bitcoinExporter {
            enable = true;
            inherit (cfg) listenAddress;
            inherit (cfg.bitcoinExporter) port rpcUser rpcPasswordFile;
            rpcHost = connectHost bitcoind.rpc.address;
            rpcPort = bitcoind.rpc.port;
          };
        }
        (mkIf cfg.prometheus.enable {
          enable = true;
          listenAddress = mkDefault "127.0.0.1";
          inherit scrapeConfigs;
          ruleFiles = [ ruleFile ];
        })
      ];

      grafana.provision = mkIf cfg.grafana.provision {
        enable = true;
        dashboards.settings.providers = [
          {
            name = "chainstead";
            type = "file";
            options.path = dashboards;
          }
        ];
        datasources.settings.datasources = lib.optional cfg.prometheus.enable {
          name = "chainstead Prometheus";
          type = "prometheus";
          url = "http://${hostPort (connectHost config.services.prometheus.listenAddress) config.services.prometheus.port}";
        };
      };
    };

    networking.firewall.allowedTCPPorts = lib.optionals cfg.openFirewall (
      [
        cfg.exporter.port
        cfg.nodeExporter.port
      ]
      ++ lib.optional bitcoinExporter cfg.bitcoinExporter.port
      ++ lib.optional lndMetrics cfg.lndPort
    );

    systemd.services.${unit} = {
      description = "chainstead exporter: LND channels and HTLCs, monerod, Fulcrum, bitcoind";
      wantedBy = [ "multi-user.target" ];
      after = [ "network.target" ];
      serviceConfig = chainstead.hardening // {
        # exec
        ExecStartPre = lib.optional lnd.enable "-+${pkgs.systemd}/bin/systemd-tmpfiles --create ${lndAccess}";
        ExecStart = "${lib.getExe cfg.package} serve --manifest ${manifest}";
        Type = "notify";
        Restart = "on-failure";
        RestartSec = "5s";

        # identity and paths
        User = user;
        Group = user;
        # Reads bitcoind's cookie.
        SupplementaryGroups = lib.optional bitcoind.enable bitcoind.rpc.group;

        # Every backend is on this host: loopback only, unless a Prometheus
        # elsewhere scrapes it.
        IPAddressDeny = lib.optional loopbackOnly "any";
        IPAddressAllow = lib.optional loopbackOnly "localhost";
        MemoryMax = "128M";
      };
    };
  };
}
