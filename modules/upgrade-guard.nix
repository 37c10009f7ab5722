# chainstead-upgrade-guard: the data of LND, Fulcrum, bitcoind and monerod
# across `nixos-rebuild switch` and `switch --rollback`. For each enabled
# service:
#   - `chainstead-upgrade-guard-<svc>.service` (oneshot, wanted by and
#     ordered before the service) runs `check`: it compares the package's
#     version with the one recorded on the data, takes the pre-upgrade copy or
#     snapshot on an upgrade and refuses a downgrade;
#   - the service's first ExecStartPre runs `verify`, which refuses to start
#     what `check` did not prepare. The refusal is the service's own failure,
#     so its reason is what `systemctl status <svc>` shows;
#   - the service's ExecStartPost runs `record`, which marks the data as the
#     new version once the service has started;
#   - for LND with the backup pusher enabled,
#     `chainstead-upgrade-guard-lnd-push.service` pushes a fresh channel
#     backup between the copy and LND's start.
# The version comes from the package (lib.getVersion), never from a string
# written here. The service modules are not edited: their units are reached
# through systemd.services.<svc> merges. See docs/operations.md, "Upgrades".
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    mkOption
    mkIf
    mkMerge
    types
    literalExpression
    ;
  chainstead = import ./lib.nix { inherit lib; };
  cfg = config.services.chainstead.upgrades;
  inherit (config.services.chainstead) storage;
  exe = lib.getExe cfg.package;

  # What differs per service. `dir` is the storage directory of its data,
  # `placement` its tier option, `copyPaths` what a copy holds.
  services = {
    lnd = {
      user = "lnd";
      group = "lnd";
      placement = "lnd";
      dir = "lnd";
      defaultPreUpgrade = "copy";
      # channel.db (graph dir), wallet.db and macaroons.db (chain dir), and
      # the macaroon files: LND's state as lnd.conf's defaults lay it out
      # (lightningnetwork/lnd config.go: data/graph/<net>, data/chain/bitcoin/<net>).
      copyPaths = s: [
        "${s.dataDir}/data/graph/${s.network}/channel.db"
        "${s.networkDir}/wallet.db"
        "${s.networkDir}/macaroons.db"
        s.macaroonDir
      ];
    };
    fulcrum = {
      user = "fulcrum";
      group = "fulcrum";
      placement = "fulcrum";
      dir = "fulcrum";
      defaultPreUpgrade = "none";
      copyPaths = s: [ s.dbDir ];
    };
    bitcoind = {
      user = "bitcoind";
      group = "bitcoind";
      placement = "bitcoindData";
      dir = "bitcoind-data";
      defaultPreUpgrade = "none";
      # Never a copy: the chainstate is rebuilt from the blocks
      # (-reindex-chainstate), and a copy costs as much disk as the chain.
      copyPaths = _: [ ];
    };
    monerod = {
      user = "monero";
      group = "monero";
      placement = "monerod";
      dir = "monerod";
      defaultPreUpgrade = "none";
      copyPaths = s: [ s.dataDir ];
    };
  };

  serviceCfg = name: config.services.chainstead.${name} or null;
  serviceEnabled = name: serviceCfg name != null && (serviceCfg name).enable;
  guarded = lib.filterAttrs (name: _: cfg.enable && cfg.${name}.enable && serviceEnabled name) services;

  backup = config.services.chainstead.backup or null;
  pushesLnd = guarded ? lnd && cfg.lnd.pushChannelBackup;

  guardUnit = name: "chainstead-upgrade-guard-${name}";
  stateFile = name: "${(serviceCfg name).dataDir}/.chainstead-upgrade-guard.json";
  isSnapshot = name: lib.elem cfg.${name}.preUpgrade [ "zfs" "btrfs" ];

  preUpgradeOf =
    name: svc:
    let
      g = cfg.${name};
    in
    {
      none.kind = "none";
      copy = {
        kind = "copy";
        inherit (g.copy) dir;
        paths = svc.copyPaths (serviceCfg name);
        inherit (g) keep;
        reserve_bytes = g.copy.reserveBytes;
      };
      zfs = {
        kind = "zfs";
        program = lib.getExe' g.zfs.package "zfs";
        inherit (g.zfs) dataset;
        inherit (g) keep;
      };
      btrfs = {
        kind = "btrfs";
        program = lib.getExe' g.btrfs.package "btrfs";
        inherit (g.btrfs) subvolume;
        dir = g.btrfs.snapshotDir;
        inherit (g) keep;
      };
    }
    .${g.preUpgrade};

  manifestValue =
    name: svc:
    {
      version = 1;
      service = name;
      # From the package, so an override of the package is what is compared.
      package_version = lib.getVersion (serviceCfg name).package;
      data_dir = (serviceCfg name).dataDir;
      state_file = stateFile name;
      allow_downgrade = cfg.${name}.allowDowngrade;
      inherit (cfg) runbook;
      pre_upgrade = preUpgradeOf name svc;
    }
    // lib.optionalAttrs (name == "lnd" && pushesLnd) {
      backup_push = {
        program = lib.getExe backup.package;
        manifest = "/etc/chainstead/backup.json";
      };
    };

  manifests = lib.mapAttrs (
    name: svc:
    chainstead.checkedManifest {
      inherit pkgs;
      inherit (cfg) package;
      name = guardUnit name;
      value = manifestValue name svc;
    }
  ) guarded;

  # The guard's own unit: the service's user for a copy (it reads and
  # writes only the service's files); root for a snapshot, which needs
  # CAP_SYS_ADMIN, and then it writes the record into the service's
  # directory as root (owned like the directory).
  guardService =
    name: svc:
    let
      g = cfg.${name};
      s = serviceCfg name;
      snapshot = isSnapshot name;
    in
    {
      description = "Data-version guard of ${name}: pre-upgrade copy, downgrade refusal";
      documentation = [ cfg.runbook ];
      before = [ "${name}.service" ];

      serviceConfig =
        chainstead.hardening
        // {
          # exec
          ExecStart = "${exe} check --manifest ${manifests.${name}}";
          Type = "oneshot";
          # A large copy (Fulcrum's or monerod's database) takes a while.
          TimeoutStartSec = "infinity";

          # identity and paths
          User = if snapshot then "root" else svc.user;
          Group = if snapshot then "root" else svc.group;
          ReadWritePaths = [
            s.dataDir
          ]
          ++ lib.optional (g.preUpgrade == "copy") g.copy.dir
          ++ lib.optional (g.preUpgrade == "btrfs") g.btrfs.snapshotDir;
          UMask = "0077"; # copies of wallet.db and macaroons are for the service's user only
        }
        // lib.optionalAttrs snapshot {
          # exceptions to the baseline (snapshots only)
          CapabilityBoundingSet = [
            "CAP_SYS_ADMIN" # zfs snapshot and the btrfs snapshot ioctl
            "CAP_DAC_OVERRIDE" # writes the record into the service's own directory
            "CAP_CHOWN" # gives the record the directory's owner
          ];
          SystemCallFilter = [
            "@system-service"
            "~@privileged"
            "@chown" # the record's owner (see CAP_CHOWN)
          ];
        }
        // lib.optionalAttrs (g.preUpgrade == "zfs") {
          PrivateDevices = false; # zfs talks to the kernel through /dev/zfs
          DeviceAllow = [ "/dev/zfs rw" ];
        };
    };

  # LND's fresh channel backup, as root with the operator's manifest
  # (/etc/chainstead/backup.json names the original credential files); the
  # guard decides whether an upgrade is prepared and otherwise does nothing.
  pushService = {
    description = "Push LND's channel backup before an upgrade of LND";
    documentation = [ cfg.runbook ];
    after = [
      "${guardUnit "lnd"}.service"
      "network-online.target"
    ];
    wants = [ "network-online.target" ];
    before = [ "lnd.service" ];

    serviceConfig = chainstead.hardening // {
      # exec
      ExecStart = "${exe} push-backup --manifest ${manifests.lnd}";
      Type = "oneshot";
      TimeoutStartSec = "5min";

      # identity and paths: root, as the operator runs `chainstead-backup push`
      User = "root";
      Group = "root";
      # The pusher's state, metrics and directory targets, as its own unit
      # has them ("-": a missing one is skipped).
      ReadWritePaths = [
        "-${backup.stateDir}"
      ]
      ++ lib.optional (backup.metricsDir != null) "-${backup.metricsDir}"
      ++ lib.mapAttrsToList (_: t: "-${t.directory.path}") (
        lib.filterAttrs (_: t: t ? directory) backup.targets
      );
      UMask = "0077";

      # exceptions to the baseline
      CapabilityBoundingSet = [
        "CAP_DAC_READ_SEARCH" # reads LND's channel.backup and the root-only credential files
        "CAP_CHOWN" # the pusher keeps its state files owned by its user
        "CAP_FOWNER" # and sets their modes
      ];
      SystemCallFilter = [
        "@system-service"
        "~@privileged"
        "@chown" # see CAP_CHOWN
      ];
    };
  };

  serviceOptions =
    name: svc:
    let
      s = serviceCfg name;
    in
    {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = "Whether to guard ${name}'s data whenever ${name} is enabled.";
      };
      allowDowngrade = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Let an older ${name} start on data a newer one used. Only for a
          downgrade upstream supports (docs/operations.md quotes what each
          upstream says): ${name} itself may still refuse the data, or open
          it and misbehave.
        '';
      };
      preUpgrade = mkOption {
        type = types.enum [
          "none"
          "copy"
          "zfs"
          "btrfs"
        ];
        default = svc.defaultPreUpgrade;
        description = ''
          What to keep before a newer ${name} first opens its data: nothing, a
          copy into {option}`copy.dir` (after a free-space check), or a ZFS or
          btrfs snapshot. ${
            if name == "lnd" then
              "A copy by default: LND's state is small."
            else if name == "bitcoind" then
              "Never a copy (the chainstate is rebuilt from the blocks); a snapshot is cheap."
            else
              "Nothing by default: the database is large; a copy needs as much free space again."
          }
        '';
      };
      keep = mkOption {
        type = types.ints.positive;
        default = 2;
        description = "Pre-upgrade copies or snapshots of ${name} kept; older ones are deleted after a new one is complete.";
      };
      copy = {
        dir = chainstead.tierDirOption {
          inherit storage;
          inherit (svc) placement;
          name = "${name}-pre-upgrade";
          description = ''
            Where ${name}'s pre-upgrade copies go, one directory per upgrade. It
            must lie inside the data's storage tier (the storage module creates
            it there, 0700 for ${name}'s user, once the tier is mounted).
          '';
        };
        reserveBytes = mkOption {
          type = types.ints.unsigned;
          default = 1024 * 1024 * 1024;
          description = ''
            Free space that must remain in {option}`copy.dir`'s filesystem after
            a copy; with less, the copy is refused before it starts and ${name}
            does not start the new version.
          '';
        };
      };
      zfs = {
        package = lib.mkPackageOption pkgs "zfs" {
          extraDescription = "Set it to `config.boot.zfs.package` on a host with ZFS.";
        };
        dataset = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "tank/chainstead/${name}";
          description = "ZFS dataset holding ${name}'s data, for `preUpgrade = \"zfs\"`.";
        };
      };
      btrfs = {
        package = lib.mkPackageOption pkgs "btrfs-progs" { };
        subvolume = mkOption {
          type = types.str;
          default = if s != null then s.dataDir else "";
          defaultText = literalExpression "config.services.chainstead.${name}.dataDir";
          description = "btrfs subvolume holding ${name}'s data, for `preUpgrade = \"btrfs\"`.";
        };
        snapshotDir = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "/srv/fast/.snapshots/${name}";
          description = "Directory on the same btrfs filesystem for the read-only snapshots.";
        };
      };
    }
    // lib.optionalAttrs (name == "lnd") {
      pushChannelBackup = mkOption {
        type = types.bool;
        default = backup != null && backup.enable;
        defaultText = literalExpression "config.services.chainstead.backup.enable";
        description = ''
          Push a fresh channel backup through the backup pusher after the
          pre-upgrade copy and before the new LND starts
          (`chainstead-upgrade-guard-lnd-push.service`).
        '';
      };
    };

  assertionsFor =
    name: _:
    let
      g = cfg.${name};
      opt = "services.chainstead.upgrades.${name}";
    in
    [
      {
        assertion = !(name == "bitcoind" && g.preUpgrade == "copy");
        message = ''
          ${opt}.preUpgrade = "copy" is refused for bitcoind: its chainstate is
          rebuilt from the blocks (-reindex-chainstate), and a copy costs as much
          disk as the chain. Use "none", or "zfs"/"btrfs" for a cheap snapshot.
        '';
      }
      {
        assertion = g.preUpgrade != "zfs" || g.zfs.dataset != null;
        message = "${opt}.preUpgrade = \"zfs\" needs ${opt}.zfs.dataset (the dataset holding the data).";
      }
      {
        assertion = g.preUpgrade != "btrfs" || g.btrfs.snapshotDir != null;
        message = "${opt}.preUpgrade = \"btrfs\" needs ${opt}.btrfs.snapshotDir (on the same filesystem).";
      }
      {
        assertion = !(name == "lnd" && g.pushChannelBackup && !(backup != null && backup.enable));
        message = "${opt}.pushChannelBackup needs the backup pusher (services.chainstead.backup.enable).";
      }
    ];
