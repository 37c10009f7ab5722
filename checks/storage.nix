# VM test: the fast/bulk tiers on two real disks. Block files land on the
# bulk disk and chainstate on the fast disk; both RPCs answer; and with the
# bulk disk missing neither bitcoind nor monerod starts, and nothing is
# written under the empty mount point.
{ pkgs }:
let
  # qemu-vm replaces `fileSystems` with `virtualisation.fileSystems`, so the
  # tier mounts are declared there (the eval tests cover the module's own
  # fileSystems entries). The test formats the disks itself.
  tierMount = label: {
    device = "/dev/disk/by-label/${label}";
    fsType = "ext4";
    options = [
      "noatime"
      "nofail"
      # A missing disk should fail its mount in seconds, not 90 s.
      "x-systemd.device-timeout=5s"
    ];
  };

  node =
    { disks }:
    { pkgs, lib, ... }:
    {
      imports = [ ../modules ];
      virtualisation = {
        memorySize = 2048;
        emptyDiskImages = disks;
        fileSystems = {
          "/srv/fast" = tierMount "fast";
          "/srv/bulk" = tierMount "bulk";
        };
      };
      environment.systemPackages = [
        pkgs.curl
        pkgs.jq
        pkgs.e2fsprogs
      ];
      # A configuration change to switch to: more memory for bitcoind.
      # (mkForce: a specialisation extends this configuration, so its value
      # would otherwise conflict with the 512 below.)
      specialisation.bigger-dbcache.configuration.services.chainstead.bitcoind.memory = lib.mkForce 1024;
      services.chainstead = {
        storage = {
          fast.path = "/srv/fast";
          bulk.path = "/srv/bulk";
        };
        bitcoind = {
          enable = true;
          network = "regtest";
          memory = 512;
        };
        monerod = {
          enable = true;
          network = "regtest";
          bulkSyncWarning = false;
          settings = {
            offline = true;
            fixed-difficulty = 1;
          };
        };
      };
    };
in
pkgs.testers.runNixOSTest {
  name = "chainstead-storage";

  nodes = {
    # /dev/vdb becomes the fast disk, /dev/vdc the bulk disk.
    machine = node {
      disks = [
        1024
        2048
      ];
    };
    # Only the fast disk: the bulk disk is "missing".
    nobulk = node { disks = [ 1024 ]; };
  };

  testScript = ''
    start_all()

    with subtest("tier disks get their labels, then the services start"):
        machine.wait_for_unit("multi-user.target")
        machine.succeed("mkfs.ext4 -q -L fast /dev/vdb")
        machine.succeed("mkfs.ext4 -q -L bulk /dev/vdc")
        machine.succeed("udevadm settle")
        machine.succeed("systemctl start bitcoind.service monerod.service")
        machine.wait_for_unit("bitcoind.service")
        machine.wait_for_unit("monerod.service")

    with subtest("every tier user carries RequiresMountsFor on its directories"):
        machine.succeed("systemctl show -p RequiresMountsFor bitcoind.service | grep -F /srv/bulk/bitcoind-blocks")
        machine.succeed("systemctl show -p RequiresMountsFor bitcoind.service | grep -F /srv/fast/bitcoind")
        machine.succeed("systemctl show -p RequiresMountsFor monerod.service | grep -F /srv/bulk/monerod")

    with subtest("bitcoind answers RPC through the operator's wrapper"):
        machine.wait_until_succeeds("bitcoin-cli getblockchaininfo")
        machine.succeed("bitcoin-cli getblockchaininfo | jq -e '.chain == \"regtest\"'")

    with subtest("block files are on the bulk disk, chainstate on the fast disk"):
        machine.wait_until_succeeds("test -e /srv/bulk/bitcoind-blocks/regtest/blocks/blk00000.dat")
        machine.succeed("test \"$(findmnt -n -o SOURCE --target /srv/bulk/bitcoind-blocks/regtest/blocks)\" = /dev/vdc")
        machine.succeed("test -d /srv/fast/bitcoind/regtest/chainstate")
        machine.succeed("test \"$(findmnt -n -o SOURCE --target /srv/fast/bitcoind/regtest/chainstate)\" = /dev/vdb")
        machine.fail("test -e /srv/fast/bitcoind/regtest/blocks/blk00000.dat")

    with subtest("the RPC cookie is readable by the bitcoin-rpc group only"):
        machine.succeed("test \"$(stat -c '%a %U %G' /run/chainstead/bitcoind-rpc/cookie)\" = '640 bitcoind bitcoin-rpc'")

    with subtest("monerod answers on restricted RPC, its database on the bulk disk"):
        machine.wait_until_succeeds("curl -sf http://127.0.0.1:18081/get_info | jq -e '.status == \"OK\"'")
        # regtest (monerod's fakechain) keeps LMDB in <data-dir>/fake/lmdb.
        machine.succeed("test -e /srv/bulk/monerod/fake/lmdb/data.mdb")
        machine.succeed("test \"$(findmnt -n -o SOURCE --target /srv/bulk/monerod/fake/lmdb)\" = /dev/vdc")

    with subtest("without the bulk disk neither service starts and nothing lands on /"):
        nobulk.wait_for_unit("multi-user.target")
        nobulk.succeed("mkfs.ext4 -q -L fast /dev/vdb")
        nobulk.succeed("udevadm settle")
        nobulk.fail("systemctl start bitcoind.service")
        nobulk.fail("systemctl start monerod.service")
        nobulk.fail("pgrep -x bitcoind")
        nobulk.fail("pgrep -x monerod")
        nobulk.fail("mountpoint -q /srv/bulk")
        # The empty mount point stays empty: no directory was created under it.
        nobulk.succeed("test -z \"$(ls -A /srv/bulk 2>/dev/null)\"")

    with subtest("a configuration change restarts bitcoind with the new settings"):
        before = machine.succeed("systemctl show -p ExecMainStartTimestampMonotonic --value bitcoind.service")
        machine.succeed("/run/current-system/specialisation/bigger-dbcache/bin/switch-to-configuration test")
        machine.wait_for_unit("bitcoind.service")
        after = machine.succeed("systemctl show -p ExecMainStartTimestampMonotonic --value bitcoind.service")
        assert before != after, "bitcoind was not restarted by the configuration change"
        machine.succeed("grep -x dbcache=512 \"$(systemctl show -p ExecStart --value bitcoind.service | grep -o '/nix/store/[^ ]*-bitcoin.conf' | head -n1)\"")
        machine.wait_until_succeeds("bitcoin-cli getblockchaininfo")
        machine.wait_for_unit("monerod.service")
  '';
}
