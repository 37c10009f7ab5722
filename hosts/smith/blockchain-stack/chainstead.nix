# The chainstead part of the seed's node, apart from the VM's hardware so
# that the module evaluation tests can evaluate it as it ships
# (checks/eval/scenarios/budgets.nix).
#
# Disks, with the late-2026 mainnet figures of modules/sizes.nix:
#
#   fast: the NVMe root disk (Ceph RBD), 640 GB. The seed's ≈ 150 GB would
#     not hold Fulcrum alone (≈ 200 GB). Expected: OS 30, bitcoind chainstate
#     12 + txindex 65, Fulcrum 200, pruned monerod 110, LND 20, ThunderHub 1
#     = 438 GB, 68 %: ≈ 106 GB to grow before the 85 % warning, about two
#     and a half years at ≈ 40 GB a year.
#   bulk: an NFS export of the ZFS dataset hdd/blockchain on Smith (the
#     seed's next steps), quota 1200 GB: bitcoind's block files (≈ 760 GB,
#     63 %; ≈ 260 GB, four years of blocks, before 85 %) and the channel
#     backup copy. No database on it: LevelDB and LMDB are not safe on NFS,
#     so the txindex and Monero stay on the NVMe disk.
#
# Memory, 12 GB (the seed's VM): bitcoind 4096 MiB (dbcache 2048), Fulcrum
# 2048, LND 1536, ThunderHub 768, monerod 2560, OS 1024 = 12032 MiB, 256
# spare. During the first sync Fulcrum, LND, ThunderHub and (held back)
# monerod do not run, so bitcoind syncs with a 7680 MiB dbcache and
# restarts once with 2048 when the sync gate releases.
{
  services.chainstead = {
    storage = {
      # The NVMe disk is the root disk: the fast tier is a directory on it.
      fast = {
        path = "/var/lib/chainstead";
        size = 640;
        # OS, Nix store and logs on the same disk (the seed's 30 GB).
        reserved = 30;
      };
      # Smith exports the dataset (docs/storage.md, "Bulk over NFS"):
      #   zfs create -o recordsize=1M -o compression=lz4 -o atime=off \
      #     -o quota=1200G hdd/blockchain
      #   /etc/exports: /hdd/blockchain 10.0.3.8(rw,sync,no_subtree_check,no_root_squash)
      # The mount options are the NFS defaults of the storage module:
      # noatime, nofail, _netdev, hard, a 30 s mount timeout.
      bulk = {
        path = "/srv/bulk";
        device = "smith:/hdd/blockchain";
        fsType = "nfs";
        size = 1200;
      };
      # LMDB on NFS is refused: Monero's database goes on the NVMe disk,
      # pruned to fit (monerod.prune below).
      placement.monerod = "fast";
      # The backup target's folder, made on the bulk tier once it is mounted.
      # No unit requires it: a dead NFS server must not stop the other targets.
      directories.lnd-channel-backups = {
        tier = "bulk";
        path = "/srv/bulk/lnd-channel-backups";
        user = "chainstead-backup";
        group = "chainstead-backup";
        mode = "0700";
        units = [ ];
      };
    };

    # The VM's RAM; the evaluation warns if the budgets below outgrow it.
    memory.total = 12288;

    # bitcoind gets 4 GB, and two cores while it syncs, as the seed plans;
    # its first sync uses what the gated services leave free (7680 MiB).
    bitcoind = {
      enable = true;
      memory = 4096;
      par = 2;
    };

    # Both start by themselves once bitcoind has synced (the sync gate).
    # Fulcrum turns on bitcoind's txindex; its 2 GB budget is the seed's.
    fulcrum = {
      enable = true;
      memory = 2048;
    };
    lnd = {
      enable = true;
      memory = 1536;
    };
    # The LND web UI on 127.0.0.1:3000 once LND's RPC is up; reach it with
    # ssh -L 3000:127.0.0.1:3000 root@blockchain-stack.
    thunderhub.enable = true;

    # LND's channel.backup, within a second of every change, to the NFS
    # export on Smith's HDD pool. That copy restores nothing by itself once
    # the NVMe disk is lost: without OpenBao the seed
    # (/var/lib/chainstead/lnd-seed/seed) and the wallet password
    # (/var/lib/chainstead/secrets) exist only there, so write the seed
    # down. The HDD pool is on the same Proxmox host, not off it: add the
    # seed's Proxmox Backup Server and an offsite S3 bucket with their own
    # credentials; docs/backup.md shows both:
    #   targets.pbs.pbs = { repository = "..."; passwordFile = "..."; ... };
    #   targets.offsite.s3 = { encrypt = true; ... };
    backup = {
      enable = true;
      targets.hdd.directory.path = "/srv/bulk/lnd-channel-backups";
    };

    monerod = {
      enable = true;
      maxConcurrency = 2;
      memory = 2560;
      # ≈ 110 GB instead of ≈ 260 GB, so it fits the NVMe disk.
      prune = true;
      # Its first sync waits for bitcoind's: bitcoind gets its RAM meanwhile.
      waitForBitcoindSync = true;
    };
  };
}
