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
      description = "Filesystem type of {option}`device`.";
    };
    options = mkOption {
      type = types.listOf types.str;
      default = [
        "noatime"
        "nofail"
      ];
      description = ''
        Mount options of {option}`device`. `nofail` keeps a missing disk from
        dropping the host into emergency mode (it stays reachable over SSH);
        the services on the tier still refuse to start without it, because
        every one of them carries `RequiresMountsFor=` on its directories.
      '';
    };
  };

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
    )
    + "\n";

  setupUnit = tier: "chainstead-storage-${tier}";

  # The tier's own directory, for a tier without a device: the sandboxed
  # setup can only write inside a path that exists (ReadWritePaths=), and a
  # plain-directory tier may not exist yet. A tier with a device needs no
  # such step: systemd creates a mount point that does not exist
  # (systemd.mount(5), Where=), and RequiresMountsFor= waits for the mount.
  mountPointRule =
    tier: pkgs.writeText "chainstead-${tier}-mount-point.conf" "d ${tierPath tier} 0755 root root - -\n";

  unitsWithDirs = lib.unique (lib.concatMap (d: d.units) directories);
  wiringFor =
    unit:
    let
      dirs = lib.filter (d: lib.elem unit d.units) directories;
      setups = lib.unique (map (d: "${setupUnit d.tier}.service") dirs);
    in
    {
      # wants, not requires: a switch that changes a tier's rules restarts
      # its setup unit, and Requires= would restart bitcoind with it. The
      # mount itself is required through RequiresMountsFor=.
      wants = setups;
      after = setups;
      unitConfig.RequiresMountsFor = map (d: d.path) dirs;
    };
in
{
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
    assertions =
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
