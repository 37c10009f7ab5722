# VM test (issue 11): an LND upgrade and its rollback through the data-version
# guard (modules/upgrade-guard.nix, docs/operations.md "Upgrades").
#
# One node, regtest bitcoind and LND. The specialisation `newer` runs the same
# LND binary under a package that reports a newer version: a symlinkJoin of
# pkgs.lnd with its own `version` (nixpkgs pkgs/build-support/trivial-builders:
# symlinkJoin takes `pname` and `version` and passes the other arguments on to
# runCommand, so `version` is an attribute of the result, which lib.getVersion
# reads). The steps:
#   - the first start records the real version on the data;
#   - switching to `newer` takes the pre-upgrade copy (channel.db, wallet.db,
#     macaroons) before LND starts, and records the newer version once LND is
#     up;
#   - switching back refuses to start LND, and `systemctl status lnd` says
#     why (both versions, the runbook); channel.db is left alone;
#   - switching forward again starts LND, with no second copy.
# `switch-to-configuration test` of a specialisation points /run/current-system
# at it (NixOS's activation script), so the base system's path is kept first.
{ pkgs, ... }:
let
  inherit (pkgs) lib;

  fast = "/var/lib/chainstead-fast";
  lndDir = "${fast}/lnd";
  copyDir = "${fast}/lnd-pre-upgrade";
  channelDb = "${lndDir}/data/graph/regtest/channel.db";
  stateFile = "${lndDir}/.chainstead-upgrade-guard.json";

  # The next minor version of the LND package, e.g. 0.19.3-beta -> 0.20.0-beta.
  realVersion = lib.getVersion pkgs.lnd;
  newerVersion = "${lib.versions.major realVersion}.${
    toString (lib.toInt (lib.versions.minor realVersion) + 1)
  }.0-beta";
  newerLnd = pkgs.symlinkJoin {
    pname = "lnd";
    version = newerVersion;
    paths = [ pkgs.lnd ];
  };

  # The chainstead part of the node, and the newer configuration's change,
  # also evaluated by checks/eval/scenarios/upgrade-vm.nix (through `passthru`).
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
      };
      lnd.enable = true;
    };
  };
  newer.services.chainstead.lnd.package = newerLnd;
in
pkgs.testers.runNixOSTest {
  name = "chainstead-upgrade";

  passthru = {
    inherit
      chainsteadNode
      newer
      realVersion
      newerVersion
      ;
  };

  nodes.machine = {
    imports = [
      ../modules
      chainsteadNode
    ];
    virtualisation = {
      memorySize = 2048;
      cores = 2;
    };
    environment.systemPackages = [ pkgs.jq ];

    specialisation.newer.configuration = newer;
  };

  testScript =
    { nodes, ... }:
    let
      manifest = nodes.machine.system.build.chainstead-upgrade-guard-lnd-manifest;
    in
    ''
      import json

      def record():
          return json.loads(machine.succeed("chainstead-upgrade-guard status --manifest ${manifest}"))

      def lnd_up():
          machine.wait_until_succeeds("systemctl is-active lnd.service", timeout=300)
          machine.wait_until_succeeds("lncli getinfo | jq -e '.identity_pubkey | length == 66'", timeout=300)

      start_all()
      base = machine.succeed("readlink -f /run/current-system").strip()

      with subtest("the first start records the package's version"):
          machine.wait_for_unit("multi-user.target")
          machine.succeed("bitcoin-cli createwallet miner")
          miner = machine.succeed("bitcoin-cli -rpcwallet=miner getnewaddress").strip()
          # One block releases the sync gate LND waits for.
          machine.succeed(f"bitcoin-cli generatetoaddress 1 {miner}")
          lnd_up()
          machine.wait_until_succeeds(
              "jq -e '.data_version == \"${realVersion}\" and .pending == null' ${stateFile}", timeout=60
          )
          r = record()
          assert r["copies"] == [], r
          assert r["starts"] >= 1, r

      with subtest("an upgrade copies LND's state first, then records the newer version"):
          starts = record()["starts"]
          machine.succeed(f"{base}/specialisation/newer/bin/switch-to-configuration test")
          lnd_up()
          machine.wait_until_succeeds(
              "jq -e '.data_version == \"${newerVersion}\"' ${stateFile}", timeout=60
          )
          r = record()
          assert len(r["copies"]) == 1, r
          c = r["copies"][0]
          assert c["from_version"] == "${realVersion}" and c["to_version"] == "${newerVersion}", c
          assert c["location"].startswith("${copyDir}/"), c
          assert c["starts_at_copy"] == starts, (c, starts)
          assert r["starts"] == starts + 1, r
          # The copy holds channel.db, wallet.db and the macaroons, LND's own.
          copied = c["location"] + "/files"
          machine.succeed(f"test -s {copied}${channelDb}")
          machine.succeed(f"test -s {copied}${lndDir}/data/chain/bitcoin/regtest/wallet.db")
          machine.succeed(f"test -s {copied}${lndDir}/macaroons/admin.macaroon")
          assert machine.succeed(f"stat -c %U {copied}${channelDb}").strip() == "lnd"
          # No unfinished copy is left beside it.
          machine.fail("ls -A ${copyDir} | grep -q '^\\.partial'")

      with subtest("a rollback refuses to start LND, and systemctl status says why"):
          before = machine.succeed("sha256sum < ${channelDb}")
          # The switch fails: LND does not start.
          machine.fail(f"{base}/bin/switch-to-configuration test")
          machine.fail("lncli getinfo")
          status = machine.execute("systemctl status --no-pager --full --lines=30 lnd.service")[1]
          print(status)
          for want in ("refusing to start lnd ${realVersion}", "lnd ${newerVersion}", "docs/operations.md#upgrades"):
              assert want in status, f"{want!r} not in systemctl status lnd"
          assert machine.succeed("sha256sum < ${channelDb}") == before, "channel.db was touched"
          r = record()
          assert r["data_version"] == "${newerVersion}", r
          assert len(r["copies"]) == 1, r

      with subtest("switching forward again starts LND, with no second copy"):
          machine.succeed(f"{base}/specialisation/newer/bin/switch-to-configuration test")
          lnd_up()
          r = record()
          assert r["data_version"] == "${newerVersion}" and r["pending"] is None, r
          assert len(r["copies"]) == 1, r
    '';
}
