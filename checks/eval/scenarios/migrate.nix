# Module evaluation checks for modules/migrate.nix: the command line of
# chainstead-migrate-nix-bitcoin.service for each set of enabled services,
# its place before (and required by) the daemons, LND's wallet unit and
# the upgrade guards, after the tiers' setup, its sandbox, the wallet
# password's default and its priority, each assertion, and no unit when
# the migration is off.
{ lib, harness }:
let
  h = harness;
  inherit (h) pkgs;

  fast = "/var/lib/chainstead-fast";
  tiers = {
    fast.path = fast;
    bulk.path = "/var/lib/chainstead-bulk";
  };
  # What adopting needs on the chainstead side (the assertions say why).
  bitcoind = {
    enable = true;
    network = "regtest";
    blocksDir = null;
  };
  fulcrum = {
    enable = true;
    dbDir = "${fast}/fulcrum";
  };
  node =
    services:
    h.evalConfig [
      {
        services.chainstead = lib.recursiveUpdate {
          storage = tiers;
          migrate.nixBitcoin.enable = true;
        } services;
      }
    ];

  all = node {
    inherit bitcoind fulcrum;
    lnd.enable = true;
  };
  bitcoindOnly = node { inherit bitcoind; };
  withLnd = node {
    inherit bitcoind;
    lnd.enable = true;
  };
  off = h.evalConfig [
    {
      services.chainstead = {
        storage = tiers;
        inherit bitcoind fulcrum;
        lnd.enable = true;
      };
    }
  ];

  unitName = "chainstead-migrate-nix-bitcoin";
  unit = config: config.systemd.services.${unitName};
  sc = config: (unit config).serviceConfig;
  cli = "${pkgs.chainstead-cli}/bin/chainstead";
  common = [
    "migrate-nix-bitcoin"
    "--network"
    "regtest"
    "--nix-bitcoin-bitcoind"
    "/var/lib/bitcoind"
    "--nix-bitcoin-fulcrum"
    "/var/lib/fulcrum"
    "--nix-bitcoin-lnd"
    "/var/lib/lnd"
    "--nix-bitcoin-secrets"
    "/etc/nix-bitcoin-secrets"
  ];
  bitcoindArgs = [
    "--bitcoind-dir"
    "${fast}/bitcoind"
    "--bitcoind-user"
    "bitcoind"
  ];
  fulcrumArgs = [
    "--fulcrum-dir"
    "${fast}/fulcrum"
    "--fulcrum-user"
    "fulcrum"
  ];
  lndArgs = [
    "--lnd-dir"
    "${fast}/lnd"
    "--lnd-macaroon-dir"
    "${fast}/lnd/macaroons"
    "--lnd-seed-file"
    "/var/lib/chainstead/lnd-seed/seed"
    "--lnd-wallet-password-file"
    "${fast}/lnd-wallet-password"
    "--lnd-user"
    "lnd"
    "--macaroon-group"
    "lnd-macaroon"
  ];
  commandOf = args: "${cli} ${lib.concatStringsSep " " (common ++ args)}";

  guard = name: "chainstead-upgrade-guard-${name}.service";
  allHeld = [
    "bitcoind.service"
    (guard "bitcoind")
    "fulcrum.service"
    (guard "fulcrum")
    "lnd.service"
    (guard "lnd")
    "chainstead-lnd-wallet-init.service"
  ];

  loaderPassword = "/run/chainstead/secrets/lnd/wallet-password";
  ownPassword = node {
    inherit bitcoind;
    lnd = {
      enable = true;
      walletPasswordFile = "/root/lnd-password";
    };
  };
  lndOnBulk = node {
    inherit bitcoind;
    lnd.enable = true;
    storage.placement.lnd = "bulk";
  };
  otherTierRoot = node {
    inherit bitcoind;
    storage.fast.path = "/srv/fast";
  };
  # nix-bitcoin's directories adopted where they are: the fast tier at /var/lib.
  inPlace = node {
    inherit bitcoind;
    fulcrum = {
      enable = true;
      dbDir = "/var/lib/fulcrum";
    };
    lnd.enable = true;
    storage.fast.path = "/var/lib";
  };
  withBackup = node {
    inherit bitcoind;
    lnd.enable = true;
    backup = {
      enable = true;
      targets.usb.directory.path = "/mnt/usb/lnd-backup";
    };
  };
  unguarded = node {
    inherit bitcoind fulcrum;
    lnd.enable = true;
    upgrades.enable = false;
  };
