# monerod: the rendered config file, networks, the unit, the bulk-tier warning.
{ lib, harness }:
let
  h = harness;

  node =
    monerod:
    h.evalConfig [
      {
        services.chainstead = {
          storage = {
            fast.path = "/srv/fast";
            bulk.path = "/srv/bulk";
          };
          monerod = {
            enable = true;
          }
          // monerod;
        };
      }
    ];
  lines = config: lib.splitString "\n" (h.renderedText config.services.chainstead.monerod.configFile);
  service = config: config.systemd.services.monerod;
  mainnet = node { };
  slowWarning = "keeps its LMDB database on the bulk tier";
in
{
  config-file = [
    (h.expectNoFailedAssertions "a default node evaluates cleanly" mainnet)
    (h.expectContains "data on the bulk tier" "data-dir=/srv/bulk/monerod" (lines mainnet))
    (h.expectContains "log next to the data, not in a home directory" "log-file=/srv/bulk/monerod/monerod.log" (lines mainnet))
    (h.expectContains "RPC on loopback" "rpc-bind-ip=127.0.0.1" (lines mainnet))
    (h.expectContains "mainnet RPC port" "rpc-bind-port=18081" (lines mainnet))
    (h.expectContains "restricted RPC by default" "restricted-rpc=1" (lines mainnet))
    (h.expectContains "no UPnP" "no-igd=1" (lines mainnet))
    (h.expectContains "ZMQ off unless asked" "no-zmq=1" (lines mainnet))
    (h.expectNotContains "no CPU limit unless asked" "max-concurrency" (lines mainnet))
    (h.expectContains "the seed's CPU limit" "max-concurrency=2" (lines (node { maxConcurrency = 2; })))
    (h.expectContains "pruning" "prune-blockchain=1" (lines (node { prune = true; })))
    (h.expectContains "a pruned node may sync from pruned peers" "sync-pruned-blocks=1" (lines (node { prune = true; })))
    (h.expectNoSecrets "the config holds no secret" { value = lib.concatStringsSep "\n" (lines mainnet); })
  ];

  zmq =
    let
      withZmq = node {
        zmq = {
          enable = true;
          pub = "tcp://127.0.0.1:18083";
        };
      };
    in
    [
      (h.expectNotContains "enabling ZMQ drops no-zmq" "no-zmq=1" (lines withZmq))
      (h.expectContains "ZMQ RPC on loopback" "zmq-rpc-bind-ip=127.0.0.1" (lines withZmq))
      (h.expectContains "ZMQ RPC on the network's port" "zmq-rpc-bind-port=18082" (lines withZmq))
      (h.expectContains "the publisher address" "zmq-pub=tcp://127.0.0.1:18083" (lines withZmq))
    ];

  networks =
    let
      regtest = node {
        network = "regtest";
        settings = {
          offline = true;
          fixed-difficulty = 1;
        };
      };
    in
    [
      (h.expectContains "stagenet flag" "stagenet=1" (lines (node { network = "stagenet"; })))
      (h.expectContains "stagenet RPC port" "rpc-bind-port=38081" (lines (node { network = "stagenet"; })))
      (h.expectContains "testnet P2P port" "p2p-bind-port=28080" (lines (node { network = "testnet"; })))
      (h.expectContains "regtest is the fakechain flag" "regtest=1" (lines regtest))
      (h.expectContains "freeform settings pass through" "fixed-difficulty=1" (lines regtest))
      (h.expectNotContains "mainnet sets no network flag" "mainnet=1" (lines mainnet))
    ];

  unit = [
    (h.expectEqual "started with its config file, never interactive" "${lib.getExe' mainnet.services.chainstead.monerod.package "monerod"} '--config-file=${mainnet.services.chainstead.monerod.configFile}' --non-interactive"
      (service mainnet).serviceConfig.ExecStart
    )
    (h.expectEqual "runs as the static monero user" "monero" (service mainnet).serviceConfig.User)
    (h.expectTrue "an exit 1 stays a failure (monerod exits 0 on SIGTERM)"
      (!((service mainnet).serviceConfig ? SuccessExitStatus) && (service mainnet).serviceConfig.Restart == "on-failure")
      "serviceConfig: ${h.show (service mainnet).serviceConfig}"
    )
    (h.expectEqual "RandomX's JIT is the one W^X exception" false (service mainnet).serviceConfig.MemoryDenyWriteExecute)
    (h.expectEqual "otherwise the strict baseline" "strict" (service mainnet).serviceConfig.ProtectSystem)
    (h.expectEqual "P2P closed by default" [ ] mainnet.networking.firewall.allowedTCPPorts)
    (h.expectEqual "openFirewall opens the P2P port" [ 18080 ]
      (node { p2p.openFirewall = true; }).networking.firewall.allowedTCPPorts
    )
  ];

  bulk-warning = [
    (h.expectTrue "LMDB on the bulk tier warns" (lib.any (lib.hasInfix slowWarning) mainnet.warnings) "warnings: ${h.show mainnet.warnings}")
    (h.expectEqual "the warning can be acknowledged" [ ] (node { bulkSyncWarning = false; }).warnings)
    (h.expectEqual "no warning on the fast tier" [ ]
      (h.evalConfig [
        {
          services.chainstead = {
            storage = {
              fast.path = "/srv/fast";
              placement.monerod = "fast";
            };
            monerod.enable = true;
          };
        }
      ]).warnings
    )
  ];

  refused-settings = [
    (h.expectAssertion "rpc-login in settings is refused" (node { settings."rpc-login" = "u:p"; }) "would put a secret into the world-readable Nix store")
  ];
}
