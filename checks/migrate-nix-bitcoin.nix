# VM test (issue 10): a nix-bitcoin node becomes a chainstead node without a
# resync and without two LNDs on one channel.db, through
# `chainstead migrate-nix-bitcoin` and modules/migrate.nix
# (docs/migrate-from-nix-bitcoin.md).
#
# The node boots as a nix-bitcoin node (checks/fixtures/nix-bitcoin-shaped.nix:
# nix-bitcoin v0.0.139's layout and units, regtest). The test mines, funds
# LND's wallet on chain, lets Fulcrum index, and records the chain tip, LND's
# identity and balance and the inodes of the files that must move. While
# nix-bitcoin's daemons run, the command refuses (exit 1) and moves nothing;
# so it does with LND stopped while another process holds channel.db's lock.
# Then `switch-to-configuration test` to the specialisation `chainstead`
# (nix-bitcoin's services off; chainstead's bitcoind with blocksDir = null,
# Fulcrum with dbDir = dataDir, LND, the migration): the switch stops
# nix-bitcoin's daemons, and chainstead-migrate-nix-bitcoin.service renames
# their data before chainstead's start. Afterwards:
#   - bitcoind has the same tip at once, its block file the same inode;
#   - Fulcrum's first start opened the old index: Storage.cpp
#     (loadCheckTxNumsDRAAndBlkInfo) logs "<n> total transactions" only for a
#     database that already has blocks, and n is the chain's transaction count
#     (cculianu/Fulcrum, the same line in v1.12.0 and v2.1.1);
#   - LND has the same identity and on-chain balance, channel.db and wallet.db
#     the same inodes, exactly one channel.db under /var/lib, and never more
#     than one lnd process was seen (a sampler of /proc/*/comm all along);
#   - chainstead-lnd-wallet-init reports the existing wallet and makes none;
#   - the seed, wallet password and TLS pair are chainstead's, the tombstones
#     stand where nix-bitcoin's LND directories were;
#   - all three follow a new block; a second run, by hand and of the unit,
#     says "nothing to migrate".
# `switch-to-configuration test` of a specialisation points /run/current-system
# at it (NixOS's activation script), so the base system's path is kept first.
{ pkgs, ... }:
let
  inherit (pkgs) lib;

  fast = "/var/lib/chainstead-fast";

  # The chainstead side, also evaluated by checks/eval/scenarios/migrate-vm.nix
  # (through `passthru`) on top of the fixture, as the specialisation is.
  chainsteadNode = {
    services.chainstead = {
      storage = {
        fast.path = fast;
        bulk.path = "/var/lib/chainstead-bulk";
      };
      bitcoind = {
        enable = true;
        network = "regtest";
        memory = 512;
        # The block files stay in the adopted datadir.
        blocksDir = null;
      };
      fulcrum = {
        enable = true;
        memory = 512;
        # nix-bitcoin's index lies directly in its datadir.
        dbDir = "${fast}/fulcrum";
      };
      lnd.enable = true;
      migrate.nixBitcoin.enable = true;
    };
  };
  fixture = ./fixtures/nix-bitcoin-shaped.nix;

  electrumHeight = ./fixtures/electrum-height.py;

  # The highest number of processes named lnd seen at once, in
  # /run/lnd-count-max, sampled every 0.1 s until stopped.
  countLnd = pkgs.writeShellScript "count-lnd" ''
    max=0
    echo 0 > /run/lnd-count-max
    while true; do
      n=0
      for f in /proc/[0-9]*/comm; do
        c=""
        { read -r c < "$f"; } 2>/dev/null || true
        if [ "$c" = lnd ]; then
          n=$((n + 1))
        fi
      done
      if [ "$n" -gt "$max" ]; then
        max=$n
        echo "$max" > /run/lnd-count-max
      fi
      ${pkgs.coreutils}/bin/sleep 0.1
    done
  '';
