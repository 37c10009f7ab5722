# The seed's node: a Proxmox VM on host Smith (4 vCPU, 12 GB RAM) with an
# NVMe disk on Ceph RBD for the OS, LND and Fulcrum, and an HDD disk from
# the Smith pool for chain data. Deploy from a machine with Nix:
#
#   nixos-rebuild switch --flake .#blockchain-stack --target-host root@<host>
{ modulesPath, ... }:
{
  imports = [
    (modulesPath + "/profiles/qemu-guest.nix")
    ./hardware.nix
  ];

  networking.hostName = "blockchain-stack";

  services.openssh = {
    enable = true;
    settings = {
      PasswordAuthentication = false;
      PermitRootLogin = "prohibit-password";
    };
  };
  # Put the deploying operator's public key here.
  users.users.root.openssh.authorizedKeys.keys = [ ];

  services.chainstead = {
    storage = {
      # The NVMe disk is the root disk: the fast tier is a directory on it.
      fast.path = "/var/lib/chainstead";
      bulk = {
        path = "/srv/bulk";
        device = "/dev/disk/by-label/bulk";
      };
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

    # 12 GB shared by everything: bitcoind gets 4 GB, and two cores while
    # it syncs, as the seed plans.
    bitcoind = {
      enable = true;
      memory = 4096;
      par = 2;
    };

    # Both start by themselves once bitcoind has synced (the sync gate).
    # Fulcrum turns on bitcoind's txindex; its 2 GB budget is the seed's.
    fulcrum.enable = true;
    lnd.enable = true;
    # The LND web UI on 127.0.0.1:3000 once LND's RPC is up; reach it with
    # ssh -L 3000:127.0.0.1:3000 root@blockchain-stack.
    thunderhub.enable = true;

    # LND's channel.backup, within a second of every change, to the HDD.
    # That copy restores nothing by itself once the NVMe disk is lost:
    # without OpenBao the seed (/var/lib/chainstead/lnd-seed/seed) and the
    # wallet password (/var/lib/chainstead/secrets) exist only there, so
    # write the seed down. The HDD is on the same VM, not off the host:
    # add the seed's Proxmox Backup Server and an offsite S3 bucket with
    # their own credentials; docs/backup.md shows both:
    #   targets.pbs.pbs = { repository = "..."; passwordFile = "..."; ... };
    #   targets.offsite.s3 = { encrypt = true; ... };
    backup = {
      enable = true;
      targets.hdd.directory.path = "/srv/bulk/lnd-channel-backups";
    };

    monerod = {
      enable = true;
      maxConcurrency = 2;
      # The seed puts Monero on the HDD knowingly.
      bulkSyncWarning = false;
    };
  };

  system.stateVersion = "26.05";
}