in
{
  command = [
    (h.expectNoFailedAssertions "bitcoind, Fulcrum and LND adopted evaluate cleanly" all)
    (h.expectEqual "all three: every directory, user and the macaroon group"
      (commandOf (bitcoindArgs ++ fulcrumArgs ++ lndArgs))
      (sc all).ExecStart
    )
    (h.expectEqual "bitcoind only: no Fulcrum or LND arguments" (commandOf bitcoindArgs)
      (sc bitcoindOnly).ExecStart
    )
    (h.expectEqual "bitcoind and LND: no Fulcrum arguments" (commandOf (bitcoindArgs ++ lndArgs))
      (sc withLnd).ExecStart
    )
    (h.expectContains "a mainnet node says mainnet" "--network mainnet" (sc (node {
      bitcoind = bitcoind // {
        network = "mainnet";
      };
    })).ExecStart)
    (h.expectEqual "nix-bitcoin's directories as set"
      (lib.replaceStrings [ "/var/lib/bitcoind " ] [ "/srv/old/bitcoind " ] (commandOf bitcoindArgs))
      (sc (node {
        inherit bitcoind;
        migrate.nixBitcoin.bitcoindDir = "/srv/old/bitcoind";
      })).ExecStart
    )
    (h.expectNoFailedAssertions "nix-bitcoin's own directories adopted in place (fast tier /var/lib)" inPlace)
    (h.expectContains "bitcoind in place" "--nix-bitcoin-bitcoind /var/lib/bitcoind" (sc inPlace).ExecStart)
    (h.expectContains "into itself" "--bitcoind-dir /var/lib/bitcoind " (sc inPlace).ExecStart)
    (h.expectContains "LND too" "--lnd-dir /var/lib/lnd " (sc inPlace).ExecStart)
    (h.expectEqual "the command option is the unit's command line" (sc all).ExecStart
      all.services.chainstead.migrate.nixBitcoin.command
    )
    (h.expectNoSecrets "no secret anywhere in the configuration" { config = all; })
  ];

  ordering = [
    (h.expectEqual "before everything it adopts data for" allHeld (unit all).before)
    (h.expectEqual "and required by it, so a refusal holds them" allHeld (unit all).requiredBy)
    (h.expectEqual "bitcoind only: bitcoind and its guard" [
      "bitcoind.service"
      (guard "bitcoind")
    ] (unit bitcoindOnly).requiredBy)
    (h.expectEqual "without the upgrade guards: the daemons and LND's wallet unit" [
      "bitcoind.service"
      "fulcrum.service"
      "lnd.service"
      "chainstead-lnd-wallet-init.service"
    ] (unit unguarded).requiredBy)
    (h.expectContains "with the backup pusher: before LND's pre-upgrade push too"
      "chainstead-upgrade-guard-lnd-push.service"
      (unit withBackup).requiredBy
    )
    (h.expectContains "and before the pusher, which makes LND's data/ tree" "chainstead-backup.service"
      (unit withBackup).requiredBy
    )
    (h.expectContains "which it does before it starts"
      "systemd-tmpfiles --create"
      (lib.concatStringsSep " " withBackup.systemd.services.chainstead-backup.serviceConfig.ExecStartPre)
    )
    (h.expectNotContains "no pusher to hold without backups" "chainstead-backup.service" (unit all).requiredBy)
    (h.expectContains "after the fast tier's setup" "chainstead-storage-fast.service" (unit all).after)
    (h.expectContains "which it wants" "chainstead-storage-fast.service" (unit all).wants)
    (h.expectEqual "listed in the directories it fills" [
      "bitcoind-data"
      "fulcrum"
      "lnd"
      "lnd-macaroons"
    ] (lib.attrNames (lib.filterAttrs (_: d: lib.elem unitName d.units) all.services.chainstead.storage.directories)))
    (h.expectContains "it waits for chainstead's datadirs' mounts" "${fast}/lnd"
      (unit all).unitConfig.RequiresMountsFor
    )
    (h.expectContains "and nix-bitcoin's" "/var/lib/bitcoind" (unit all).unitConfig.RequiresMountsFor)
    (h.expectContains "and the secrets'" "/etc/nix-bitcoin-secrets" (unit all).unitConfig.RequiresMountsFor)
    (h.expectEqual "a oneshot that stays active" {
      Type = "oneshot";
      RemainAfterExit = true;
    } { inherit (sc all) Type RemainAfterExit; })
    (h.expectEqual "a switch never restarts it (nor, through Requires=, the daemons)" false
      (unit all).restartIfChanged
    )
    (h.expectEqual "it is pulled in by the daemons, not a target" [ ] (unit all).wantedBy)
  ];

  sandbox = [
    (h.expectEqual "root" {
      User = "root";
      Group = "root";
    } { inherit (sc all) User Group; })
    (h.expectEqual "it sees every user's processes" {
      ProtectProc = "default";
      ProcSubset = "all";
    } { inherit (sc all) ProtectProc ProcSubset; })
    (h.expectEqual "chown, modes and other users' directories, nothing else" [
      "CAP_CHOWN"
      "CAP_FOWNER"
      "CAP_DAC_OVERRIDE"
    ] (sc all).CapabilityBoundingSet)
    (h.expectContains "chown is back in the filter" "@chown" (sc all).SystemCallFilter)
    (h.expectEqual "the strict baseline otherwise" "strict" (sc all).ProtectSystem)
    (h.expectEqual "no network" {
      PrivateNetwork = true;
      IPAddressDeny = "any";
      RestrictAddressFamilies = [ "AF_UNIX" ];
    } { inherit (sc all) PrivateNetwork IPAddressDeny RestrictAddressFamilies; })
    (h.expectEqual "one writable directory holds each move's both ends (and the seed's and password's)"
      [ "-/var/lib" ]
      (sc all).ReadWritePaths
    )
    (h.expectEqual "in place, the tier with the password (and all the rest) is the one writable path"
      [ "-/var/lib" ]
      (sc inPlace).ReadWritePaths
    )
    (h.expectEqual "bitcoind alone in place: its own directory" [ "-/var/lib/bitcoind" ] (sc (node {
      bitcoind = bitcoind // {
        dataDir = "/var/lib/bitcoind";
      };
      storage.fast.path = "/var/lib";
    })).ReadWritePaths)
    (h.expectEqual "a tier sharing nothing with /var/lib but / makes / writable" [ "-/" ]
      (sc otherTierRoot).ReadWritePaths
    )
    (h.expectEqual "nix-bitcoin's directories beside the tier: their parent"
      [ "-/srv/fast" ]
      (sc (node {
        inherit bitcoind;
        storage.fast.path = "/srv/fast";
        migrate.nixBitcoin.bitcoindDir = "/srv/fast/nix-bitcoin/bitcoind";
      })).ReadWritePaths
    )
  ];

  wallet-password = [
    (h.expectEqual "copied to LND's tier by default" "${fast}/lnd-wallet-password"
      all.services.chainstead.migrate.nixBitcoin.walletPasswordFile
    )
    (h.expectEqual "which LND unlocks from" "${fast}/lnd-wallet-password"
      all.services.chainstead.lnd.walletPasswordFile
    )
    (h.expectEqual "so the secret loader makes no new password" false (
      all.services.chainstead.secrets.services ? lnd
    ))
    (h.expectEqual "LND on the bulk tier: the password too" "/var/lib/chainstead-bulk/lnd-wallet-password"
      lndOnBulk.services.chainstead.lnd.walletPasswordFile
    )
    (h.expectEqual "a walletPasswordFile set by the user wins" "/root/lnd-password"
      ownPassword.services.chainstead.lnd.walletPasswordFile
    )
    (h.expectContains "and is warned of" "only if that file holds the same password" (
      lib.concatStrings ownPassword.warnings
    ))
    (h.expectEqual "no warning with the default" [ ] all.warnings)
    (h.expectEqual "without the migration, the loader's file" loaderPassword
      off.services.chainstead.lnd.walletPasswordFile
    )
  ];

  assertions = [
    (h.expectAssertion "bitcoind with a separate blocksDir is refused" (node {
      bitcoind = removeAttrs bitcoind [ "blocksDir" ];
    }) "Set services.chainstead.bitcoind.blocksDir = null")
    (h.expectAssertion "bitcoind's indexes on another tier are refused" (node {
      inherit bitcoind;
      storage.placement.bitcoindIndexes = "bulk";
    }) "Keep the indexes in the datadir for the migration")
    (h.expectAssertion "Fulcrum with its index below db/ is refused" (node {
      inherit bitcoind;
      fulcrum.enable = true;
    }) "Set services.chainstead.fulcrum.dbDir = config.services.chainstead.fulcrum.dataDir")
    (h.expectAssertion "testnet4 is refused: nix-bitcoin ran mainnet or regtest" (node {
      bitcoind = bitcoind // {
        network = "testnet4";
      };
    }) "but nix-bitcoin ran only")
    (h.expectAssertion "signet too" (node {
      bitcoind = bitcoind // {
        network = "signet";
      };
    }) "chainstead runs signet")
    (h.expectNoFailedAssertions "mainnet is accepted" (node {
      bitcoind = bitcoind // {
        network = "mainnet";
      };
    }))
    (h.expectAssertion "services on two networks are refused" (node {
      inherit bitcoind;
      lnd = {
        enable = true;
        network = "mainnet";
      };
    }) "the adopted services run different networks")
    (h.expectAssertion "nothing enabled to adopt into is refused" (node { })
      "there is nothing to adopt nix-bitcoin's data into"
    )
    (h.expectAssertion "chainstead's datadir inside nix-bitcoin's is refused" (node {
      inherit bitcoind;
      lnd = {
        enable = true;
        dataDir = "/var/lib/lnd/chainstead";
      };
    }) "services.chainstead.lnd.dataDir (/var/lib/lnd/chainstead) and services.chainstead.migrate.nixBitcoin.lndDir (/var/lib/lnd) lie one inside")
    (h.expectAssertion "and nix-bitcoin's inside chainstead's" (node {
      inherit bitcoind;
      migrate.nixBitcoin.bitcoindDir = "${fast}/bitcoind/old";
    }) "services.chainstead.bitcoind.dataDir (${fast}/bitcoind) and services.chainstead.migrate.nixBitcoin.bitcoindDir (${fast}/bitcoind/old) lie one inside")
    (h.expectEvalError {
      name = "a relative nix-bitcoin directory is refused";
      modules = [
        {
          services.chainstead = {
            storage = tiers;
            inherit bitcoind;
            migrate.nixBitcoin = {
              enable = true;
              bitcoindDir = "var/lib/bitcoind";
            };
          };
        }
      ];
      force = config: config.services.chainstead.migrate.nixBitcoin.bitcoindDir;
      message = "is not of type `absolute path'";
    })
  ];

  disabled = [
    (h.expectNoFailedAssertions "the services without the migration evaluate cleanly" off)
    (h.expectEqual "no unit without the migration" false (off.systemd.services ? ${unitName}))
    (h.expectEqual "nor in the directories' units" false (
      lib.elem unitName off.services.chainstead.storage.directories.lnd.units
    ))
  ];
}
