# Adopting a nix-bitcoin node's data (docs/migrate-from-nix-bitcoin.md):
# `chainstead-migrate-nix-bitcoin.service`, a root oneshot, runs
# `chainstead migrate-nix-bitcoin` (crates/cli) with the directories of the
# chainstead services that are enabled, before anything of theirs starts.
# The command renames nix-bitcoin's bitcoind datadir, Fulcrum index and LND
# state into chainstead's directories (no copy, no resync), refuses while a
# bitcoind, Fulcrum or LND process runs or LND's databases are locked, and
# says "nothing to migrate" on every run after the first, so the unit stays
# enabled and runs on every boot.
#
# Ordering: the unit is Before= and RequiredBy= each daemon whose data it
# adopts, LND's wallet unit, the daemons' upgrade guards (whose `check`
# writes its record into the datadir, which would then hold data the command
# refuses to merge) and the backup pusher (which makes LND's data/ tree), so
# a refusal holds them all. It starts after the storage
# tiers' setup units (it is listed in their directories' `units`), which make
# chainstead's empty directories that the command fills. bitcoind's first-sync
# units need no order: they read or write their marker in the datadir only
# once bitcoind is up (the gate's target), and adopted data has no marker.
#
# nix-bitcoin facts used here (fort-nix/nix-bitcoin v0.0.139, the last tree):
#   modules/bitcoind.nix: dataDir /var/lib/bitcoind, `network` is "regtest"
#     when services.bitcoind.regtest is set and "mainnet" otherwise;
#   modules/fulcrum.nix: dataDir /var/lib/fulcrum is also Fulcrum's datadir;
#   modules/lnd.nix: dataDir /var/lib/lnd is LND's datadir, the wallet
#     password is <secretsDir>/lnd-wallet-password;
#   modules/secrets/secrets.nix: secretsDir /etc/nix-bitcoin-secrets.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    mkOption
    mkEnableOption
    mkIf
    mkMerge
    types
    literalExpression
    ;
  chainstead = import ./lib.nix { inherit lib; };
  top = config.services.chainstead;
  cfg = top.migrate.nixBitcoin;
  inherit (top) storage;

  unit = "chainstead-migrate-nix-bitcoin";
  opt = "services.chainstead.migrate.nixBitcoin";

  # The networks nix-bitcoin ran (modules/bitcoind.nix, `network`).
  nixBitcoinNetworks = [
    "mainnet"
    "regtest"
  ];

  serviceCfg = name: top.${name} or null;
  enabled = name: serviceCfg name != null && (serviceCfg name).enable;
  adopts = lib.genAttrs [ "bitcoind" "fulcrum" "lnd" ] enabled;
  adopted = lib.filter (name: adopts.${name}) [
    "bitcoind"
    "fulcrum"
    "lnd"
  ];
  inherit (top) bitcoind fulcrum lnd;

  # Each service's chain; Fulcrum's is that of the bitcoind it indexes.
  networkOf = {
    bitcoind = bitcoind.network;
    fulcrum = fulcrum.bitcoind.network;
    lnd = lnd.network;
  };
  networks = lib.unique (map (name: networkOf.${name}) adopted);
  network = if networks == [ ] then bitcoind.network else lib.head networks;

  # Where bitcoind keeps a network's indexes/ (modules/bitcoind.nix, netDir).
  bitcoindNetDir =
    if bitcoind.network == "mainnet" then
      bitcoind.dataDir
    else
      "${bitcoind.dataDir}/${chainstead.bitcoinNetworks.${bitcoind.network}.section}";

  # The upgrade guards of the adopted daemons (modules/upgrade-guard.nix).
  upgrades = lib.attrByPath [ "upgrades" ] { enable = false; } top;
  guarded = name: upgrades.enable && upgrades.${name}.enable;
  pushesLnd = guarded "lnd" && upgrades.lnd.pushChannelBackup;

  # The backup pusher makes LND's directories down to channel.backup's
  # before it starts (backup/lnd-access.nix), which would then hold data.
  backsUpLnd = (top.backup or { enable = false; }).enable;

  # What a refusal must hold: the daemons, LND's wallet unit, the guards and
  # the backup pusher.
  holds =
    lib.concatMap (
      name: [ "${name}.service" ] ++ lib.optional (guarded name) "chainstead-upgrade-guard-${name}.service"
    ) adopted
    ++ lib.optionals adopts.lnd (
      [ "chainstead-lnd-wallet-init.service" ]
      ++ lib.optional pushesLnd "chainstead-upgrade-guard-lnd-push.service"
      ++ lib.optional backsUpLnd "chainstead-backup.service"
    );

  # nix-bitcoin's directory of each service, and chainstead's.
  pairs =
    lib.optional adopts.bitcoind {
      name = "bitcoind";
      from = cfg.bitcoindDir;
      fromOption = "${opt}.bitcoindDir";
      to = bitcoind.dataDir;
      toOption = "services.chainstead.bitcoind.dataDir";
    }
    ++ lib.optional adopts.fulcrum {
      name = "Fulcrum";
      from = cfg.fulcrumDir;
      fromOption = "${opt}.fulcrumDir";
      to = fulcrum.dataDir;
      toOption = "services.chainstead.fulcrum.dataDir";
    }
    ++ lib.optional adopts.lnd {
      name = "LND";
      from = cfg.lndDir;
      fromOption = "${opt}.lndDir";
      to = lnd.dataDir;
      toOption = "services.chainstead.lnd.dataDir";
    };

  # Paths as lists of components, and the deepest directory two paths share.
  components = path: lib.filter (c: c != "") (lib.splitString "/" path);
  commonDir =
    a: b:
    let
      shared =
        xs: ys:
        if xs != [ ] && ys != [ ] && lib.head xs == lib.head ys then
          [ (lib.head xs) ] ++ shared (lib.tail xs) (lib.tail ys)
        else
          [ ];
    in
    "/" + lib.concatStringsSep "/" (shared (components a) (components b));
  isInside = root: path: root == "/" || path == root || lib.hasPrefix "${root}/" path;

  # rename(2) fails with EXDEV between two mount points even on one
  # filesystem, and every ReadWritePaths= entry is a bind mount of its own
  # under ProtectSystem=strict: each move's source and destination must lie
  # in one entry, their deepest shared directory. Writes without a rename
  # (the seed, the wallet password) only need their own directory. Entries
  # inside another are left out (the outer one already makes them writable).
  writable =
    map (p: commonDir p.from p.to) pairs
    ++ lib.optionals adopts.lnd [
      (dirOf lnd.seedFile)
      (dirOf cfg.walletPasswordFile)
    ];
  readWritePaths = lib.filter (p: !lib.any (q: q != p && isInside q p) writable) (
    lib.unique writable
  );

  args = [
    "migrate-nix-bitcoin"
    "--network"
    network
    "--nix-bitcoin-bitcoind"
    cfg.bitcoindDir
    "--nix-bitcoin-fulcrum"
    cfg.fulcrumDir
    "--nix-bitcoin-lnd"
    cfg.lndDir
    "--nix-bitcoin-secrets"
    cfg.secretsDir
  ]
  ++ lib.optionals adopts.bitcoind [
    "--bitcoind-dir"
    bitcoind.dataDir
    "--bitcoind-user"
    "bitcoind"
  ]
  ++ lib.optionals adopts.fulcrum [
    "--fulcrum-dir"
    fulcrum.dataDir
    "--fulcrum-user"
    "fulcrum"
  ]
  ++ lib.optionals adopts.lnd [
    "--lnd-dir"
    lnd.dataDir
    "--lnd-macaroon-dir"
    lnd.macaroonDir
    "--lnd-seed-file"
    lnd.seedFile
    "--lnd-wallet-password-file"
    cfg.walletPasswordFile
    "--lnd-user"
    "lnd"
    "--macaroon-group"
    lnd.group
  ];
  command = "${lib.getExe cfg.package} ${lib.escapeShellArgs args}";

  absolutePath =
    types.addCheck types.str (lib.hasPrefix "/")
    // {
      description = "absolute path";
    };
  nixBitcoinDirOption =
    default: what:
    mkOption {
      type = absolutePath;
      inherit default;
      description = "nix-bitcoin's ${what}.";
    };
