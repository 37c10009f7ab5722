# The memory budget: each service's memory option, registered here by its
# module, summed against the host's RAM; systemd memory limits derived from
# each budget, so one service cannot push the others into the OOM killer;
# and CPU and I/O weights that put LND and Fulcrum's wallet queries ahead of
# the chains' background sync.
#
# systemd.resource-control(5): MemoryHigh= throttles and reclaims above the
# value, MemoryMax= is the hard limit (the OOM killer acts inside the unit's
# cgroup only); both take K/M/G suffixes. CPUWeight= and IOWeight= range
# 1–10000 around a default of 100 and only matter under contention;
# IOWeight= needs an I/O scheduler that honours weights (BFQ), and does
# nothing for NFS. Page cache (LMDB's memory map, LevelDB's files) is
# charged to the unit too, but is reclaimed under the limit, not killed.
{ config, lib, ... }:
let
  inherit (lib) mkOption types mkIf;
  cfg = config.services.chainstead.memory;

  # Background: chains syncing and validating. Interactive: what answers a
  # wallet or a peer's HTLC.
  weights = {
    background = 50;
    default = 100;
    interactive = 400;
  };

  serviceType = types.submodule {
    options = {
      budget = mkOption {
        type = types.ints.positive;
        description = "MiB the service is budgeted in steady state (its memory option).";
      };
      initialSyncBudget = mkOption {
        type = types.nullOr types.ints.positive;
        default = null;
        description = ''
          MiB while the chains sync for the first time, when it differs (bitcoind's
          large initial dbcache); the unit's limits are raised to it at runtime
          for that phase only (modules/bitcoind.nix).
        '';
      };
      runsDuringInitialSync = mkOption {
        type = types.bool;
        default = true;
        description = "Whether the service runs while bitcoind is in initial block download (false: it is started by the sync gate).";
      };
      class = mkOption {
        type = types.enum (lib.attrNames weights);
        default = "default";
        description = "CPU and I/O weight class: `interactive` ahead of `background`.";
      };
    };
  };

  services = lib.attrValues cfg.services;
  sumOf = f: lib.foldl' (n: s: n + f s) 0 services;
  steady = sumOf (s: s.budget) + cfg.osReserve;
  duringSync =
    sumOf (
      s:
      if !s.runsDuringInitialSync then
        0
      else if s.initialSyncBudget != null then
        s.initialSyncBudget
      else
        s.budget
    )
    + cfg.osReserve;

  # MemoryHigh= at the budget, MemoryMax= a quarter above it.
  limitsFor = mib: {
    MemoryHigh = "${toString mib}M";
    MemoryMax = "${toString (mib * 5 / 4)}M";
  };
  listing = lib.concatStringsSep ", " (
    lib.mapAttrsToList (name: s: "${name} ${toString s.budget} MiB") cfg.services
  );
in
{
  options.services.chainstead.memory = {
    total = mkOption {
      type = types.nullOr types.ints.positive;
      default = null;
      example = 12288;
      description = ''
        The host's RAM in MiB (`free -m`, "total"). When set, the evaluation
        warns when the services' budgets plus {option}`osReserve` exceed it,
        in steady state or during the first sync, and bitcoind's initial
        dbcache defaults to what the budget leaves free.
      '';
    };
    osReserve = mkOption {
      type = types.ints.unsigned;
      default = 1024;
      description = "MiB kept for the kernel, systemd, sshd, the sync gates and the page cache of everything else.";
    };
    limits = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Give each service `MemoryHigh=` at its budget and `MemoryMax=` at 125 %
        of it (systemd.resource-control(5)), and CPU and I/O weights by class.
      '';
    };
    enforce = mkOption {
      type = types.bool;
      default = false;
      description = "Make an over-budget host an evaluation error instead of a warning.";
    };
    services = mkOption {
      type = types.attrsOf serviceType;
      default = { };
      internal = true;
      description = "Each service's memory budget by unit name; set by the service modules.";
    };
    limitsFor = mkOption {
      type = types.functionTo (types.attrsOf types.str);
      readOnly = true;
      internal = true;
      default = limitsFor;
      description = "The MemoryHigh=/MemoryMax= pair for a budget in MiB.";
    };
    summary = mkOption {
      type = types.attrsOf types.int;
      readOnly = true;
      internal = true;
      default = {
        inherit steady duringSync;
      };
      description = "MiB needed in steady state and during the first sync, the OS reserve included.";
    };
  };

  config = mkIf (cfg.services != { }) {
    warnings =
      let
        messages = lib.optional (cfg.total != null && steady > cfg.total) ''
          services.chainstead.memory: the services are budgeted ${toString steady} MiB with the OS
          reserve (${listing}, osReserve ${toString cfg.osReserve} MiB), more than the host's
          ${toString cfg.total} MiB (services.chainstead.memory.total). Lower a service's
          memory option (services.chainstead.<service>.memory) or give the host more RAM.
        '' ++ lib.optional (cfg.total != null && duringSync > cfg.total) ''
          services.chainstead.memory: during the first sync the running services need
          ${toString duringSync} MiB with the OS reserve, more than the host's ${toString cfg.total} MiB;
          lower services.chainstead.bitcoind.initialSync.dbcache (or bitcoind's and monerod's
          memory options), or hold monerod back (services.chainstead.monerod.waitForBitcoindSync).
        '';
      in
      lib.optionals (!cfg.enforce) messages;

    assertions = lib.optional cfg.enforce {
      assertion = cfg.total == null || (steady <= cfg.total && duringSync <= cfg.total);
      message = ''
        services.chainstead.memory: the services need ${toString steady} MiB in steady state and
        ${toString duringSync} MiB during the first sync (OS reserve included), but the host has
        ${toString cfg.total} MiB (services.chainstead.memory.total). Lower a service's memory option.
      '';
    };

    systemd.services = mkIf cfg.limits (
      lib.mapAttrs (_: s: {
        # resource limits (the memory budget)
        serviceConfig = limitsFor s.budget // {
          CPUWeight = weights.${s.class};
          IOWeight = weights.${s.class};
        };
      }) cfg.services
    );
  };
}
