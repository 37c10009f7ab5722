# VM test: the bulk tier as an NFS export from a second VM (the seed's ZFS
# dataset on the Proxmox host). bitcoind's block files land on the export,
# its chainstate stays local; the mount carries the storage module's NFS
# options and bitcoind is ordered after the network; and with the NFS server
# stopped at boot, bitcoind does not start and nothing is written under the
# empty mount point. Once the server is back, bitcoind starts on the same
# block files.
{ pkgs }:
let
  export = "/export";
in
pkgs.testers.runNixOSTest {
  name = "chainstead-nfs-bulk";

  nodes = {
    server = {
      services.nfs.server = {
        enable = true;
        # no_root_squash: the tier's setup unit (root) gives each directory
        # its owner (docs/storage.md, "Bulk over NFS").
        exports = ''
          ${export} *(rw,sync,no_subtree_check,no_root_squash)
        '';
        createMountPoints = true;
      };
      # NFSv4 needs nothing but its own port.
      networking.firewall.allowedTCPPorts = [ 2049 ];
    };

    client =
      { config, pkgs, ... }:
      {
        imports = [ ../modules ];
        virtualisation.memorySize = 1024;
        # qemu-vm replaces `fileSystems` with `virtualisation.fileSystems`, so
        # the module's own entry for the tier is declared there, unchanged:
        # the test mounts with exactly the options the module renders.
        virtualisation.fileSystems."/srv/bulk" = {
          inherit (config.services.chainstead.storage.bulk) device fsType options;
        };
        environment.systemPackages = [ pkgs.jq ];
        services.chainstead = {
          storage = {
            fast.path = "/srv/fast";
            bulk = {
              path = "/srv/bulk";
              device = "server:${export}";
              fsType = "nfs";
            };
          };
          bitcoind = {
            enable = true;
            network = "regtest";
            memory = 512;
          };
        };
      };
  };

  testScript = ''
    # The server first: the client mounts the export at boot.
    server.start()
    server.wait_for_unit("nfs-server.service")
    server.succeed("systemctl start network-online.target")
    server.wait_for_unit("network-online.target")

    with subtest("the client mounts the export and bitcoind starts on it"):
        client.start()
        client.wait_for_unit("srv-bulk.mount")
        client.wait_for_unit("bitcoind.service")
        client.wait_until_succeeds("bitcoin-cli getblockchaininfo")
        client.succeed("bitcoin-cli getblockchaininfo | jq -e '.chain == \"regtest\"'")

    with subtest("the mount carries the module's NFS options"):
        options = client.succeed("findmnt -n -o OPTIONS /srv/bulk")
        assert "hard" in options, f"not a hard mount: {options}"
        assert client.succeed("findmnt -n -o FSTYPE /srv/bulk").strip().startswith("nfs")

    with subtest("bitcoind is ordered after the network and requires both of its directories"):
        client.succeed("systemctl show -p After --value bitcoind.service | grep -w network-online.target")
        client.succeed("systemctl show -p After --value bitcoind.service | grep -w remote-fs.target")
        client.succeed("systemctl show -p RequiresMountsFor --value bitcoind.service | grep -F /srv/bulk/bitcoind-blocks")
        client.succeed("systemctl show -p RequiresMountsFor --value bitcoind.service | grep -F /srv/fast/bitcoind")

    with subtest("block files are on the export, chainstate stays local"):
        client.wait_until_succeeds("test -e /srv/bulk/bitcoind-blocks/regtest/blocks/blk00000.dat")
        server.succeed("test -e ${export}/bitcoind-blocks/regtest/blocks/blk00000.dat")
        # The setup unit could give the directory its owner (no_root_squash).
        client.succeed("test \"$(stat -c %U /srv/bulk/bitcoind-blocks)\" = bitcoind")
        client.succeed("test -d /srv/fast/bitcoind/regtest/chainstate")
        client.succeed("test \"$(findmnt -n -o TARGET --target /srv/fast/bitcoind/regtest/chainstate)\" = /")
        server.fail("test -e ${export}/bitcoind/regtest/chainstate")

    with subtest("with the NFS server stopped at boot, bitcoind does not start and nothing lands on /"):
        # A clean stop first: bitcoind flushes to the export while it is there.
        client.shutdown()
        server.succeed("systemctl stop nfs-server.service")
        client.start()
        client.wait_for_unit("multi-user.target")
        client.fail("mountpoint -q /srv/bulk")
        client.fail("systemctl is-active bitcoind.service")
        client.fail("pgrep -x bitcoind")
        # Starting it by hand fails on the mount too.
        client.fail("systemctl start bitcoind.service")
        client.fail("pgrep -x bitcoind")
        # The empty mount point stays empty: no directory was created under it.
        client.succeed("test -z \"$(ls -A /srv/bulk 2>/dev/null)\"")
        server.succeed("test -e ${export}/bitcoind-blocks/regtest/blocks/blk00000.dat")

    with subtest("once the server is back, bitcoind starts on the same block files"):
        server.succeed("systemctl start nfs-server.service")
        # NFSv4's grace period after a server start can delay the first open.
        client.wait_until_succeeds("systemctl start bitcoind.service", timeout=300)
        client.wait_until_succeeds("bitcoin-cli getblockchaininfo")
        client.succeed("mountpoint -q /srv/bulk")
        client.succeed("test -e /srv/bulk/bitcoind-blocks/regtest/blocks/blk00000.dat")
  '';
}
