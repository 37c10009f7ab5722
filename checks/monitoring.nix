# VM test: monitoring on a regtest bitcoind + LND. node_exporter serves the
# chainstead tools' textfile metrics, chainstead-exporter serves LND's and
# bitcoind's figures, LND serves its own metrics, the local Prometheus
# loads chainstead's rules and reports every target up, every exporter
# listens on loopback only, and a stopped LND is `chainstead_exporter_up 0`
# while the exporter keeps serving.
{ pkgs, ... }:
pkgs.testers.runNixOSTest {
  name = "chainstead-monitoring";

  nodes.machine =
    { pkgs, ... }:
    {
      imports = [ ../modules ];
      virtualisation = {
        memorySize = 3072;
        cores = 2;
      };
      environment.systemPackages = [
        pkgs.curl
        pkgs.iproute2
        pkgs.jq
      ];

      services.chainstead = {
        # Both tiers as plain directories on the root filesystem.
        storage = {
          fast.path = "/var/lib/chainstead-fast";
          bulk.path = "/var/lib/chainstead-bulk";
        };
        bitcoind = {
          enable = true;
          network = "regtest";
          memory = 512;
        };
        lnd.enable = true;
        monitoring = {
          enable = true;
          prometheus.enable = true;
        };
      };
      # A short scrape interval, so the test need not wait a minute.
      services.prometheus.globalConfig = {
        scrape_interval = "5s";
        evaluation_interval = "5s";
      };
    };

  testScript =
    { nodes, ... }:
    let
      macaroons = nodes.machine.services.chainstead.lnd.macaroonDir;
    in
      ''
      import json

      def metrics(port):
          return machine.succeed(f"curl -fsS http://127.0.0.1:{port}/metrics")

      def api(path):
          return json.loads(machine.succeed(f"curl -fsS 'http://127.0.0.1:9090{path}'"))

      machine.start()
      machine.wait_for_unit("multi-user.target")

      with subtest("one mined block releases LND"):
          machine.succeed("bitcoin-cli createwallet miner")
          address = machine.succeed("bitcoin-cli -rpcwallet=miner getnewaddress").strip()
          machine.succeed(f"bitcoin-cli generatetoaddress 1 {address}")
          machine.wait_until_succeeds("systemctl is-active chainstead-lnd-ready.target", timeout=300)

      with subtest("node_exporter serves the chainstead textfile metrics"):
          machine.wait_for_unit("prometheus-node-exporter.service")
          machine.wait_until_succeeds(
              "curl -fsS http://127.0.0.1:9100/metrics | grep -q '^chainstead_sync_gate_ready{gate=\"bitcoind\"} 1'",
              timeout=60,
          )
          machine.succeed("curl -fsS http://127.0.0.1:9100/metrics | grep -q '^node_filesystem_size_bytes'")
          machine.succeed("curl -fsS http://127.0.0.1:9100/metrics | grep -q '^node_systemd_unit_state{name=\"lnd.service\"'")

      with subtest("the exporter serves LND's and bitcoind's figures"):
          machine.wait_for_unit("chainstead-exporter.service")
          machine.wait_until_succeeds(
              "curl -fsS http://127.0.0.1:9777/metrics | grep -q '^chainstead_exporter_up{backend=\"lnd\"} 1'",
              timeout=120,
          )
          m = metrics(9777)
          assert 'chainstead_exporter_up{backend="bitcoind"} 1' in m, m
          assert "chainstead_bitcoind_blocks 1\n" in m, m
          assert "chainstead_lnd_synced_to_chain " in m, m
          assert 'chainstead_lnd_channels{state="active"} 0' in m, m
          assert 'chainstead_lnd_wallet_balance_satoshis{status="confirmed"} 0' in m, m
          # It reads LND with the read-only macaroon and is not in the group
          # that reads admin.macaroon.
          machine.fail("runuser -u chainstead-exporter -- cat ${macaroons}/admin.macaroon")
          machine.succeed("runuser -u chainstead-exporter -- cat ${macaroons}/readonly.macaroon > /dev/null")

      with subtest("LND serves its own metrics"):
          machine.wait_until_succeeds("curl -fsS http://127.0.0.1:8989/metrics | grep -q '^go_goroutines'", timeout=60)

      with subtest("the local Prometheus loads the rules and has every target up"):
          machine.wait_for_unit("prometheus.service")
          rules = api("/api/v1/rules")
          names = [r["name"] for g in rules["data"]["groups"] for r in g["rules"]]
          assert "LndChannelInactive" in names and "BackupBehindChannelChange" in names, names
          assert len(names) == 17, names
          machine.wait_until_succeeds(
              "curl -fsS http://127.0.0.1:9090/api/v1/targets "
              "| jq -e '.data.activeTargets | length == 3 and all(.health == \"up\")'",
              timeout=120,
          )

      with subtest("every exporter listens on loopback only"):
          for port in [9100, 9777, 8989, 9090]:
              out = machine.succeed(f"ss -ltnH 'sport = :{port}'")
              assert out.strip(), f"nothing listens on {port}"
              for line in out.strip().splitlines():
                  local = line.split()[3]
                  assert local.startswith("127.0.0.1:"), f"port {port} listens on {local}"

      with subtest("a stopped LND is up 0, and the exporter keeps serving"):
          machine.succeed("systemctl stop lnd.service")
          machine.wait_until_succeeds(
              "curl -fsS http://127.0.0.1:9777/metrics | grep -q '^chainstead_exporter_up{backend=\"lnd\"} 0'",
              timeout=60,
          )
          assert 'chainstead_exporter_up{backend="bitcoind"} 1' in metrics(9777)
          machine.succeed("systemctl is-active chainstead-exporter.service")
    '';
}
