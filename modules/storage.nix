# The two storage tiers (fast NVMe, bulk HDD) and the directories services
# keep on them. Service modules register their directories in
# `services.chainstead.storage.directories`; this module turns that registry
# into mounts, tmpfiles rules, RequiresMountsFor= and layout assertions.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    mkOption
    types
    mkIf
    ;
  chainstead = import ./lib.nix { inherit lib; };
  cfg = config.services.chainstead.storage;
  tierNames = [
    "fast"
    "bulk"
  ];
  tierType = types.enum tierNames;

  tierOptions = tier: description: {
    path = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/srv/${tier}";
      description = ''
        Directory of the ${tier} tier (${description}). Services that keep data
        on this tier refuse to evaluate while it is unset, so nothing lands on
        a disk by accident.
      '';
    };
    device = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/dev/disk/by-label/${tier}";
      description = ''
        Block device (or NFS export) mounted at {option}`path`. When set, a
        `fileSystems` entry is declared for it; leave it unset when the
        directory is mounted some other way or lives on the root filesystem.
      '';
    };
    fsType = mkOption {
      type = types.str;
      default = "ext4";
      example = "nfs";
      description = ''
        Filesystem type of {option}`device`. `nfs` (or `nfs4`, `cifs`) makes
        the tier a network filesystem: other mount options, network ordering,
        and no databases on it (see docs/storage.md, "Bulk over NFS").
      '';
    };
    options = mkOption {
      type = types.listOf types.str;
      default = if isNetworkFsType cfg.${tier}.fsType then networkMountOptions else localMountOptions;
      defaultText = lib.literalExpression ''
        [ "noatime" "nofail" ], and for a network filesystem also
        [ "_netdev" "hard" "x-systemd.mount-timeout=30s" ]
      '';
      description = ''
        Mount options of {option}`device`. `nofail` keeps a missing disk from
        dropping the host into emergency mode (it stays reachable over SSH);
        the services on the tier still refuse to start without it, because
        every one of them carries `RequiresMountsFor=` on its directories.
        On NFS, `hard` makes I/O wait for a vanished server instead of
        failing it half-done, and `_netdev` marks the mount as needing the
        network. No `x-systemd.automount`: the services need the mount before
        they start anyway, and an automount would hide a failed mount until
        the first access.
      '';
    };
    size = mkOption {
      type = types.nullOr types.ints.positive;
      default = null;
      example = 500;
      description = ''
        Size of the tier's filesystem in GB (10^9 bytes, as disks are sold).
        When set, the evaluation warns once the expected use (the
        directories' {option}`expectedSize` plus {option}`reserved`) exceeds
        {option}`services.chainstead.storage.budget.threshold` percent of it.
        On a single-disk host where both tiers name one path, set it on
        `fast` only.
      '';
    };
    reserved = mkOption {
      type = types.ints.unsigned;
      default = 0;
      example = 30;
      description = ''
        GB of the tier's filesystem used by other things: the operating
        system, Nix store and logs when the tier is a directory on the root
        disk (the seed budgets 30 GB).
      '';
    };
  };

  # Network filesystems: systemd's fstab generator orders them after
  # network-online.target by type (systemd.mount(5)); `_netdev` says the
  # same for any type and documents it in fstab.
  isNetworkFsType =
    fsType:
    lib.elem fsType [
      "nfs"
      "nfs4"
      "cifs"
      "smb3"
    ];
  localMountOptions = [
    "noatime"
    "nofail"
  ];
  networkMountOptions = localMountOptions ++ [
    "_netdev"
    "hard"
    # A server that is down fails the mount in half a minute, not 90 s.
    "x-systemd.mount-timeout=30s"
  ];
  isNetworkTier = tier: cfg.${tier}.device != null && isNetworkFsType cfg.${tier}.fsType;

  directoryType = types.submodule (
    { name, ... }:
    {
      options = {
        tier = mkOption {
          type = tierType;
          description = "Tier the directory lives on.";
        };
        path = mkOption {
          type = types.str;
          description = "Absolute path of the directory; must be inside its tier.";
        };
        user = mkOption {
          type = types.str;
          description = "Owner of the directory.";
        };
        group = mkOption {
          type = types.str;
          description = "Group of the directory.";
        };
        mode = mkOption {
          type = types.str;
          default = "0750";
          description = "Mode of the directory.";
        };
        units = mkOption {
          type = types.listOf types.str;
          default = [ name ];
          description = ''
            systemd services (without `.service`) that use the directory; each
            gets `RequiresMountsFor=` on it and waits for its tier's setup.
          '';
        };
        expectedSize = mkOption {
          type = types.ints.unsigned;
          default = 0;
          description = ''
            GB the directory is expected to hold, for the tier's budget. The
            service modules set a default for the network from public figures
            (modules/sizes.nix); set your own from `du -s --block-size=1G`.
          '';
        };
        database = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "LevelDB";
          description = ''
            The database engine that keeps its files here, if any; a database
            on a network filesystem is refused (see
            {option}`services.chainstead.storage.allowDatabasesOnNetworkFs`).
          '';
        };
        placementOption = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "bitcoindBlocks";
          description = "The `services.chainstead.storage.placement` option that moves the directory, for messages.";
        };
        linkFrom = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "/srv/fast/bitcoind/indexes";
          description = ''
            A symlink to this directory, made by the setup of the tier that
            contains it (never replacing a file or directory already there): how
            a service that has no option for a subdirectory finds it on
            another tier (bitcoind's `indexes/`).
          '';
        };
      };
    }
  );

  directories = lib.attrValues cfg.directories;
  tiersInUse = lib.unique (map (d: d.tier) directories);
  tierPath = tier: cfg.${tier}.path;

  isInside = root: path: root != null && (path == root || lib.hasPrefix "${root}/" path);

  # Created by a oneshot that requires the tier's mount, never at boot by
  # systemd-tmpfiles-setup: with the disk missing, a boot-time rule would
  # create the directories on the root filesystem under the empty mount point.
  tmpfilesRules =
    tier:
    let
      dirs = lib.filter (d: d.tier == tier) directories;
    in
    lib.concatStringsSep "\n" (
      [ "d ${tierPath tier} 0755 root root - -" ]
      ++ map (d: "d ${d.path} ${d.mode} ${d.user} ${d.group} - -") (
        lib.sort (a: b: a.path < b.path) dirs
      )
      # `L` without `+`: an existing directory at the link's place is left
      # alone (tmpfiles reports it), never deleted.
      ++ map (d: "L ${d.linkFrom} - - - - ${d.path}") (
        lib.sort (a: b: a.linkFrom < b.linkFrom) (linksIn tier)
      )
    )
    + "\n";
  linksIn =
    tier:
    lib.filter (
      d: d.linkFrom != null && tierPath tier != null && isInside (tierPath tier) d.linkFrom
    ) directories;

  setupUnit = tier: "chainstead-storage-${tier}";

  # One filesystem per distinct path: on a single-disk host both tiers name
  # one directory, and its budget is counted once, on `fast`.
  sharedPath = cfg.fast.path != null && cfg.fast.path == cfg.bulk.path;
  budgetOf =
    tier:
    let
      counted = if sharedPath then (if tier == "fast" then tierNames else [ ]) else [ tier ];
      dirs = lib.sort (a: b: a.expectedSize > b.expectedSize) (
        lib.filter (d: lib.elem d.tier counted && d.expectedSize > 0) directories
      );
    in
    {
      inherit (cfg.${tier}) size;
      directories = dirs;
      used = cfg.${tier}.reserved + lib.foldl' (n: d: n + d.expectedSize) 0 dirs;
    };
  overFull =
    tier:
    let
      b = budgetOf tier;
    in
    b.size != null && b.used * 100 > cfg.budget.threshold * b.size;
  otherTier = tier: if tier == "fast" then "bulk" else "fast";
  overFullMessage =
    tier:
    let
      b = budgetOf tier;
      line =
        d:
        "  - ${d.path}: ${toString d.expectedSize} GB"
        + lib.optionalString (
          d.placementOption != null && !sharedPath
        ) " (move it: services.chainstead.storage.placement.${d.placementOption} = \"${otherTier d.tier}\")";
    in
    ''
      services.chainstead.storage.${tier} is expected to hold ${toString b.used} GB, more than
      ${toString cfg.budget.threshold} % of its size of ${toString b.size} GB (services.chainstead.storage.${tier}.size):
      ${lib.concatMapStringsSep "\n" line b.directories}
        - other use (services.chainstead.storage.${tier}.reserved): ${toString cfg.${tier}.reserved} GB
      Move a directory to the other tier (docs/storage.md, "Moving data between
      tiers"), give the tier a bigger disk, or correct an estimate with
      services.chainstead.storage.directories.<name>.expectedSize.
    '';

  # Databases on a network filesystem: LevelDB and LMDB both rely on file
  # locks and (LMDB) a shared memory map that NFS does not keep coherent.
  databasesOnNetwork = lib.filter (d: d.database != null && isNetworkTier d.tier) directories;
  networkDatabaseMessage = d: ''
    ${d.path} holds a ${d.database} database but is placed on the ${d.tier} tier,
    a network filesystem (${cfg.${d.tier}.fsType}). ${
      if d.database == "LMDB" then
        "LMDB's own documentation says not to use its databases on remote filesystems (liblmdb/lmdb.h, Caveats)"
      else
        "LevelDB does not support network filesystems (google/leveldb#262; Bitcoin Core: bitcoin/bitcoin#6101, #26939)"
    }.
    Move it to a local tier${
      lib.optionalString (
        d.placementOption != null
      ) " (services.chainstead.storage.placement.${d.placementOption} = \"${otherTier d.tier}\")"
    }, or set services.chainstead.storage.allowDatabasesOnNetworkFs = true to accept the risk.
  '';

  # The tier's own directory, for a tier without a device: the sandboxed
  # setup can only write inside a path that exists (ReadWritePaths=), and a
  # plain-directory tier may not exist yet. A tier with a device needs no
  # such step: systemd creates a mount point that does not exist
  # (systemd.mount(5), Where=), and RequiresMountsFor= waits for the mount.
  mountPointRule =
    tier: pkgs.writeText "chainstead-${tier}-mount-point.conf" "d ${tierPath tier} 0755 root root - -\n";

  # The tier whose setup makes a directory's symlink.
  tierOfLink =
    d:
    let
      holding = lib.filter (tier: isInside (tierPath tier) d.linkFrom) tierNames;
    in
    if holding == [ ] then d.tier else lib.head holding;

  unitsWithDirs = lib.unique (lib.concatMap (d: d.units) directories);
  wiringFor =
    unit:
    let
      dirs = lib.filter (d: lib.elem unit d.units) directories;
      setups = lib.unique (
        map (d: "${setupUnit d.tier}.service") dirs
        ++ map (d: "${setupUnit (tierOfLink d)}.service") (lib.filter (d: d.linkFrom != null) dirs)
      );
      # On a network tier, also after the network: systemd orders the mount
      # so already; saying it on the unit makes the order visible in
      # `systemctl show` and holds for the tier's setup unit too.
      onNetwork = lib.any (d: isNetworkTier d.tier) dirs;
      network = lib.optionals onNetwork [
        "network-online.target"
        "remote-fs.target"
      ];
    in
    {
      # wants, not requires: a switch that changes a tier's rules restarts
      # its setup unit, and Requires= would restart bitcoind with it. The
      # mount itself is required through RequiresMountsFor=.
      wants = setups ++ lib.optional onNetwork "network-online.target";
      after = setups ++ network;
      unitConfig.RequiresMountsFor = map (d: d.path) dirs ++ map (d: d.linkFrom) (
        lib.filter (d: d.linkFrom != null) dirs
      );
    };
in
{
  # The memory budget lives beside the disk budget; every component that
  # imports the storage module gets both.
  imports = [ ./budget.nix ];

  options.services.chainstead.storage = {
    fast = tierOptions "fast" "NVMe: chainstate, indexes, Fulcrum, LND";
    bulk = tierOptions "bulk" "HDD: block files and the Monero database";

    placement = {
      bitcoindData = mkOption {
        type = tierType;
        default = "fast";
        description = ''
          Tier of bitcoind's datadir (chainstate, indexes such as txindex,
          wallets): LevelDB random I/O decides initial sync speed.
        '';
      };
      bitcoindIndexes = mkOption {
        type = tierType;
        default = cfg.placement.bitcoindData;
        defaultText = lib.literalExpression "config.services.chainstead.storage.placement.bitcoindData";
        description = ''
          Tier of bitcoind's `indexes/` (txindex): with the datadir by default.
          On the other tier, `indexes/` in the datadir becomes a symlink made
          by the tier setup (bitcoind has no option for it), so the txindex
          can sit on a local HDD while the chainstate stays on NVMe.
        '';
      };
      bitcoindBlocks = mkOption {
        type = tierType;
        default = "bulk";
        description = "Tier of bitcoind's block files (`-blocksdir`): written once, read sequentially.";
      };
      monerod = mkOption {
        type = tierType;
        default = "bulk";
        description = ''
          Tier of monerod's LMDB database. Bulk by default for its size; LMDB
          on a spinning disk makes the initial sync slow (a warning says so).
        '';
      };
      fulcrum = mkOption {
        type = tierType;
        default = "fast";
        description = "Tier of Fulcrum's index: wallet queries hit it constantly.";
      };
      lnd = mkOption {
        type = tierType;
        default = "fast";
        description = "Tier of LND's data: slow channel.db writes risk force-closes.";
      };
      thunderhub = mkOption {
        type = tierType;
        default = "fast";
        description = "Tier of ThunderHub's small state directory.";
      };
    };

    budget = {
      threshold = mkOption {
        type = types.ints.between 1 100;
        default = 85;
        description = ''
          Percent of a tier's {option}`size` the expected use may reach; above
          it the evaluation warns (or fails, with {option}`enforce`), naming
          the directories on the tier and how to move one.
        '';
      };
      enforce = mkOption {
        type = types.bool;
        default = false;
        description = "Make an over-full tier an evaluation error instead of a warning.";
      };
    };

    allowDatabasesOnNetworkFs = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Let a LevelDB (bitcoind's chainstate and indexes) or LMDB (monerod)
        database sit on a network filesystem tier, with a warning instead of
        an evaluation error. Both upstreams advise against it: LevelDB's
        locking and LMDB's memory map are not safe over NFS.
      '';
    };

    usage = mkOption {
      type = types.attrsOf types.raw;
      readOnly = true;
      internal = true;
      default = lib.genAttrs tierNames (tier: {
        inherit (budgetOf tier) used size directories;
      });
      description = "Expected use per tier in GB, for tests and `chainstead status`.";
    };

    setupRules = mkOption {
      type = types.attrsOf types.package;
      readOnly = true;
      internal = true;
      default = lib.genAttrs tiersInUse (
        tier: pkgs.writeText "chainstead-${tier}-tmpfiles.conf" (tmpfilesRules tier)
      );
      description = "The tmpfiles rules each tier's setup unit applies, per tier.";
    };

    reservedPaths = mkOption {
      type = types.listOf types.str;
      default = [ ];
      internal = true;
      description = ''
        chainstead's own state directories (the secret loader's, the backup
        pusher's, LND's seed): no data directory may overlap one, and no
        mounted tier may cover one (they exist before the tier is mounted).
      '';
    };

    directories = mkOption {
      type = types.attrsOf directoryType;
      default = { };
      internal = true;
      description = "Directories the chainstead services keep on the tiers; set by the service modules.";
    };
  };

  config = mkIf (directories != [ ]) {
    warnings =
      lib.optionals (!cfg.budget.enforce) (map overFullMessage (lib.filter overFull tierNames))
      ++ lib.optionals cfg.allowDatabasesOnNetworkFs (map networkDatabaseMessage databasesOnNetwork);

    assertions =
      map (tier: {
        assertion = !(cfg.budget.enforce && overFull tier);
        message = overFullMessage tier;
      }) tierNames
      ++ map (d: {
        assertion = cfg.allowDatabasesOnNetworkFs;
        message = networkDatabaseMessage d;
      }) databasesOnNetwork
      ++ map (d: {
        assertion = d.linkFrom == null || lib.any (tier: isInside (tierPath tier) d.linkFrom) tierNames;
        message = "${toString d.linkFrom}, the symlink to ${d.path}, must be inside a storage tier.";
      }) directories
      ++
      map (d: {
        assertion = tierPath d.tier != null;
        message = ''
          ${d.path} belongs on the ${d.tier} storage tier, but
          services.chainstead.storage.${d.tier}.path is not set. Set it to the
          directory (or mount point) of that tier; on a single-disk host both
          tiers may name the same directory.
        '';
      }) directories
      ++ map (d: {
        assertion = tierPath d.tier == null || isInside (tierPath d.tier) d.path;
        message = ''
          ${d.path} is placed on the ${d.tier} tier but is not inside
          services.chainstead.storage.${d.tier}.path (${toString (tierPath d.tier)}).
          Move it inside the tier, or change the placement in
          services.chainstead.storage.placement.
        '';
      }) directories
      ++ lib.concatMap (
        d:
        map (reserved: {
          assertion = !(isInside d.path reserved || isInside reserved d.path);
          message = ''
            ${d.path} overlaps ${reserved}, a directory chainstead keeps for its own
            state; give the data directory another path (or the tier another
            location).
          '';
        }) cfg.reservedPaths
      ) directories
      ++ lib.concatMap (
        tier:
        map (reserved: {
          assertion = cfg.${tier}.device == null || !(isInside cfg.${tier}.path reserved);
          message = ''
            services.chainstead.storage.${tier} mounts ${toString cfg.${tier}.device} on
            ${toString cfg.${tier}.path}, which would cover ${reserved}, where chainstead
            keeps state that exists before the mount. Mount the tier elsewhere,
            for example /srv/${tier}.
          '';
        }) cfg.reservedPaths
      ) tierNames
      ++ map (tier: {
        assertion = cfg.${tier}.path == null || lib.hasPrefix "/" cfg.${tier}.path;
        message = "services.chainstead.storage.${tier}.path must be an absolute path, not ${toString cfg.${tier}.path}.";
      }) tierNames
      ++ [
        {
          assertion =
            let
              paths = map (d: d.path) directories;
            in
            lib.length paths == lib.length (lib.unique paths);
          message = "Two chainstead services were given the same data directory; give each its own.";
        }
        {
          assertion =
            !(
              cfg.fast.device != null
              && cfg.bulk.device != null
              && cfg.fast.path == cfg.bulk.path
              && cfg.fast.device != cfg.bulk.device
            );
          message = ''
            services.chainstead.storage.fast and .bulk name the same path
            (${toString cfg.fast.path}) but different devices; give each tier its own mount point.
          '';
        }
      ];

    fileSystems = lib.listToAttrs (
      map (
        tier:
        lib.nameValuePair cfg.${tier}.path {
          inherit (cfg.${tier}) device fsType options;
        }
      ) (lib.filter (tier: cfg.${tier}.device != null && cfg.${tier}.path != null) tierNames)
    );

    systemd.services =
      lib.genAttrs unitsWithDirs wiringFor
      // lib.listToAttrs (
        map (
          tier:
          lib.nameValuePair (setupUnit tier) {
            description = "Create the chainstead directories on the ${tier} storage tier";
            unitConfig.RequiresMountsFor = [ (tierPath tier) ];
            serviceConfig = chainstead.hardening // {
              # exec
              Type = "oneshot";
              RemainAfterExit = true;
              # "+": outside the sandbox, this one rule only (see mountPointRule).
              ExecStartPre = lib.optional (
                cfg.${tier}.device == null
              ) "+${pkgs.systemd}/bin/systemd-tmpfiles --create ${mountPointRule tier}";
              ExecStart = "${pkgs.systemd}/bin/systemd-tmpfiles --create ${cfg.setupRules.${tier}}";

              # identity and paths: root, to give each directory its owner;
              # writes nothing outside the tier
              ReadWritePaths = [ (tierPath tier) ];

              # exceptions to the baseline
              CapabilityBoundingSet = [
                "CAP_CHOWN" # each directory belongs to its service
                "CAP_FOWNER" # set the mode of a directory root does not own
                "CAP_DAC_OVERRIDE" # create inside another service's directory (LND's macaroons)
                "CAP_FSETID" # keep the setgid bit on a group root is not in (capabilities(7))
              ];
              # Directories may be setgid (LND's macaroons, mode 2750), which
              # RestrictSUIDSGID= would refuse to set.
              RestrictSUIDSGID = false;
              SystemCallFilter = chainstead.hardening.SystemCallFilter ++ [
                "@chown" # back from ~@privileged: chown is the job
                "~@resources" # tmpfiles sets no limits or priorities
              ];

              # no network: owner names resolve through files or nscd's socket
              PrivateNetwork = true;
              RestrictAddressFamilies = [ "AF_UNIX" ];
              IPAddressDeny = "any";
            };
          }
        ) (lib.filter (tier: tierPath tier != null) tiersInUse)
      );
  };
}
