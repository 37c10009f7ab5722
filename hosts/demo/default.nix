# The all-in-one regtest demo: `nix run .#demo` boots it in QEMU with two
# extra disks for the fast and bulk tiers. Log in on the console (root is
# logged in automatically) or over SSH from the host:
#
#   ssh -p 2222 root@127.0.0.1          (password: chainstead)
#
# Everything runs on regtest: no real coins, nothing leaves the VM.
{ modulesPath, ... }:
let
  # qemu-vm replaces `fileSystems` with `virtualisation.fileSystems`, so the
  # tier mounts are declared there; the disks are formatted on first boot.
  tierDisk = device: {
    inherit device;
    fsType = "ext4";
    autoFormat = true;
    options = [
      "noatime"
      "nofail"
    ];
  };
in
{
  imports = [ (modulesPath + "/virtualisation/qemu-vm.nix") ];

  networking.hostName = "chainstead-demo";

  virtualisation = {
    memorySize = 4096;
    cores = 2;
    diskSize = 8192;
    graphics = false;
    # /dev/vdb is the fast tier, /dev/vdc the bulk tier.
    emptyDiskImages = [
      4096
      8192
    ];
    fileSystems = {
      "/srv/fast" = tierDisk "/dev/vdb";
      "/srv/bulk" = tierDisk "/dev/vdc";
    };
    # To the host's loopback only: SSH, ThunderHub, Fulcrum (plain TCP).
    forwardPorts = map (ports: {
      from = "host";
      host = {
        address = "127.0.0.1";
        port = ports.host;
      };
      guest.port = ports.guest;
    }) [
      {
        host = 2222;
        guest = 22;
      }
      {
        host = 3000;
        guest = 3000;
      }
      {
        host = 50001;
        guest = 50001;
      }
    ];
  };

  users.users.root.initialPassword = "chainstead";

  services = {
    getty.autologinUser = "root";
    openssh = {
      enable = true;
      settings.PermitRootLogin = "yes";
    };

    chainstead = {
      storage = {
        fast.path = "/srv/fast";
        bulk.path = "/srv/bulk";
        # The backup target's folder, made on the bulk disk once it is mounted.
        # No unit requires it: a dead disk must not stop the other targets.
        directories.lnd-channel-backups = {
          tier = "bulk";
          path = "/srv/bulk/lnd-channel-backups";
          user = "chainstead-backup";
          group = "chainstead-backup";
          mode = "0700";
          units = [ ];
        };
      };

      bitcoind = {
        enable = true;
        network = "regtest";
        memory = 1024;
      };

      # Held by the sync gate until the first block is mined:
      #   bitcoin-cli createwallet demo && bitcoin-cli -generate 1
      # Electrum clients on the host: 127.0.0.1:50001 (regtest, plain TCP).
      fulcrum = {
        enable = true;
        memory = 512;
        tcp.address = "0.0.0.0";
        openFirewall = true;
      };
      lnd.enable = true;
      # http://127.0.0.1:3000 on the host (the password: docs/thunderhub.md).
      # Listening beyond loopback is for the demo's port forward only.
      thunderhub = {
        enable = true;
        host = "0.0.0.0";
        openFirewall = true;
      };

      # channel.backup copied to the bulk disk within a second of every
      # change: chainstead-backup status --manifest /etc/chainstead/backup.json
      backup = {
        enable = true;
        targets.bulk-disk.directory.path = "/srv/bulk/lnd-channel-backups";
      };

      monerod = {
        enable = true;
        network = "regtest";
        bulkSyncWarning = false;
        # A lone fakechain node: no peers to look for, trivial mining.
        settings = {
          offline = true;
          fixed-difficulty = 1;
        };
      };
    };
  };

  system.stateVersion = "26.05";
}
