# Storage tiers: default placement, mounts, RequiresMountsFor, the per-tier
# directory setup, and the assertions for impossible layouts.
{ lib, harness }:
let
  h = harness;

  tiers = {
    fast.path = "/srv/fast";
    bulk = {
      path = "/srv/bulk";
      device = "/dev/disk/by-label/bulk";
    };
  };
  stack =
    extra:
    h.evalConfig [
      {
        services.chainstead = {
          storage = tiers;
          bitcoind.enable = true;
          monerod.enable = true;
        };
      }
      extra
    ];
  full = stack { };

  dirs = config: lib.mapAttrs (_: d: d.path) config.services.chainstead.storage.directories;
  unit = config: name: config.systemd.services.${name};
  # The tmpfiles rules a tier's setup oneshot applies.
  tierRules = config: tier: h.renderedText config.services.chainstead.storage.setupRules.${tier};
  setupOf = config: tier: unit config "chainstead-storage-${tier}";
  bootRulesUnder =
    config: root: lib.filter (e: lib.hasPrefix root e.path) (h.tmpfilesEntries config);

  onlyBitcoind =
    storage:
    h.evalConfig [
      {
        services.chainstead = {
          inherit storage;
          bitcoind.enable = true;
        };
      }
    ];
in
{
  default-placement = [
    (h.expectNoFailedAssertions "the seed's layout evaluates cleanly" full)
    (h.expectEqual "every data directory sits on the tier DESIGN.md gives it" {
      bitcoind-data = "/srv/fast/bitcoind";
      bitcoind-blocks = "/srv/bulk/bitcoind-blocks";
      monerod = "/srv/bulk/monerod";
    } (dirs full))
    (h.expectContains "bitcoind gets -blocksdir on bulk" "'-blocksdir=/srv/bulk/bitcoind-blocks'"
      (unit full "bitcoind").serviceConfig.ExecStart
    )
    (h.expectContains "bitcoind gets -datadir on fast" "'-datadir=/srv/fast/bitcoind'"
      (unit full "bitcoind").serviceConfig.ExecStart
    )
    (h.expectContains "monerod's data-dir is on bulk" "data-dir=/srv/bulk/monerod\n" (
      h.renderedText full.services.chainstead.monerod.configFile
    ))
  ];

  mounts = [
    (h.expectEqual "a device becomes a fileSystems entry with noatime,nofail" {
      device = "/dev/disk/by-label/bulk";
      fsType = "ext4";
      options = [
        "noatime"
        "nofail"
      ];
    } { inherit (full.fileSystems."/srv/bulk") device fsType options; })
    (h.expectEqual "a tier without a device declares no mount" [ "/srv/bulk" ] (
      lib.attrNames full.fileSystems
    ))
    (h.expectEqual "bitcoind requires the mounts of both its directories" [
      "/srv/bulk/bitcoind-blocks"
      "/srv/fast/bitcoind"
    ] (lib.sort (a: b: a < b) (unit full "bitcoind").unitConfig.RequiresMountsFor))
    (h.expectEqual "monerod requires the mount of its directory" [ "/srv/bulk/monerod" ]
      (unit full "monerod").unitConfig.RequiresMountsFor
    )
    (h.expectContains "bitcoind pulls in the bulk tier's setup" "chainstead-storage-bulk.service"
      (unit full "bitcoind").wants
    )
    (h.expectNotContains "but does not require it, so a changed setup unit never restarts bitcoind on switch"
      "chainstead-storage-bulk.service"
      (unit full "bitcoind").requires
    )
    (h.expectContains "bitcoind waits for the fast tier's setup" "chainstead-storage-fast.service"
      (unit full "bitcoind").after
    )
    (h.expectEqual "each tier's setup requires the tier's mount" [ "/srv/bulk" ]
      (setupOf full "bulk").unitConfig.RequiresMountsFor
    )
    (h.expectContains "the setup applies the tier's rules file"
      "systemd-tmpfiles --create ${full.services.chainstead.storage.setupRules.bulk}"
      (setupOf full "bulk").serviceConfig.ExecStart
    )
    (h.expectEqual "the setup is a oneshot that stays active" {
      Type = "oneshot";
      RemainAfterExit = true;
    } { inherit ((setupOf full "bulk").serviceConfig) Type RemainAfterExit; })
  ];

  directory-setup = [
    (h.expectContains "the bulk setup creates monerod's directory with owner and mode"
      "d /srv/bulk/monerod 0750 monero monero - -"
      (tierRules full "bulk")
    )
    (h.expectContains "the bulk setup creates the block directory for bitcoind"
      "d /srv/bulk/bitcoind-blocks 0750 bitcoind bitcoind - -"
      (tierRules full "bulk")
    )
    (h.expectContains "the fast setup creates bitcoind's datadir"
      "d /srv/fast/bitcoind 0750 bitcoind bitcoind - -"
      (tierRules full "fast")
    )
    (h.expectEqual "no boot-time tmpfiles rule touches a tier (a missing disk must stay empty)" [ ] (
      bootRulesUnder full "/srv/"
    ))
  ];

  impossible-layouts = [
    (h.expectAssertion "a service on an unset tier is refused, naming the option"
      (onlyBitcoind { fast.path = "/srv/fast"; })
      "services.chainstead.storage.bulk.path is not set"
    )
    (h.expectAssertion "a data directory outside its tier is refused" (stack {
      services.chainstead.bitcoind.dataDir = "/data/bitcoind";
    }) "/data/bitcoind is placed on the fast tier but is not inside")
    (h.expectAssertion "a relative tier path is refused" (onlyBitcoind {
      fast.path = "srv/fast";
      bulk.path = "/srv/bulk";
    }) "must be an absolute path")
    (h.expectAssertion "one path with two different devices is refused" (onlyBitcoind {
      fast = {
        path = "/srv/data";
        device = "/dev/disk/by-label/fast";
      };
      bulk = {
        path = "/srv/data";
        device = "/dev/disk/by-label/bulk";
      };
    }) "name the same path")
    (h.expectNoFailedAssertions "a single-disk host may give both tiers one directory" (onlyBitcoind {
      fast.path = "/var/lib/chainstead";
      bulk.path = "/var/lib/chainstead";
    }))
  ];

  own-state =
    let
      withLnd =
        storage: lnd:
        h.evalConfig [
          {
            services.chainstead = {
              inherit storage;
              bitcoind.enable = true;
              lnd = {
                enable = true;
              }
              // lnd;
            };
          }
        ];
      onRoot = {
        fast.path = "/var/lib/chainstead";
        bulk.path = "/srv/bulk";
      };
    in
    [
      (h.expectNoFailedAssertions "the README's layout (fast tier at /var/lib/chainstead) keeps LND's data apart from its seed" (
        withLnd onRoot { }
      ))
      (h.expectAssertion "a seed inside LND's data directory is refused" (withLnd onRoot {
        seedFile = "/var/lib/chainstead/lnd/seed";
      }) "a directory chainstead keeps for its own")
      (h.expectAssertion "a mounted tier may not cover chainstead's own state" (withLnd {
        fast = {
          path = "/var/lib/chainstead";
          device = "/dev/disk/by-label/fast";
        };
        bulk.path = "/srv/bulk";
      } { }) "which would cover /var/lib/chainstead/lnd-seed")
    ];

  # blocksDir = null: no -blocksdir, the block files stay in the datadir
  # (a node set up without chainstead, e.g. nix-bitcoin's).
  blocks-in-datadir =
    let
      inDatadir = stack { services.chainstead.bitcoind.blocksDir = null; };
      sized = stack {
        services.chainstead = {
          storage.fast.size = 2000;
          bitcoind.blocksDir = null;
        };
      };
    in
    [
      (h.expectEqual "the default passes -blocksdir first, -conf after it, as before" [
        "'-blocksdir=/srv/bulk/bitcoind-blocks'"
        "'-conf=${full.services.chainstead.bitcoind.configFile}'"
      ] (lib.sublist 1 2 (lib.splitString " " (unit full "bitcoind").serviceConfig.ExecStart)))
      (h.expectEqual "the default may write the datadir, the blocks and the cookie directory" [
        "/srv/fast/bitcoind"
        "/srv/bulk/bitcoind-blocks"
        "/run/chainstead/bitcoind-rpc"
      ] (unit full "bitcoind").serviceConfig.ReadWritePaths)
      (h.expectNoFailedAssertions "blocks in the datadir evaluate cleanly" inDatadir)
      (h.expectNotContains "no -blocksdir is passed" "-blocksdir" (unit inDatadir "bitcoind").serviceConfig.ExecStart)
      (h.expectContains "the datadir is still passed" "'-datadir=/srv/fast/bitcoind'"
        (unit inDatadir "bitcoind").serviceConfig.ExecStart
      )
      (h.expectEqual "only the datadir is a storage directory (monerod aside)" {
        bitcoind-data = "/srv/fast/bitcoind";
        monerod = "/srv/bulk/monerod";
      } (dirs inDatadir))
      (h.expectEqual "bitcoind requires only the datadir's mount" [ "/srv/fast/bitcoind" ]
        (unit inDatadir "bitcoind").unitConfig.RequiresMountsFor
      )
      (h.expectEqual "bitcoind may write the datadir and the cookie directory only" [
        "/srv/fast/bitcoind"
        "/run/chainstead/bitcoind-rpc"
      ] (unit inDatadir "bitcoind").serviceConfig.ReadWritePaths)
      (h.expectNotContains "the bulk setup creates no block directory" "bitcoind-blocks" (tierRules inDatadir "bulk"))
      (h.expectEqual "the block files count on the datadir's tier: 12 + 760 GB" 772
        inDatadir.services.chainstead.storage.directories.bitcoind-data.expectedSize
      )
      (h.expectEqual "the fast tier's usage includes them" 772 sized.services.chainstead.storage.usage.fast.used)
      (h.expectEqual "a pruned node counts its target there: 12 + 1 GB" 13
        (stack {
          services.chainstead.bitcoind = {
            blocksDir = null;
            prune = 550;
          };
        }).services.chainstead.storage.directories.bitcoind-data.expectedSize
      )
    ];

  placement-override = [
    (h.expectEqual "monerod follows placement.monerod to the fast tier" "/srv/fast/monerod"
      (stack { services.chainstead.storage.placement.monerod = "fast"; })
      .services.chainstead.monerod.dataDir
    )
    (h.expectEqual "bitcoind's datadir follows placement.bitcoindData to bulk" "/srv/bulk/bitcoind"
      (stack { services.chainstead.storage.placement.bitcoindData = "bulk"; })
      .services.chainstead.bitcoind.dataDir
    )
  ];

  nothing-enabled =
    let
      bare = h.evalConfig [ { services.chainstead.storage = tiers; } ];
    in
    [
      (h.expectEqual "tiers alone declare no mount" { } bare.fileSystems)
      (h.expectEqual "tiers alone declare no unit" { } bare.systemd.services)
      (h.expectNoFailedAssertions "the default module set evaluates with nothing enabled" (
        h.evalConfig [ ]
      ))
    ];
}
