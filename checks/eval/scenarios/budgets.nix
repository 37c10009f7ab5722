# Disk and memory budgets: the example host fits, an over-full tier warns
# with its directories, bitcoind's indexes on the other tier, the NFS bulk
# tier (mount options, ordering, no databases on it), memory limits and
# weights, and the first sync's large dbcache.
{ lib, harness }:
let
  h = harness;

  host = h.evalConfig [ ../../../hosts/smith/blockchain-stack/chainstead.nix ];
  hostUsage = host.services.chainstead.storage.usage;

  local = {
    fast.path = "/srv/fast";
    bulk = {
      path = "/srv/bulk";
      device = "/dev/disk/by-label/bulk";
    };
  };
  nfs = {
    fast.path = "/srv/fast";
    bulk = {
      path = "/srv/bulk";
      device = "nas:/tank/chain";
      fsType = "nfs";
    };
  };
  stack =
    chainstead:
    h.evalConfig [
      {
        services.chainstead = lib.recursiveUpdate {
          storage = local;
          bitcoind.enable = true;
        } chainstead;
      }
    ];
  unit = config: name: config.systemd.services.${name};
  sc = config: name: (unit config name).serviceConfig;
  warningsWith =
    part: config: lib.filter (lib.hasInfix part) config.warnings;
  hasWarning =
    name: config: part:
    h.expectTrue name (warningsWith part config != [ ]) "warnings: ${h.show config.warnings}";

  # A 1 TB single-disk machine: both tiers on one directory, the whole stack.
  singleDisk =
    extra:
    h.evalConfig [
      {
        services.chainstead = lib.recursiveUpdate {
          storage = {
            fast = {
              path = "/var/lib/chainstead";
              size = 1000;
              reserved = 30;
            };
            bulk.path = "/var/lib/chainstead";
          };
          bitcoind.enable = true;
          fulcrum.enable = true;
          lnd.enable = true;
          monerod = {
            enable = true;
            prune = true;
            bulkSyncWarning = false;
          };
        } extra;
      }
    ];

  overFull = stack {
    storage = local // {
      fast = {
        path = "/srv/fast";
        size = 150;
        reserved = 30;
      };
    };
    fulcrum.enable = true;
  };

  indexesOnBulk = stack {
    storage = local // { placement.bitcoindIndexes = "bulk"; };
    bitcoind.txindex = true;
  };
  indexesOnBulkRegtest = stack {
    storage = local // { placement.bitcoindIndexes = "bulk"; };
    bitcoind.network = "regtest";
  };

  onNfs = chainstead: stack ({ storage = nfs; } // chainstead);

  gated = stack { lnd.enable = true; };
  gatedWithTotal = stack {
    lnd.enable = true;
    memory.total = 16384;
  };
in
{
  example-host = [
    (h.expectNoFailedAssertions "the example host evaluates" host)
    (h.expectEqual "the example host raises no budget or NFS warning" [ ] (
      lib.filter (
        w: lib.hasInfix "services.chainstead.storage" w || lib.hasInfix "services.chainstead.memory" w
      ) host.warnings
    ))
    (h.expectEqual "its NVMe disk is expected to hold 438 GB (the host's comment)" 438 hostUsage.fast.used)
    (h.expectTrue "which leaves room to grow below 85 % of 640 GB" (
      hostUsage.fast.used * 100 < 85 * hostUsage.fast.size && hostUsage.fast.used * 100 < 70 * 640
    ) "used ${toString hostUsage.fast.used} of ${toString hostUsage.fast.size}")
    (h.expectEqual "its NFS bulk tier holds the block files, 760 GB" 760 hostUsage.bulk.used)
    (h.expectEqual "its services fit the 12 GB VM with 256 MiB spare" 12032
      host.services.chainstead.memory.summary.steady
    )
    (h.expectEqual "bitcoind's first sync gets what the gated services leave (at bitcoind's own warning limit)"
      7680
      host.services.chainstead.bitcoind.initialSync.dbcache
    )
    (h.expectTrue "and the first sync fits the RAM too" (
      host.services.chainstead.memory.summary.duringSync <= 12288
    ) "during sync: ${toString host.services.chainstead.memory.summary.duringSync} MiB")
    (h.expectEqual "the bulk tier is an NFS mount" "nfs" host.fileSystems."/srv/bulk".fsType)
    (h.expectContains "monerod waits for bitcoind's first sync" "chainstead-bitcoind-synced.target"
      (unit host "monerod").wantedBy
    )
  ];

  over-full-tier = [
    (hasWarning "a tier above 85 % of its size warns" overFull
      "services.chainstead.storage.fast is expected to hold 307 GB"
    )
    (hasWarning "the warning lists Fulcrum's directory with its size" overFull
      "/srv/fast/fulcrum: 200 GB"
    )
    (hasWarning "and the chainstate with the txindex" overFull "/srv/fast/bitcoind: 77 GB")
    (hasWarning "and says how to move one" overFull
      "services.chainstead.storage.placement.fulcrum = \"bulk\""
    )
    (h.expectNoFailedAssertions "a warning only, by default" overFull)
    (h.expectAssertion "budget.enforce makes it an error"
      (stack {
        storage = local // {
          fast = {
            path = "/srv/fast";
            size = 150;
          };
          budget.enforce = true;
        };
        fulcrum.enable = true;
      })
      "more than\n85 % of its size of 150 GB"
    )
    (h.expectEqual "an own estimate replaces the default" [ ] (
      warningsWith "services.chainstead.storage.fast is expected" (stack {
        storage = local // {
          fast = {
            path = "/srv/fast";
            size = 150;
          };
          directories.fulcrum.expectedSize = 40;
        };
        fulcrum.enable = true;
      })
    ))
    (h.expectEqual "a tier without a size is not checked" [ ] (
      warningsWith "is expected to hold" (stack { fulcrum.enable = true; })
    ))
    (h.expectEqual "a 1 TB single-disk machine counts both tiers once: 30 + 12 + 65 + 200 + 20 + 110 + 760"
      1197
      (singleDisk { }).services.chainstead.storage.usage.fast.used
    )
    (hasWarning "and it does not fit the whole stack, as docs/storage.md says" (singleDisk { })
      "/var/lib/chainstead/bitcoind-blocks: 760 GB"
    )
    (h.expectEqual "bitcoind and LND alone fit it: 30 + 12 + 760 + 20 = 822 GB (the docs' 1 TB table)" [ ] (
      warningsWith "is expected to hold" (singleDisk {
        fulcrum.enable = false;
        monerod.enable = false;
      })
    ))
  ];

  indexes-on-bulk = [
    (h.expectNoFailedAssertions "txindex on bulk, chainstate on fast, evaluates" indexesOnBulk)
    (h.expectEqual "the indexes directory is on bulk" "/srv/bulk/bitcoind-indexes"
      indexesOnBulk.services.chainstead.bitcoind.indexesDir
    )
    (h.expectContains "the fast tier's setup links indexes/ in the datadir to it"
      "L /srv/fast/bitcoind/indexes - - - - /srv/bulk/bitcoind-indexes\n"
      (h.renderedText indexesOnBulk.services.chainstead.storage.setupRules.fast)
    )
    (h.expectContains "the bulk tier's setup creates it for bitcoind"
      "d /srv/bulk/bitcoind-indexes 0750 bitcoind bitcoind - -"
      (h.renderedText indexesOnBulk.services.chainstead.storage.setupRules.bulk)
    )
    (h.expectEqual "bitcoind requires the mounts of the datadir, the link, the indexes and the blocks" [
      "/srv/bulk/bitcoind-blocks"
      "/srv/bulk/bitcoind-indexes"
      "/srv/fast/bitcoind"
      "/srv/fast/bitcoind/indexes"
    ] (lib.sort (a: b: a < b) (unit indexesOnBulk "bitcoind").unitConfig.RequiresMountsFor))
    (h.expectEqual "and waits for both tiers' setup" [
      "chainstead-storage-bulk.service"
      "chainstead-storage-fast.service"
    ] (
      lib.sort (a: b: a < b) (
        lib.filter (lib.hasPrefix "chainstead-storage") (unit indexesOnBulk "bitcoind").after
      )
    ))
    (h.expectContains "bitcoind may write the indexes (ProtectSystem=strict)" "/srv/bulk/bitcoind-indexes"
      (sc indexesOnBulk "bitcoind").ReadWritePaths
    )
    (h.expectEqual "the txindex counts on bulk, the chainstate on fast" {
      fast = 12;
      bulk = 825;
    } (lib.mapAttrs (_: u: u.used) indexesOnBulk.services.chainstead.storage.usage))
    (h.expectContains "off mainnet the link sits in the network's subdirectory"
      "L /srv/fast/bitcoind/regtest/indexes - - - - /srv/bulk/bitcoind-indexes\n"
      (h.renderedText indexesOnBulkRegtest.services.chainstead.storage.setupRules.fast)
    )
    (h.expectContains "which the setup creates first, for bitcoind"
      "d /srv/fast/bitcoind/regtest 0750 bitcoind bitcoind - -"
      (h.renderedText indexesOnBulkRegtest.services.chainstead.storage.setupRules.fast)
    )
    (h.expectEqual "by default the indexes stay inside the datadir, with no link" "/srv/fast/bitcoind/indexes"
      (stack { }).services.chainstead.bitcoind.indexesDir
    )
    (h.expectNotContains "and no link rule" "L " (
      h.renderedText (stack { }).services.chainstead.storage.setupRules.fast
    ))
  ];

  nfs-bulk =
    let
      blocksOnly = onNfs { };
      mount = blocksOnly.fileSystems."/srv/bulk";
    in
    [
      (h.expectNoFailedAssertions "block files on NFS are fine" blocksOnly)
      (h.expectEqual "the NFS tier mounts with noatime, nofail, _netdev, hard and a mount timeout" [
        "noatime"
        "nofail"
        "_netdev"
        "hard"
        "x-systemd.mount-timeout=30s"
      ] mount.options)
      (h.expectEqual "as fsType nfs" "nfs" mount.fsType)
      (h.expectNotContains "without an automount" "x-systemd.automount" mount.options)
      (h.expectContains "bitcoind is ordered after the network" "network-online.target"
        (unit blocksOnly "bitcoind").after
      )
      (h.expectContains "and after remote filesystems" "remote-fs.target" (unit blocksOnly "bitcoind").after)
      (h.expectContains "and wants the network online" "network-online.target"
        (unit blocksOnly "bitcoind").wants
      )
      (h.expectEqual "a local tier keeps the local options" [ "noatime" "nofail" ]
        (stack { }).fileSystems."/srv/bulk".options
      )
      (h.expectAssertion "bitcoind's datadir (LevelDB) on NFS is refused"
        (onNfs { storage = nfs // { placement.bitcoindData = "bulk"; }; })
        "holds a LevelDB database but is placed on the bulk tier"
      )
      (h.expectAssertion "so are its indexes"
        (onNfs { storage = nfs // { placement.bitcoindIndexes = "bulk"; }; })
        "/srv/bulk/bitcoind-indexes holds a LevelDB database"
      )
      (h.expectNotContains "blocks kept in the datadir (blocksDir = null): nothing of bitcoind's on NFS"
        "remote-fs.target"
        (unit (onNfs { bitcoind.blocksDir = null; }) "bitcoind").after
      )
      (h.expectAssertion "and the datadir holding them on NFS is still refused"
        (onNfs {
          storage = nfs // { placement.bitcoindData = "bulk"; };
          bitcoind.blocksDir = null;
        })
        "holds a LevelDB database but is placed on the bulk tier"
      )
      (h.expectAssertion "monerod's LMDB on NFS is refused, citing LMDB"
        (onNfs {
          monerod = {
            enable = true;
            bulkSyncWarning = false;
          };
        })
        "LMDB's own documentation says not to use its databases on remote filesystems"
      )
      (
        let
          accepted = onNfs {
            storage = nfs // {
              allowDatabasesOnNetworkFs = true;
              placement.bitcoindData = "bulk";
            };
          };
        in
        h.expectTrue "allowDatabasesOnNetworkFs turns the refusal into a warning" (
          h.failedAssertions accepted == [ ] && warningsWith "holds a LevelDB database" accepted != [ ]
        ) "assertions: ${h.show (h.failedAssertions accepted)}; warnings: ${h.show accepted.warnings}"
      )
    ];

  memory-limits =
    let
      plain = stack { };
      withLnd = stack {
        lnd.enable = true;
        bitcoind.initialSync.dbcache = null;
      };
      over = stack { memory.total = 4096; };
    in
    [
      (h.expectEqual "bitcoind's limits derive from its memory option" {
        MemoryHigh = "4096M";
        MemoryMax = "5120M";
      } { inherit (sc plain "bitcoind") MemoryHigh MemoryMax; })
      (h.expectEqual "LND's from its own" {
        MemoryHigh = "2048M";
        MemoryMax = "2560M";
      } { inherit (sc withLnd "lnd") MemoryHigh MemoryMax; })
      (h.expectEqual "LND's Go heap stays below them" [ "GOMEMLIMIT=1843MiB" ] (sc withLnd "lnd").Environment)
      (h.expectEqual "LND goes ahead of bitcoind for CPU and I/O" {
        lnd = {
          CPUWeight = 400;
          IOWeight = 400;
        };
        bitcoind = {
          CPUWeight = 50;
          IOWeight = 50;
        };
      } (lib.genAttrs [ "lnd" "bitcoind" ] (n: { inherit (sc withLnd n) CPUWeight IOWeight; })))
      (h.expectEqual "so does Fulcrum, monerod syncs in the background" {
        fulcrum = 400;
        monerod = 50;
      } (
        let
          c = stack {
            fulcrum.enable = true;
            monerod = {
              enable = true;
              bulkSyncWarning = false;
            };
          };
        in
        {
          fulcrum = (sc c "fulcrum").CPUWeight;
          monerod = (sc c "monerod").IOWeight;
        }
      ))
      (hasWarning "services plus the OS above the host's RAM warn" over
        "the services are budgeted 5120 MiB with the OS"
      )
      (hasWarning "naming each budget" over "bitcoind 4096 MiB")
      (h.expectAssertion "memory.enforce makes it an error" (stack {
        memory = {
          total = 4096;
          enforce = true;
        };
      }) "but the host has\n4096 MiB")
      (h.expectEqual "memory.limits = false sets none" null
        ((sc (stack { memory.limits = false; }) "bitcoind").MemoryMax or null)
      )
    ];

  first-sync =
    let
      env = (unit gated "bitcoind").environment;
      steady = unit gated "chainstead-bitcoind-steady-dbcache";
      done = unit gated "chainstead-bitcoind-initial-sync-done";
    in
    [
      (h.expectEqual "with a gate and no RAM figure, the first sync adds the gated services' budgets (450 + LND 2048)"
        (2048 + 2048)
        gated.services.chainstead.bitcoind.initialSync.dbcache
      )
      (h.expectEqual "capped where bitcoind warns of an oversized dbcache (75 % of RAM beyond 2 GiB)"
        ((16384 - 2048) * 3 / 4)
        gatedWithTotal.services.chainstead.bitcoind.initialSync.dbcache
      )
      (h.expectEqual "bitcoind gets -dbcache from its environment" "-dbcache=4096"
        env.CHAINSTEAD_BITCOIND_DBCACHE
      )
      (h.expectTrue "as a separate word at the end of ExecStart" (
        lib.hasSuffix " $CHAINSTEAD_BITCOIND_DBCACHE" (sc gated "bitcoind").ExecStart
      ) (sc gated "bitcoind").ExecStart)
      (h.expectEqual "the marker in the datadir empties it" [
        "-/srv/fast/bitcoind/chainstead-initial-sync-done"
      ] (sc gated "bitcoind").EnvironmentFile)
      (h.expectEqual "bitcoind's unit keeps its steady limits" "4096M" (sc gated "bitcoind").MemoryHigh)
      (h.expectEqual "raised at runtime for the first sync, before bitcoind starts, while the marker is missing"
        {
          ExecStart = "systemctl set-property --runtime bitcoind.service MemoryHigh=6144M MemoryMax=7680M";
          ConditionPathExists = "!/srv/fast/bitcoind/chainstead-initial-sync-done";
          before = [ "bitcoind.service" ];
          wantedBy = [ "bitcoind.service" ];
        }
        (
          let
            u = unit gated "chainstead-bitcoind-initial-limits";
          in
          {
            ExecStart = lib.last (lib.splitString "/bin/" u.serviceConfig.ExecStart);
            inherit (u.unitConfig) ConditionPathExists;
            inherit (u) before wantedBy;
          }
        )
      )
      (h.expectContains "the restart comes with the gate's target" "chainstead-bitcoind-synced.target"
        steady.wantedBy
      )
      (h.expectEqual "only when the gate asked, and only without the marker" [
        "/run/chainstead/sync/bitcoind.steady-dbcache"
        "!/srv/fast/bitcoind/chainstead-initial-sync-done"
      ] steady.unitConfig.ConditionPathExists)
      (h.expectEqual "the marker is written and the steady limits set before the queued restart" [
        "install"
        "mv"
        "systemctl set-property --runtime bitcoind.service MemoryHigh=4096M MemoryMax=5120M"
        "systemctl --no-block restart bitcoind.service"
      ] (
        map (
          cmd:
          let
            tail = lib.last (lib.splitString "/bin/" cmd);
          in
          if lib.hasPrefix "systemctl" tail then tail else lib.head (lib.splitString " " tail)
        ) steady.serviceConfig.ExecStart
      ))
      (h.expectContains "the restart does not block (no waiting in a switch)" "--no-block restart bitcoind.service"
        (lib.last steady.serviceConfig.ExecStart)
      )
      (h.expectEqual "a switch never runs it again" false steady.restartIfChanged)
      (h.expectContains "before LND starts" "lnd.service" steady.before)
      (h.expectEqual "a node synced at boot gets the marker, no restart"
        "!/srv/fast/bitcoind/chainstead-initial-sync-done"
        done.unitConfig.ConditionPathExists
      )
      (h.expectEqual "without a sync gate there is no switch" null
        (stack { }).services.chainstead.bitcoind.initialSync.dbcache
      )
      (hasWarning "an initial dbcache without a gate to switch it back warns" (stack {
        bitcoind.initialSync.dbcache = 8000;
      }) "nothing would switch it\nback")
      (h.expectEqual "no switch on regtest, where there is nothing to cache" null
        (stack {
          lnd.enable = true;
          bitcoind.network = "regtest";
        }).services.chainstead.bitcoind.initialSync.dbcache
      )
      (h.expectEqual "and no switch unit" false (
        (stack { }).systemd.services ? chainstead-bitcoind-steady-dbcache
      ))
      (h.expectAssertion "monerod cannot wait for a gate that does not exist" (stack {
        monerod = {
          enable = true;
          waitForBitcoindSync = true;
          bulkSyncWarning = false;
        };
      }) "waitForBitcoindSync needs the bitcoind sync gate")
    ];
}
