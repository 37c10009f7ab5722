# Module evaluation checks for modules/upgrade-guard.nix: a guard before
# every guarded service, its version taken from the package, the steps in
# the service's own unit, the copy directory on the data's tier, snapshots,
# the LND backup push, assertions, and manifests without secrets.
{ lib, harness }:
let
  h = harness;
  inherit (h) pkgs;

  base = {
    storage = {
      fast.path = "/srv/fast";
      bulk.path = "/srv/bulk";
    };
    bitcoind.enable = true;
    lnd.enable = true;
    fulcrum.enable = true;
    monerod.enable = true;
  };
  node =
    extra:
    h.evalConfig [
      {
        services.chainstead = lib.recursiveUpdate base extra;
      }
    ];
  all = node { };
  guarded = [
    "lnd"
    "fulcrum"
    "bitcoind"
    "monerod"
  ];

  unit = config: name: config.systemd.services."chainstead-upgrade-guard-${name}";
  sc = config: name: (unit config name).serviceConfig;
  svc = config: name: config.systemd.services.${name};
  manifestOf = config: name: config.system.build."chainstead-upgrade-guard-${name}-manifest";
  manifest = config: name: h.renderedJSON (manifestOf config name).unchecked;
  guardExe = config: "${config.services.chainstead.upgrades.package}/bin/chainstead-upgrade-guard";

  # The same LND binary reporting a newer version (what the VM test does).
  newer = node { lnd.package = pkgs.lnd.overrideAttrs { version = "0.20.0-beta"; }; };

  withBackup = node {
    backup = {
      enable = true;
      targets.usb.directory.path = "/mnt/usb/lnd-backup";
    };
  };
  zfs = node {
    upgrades.monerod = {
      preUpgrade = "zfs";
      zfs.dataset = "tank/monerod";
    };
  };
  btrfs = node {
    upgrades.bitcoind = {
      preUpgrade = "btrfs";
      btrfs.snapshotDir = "/srv/fast/.snapshots/bitcoind";
    };
  };