in
{
  options.services.chainstead.migrate.nixBitcoin = {
    enable = mkEnableOption "adopting a nix-bitcoin node's data (unit `${unit}.service`)" // {
      description = ''
        Whether to adopt a nix-bitcoin node's data: before chainstead's bitcoind,
        Fulcrum and LND start (those of them that are enabled), `${unit}.service`
        renames nix-bitcoin's bitcoind datadir, Fulcrum index and LND wallet,
        channel database and macaroons into their chainstead directories and
        copies LND's TLS pair, seed and wallet password, so nothing resyncs. It
        refuses, and holds the daemons, while a nix-bitcoin daemon still runs;
        every run after the first finds nothing to migrate. nix-bitcoin's
        directories must be on the filesystem of chainstead's (a rename, never
        a copy). See docs/migrate-from-nix-bitcoin.md.
      '';
    };

    package = chainstead.toolPackageOption pkgs "chainstead-cli" ../pkgs/chainstead-tools/cli.nix;

    bitcoindDir = nixBitcoinDirOption "/var/lib/bitcoind" "bitcoind datadir (its `services.bitcoind.dataDir`)";
    fulcrumDir = nixBitcoinDirOption "/var/lib/fulcrum" "Fulcrum datadir (its `services.fulcrum.dataDir`)";
    lndDir = nixBitcoinDirOption "/var/lib/lnd" "LND datadir (its `services.lnd.dataDir`)";
    secretsDir = nixBitcoinDirOption "/etc/nix-bitcoin-secrets" "secrets directory (its `nix-bitcoin.secretsDir`): LND's wallet password, TLS certificate and key";

    walletPasswordFile = mkOption {
      type = chainstead.secretFileType;
      default = "${toString storage.${storage.placement.lnd}.path}/lnd-wallet-password";
      defaultText = literalExpression ''"''${storage.<placement.lnd>.path}/lnd-wallet-password"'';
      description = ''
        Where nix-bitcoin's `lnd-wallet-password` is copied (owned by `lnd`,
        mode 0400), on LND's storage tier. It becomes the default of
        {option}`services.chainstead.lnd.walletPasswordFile`: the adopted
        wallet opens only with the password it was created with.
      '';
    };

    command = mkOption {
      type = types.str;
      readOnly = true;
      internal = true;
      default = command;
      defaultText = literalExpression "the command line of ${unit}.service";
      description = "The command line the unit runs (for tests and a manual `--dry-run`).";
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = adopted != [ ];
        message = ''
          ${opt}.enable is set, but none of services.chainstead.bitcoind,
          .fulcrum and .lnd is enabled: there is nothing to adopt nix-bitcoin's data into.
        '';
      }
      {
        assertion = lib.elem network nixBitcoinNetworks;
        message = ''
          ${opt}: chainstead runs ${network}, but nix-bitcoin ran only
          mainnet or regtest (its services.bitcoind.regtest), so its data cannot be
          for ${network}. Set services.chainstead.bitcoind.network to the network
          the nix-bitcoin node ran.
        '';
      }
      {
        assertion = lib.length networks <= 1;
        message = ''
          ${opt}: the adopted services run different networks
          (${lib.concatMapStringsSep ", " (name: "${name}: ${networkOf.${name}}") adopted}); one nix-bitcoin
          node ran one network.
        '';
      }
      {
        assertion = !adopts.bitcoind || bitcoind.blocksDir == null;
        message = ''
          ${opt} adopts nix-bitcoin's bitcoind datadir, whose block files stay in
          its blocks/ directory, but services.chainstead.bitcoind.blocksDir is
          ${toString bitcoind.blocksDir}. Set services.chainstead.bitcoind.blocksDir = null
          (the block files stay in the datadir, on services.chainstead.storage.placement.bitcoindData's
          tier), or bitcoind would download the chain again into the blocks directory.
        '';
      }
      {
        assertion = !adopts.bitcoind || bitcoind.indexesDir == "${bitcoindNetDir}/indexes";
        message = ''
          ${opt} adopts nix-bitcoin's bitcoind datadir with its indexes/ inside it,
          but services.chainstead.bitcoind.indexesDir is ${bitcoind.indexesDir}.
          Keep the indexes in the datadir for the migration
          (services.chainstead.storage.placement.bitcoindIndexes equal to .bitcoindData);
          move them to the other tier afterwards (docs/storage.md).
        '';
      }
      {
        assertion = !adopts.fulcrum || fulcrum.dbDir == fulcrum.dataDir;
        message = ''
          ${opt} adopts nix-bitcoin's Fulcrum index, which lies directly in its
          datadir, but services.chainstead.fulcrum.dbDir (${fulcrum.dbDir}) is not
          services.chainstead.fulcrum.dataDir (${fulcrum.dataDir}).
          Set services.chainstead.fulcrum.dbDir = config.services.chainstead.fulcrum.dataDir,
          or Fulcrum would index the chain again.
        '';
      }
    ]
    # The same directory is adopted in place (the fast tier at /var/lib);
    # one inside the other would have the command move a directory into
    # itself.
    ++ map (p: {
      assertion = p.from == p.to || !(isInside p.from p.to || isInside p.to p.from);
      message = ''
        ${p.toOption} (${p.to}) and ${p.fromOption} (${p.from}) lie one inside
        the other; the migration renames ${p.name}'s data from nix-bitcoin's
        directory into chainstead's, which must be that same directory or one
        beside it on the same filesystem.
      '';
    }) pairs;

    warnings = lib.optional (adopts.lnd && lnd.walletPasswordFile != cfg.walletPasswordFile) ''
      services.chainstead.lnd.walletPasswordFile (${lnd.walletPasswordFile}) is not
      ${opt}.walletPasswordFile (${cfg.walletPasswordFile}), where the
      migration copies nix-bitcoin's wallet password: LND opens the adopted wallet
      only if that file holds the same password.
    '';

    # The adopted wallet's password; an option set elsewhere wins (mkDefault
    # is stronger only than the option's own default, the secret loader's file).
    services.chainstead.lnd.walletPasswordFile = mkIf adopts.lnd (lib.mkDefault cfg.walletPasswordFile);

    # Waits for the tiers like the services: after their setup, with the mounts.
    services.chainstead.storage.directories = mkMerge [
      (mkIf adopts.bitcoind { bitcoind-data.units = [ unit ]; })
      (mkIf adopts.fulcrum { fulcrum.units = [ unit ]; })
      (mkIf adopts.lnd {
        lnd.units = [ unit ];
        lnd-macaroons.units = [ unit ];
      })
    ];

    systemd.services.${unit} = {
      description = "Adopt nix-bitcoin's data (${lib.concatStringsSep ", " adopted}) into chainstead's directories";
      documentation = [ "https://github.com/chainstead/chainstead/blob/main/docs/migrate-from-nix-bitcoin.md" ];
      before = holds;
      requiredBy = holds;
      # Requires= passes a restart on to the daemons: a switch that changes
      # only this unit must not restart bitcoind, Fulcrum and LND. A changed
      # unit runs at the next boot (or with an explicit restart, which stops
      # the daemons first).
      restartIfChanged = false;
      # nix-bitcoin's directories, where they are mounted on their own.
      unitConfig.RequiresMountsFor = map (p: p.from) pairs ++ lib.optional adopts.lnd cfg.secretsDir;

      serviceConfig = chainstead.hardening // {
        # exec
        Type = "oneshot";
        RemainAfterExit = true;
        ExecStart = command;
        # Renames are instant; chown -R of a mainnet datadir's files takes a while.
        TimeoutStartSec = "30min";

        # identity and paths: root, to give the data its new owners and read
        # the root-only secrets ("-": a directory that is gone has nothing to move)
        User = "root";
        Group = "root";
        ReadWritePaths = map (p: "-${p}") readWritePaths;
        # The command gives every file it writes its mode (the seed 0400, the
        # password 0400, tls.key 0600); the umask only shapes a directory it
        # must create above one of them, which it means to be 0755.
        UMask = "0022";

        # exceptions to the baseline
        # It refuses while a bitcoind, Fulcrum or LND process of any user runs
        # (/proc/<pid>/comm), so it must see every process.
        ProtectProc = "default";
        ProcSubset = "all";
        CapabilityBoundingSet = [
          "CAP_CHOWN" # the data gets its chainstead owner (bitcoind, fulcrum, lnd)
          "CAP_FOWNER" # and its modes (macaroons, tls.key, the seed) on files root does not own
          "CAP_DAC_OVERRIDE" # nix-bitcoin's 0770/0700 directories and LND's locks, another user's
        ];
        SystemCallFilter = chainstead.hardening.SystemCallFilter ++ [
          "@chown" # back from ~@privileged: chown is the job
        ];

        # no network: owner names resolve through files or nscd's socket
        PrivateNetwork = true;
        RestrictAddressFamilies = [ "AF_UNIX" ];
        IPAddressDeny = "any";
      };
    };
  };
}
