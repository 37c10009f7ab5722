# VM test: the sync gate holds Fulcrum and LND while a fresh regtest bitcoind
# is in initial block download (regtest stays there until it has a block with
# a recent time), releases them by itself seconds after one block is mined,
# and does so again after a reboot. LND's wallet is created once and unlocked
# from its password file, `lncli getinfo` works, Fulcrum answers
# blockchain.headers.subscribe over TCP and TLS with bitcoind's height, and
# the lnd-ready target is reached. A configuration change switched with
# `switch-to-configuration test` restarts only what changed.
{ pkgs, ... }:
let
  fast = "/var/lib/chainstead-fast";
  lndDir = "${fast}/lnd";

  # A minimal Electrum client (blockchain.headers.subscribe's height).
  electrumHeight = ./fixtures/electrum-height.py;
in
pkgs.testers.runNixOSTest {
  name = "chainstead-sync-gate";

  nodes.machine =
    { pkgs, ... }:
    {
      imports = [ ../modules ];
      virtualisation = {
        memorySize = 3072;
        cores = 2;
      };
      environment.systemPackages = [
        pkgs.jq
        pkgs.python3
      ];

      services.chainstead = {
        # Both tiers as plain directories on the root filesystem.
        storage = {
          fast.path = fast;
          bulk.path = "/var/lib/chainstead-bulk";
        };
        bitcoind = {
          enable = true;
          network = "regtest";
          memory = 512;
        };
        fulcrum = {
          enable = true;
          memory = 512;
        };
        lnd.enable = true;
      };

      # The configuration change to switch to: a Fulcrum setting only.
      specialisation.more-clients.configuration.services.chainstead.fulcrum.settings.max_clients_per_ip = 24;
    };

  testScript =
    { nodes, ... }:
    let
      gate = "${nodes.machine.services.chainstead.syncGate.package}/bin/chainstead-sync-gate";
      manifest = nodes.machine.system.build.chainstead-sync-gate-manifests.bitcoind;
    in
    ''
      def main_start(unit):
          return machine.succeed(f"systemctl show -p ExecMainStartTimestampMonotonic --value {unit}").strip()

      machine.start()

      with subtest("a fresh node reaches multi-user with Fulcrum and LND held back"):
          machine.wait_for_unit("multi-user.target")
          machine.wait_for_unit("bitcoind.service")
          machine.wait_for_unit("chainstead-sync-gate-bitcoind.service")
          machine.wait_for_unit("chainstead-bitcoind-synced.path")
          machine.wait_until_succeeds("bitcoin-cli getblockchaininfo | jq -e '.initialblockdownload == true and .blocks == 0'")
          # The gate reports its progress in the unit's status line.
          machine.wait_until_succeeds("systemctl show -p StatusText --value chainstead-sync-gate-bitcoind.service | grep -i bitcoind")
          print(machine.succeed("systemctl status --no-pager chainstead-sync-gate-bitcoind.service"))
          machine.succeed("test ! -e /run/chainstead/sync/bitcoind")
          machine.fail("systemctl is-active chainstead-bitcoind-synced.target")
          machine.fail("systemctl is-active fulcrum.service")
          machine.fail("systemctl is-active lnd.service")
          # Nothing queued waits for the sync: a switch now would return at once.
          machine.fail("systemctl list-jobs --no-legend | grep -E 'fulcrum|lnd|synced|ready'")

      with subtest("a one-shot check says 'not yet' (exit 1), not an error"):
          machine.succeed("rc=0; ${gate} check --manifest ${manifest} || rc=$?; test $rc -eq 1")

      with subtest("one mined block releases Fulcrum and LND by themselves"):
          machine.succeed("bitcoin-cli createwallet miner")
          address = machine.succeed("bitcoin-cli -rpcwallet=miner getnewaddress").strip()
          machine.succeed(f"bitcoin-cli generatetoaddress 1 {address}")
          machine.wait_until_succeeds("test -e /run/chainstead/sync/bitcoind", timeout=30)
          machine.wait_for_unit("chainstead-bitcoind-synced.target", timeout=30)
          machine.wait_for_unit("fulcrum.service", timeout=30)
          machine.wait_for_unit("lnd.service", timeout=120)
          machine.succeed("${gate} check --manifest ${manifest}")

      with subtest("LND's wallet is created once, the seed root-only, lncli works"):
          machine.wait_for_unit("chainstead-lnd-wallet-init.service", timeout=120)
          machine.succeed("test \"$(stat -c '%a %U %G' /var/lib/chainstead/lnd-seed/seed)\" = '400 root root'")
          machine.succeed("test \"$(wc -w < /var/lib/chainstead/lnd-seed/seed)\" -eq 24")
          machine.succeed("test \"$(stat -c '%a %U' /run/chainstead/secrets/lnd/wallet-password)\" = '400 lnd'")
          machine.wait_until_succeeds("lncli getinfo | jq -e '.identity_pubkey | length == 66'", timeout=120)
          machine.succeed("lncli getinfo | jq -e '.chains[0].network == \"regtest\"'")
          machine.wait_for_unit("chainstead-lnd-ready.target", timeout=60)

      with subtest("only the macaroon group reads the macaroons; tls.cert is public"):
          machine.succeed("test \"$(stat -c '%G' ${lndDir}/macaroons/admin.macaroon)\" = lnd-macaroon")
          machine.fail("runuser -u nobody -- cat ${lndDir}/macaroons/admin.macaroon")
          machine.fail("runuser -u nobody -- ls ${lndDir}")
          machine.succeed("runuser -u nobody -- cat ${lndDir}/tls.cert")

      with subtest("no secret on any command line"):
          # Patterns from the file: the password never enters grep's own argv;
          # -q: a match wins over read errors of processes that just exited.
          machine.fail("grep -q -s -a -F -f /run/chainstead/secrets/lnd/wallet-password /proc/[0-9]*/cmdline")

      with subtest("Fulcrum answers headers.subscribe with bitcoind's height, over TCP and TLS"):
          machine.wait_until_succeeds("test \"$(python3 ${electrumHeight} tcp 50001)\" = \"$(bitcoin-cli getblockcount)\"", timeout=120)
          machine.wait_for_unit("chainstead-fulcrum-synced.target", timeout=60)
          machine.succeed("test \"$(python3 ${electrumHeight} ssl 50002 ${fast}/fulcrum/ssl/cert.pem)\" = 1")
          machine.succeed(f"bitcoin-cli generatetoaddress 1 {address}")
          machine.wait_until_succeeds("test \"$(python3 ${electrumHeight} tcp 50001)\" = 2", timeout=60)

      with subtest("a restarted LND unlocks its wallet from the password file"):
          seed_before = machine.succeed("sha256sum /var/lib/chainstead/lnd-seed/seed")
          machine.succeed("systemctl restart lnd.service")
          machine.wait_until_succeeds("lncli getinfo | jq -e '.identity_pubkey | length == 66'", timeout=120)
          assert seed_before == machine.succeed("sha256sum /var/lib/chainstead/lnd-seed/seed"), "the seed file changed"

      with subtest("a restarted gate does not take the flag away"):
          machine.succeed("systemctl restart chainstead-sync-gate-bitcoind.service")
          machine.succeed("test -e /run/chainstead/sync/bitcoind")
          machine.succeed("systemctl is-active fulcrum.service lnd.service")

      with subtest("switch-to-configuration test restarts Fulcrum only"):
          fulcrum_before = main_start("fulcrum.service")
          lnd_before = main_start("lnd.service")
          machine.succeed("/run/current-system/specialisation/more-clients/bin/switch-to-configuration test")
          machine.wait_for_unit("fulcrum.service")
          assert fulcrum_before != main_start("fulcrum.service"), "Fulcrum was not restarted"
          assert lnd_before == main_start("lnd.service"), "LND was restarted although its config did not change"
          machine.succeed("grep -x max_clients_per_ip=24 \"$(systemctl show -p ExecStart --value fulcrum.service | grep -o '/nix/store/[^ ;]*-fulcrum.conf' | head -n1)\"")
          machine.wait_until_succeeds("test \"$(python3 ${electrumHeight} tcp 50001)\" = 2", timeout=60)

      with subtest("after a reboot of the synced node everything starts again by itself"):
          machine.shutdown()
          machine.start()
          machine.wait_for_unit("multi-user.target")
          machine.wait_for_unit("chainstead-bitcoind-synced.target", timeout=60)
          machine.wait_for_unit("fulcrum.service", timeout=60)
          machine.wait_for_unit("lnd.service", timeout=120)
          machine.wait_until_succeeds("lncli getinfo | jq -e '.block_height == 2'", timeout=120)
          machine.wait_for_unit("chainstead-lnd-ready.target", timeout=60)
          machine.wait_until_succeeds("test \"$(python3 ${electrumHeight} tcp 50001)\" = 2", timeout=120)
    '';
}