in
{
  ordering = [
    (h.expectNoFailedAssertions "every service guarded evaluates cleanly" all)
  ]
  ++ lib.concatMap (name: [
    (h.expectContains "${name}: the guard runs before ${name}" "${name}.service" (unit all name).before)
    (h.expectContains "${name}: ${name} wants its guard" "chainstead-upgrade-guard-${name}.service" (svc all name).wants)
    (h.expectContains "${name}: ${name} starts after its guard" "chainstead-upgrade-guard-${name}.service" (svc all name).after)
    (h.expectEqual "${name}: the guard is a oneshot" "oneshot" (sc all name).Type)
    (h.expectEqual "${name}: the guard runs check with its checked manifest"
      "${guardExe all} check --manifest ${manifestOf all name}"
      (sc all name).ExecStart
    )
    (h.expectEqual "${name}: verify is the service's first pre-start step"
      "${guardExe all} verify --manifest ${manifestOf all name}"
      (lib.head (svc all name).serviceConfig.ExecStartPre)
    )
    (h.expectEqual "${name}: record is the service's last post-start step, and never fails it"
      "-${guardExe all} record --manifest ${manifestOf all name}"
      (lib.last (svc all name).serviceConfig.ExecStartPost)
    )
    (h.expectContains "${name}: the guard waits for the data's mount" (manifest all name).data_dir
      (unit all name).unitConfig.RequiresMountsFor
    )
    (h.expectEqual "${name}: the record lives in the data directory"
      "${(manifest all name).data_dir}/.chainstead-upgrade-guard.json"
      (manifest all name).state_file
    )
    (h.expectEqual "${name}: downgrades refused by default" false (manifest all name).allow_downgrade)
    (h.expectEqual "${name}: the strict baseline" "strict" (sc all name).ProtectSystem)
    (h.expectEqual "${name}: no capabilities for a copy" [ "" ] (sc all name).CapabilityBoundingSet)
    (h.expectNoSecrets "${name}: the manifest holds no secret" { value = manifest all name; })
    (h.expectEqual "${name}: the operator's copy of the manifest in /etc" (manifestOf all name)
      all.environment.etc."chainstead/upgrade-guard/${name}.json".source
    )
  ]) guarded;

  version = [
    (h.expectEqual "the version comes from the package" pkgs.lnd.version (manifest all "lnd").package_version)
    (h.expectEqual "Fulcrum's from its package" pkgs.fulcrum.version (manifest all "fulcrum").package_version)
    (h.expectEqual "monerod's from monero-cli" pkgs.monero-cli.version (manifest all "monerod").package_version)
    (h.expectEqual "an override of the package's version is what the guard compares" "0.20.0-beta"
      (manifest newer "lnd").package_version
    )
    (h.expectTrue "a new version is a new manifest, so the switch restarts LND through its guard"
      ((manifestOf newer "lnd").outPath != (manifestOf all "lnd").outPath)
      ""
    )
    (h.expectEqual "bitcoind's follows its package too" "27.0" (
      manifest (node { bitcoind.package = pkgs.bitcoind.overrideAttrs { version = "27.0"; }; }) "bitcoind"
    ).package_version)
  ];

  pre-upgrade =
    let
      lndCopy = (manifest all "lnd").pre_upgrade;
      netDir = "/srv/fast/lnd/data/chain/bitcoin/mainnet";
    in
    [
      (h.expectEqual "LND: a copy by default" "copy" lndCopy.kind)
      (h.expectEqual "LND: channel.db, wallet.db, macaroons.db and the macaroons" [
        "/srv/fast/lnd/data/graph/mainnet/channel.db"
        "${netDir}/wallet.db"
        "${netDir}/macaroons.db"
        "/srv/fast/lnd/macaroons"
      ] lndCopy.paths)
      (h.expectEqual "LND: copies beside the data, on its tier" "/srv/fast/lnd-pre-upgrade" lndCopy.dir)
      (h.expectEqual "the copy directory is LND's only, mode 0700" {
        tier = "fast";
        user = "lnd";
        mode = "0700";
      } { inherit (all.services.chainstead.storage.directories.lnd-pre-upgrade) tier user mode; })
      (h.expectContains "the guard may write the copy directory" "/srv/fast/lnd-pre-upgrade" (sc all "lnd").ReadWritePaths)
      (h.expectEqual "the guard copies as LND's user" "lnd" (sc all "lnd").User)
      (h.expectEqual "a free-space reserve of 1 GiB" 1073741824 lndCopy.reserve_bytes)
      (h.expectEqual "two copies kept" 2 lndCopy.keep)
      (h.expectEqual "bitcoind: no copy" "none" (manifest all "bitcoind").pre_upgrade.kind)
      (h.expectEqual "Fulcrum: no copy unless asked" "none" (manifest all "fulcrum").pre_upgrade.kind)
      (h.expectEqual "monerod: no copy unless asked" "none" (manifest all "monerod").pre_upgrade.kind)
      (h.expectEqual "Fulcrum: a copy when asked holds its db" [ "/srv/fast/fulcrum/db" ]
        (manifest (node { upgrades.fulcrum.preUpgrade = "copy"; }) "fulcrum").pre_upgrade.paths
      )
      (h.expectEqual "Fulcrum: the copy follows dbDir" [ "/srv/fast/fulcrum" ]
        (manifest (node {
          upgrades.fulcrum.preUpgrade = "copy";
          fulcrum.dbDir = "/srv/fast/fulcrum";
        }) "fulcrum").pre_upgrade.paths
      )
      (h.expectEqual "monerod: a copy when asked goes to the bulk tier" "/srv/bulk/monerod-pre-upgrade"
        (manifest (node { upgrades.monerod.preUpgrade = "copy"; }) "monerod").pre_upgrade.dir
      )
      (h.expectAssertion "bitcoind: a copy is refused" (node { upgrades.bitcoind.preUpgrade = "copy"; })
        "refused for bitcoind"
      )
      (h.expectEqual "allowDowngrade reaches the manifest" true
        (manifest (node { upgrades.fulcrum.allowDowngrade = true; }) "fulcrum").allow_downgrade
      )
    ];

  snapshots = [
    (h.expectNoFailedAssertions "a ZFS snapshot configuration evaluates cleanly" zfs)
    (h.expectEqual "ZFS: the dataset and the zfs program" {
      kind = "zfs";
      dataset = "tank/monerod";
      program = "${pkgs.zfs}/bin/zfs";
      keep = 2;
    } (manifest zfs "monerod").pre_upgrade)
    (h.expectEqual "a snapshot needs root" "root" (sc zfs "monerod").User)
    (h.expectContains "with CAP_SYS_ADMIN" "CAP_SYS_ADMIN" (sc zfs "monerod").CapabilityBoundingSet)
    (h.expectEqual "and /dev/zfs only" [ "/dev/zfs rw" ] (sc zfs "monerod").DeviceAllow)
    (h.expectEqual "btrfs: a read-only snapshot into the snapshot directory" {
      kind = "btrfs";
      subvolume = "/srv/fast/bitcoind";
      dir = "/srv/fast/.snapshots/bitcoind";
      program = "${pkgs.btrfs-progs}/bin/btrfs";
      keep = 2;
    } (manifest btrfs "bitcoind").pre_upgrade)
    (h.expectContains "btrfs: the snapshot directory is writable" "/srv/fast/.snapshots/bitcoind"
      (sc btrfs "bitcoind").ReadWritePaths
    )
    (h.expectEqual "btrfs needs no device" true (sc btrfs "bitcoind").PrivateDevices)
    (h.expectAssertion "ZFS without a dataset is refused" (node { upgrades.lnd.preUpgrade = "zfs"; })
      "needs services.chainstead.upgrades.lnd.zfs.dataset"
    )
    (h.expectAssertion "btrfs without a snapshot directory is refused"
      (node { upgrades.lnd.preUpgrade = "btrfs"; })
      "needs services.chainstead.upgrades.lnd.btrfs.snapshotDir"
    )
  ];

  backup-push =
    let
      push = withBackup.systemd.services.chainstead-upgrade-guard-lnd-push;
    in
    [
      (h.expectNoFailedAssertions "LND with the backup pusher evaluates cleanly" withBackup)
      (h.expectEqual "no push without the backup pusher" false (
        all.systemd.services ? chainstead-upgrade-guard-lnd-push
      ))
      (h.expectEqual "the push goes through the operator's backup manifest" {
        program = "${withBackup.services.chainstead.backup.package}/bin/chainstead-backup";
        manifest = "/etc/chainstead/backup.json";
      } (manifest withBackup "lnd").backup_push)
      (h.expectEqual "the push step runs push-backup" "${guardExe withBackup} push-backup --manifest ${manifestOf withBackup "lnd"}"
        push.serviceConfig.ExecStart
      )
      (h.expectContains "after the copy" "chainstead-upgrade-guard-lnd.service" push.after)
      (h.expectContains "before LND" "lnd.service" push.before)
      (h.expectContains "LND wants it" "chainstead-upgrade-guard-lnd-push.service" (svc withBackup "lnd").wants)
      (h.expectContains "the directory target is writable" "-/mnt/usb/lnd-backup" push.serviceConfig.ReadWritePaths)
      (h.expectNoSecrets "no secret in the push unit" { value = push; })
    ];

  switches = [
    (h.expectEqual "disabled: no guard unit"
      false
      ((node { upgrades.enable = false; }).systemd.services ? chainstead-upgrade-guard-lnd)
    )
    (h.expectEqual "disabled: LND's own steps only"
      (h.ownSteps (svc all "lnd").serviceConfig.ExecStartPre)
      (svc (node { upgrades.enable = false; }) "lnd").serviceConfig.ExecStartPre
    )
    (h.expectEqual "one service off: the others stay guarded" [ false true ] [
      ((node { upgrades.fulcrum.enable = false; }).systemd.services ? chainstead-upgrade-guard-fulcrum)
      ((node { upgrades.fulcrum.enable = false; }).systemd.services ? chainstead-upgrade-guard-lnd)
    ])
    (h.expectEqual "a disabled service gets no guard" false (
      (h.evalConfig [
        {
          services.chainstead = {
            storage.fast.path = "/srv/fast";
            bitcoind.enable = true;
          };
        }
      ]).systemd.services ? chainstead-upgrade-guard-lnd
    ))
    (h.expectNoSecrets "no secret anywhere in the configuration" { config = withBackup; })
  ];
}