in
{
  options.services.chainstead.upgrades = {
    enable = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Whether to guard the data of LND, Fulcrum, bitcoind and monerod across
        upgrades and rollbacks: a pre-upgrade copy or snapshot before a newer
        version opens the data, and a refusal to start an older one on it
        (units `chainstead-upgrade-guard-<service>`). On by default: a rollback
        that lets an older LND open migrated data can cost channels.
      '';
    };

    package = chainstead.toolPackageOption pkgs "chainstead-upgrade-guard" ../pkgs/chainstead-tools/upgrade-guard.nix;

    runbook = mkOption {
      type = types.str;
      default = "https://github.com/chainstead/chainstead/blob/main/docs/operations.md#upgrades";
      description = "Where an operator reads what to do; every refusal names it.";
    };

    lnd = serviceOptions "lnd" services.lnd;
    fulcrum = serviceOptions "fulcrum" services.fulcrum;
    bitcoind = serviceOptions "bitcoind" services.bitcoind;
    monerod = serviceOptions "monerod" services.monerod;
  };

  config = mkIf (guarded != { }) {
    assertions = lib.concatLists (lib.mapAttrsToList assertionsFor guarded);

    system.build = lib.mapAttrs' (name: m: lib.nameValuePair "${guardUnit name}-manifest" m) manifests;

    environment.systemPackages = [ cfg.package ];
    # For `status` and `restore-lnd` by the operator (docs/operations.md).
    environment.etc = lib.mapAttrs' (
      name: m: lib.nameValuePair "chainstead/upgrade-guard/${name}.json" { source = m; }
    ) manifests;

    services.chainstead.storage.directories = mkMerge (
      lib.mapAttrsToList (
        name: svc:
        {
          # The guard waits for the data's tier like the service does.
          ${svc.dir}.units = [ (guardUnit name) ];
        }
        // lib.optionalAttrs (cfg.${name}.preUpgrade == "copy") {
          "${name}-pre-upgrade" = {
            tier = storage.placement.${svc.placement};
            path = cfg.${name}.copy.dir;
            inherit (svc) user group;
            mode = "0700";
            units = [ (guardUnit name) ];
          };
        }
      ) guarded
    );

    systemd.services = mkMerge (
      lib.mapAttrsToList (name: svc: {
        ${guardUnit name} = guardService name svc;
        ${name} = {
          wants = [ "${guardUnit name}.service" ];
          after = [ "${guardUnit name}.service" ];
          serviceConfig = {
            # First of all pre-start steps: nothing else touches the data
            # before the guard lets it start.
            ExecStartPre = lib.mkBefore [ "${exe} verify --manifest ${manifests.${name}}" ];
            # "-": a record that cannot be written leaves the upgrade pending,
            # which the next check resumes; it never stops a started service.
            ExecStartPost = lib.mkAfter [ "-${exe} record --manifest ${manifests.${name}}" ];
          };
        };
      }) guarded
      ++ lib.optional pushesLnd {
        ${guardUnit "lnd-push"} = pushService;
        lnd = {
          wants = [ "${guardUnit "lnd-push"}.service" ];
          after = [ "${guardUnit "lnd-push"}.service" ];
        };
      }
    );
  };
}