in
pkgs.testers.runNixOSTest {
  name = "chainstead-migrate-nix-bitcoin";

  passthru = {
    inherit chainsteadNode fixture fast;
  };

  nodes.machine =
    { lib, ... }:
    {
      imports = [
        ../modules
        fixture
      ];
      virtualisation = {
        memorySize = 4096;
        cores = 2;
      };
      environment.systemPackages = [
        pkgs.jq
        pkgs.python3
      ];

      testFixtures.nixBitcoinShaped.enable = true;

      specialisation.chainstead.configuration = {
        imports = [ chainsteadNode ];
        testFixtures.nixBitcoinShaped.enable = lib.mkForce false;
      };
    };

  testScript =
    { nodes, ... }:
    let
      chainstead = nodes.machine.specialisation.chainstead.configuration;
      migration = chainstead.services.chainstead.migrate.nixBitcoin;
      cli = lib.getExe migration.package;
    in
    ''
      import json

      fast = "${fast}"
      unit_command = ${builtins.toJSON migration.command}

      def sh(cmd):
          return machine.succeed(cmd).strip()

      def lnd_up():
          machine.wait_until_succeeds("lncli getinfo | jq -e '.identity_pubkey | length == 66'", timeout=300)

      def inode(path):
          return sh(f"stat -c %i {path}")

      def refused(args, why):
          status, out = machine.execute(f"${cli} migrate-nix-bitcoin --network regtest {args} 2>&1")
          print(out)
          assert status == 1, f"exit {status}, wanted 1 (refused)"
          assert "refusing to migrate; nothing was changed" in out, out
          assert why in out, f"{why!r} not in the refusal"

      # nix-bitcoin's files, their inodes and owners, and what is beside them.
      nb_files = [
          "/var/lib/bitcoind/bitcoin.conf",
          "/var/lib/bitcoind/regtest/blocks/blk00000.dat",
          "/var/lib/fulcrum/fulcrum.conf",
          "/var/lib/lnd/lnd.conf",
          "/var/lib/lnd/lnd-seed-mnemonic",
          "/var/lib/lnd/graph/regtest/channel.db",
          "/var/lib/lnd/chain/bitcoin/regtest/wallet.db",
          "/var/lib/lnd/chain/bitcoin/regtest/macaroons.db",
          "/var/lib/lnd/chain/bitcoin/regtest/admin.macaroon",
      ]
      def snapshot():
          return sh(
              "stat -c '%i %U %a %n' " + " ".join(nb_files) + " /var/lib/fulcrum/*"
              + "; ls -A1 /var/lib/bitcoind /var/lib/fulcrum /var/lib/lnd /etc/nix-bitcoin-secrets"
          )

      def nothing_moved(before):
          assert snapshot() == before, "nix-bitcoin's files changed"
          machine.succeed(f"test ! -e {fast}")
          machine.succeed("test ! -e /var/lib/chainstead/lnd-seed/seed")

      machine.start()
      base = sh("readlink -f /run/current-system")

      with subtest("the nix-bitcoin node runs: a funded LND wallet, Fulcrum indexed"):
          machine.wait_for_unit("bitcoind.service")
          machine.succeed("bitcoin-cli createwallet miner")
          miner = sh("bitcoin-cli -rpcwallet=miner getnewaddress")
          machine.succeed(f"bitcoin-cli generatetoaddress 101 {miner}")
          machine.wait_for_unit("lnd.service")
          lnd_up()
          address = json.loads(sh("lncli newaddress p2wkh"))["address"]
          machine.succeed(f"bitcoin-cli -rpcwallet=miner -named sendtoaddress address={address} amount=1 fee_rate=10")
          machine.succeed(f"bitcoin-cli generatetoaddress 6 {miner}")
          machine.wait_until_succeeds("lncli walletbalance | jq -e '(.confirmed_balance | tonumber) == 100000000'", timeout=300)
          blocks = int(sh("bitcoin-cli getblockcount"))
          machine.wait_until_succeeds(f"lncli getinfo | jq -e '.synced_to_chain and .block_height == {blocks}'", timeout=300)
          machine.wait_for_unit("fulcrum.service")
          machine.wait_until_succeeds(f"test \"$(python3 ${electrumHeight} tcp 50001)\" = {blocks}", timeout=300)
          # The layout the migration expects (lnd.nix datadir=/var/lib/lnd; bitcoind.nix, fulcrum.nix).
          machine.succeed("test -d /var/lib/lnd/graph/regtest -a -d /var/lib/lnd/chain/bitcoin/regtest")
          machine.succeed("test \"$(stat -c '%U %a' /var/lib/lnd/lnd-seed-mnemonic)\" = 'lnd 400'")
          machine.succeed("test \"$(wc -w < /var/lib/lnd/lnd-seed-mnemonic)\" -eq 24")
          machine.succeed("grep -q '^datadir=/var/lib/lnd$' /var/lib/lnd/lnd.conf")
          machine.succeed("grep -q '^rpcpassword = ' /var/lib/fulcrum/fulcrum.conf")
          machine.succeed("test \"$(stat -c '%a' /etc/nix-bitcoin-secrets)\" = 751")

      with subtest("while nix-bitcoin's daemons run, the command refuses and moves nothing"):
          before = snapshot()
          everything = (
              f"--bitcoind-dir {fast}/bitcoind --bitcoind-user bitcoin"
              f" --fulcrum-dir {fast}/fulcrum --fulcrum-user fulcrum"
              f" --lnd-dir {fast}/lnd --lnd-wallet-password-file {fast}/lnd-wallet-password"
              " --lnd-seed-file /var/lib/chainstead/lnd-seed/seed --lnd-user lnd --macaroon-group lnd"
          )
          lnd_only = (
              f"--lnd-dir {fast}/lnd --lnd-wallet-password-file {fast}/lnd-wallet-password"
              " --lnd-seed-file /var/lib/chainstead/lnd-seed/seed --lnd-user lnd --macaroon-group lnd"
          )
          refused(everything, "is running (pid")
          nothing_moved(before)
          refused(lnd_only, "lnd is running (pid")
          nothing_moved(before)

      with subtest("with LND stopped, a process holding channel.db's lock is refused too"):
          machine.succeed("systemctl stop lnd.service")
          machine.succeed(
              "systemd-run --unit=hold-channel-db ${pkgs.util-linux}/bin/flock /var/lib/lnd/graph/regtest/channel.db ${pkgs.coreutils}/bin/sleep infinity"
          )
          machine.wait_until_succeeds("! ${pkgs.util-linux}/bin/flock -n /var/lib/lnd/graph/regtest/channel.db true")
          refused(lnd_only, "channel.db is locked by another process")
          nothing_moved(before)
          machine.succeed("systemctl stop hold-channel-db.service")
          machine.succeed("systemctl start lnd.service")
          lnd_up()

      with subtest("what must survive, recorded"):
          best = sh("bitcoin-cli getbestblockhash")
          txcount = json.loads(sh("bitcoin-cli getchaintxstats"))["txcount"]
          info = json.loads(sh("lncli getinfo"))
          pubkey = info["identity_pubkey"]
          balance = json.loads(sh("lncli walletbalance"))["confirmed_balance"]
          inodes = {
              "blk": inode("/var/lib/bitcoind/regtest/blocks/blk00000.dat"),
              "channel": inode("/var/lib/lnd/graph/regtest/channel.db"),
              "wallet": inode("/var/lib/lnd/chain/bitcoin/regtest/wallet.db"),
              "admin": inode("/var/lib/lnd/chain/bitcoin/regtest/admin.macaroon"),
          }
          # Fulcrum's entries but its config, by name, with their inodes.
          listed = sh("cd /var/lib/fulcrum && stat -c '%i %n' $(ls -A | grep -vx fulcrum.conf)")
          fulcrum_entries = {name: number for number, name in (line.split(" ", 1) for line in listed.splitlines())}
          assert fulcrum_entries, "Fulcrum's datadir is empty"
          seed_words = sh("xargs -n1 < /var/lib/lnd/lnd-seed-mnemonic | sha256sum")
          cursor = sh("journalctl -n 1 --show-cursor -o cat | sed -n 's/^-- cursor: //p'")
          assert cursor, "no journal cursor"

      with subtest("the switch to chainstead adopts the data before chainstead's daemons start"):
          machine.succeed("systemd-run --unit=count-lnd ${countLnd}")
          machine.wait_until_succeeds("test \"$(cat /run/lnd-count-max)\" = 1")
          machine.succeed(f"{base}/specialisation/chainstead/bin/switch-to-configuration test")
          machine.succeed("systemctl is-active chainstead-migrate-nix-bitcoin.service")
          print(machine.succeed("journalctl -o cat -u chainstead-migrate-nix-bitcoin.service"))

      with subtest("bitcoind: the same chain at once, its block files renamed"):
          assert int(sh("bitcoin-cli getblockcount")) == blocks
          assert sh("bitcoin-cli getbestblockhash") == best
          assert inode(f"{fast}/bitcoind/regtest/blocks/blk00000.dat") == inodes["blk"]
          machine.succeed(f"test \"$(stat -c %U {fast}/bitcoind/regtest/blocks/blk00000.dat)\" = bitcoind")
          machine.succeed(f"test ! -e {fast}/bitcoind/bitcoin.conf")
          machine.succeed("test ! -e /var/lib/bitcoind")
          machine.succeed(f"test -e {fast}/bitcoind/.migrated-from-nix-bitcoin")

      with subtest("Fulcrum: its first start opened the old index"):
          machine.wait_for_unit("fulcrum.service")
          machine.wait_until_succeeds(f"test \"$(python3 ${electrumHeight} tcp 50001)\" = {blocks}", timeout=120)
          log = sh(f"journalctl -o cat -u fulcrum.service --after-cursor='{cursor}'").splitlines()
          starts = [i for i, line in enumerate(log) if "Loading database" in line]
          assert starts, "Fulcrum did not start after the switch"
          first = log[starts[0]:starts[1] if len(starts) > 1 else len(log)]
          assert any(f"{txcount} total transactions" in line for line in first), "\n".join(first)
          for name, number in fulcrum_entries.items():
              assert inode(f"{fast}/fulcrum/{name}") == number, f"{name} was not renamed"
          machine.succeed(f"test ! -e {fast}/fulcrum/fulcrum.conf")
          machine.succeed("test ! -e /var/lib/fulcrum")
          machine.succeed(f"test -z \"$(find {fast}/fulcrum ! -user fulcrum ! -name .migrated-from-nix-bitcoin)\"")

      with subtest("LND: the same node and wallet, one channel.db, never two LNDs"):
          lnd_up()
          machine.wait_for_unit("lnd.service")
          # nix-bitcoin's lnd.service had stopped before chainstead's (the same
          # unit name) started: what the 0.1 s sampler might miss, systemd's
          # own timestamps say.
          stopped = int(sh("systemctl show -p InactiveEnterTimestampMonotonic --value lnd.service"))
          started = int(sh("systemctl show -p ExecMainStartTimestampMonotonic --value lnd.service"))
          assert 0 < stopped < started, f"lnd stopped at {stopped}, started at {started}"
          assert json.loads(sh("lncli getinfo"))["identity_pubkey"] == pubkey
          machine.wait_until_succeeds(f"lncli walletbalance | jq -e '(.confirmed_balance | tonumber) == {int(balance)}'", timeout=120)
          channel_db = f"{fast}/lnd/data/graph/regtest/channel.db"
          assert inode(channel_db) == inodes["channel"]
          assert inode(f"{fast}/lnd/data/chain/bitcoin/regtest/wallet.db") == inodes["wallet"]
          assert sh("find /var/lib -name channel.db") == channel_db
          machine.succeed(f"test \"$(stat -c %U {channel_db})\" = lnd")
          assert inode(f"{fast}/lnd/macaroons/admin.macaroon") == inodes["admin"]
          machine.succeed(f"test \"$(stat -c '%U %G %a' {fast}/lnd/macaroons/admin.macaroon)\" = 'lnd lnd-macaroon 640'")
          machine.wait_for_unit("chainstead-lnd-wallet-init.service")
          # journald takes a oneshot's last lines asynchronously: wait for them.
          machine.wait_until_succeeds(
              "journalctl -o cat -u chainstead-lnd-wallet-init.service | grep -q 'the wallet exists'", timeout=30
          )
          init_log = sh("journalctl -o cat -u chainstead-lnd-wallet-init.service")
          assert "generating the seed" not in init_log and "creating the wallet" not in init_log, init_log

      with subtest("the seed, wallet password and TLS pair moved with it; tombstones stand"):
          seed = "/var/lib/chainstead/lnd-seed/seed"
          assert sh(f"xargs -n1 < {seed} | sha256sum") == seed_words
          machine.succeed(f"test \"$(stat -c '%U %a' {seed})\" = 'root 400'")
          machine.succeed("test ! -e /var/lib/lnd/lnd-seed-mnemonic")
          machine.succeed(f"cmp /etc/nix-bitcoin-secrets/lnd-wallet-password {fast}/lnd-wallet-password")
          machine.succeed(f"test \"$(stat -c '%U %a' {fast}/lnd-wallet-password)\" = 'lnd 400'")
          machine.succeed(f"cmp /etc/nix-bitcoin-secrets/lnd-cert {fast}/lnd/tls.cert")
          machine.succeed(f"cmp /etc/nix-bitcoin-secrets/lnd-key {fast}/lnd/tls.key")
          machine.succeed(f"test \"$(stat -c '%U %a' {fast}/lnd/tls.key)\" = 'lnd 600'")
          machine.succeed("test ! -e /var/lib/lnd/lnd.conf")
          for d in ("chain", "graph"):
              machine.succeed(f"test -f /var/lib/lnd/{d}")
              machine.succeed(f"grep -q \"^chainstead: nix-bitcoin's LND data moved away\" /var/lib/lnd/{d}")
          machine.succeed(f"test -e {fast}/lnd/data/.migrated-from-nix-bitcoin")

      with subtest("all three follow a new block"):
          # bitcoind's wallet moved with the datadir.
          machine.succeed("bitcoin-cli listwallets | jq -e 'index(\"miner\")' || bitcoin-cli loadwallet miner")
          machine.succeed(f"bitcoin-cli generatetoaddress 1 {miner}")
          machine.wait_until_succeeds(f"test \"$(python3 ${electrumHeight} tcp 50001)\" = {blocks + 1}", timeout=120)
          machine.wait_until_succeeds(f"lncli getinfo | jq -e '.block_height == {blocks + 1}'", timeout=120)

      with subtest("a second run finds nothing to migrate, by hand and as the unit"):
          out = sh(unit_command)
          assert "nothing to migrate" in out, out
          machine.succeed("systemctl restart chainstead-migrate-nix-bitcoin.service")
          invocation = sh("systemctl show -p InvocationID --value chainstead-migrate-nix-bitcoin.service")
          machine.wait_until_succeeds(
              f"journalctl -o cat _SYSTEMD_INVOCATION_ID={invocation} | grep -q 'nothing to migrate'", timeout=30
          )
          lnd_up()
          assert json.loads(sh("lncli getinfo"))["identity_pubkey"] == pubkey
          assert int(sh("bitcoin-cli getblockcount")) == blocks + 1
          assert sh("find /var/lib -name channel.db") == channel_db

      with subtest("never more than one lnd process"):
          machine.succeed("systemctl stop count-lnd.service")
          assert sh("cat /run/lnd-count-max") == "1", "two LNDs ran at once"
    '';
}
