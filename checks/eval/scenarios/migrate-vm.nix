# The migration VM test's node (checks/migrate-nix-bitcoin.nix, through its
# `passthru`), evaluated here: the nix-bitcoin-shaped base and the
# `chainstead` specialisation (the base with the fixture switched off and
# chainstead on top, as inheritParentConfig makes it) both evaluate cleanly;
# the base runs nix-bitcoin's units on nix-bitcoin's paths and no chainstead
# unit; the specialisation has no trace of the fixture, its migration unit
# moves from the paths the fixture uses into the ones the test checks, in one
# writable mount; and the test script renders with that command in it.
{ lib, harness }:
let
  h = harness;

  # runNixOSTest as the identity: the test's arguments, not a test.
  test = import ../../migrate-nix-bitcoin.nix {
    pkgs = h.pkgs // {
      inherit lib;
      testers.runNixOSTest = args: args;
    };
  };
  inherit (test.passthru) fixture chainsteadNode fast;

  base = h.evalConfig [
    fixture
    { testFixtures.nixBitcoinShaped.enable = true; }
  ];
  chainstead = h.evalConfig [
    fixture
    { testFixtures.nixBitcoinShaped.enable = true; }
    chainsteadNode
    { testFixtures.nixBitcoinShaped.enable = lib.mkForce false; }
  ];

  unit = config: name: config.systemd.services.${name};
  exec = config: name: (unit config name).serviceConfig.ExecStart;
  migration = chainstead.services.chainstead.migrate.nixBitcoin;
  migrationUnit = unit chainstead "chainstead-migrate-nix-bitcoin";
  script = test.testScript { nodes.machine.specialisation.chainstead.configuration = chainstead; };
  fixtureUsers = [
    "bitcoin"
    "fulcrum"
    "lnd"
  ];
in
{
  base = [
    (h.expectEqual "the test is named chainstead-migrate-nix-bitcoin" "chainstead-migrate-nix-bitcoin"
      test.name
    )
    (h.expectNoFailedAssertions "the nix-bitcoin-shaped node evaluates cleanly" base)
    (h.expectEqual "bitcoind on nix-bitcoin's datadir" "${h.pkgs.bitcoind}/bin/bitcoind -datadir='/var/lib/bitcoind'"
      (exec base "bitcoind")
    )
    (h.expectEqual "Fulcrum from the config it writes into its datadir"
      "${h.pkgs.fulcrum}/bin/Fulcrum '/var/lib/fulcrum/fulcrum.conf'"
      (exec base "fulcrum")
    )
    (h.expectEqual "LND from the lnd.conf in its datadir" "${h.pkgs.lnd}/bin/lnd --configfile='/var/lib/lnd/lnd.conf'"
      (exec base "lnd")
    )
    (h.expectContains "LND's seed and wallet from lndinit, as nix-bitcoin makes them"
      "${h.pkgs.lndinit}/bin/lndinit -v init-wallet --network=regtest"
      (unit base "lnd").preStart
    )
    (h.expectContains "the seed in lnd-seed-mnemonic" "seed='/var/lib/lnd/lnd-seed-mnemonic'"
      (unit base "lnd").preStart
    )
    (h.expectEqual "nix-bitcoin's users" (map (u: {
      inherit u;
      system = true;
    }) fixtureUsers) (map (u: {
      inherit u;
      system = base.users.users.${u}.isSystemUser;
    }) fixtureUsers))
    (h.expectEqual "the secrets before nix-bitcoin-secrets.target" [ "nix-bitcoin-secrets.target" ]
      (unit base "setup-secrets").requiredBy
    )
    (h.expectEqual "no chainstead unit in the base" [ ] (
      lib.filter (name: lib.hasPrefix "chainstead-" name) (lib.attrNames base.systemd.services)
    ))
    (h.expectEqual "no migration in the base" false base.services.chainstead.migrate.nixBitcoin.enable)
  ];

  specialisation = [
    (h.expectNoFailedAssertions "the chainstead specialisation evaluates cleanly" chainstead)
    (h.expectEqual "nix-bitcoin's units are gone" false (chainstead.systemd.services ? setup-secrets))
    (h.expectEqual "its bitcoin user too" false (chainstead.users.users ? bitcoin))
    (h.expectContains "bitcoind is chainstead's, on the fast tier" "-datadir=${fast}/bitcoind"
      (exec chainstead "bitcoind")
    )
    (h.expectNotContains "with its block files in the datadir" "-blocksdir" (exec chainstead "bitcoind"))
    (h.expectEqual "the command moves nix-bitcoin's paths into the ones the test checks" (
      "${h.pkgs.chainstead-cli}/bin/chainstead migrate-nix-bitcoin --network regtest"
      + " --nix-bitcoin-bitcoind /var/lib/bitcoind --nix-bitcoin-fulcrum /var/lib/fulcrum"
      + " --nix-bitcoin-lnd /var/lib/lnd --nix-bitcoin-secrets /etc/nix-bitcoin-secrets"
      + " --bitcoind-dir ${fast}/bitcoind --bitcoind-user bitcoind"
      + " --fulcrum-dir ${fast}/fulcrum --fulcrum-user fulcrum"
      + " --lnd-dir ${fast}/lnd --lnd-macaroon-dir ${fast}/lnd/macaroons"
      + " --lnd-seed-file /var/lib/chainstead/lnd-seed/seed"
      + " --lnd-wallet-password-file ${fast}/lnd-wallet-password --lnd-user lnd --macaroon-group lnd-macaroon"
    ) migrationUnit.serviceConfig.ExecStart)
    (h.expectEqual "every move inside one writable mount, /var/lib" [ "-/var/lib" ]
      migrationUnit.serviceConfig.ReadWritePaths
    )
    (h.expectContains "LND unlocks from the copied password" "wallet-unlock-password-file=${fast}/lnd-wallet-password"
      (h.renderedText chainstead.services.chainstead.lnd.configFile)
    )
    (h.expectEqual "Fulcrum's index directly in its datadir" "${fast}/fulcrum"
      chainstead.services.chainstead.fulcrum.settings.datadir
    )
    (h.expectContains "the migration holds LND" "lnd.service" migrationUnit.requiredBy)
  ];

  script = [
    (h.expectContains "the script runs the unit's command for the second run" (builtins.toJSON migration.command)
      script
    )
    (h.expectContains "the script refuses with the CLI of the specialisation"
      "${h.pkgs.chainstead-cli}/bin/chainstead migrate-nix-bitcoin --network regtest"
      script
    )
    (h.expectContains "the script switches to the specialisation" "/specialisation/chainstead/bin/switch-to-configuration test"
      script
    )
  ];
}
