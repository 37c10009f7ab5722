# Monitoring: the scrape targets follow the enabled services and their
# ports, every exporter stays on loopback unless asked, LND's own metrics,
# node_exporter's textfile directory, the local Prometheus with the rules,
# Grafana provisioning, and the exporter's manifest (no secret, no admin
# macaroon).
{ lib, harness }:
let
  h = harness;

  node =
    extra:
    h.evalConfig [
      {
        services.chainstead = lib.recursiveUpdate {
          storage = h.tiers;
          monitoring.enable = true;
        } extra;
      }
    ];

  full = node {
    bitcoind.enable = true;
    monerod.enable = true;
    fulcrum.enable = true;
    lnd.enable = true;
  };
  bitcoindOnly = node { bitcoind.enable = true; };
  remote = node {
    bitcoind.enable = true;
    lnd.enable = true;
    monitoring = {
      listenAddress = "10.0.0.5";
      openFirewall = true;
      bitcoinExporter.rpcPasswordFile = "/run/keys/exporter-rpc";
    };
  };
  local = node {
    bitcoind.enable = true;
    lnd.enable = true;
    monitoring = {
      prometheus.enable = true;
      grafana.provision = true;
      thresholds.channelInactiveMinutes = 7;
    };
  };

  targets =
    config:
    lib.concatMap (j: lib.concatMap (s: s.targets) j.static_configs) config.services.chainstead.monitoring.scrapeConfigs;
  jobs = config: map (j: j.job_name) config.services.chainstead.monitoring.scrapeConfigs;
  manifest = config: h.renderedJSON config.system.build.chainstead-exporter-manifest.manifest;
  unit = config: config.systemd.services.chainstead-exporter;
  ports = config: config.networking.firewall.allowedTCPPorts;
  rules = config: h.renderedText config.services.chainstead.monitoring.ruleFile;
in
{
  targets = [
    (h.expectNoFailedAssertions "the full stack evaluates cleanly" full)
    (h.expectEqual "exporter and node_exporter on loopback for bitcoind alone" [
      "127.0.0.1:9777"
      "127.0.0.1:9100"
    ] (targets bitcoindOnly))
    (h.expectContains "LND's own metrics are scraped when LND is on" "127.0.0.1:8989" (targets full))
    (h.expectNotContains "no LND job without LND" "chainstead-lnd" (jobs bitcoindOnly))
    (h.expectNotContains "no bitcoind exporter without a password file" "chainstead-bitcoind" (jobs full))
    (h.expectContains "the bitcoind exporter (the seed's :9332) with a password file" "10.0.0.5:9332" (targets remote))
    (h.expectContains "targets follow listenAddress" "10.0.0.5:8989" (targets remote))
    (h.expectEqual "a changed exporter port follows" [ "127.0.0.1:9999" ] (
      lib.take 1 (targets (node { monitoring.exporter.port = 9999; }))
    ))
  ];

  loopback = [
    (h.expectEqual "node_exporter on loopback" "127.0.0.1" full.services.prometheus.exporters.node.listenAddress)
    (h.expectEqual "LND's metrics on loopback" "127.0.0.1:8989" full.services.chainstead.lnd.settings."prometheus.listen")
    (h.expectEqual "LND's metrics on" true full.services.chainstead.lnd.settings."prometheus.enable")
    (h.expectEqual "the exporter listens on loopback" "127.0.0.1:9777" (manifest full).listen)
    (h.expectEqual "no firewall port unless asked" [ ] (ports full))
    (h.expectEqual "the exporter talks to loopback only" [ "any" ] (unit full).serviceConfig.IPAddressDeny)
    (h.expectEqual "the asked address" "10.0.0.5" remote.services.prometheus.exporters.bitcoin.listenAddress)
    (h.expectEqual "openFirewall opens exactly the exporters' ports" [
      8989
      9100
      9332
      9777
    ] (lib.sort lib.lessThan (ports remote)))
    (h.expectEqual "a remote Prometheus may reach the exporter" [ ] (unit remote).serviceConfig.IPAddressDeny)
  ];

  exporters = [
    (h.expectContains "node_exporter reads the chainstead textfiles"
      "--collector.textfile.directory=/var/lib/prometheus-node-exporter-text-files"
      full.services.prometheus.exporters.node.extraFlags
    )
    (h.expectContains "failed units come from the systemd collector" "systemd"
      full.services.prometheus.exporters.node.enabledCollectors
    )
    (h.expectEqual "the bitcoind exporter reads the password file" "/run/keys/exporter-rpc"
      remote.services.prometheus.exporters.bitcoin.rpcPasswordFile
    )
    (h.expectEqual "the bitcoind exporter's RPC port is bitcoind's" 8332 remote.services.prometheus.exporters.bitcoin.rpcPort)
    (h.expectAssertion "a password file in the store is refused" (node {
      bitcoind.enable = true;
      monitoring.bitcoinExporter.rpcPasswordFile = "${builtins.storeDir}/0000000000000000000000000000000-pw";
    }) "rpcPasswordFile is in the Nix store")
    (h.expectEqual "the exporter runs as its own user" "chainstead-exporter" (unit full).serviceConfig.User)
    (h.expectContains "it reads bitcoind's cookie through the cookie group" "bitcoin-rpc"
      (unit full).serviceConfig.SupplementaryGroups
    )
    (h.expectNotContains "it is not in LND's macaroon group" "lnd-macaroon"
      (unit full).serviceConfig.SupplementaryGroups
    )
  ];

  manifest = [
    (h.expectEqual "every service of the full stack is in the manifest" [
      "bitcoind"
      "fulcrum"
      "listen"
      "lnd"
      "monerod"
      "timeout_secs"
      "version"
    ] (builtins.attrNames (manifest full)))
    (h.expectTrue "LND through readonly.macaroon, never admin" (lib.hasSuffix "/readonly.macaroon" (manifest full).lnd.macaroon_file) (manifest full).lnd.macaroon_file)
    (h.expectEqual "bitcoind through the cookie" "/run/chainstead/bitcoind-rpc/cookie" (manifest full).bitcoind.cookie_file)
    (h.expectEqual "monerod's nettype" "mainnet" (manifest full).monerod.nettype)
    (h.expectNoSecrets "the exporter's manifest holds no secret" { value = builtins.toJSON (manifest remote); })
    (h.expectNoSecrets "nor does the whole configuration" { config = remote; })
  ];

  local-prometheus = [
    (h.expectNoFailedAssertions "a local Prometheus and Grafana evaluate cleanly" local)
    (h.expectTrue "the local Prometheus is on" local.services.prometheus.enable "")
    (h.expectEqual "it listens on loopback" "127.0.0.1" local.services.prometheus.listenAddress)
    (h.expectEqual "it scrapes the ready scrapeConfigs" (jobs local) (
      map (j: j.job_name) local.services.prometheus.scrapeConfigs
    ))
    (h.expectEqual "it loads the rules" [ local.services.chainstead.monitoring.ruleFile ] local.services.prometheus.ruleFiles)
    (h.expectContains "a threshold reaches the rules" "\"for\":\"7m\"" (rules local))
    (h.expectEqual "no local Prometheus unless asked" false full.services.prometheus.enable)
    (h.expectEqual "the dashboard is provisioned" [ "chainstead" ] (
      map (p: p.name) local.services.grafana.provision.dashboards.settings.providers
    ))
    (h.expectEqual "with the local Prometheus as data source" [ "http://127.0.0.1:9090" ] (
      map (d: d.url) local.services.grafana.provision.datasources.settings.datasources
    ))
  ];
}
