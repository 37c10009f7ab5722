# Renamed options and units: the old names still evaluate to the same
# configuration as the new ones, and each use of an old name warns, naming
# the option (or unit) and its replacement; the new names warn of nothing.
{ lib, harness }:
let
  h = harness;
  inherit (h) tiers;
  openbao = {
    address = "https://bao.lan:8200";
    tokenFile = "/var/lib/chainstead/bao/token";
  };
  node =
    chainstead: extra:
    h.evalConfig [
      {
        services.chainstead = {
          storage = tiers;
          secrets = { inherit openbao; };
        }
        // chainstead;
      }
      extra
    ];

  # Fulcrum and LND on a remote bitcoind, the password from OpenBao.
  remote = credential: {
    fulcrum = {
      enable = true;
      bitcoind = {
        host = "10.0.0.2";
        network = "mainnet";
        user = "electrum";
      }
      // credential;
    };
    lnd = {
      enable = true;
      network = "mainnet";
      bitcoind = {
        host = "10.0.0.2";
        user = "electrum";
        zmqRawBlock = "tcp://10.0.0.2:28332";
        zmqRawTx = "tcp://10.0.0.2:28333";
      }
      // credential;
    };
  };
  oldClient = node (remote { passwordSecretPath = "chainstead/bitcoind/rpc-electrum"; }) { };
  newClient = node (remote { passwordSecret.path = "chainstead/bitcoind/rpc-electrum"; }) { };

  rpcUser =
    user:
    node {
      bitcoind = {
        enable = true;
        rpc.users.remote = user;
      };
    } { };
  oldUser = rpcUser { secretPath = "kv/elsewhere/rpc-remote"; };
  newUser = rpcUser { passwordSecret.path = "kv/elsewhere/rpc-remote"; };

  loaderManifest = config: h.renderedJSON config.services.chainstead.secrets.manifest.unchecked;
  warningsAbout = needle: config: lib.filter (lib.hasInfix needle) config.warnings;

  lndWith = extra: node { lnd.enable = true; bitcoind.enable = true; } extra;
in
{
  bitcoind-client-password-secret = [
    (h.expectNoFailedAssertions "the old passwordSecretPath still evaluates cleanly" oldClient)
    (h.expectEqual "passwordSecretPath becomes passwordSecret with field password" {
      path = "chainstead/bitcoind/rpc-electrum";
      field = "password";
    } oldClient.services.chainstead.fulcrum.bitcoind.passwordSecret)
    (h.expectEqual "the old and the new name give the same loader manifest" (loaderManifest newClient) (
      loaderManifest oldClient
    ))
    (h.expectEqual "the old and the new name give the same gate credential"
      newClient.systemd.services.chainstead-sync-gate-bitcoind.serviceConfig.LoadCredential
      oldClient.systemd.services.chainstead-sync-gate-bitcoind.serviceConfig.LoadCredential
    )
    (h.expectEqual "Fulcrum's old name warns once, naming the option and its replacement" 1 (
      lib.length (
        lib.filter (
          w:
          lib.hasInfix "services.chainstead.fulcrum.bitcoind" w
          && lib.hasInfix "passwordSecretPath" w
          && lib.hasInfix "passwordSecret'" w
        ) oldClient.warnings
      )
    ))
    (h.expectEqual "LND's old name warns once" 1 (
      lib.length (warningsAbout "services.chainstead.lnd.bitcoind: The option `passwordSecretPath'" oldClient)
    ))
    (h.expectEqual "the new name warns of nothing" [ ] newClient.warnings)
  ];

  bitcoind-rpc-user-secret = [
    (h.expectNoFailedAssertions "the old secretPath still evaluates cleanly" oldUser)
    (h.expectEqual "secretPath becomes passwordSecret with field password" {
      path = "kv/elsewhere/rpc-remote";
      field = "password";
    } oldUser.services.chainstead.bitcoind.rpc.users.remote.passwordSecret)
    (h.expectEqual "the loader fetches the same secret with the old and the new name"
      (loaderManifest newUser).services.bitcoind.secrets.rpcauth-remote
      (loaderManifest oldUser).services.bitcoind.secrets.rpcauth-remote
    )
    (h.expectEqual "the old name warns once, naming the user's option" 1 (
      lib.length (warningsAbout "services.chainstead.bitcoind.rpc.users.remote: The option `secretPath'" oldUser)
    ))
    (h.expectEqual "the new name warns of nothing" [ ] newUser.warnings)
    (h.expectEqual "the default secret is the user's own path, field password" {
      path = "chainstead/bitcoind/rpc-remote";
      field = "password";
    } (rpcUser { }).services.chainstead.bitcoind.rpc.users.remote.passwordSecret)
  ];

  kv-secret-options = [
    (h.expectEqual "the wallet password secret keeps its defaults" {
      path = "chainstead/lnd";
      field = "wallet-password";
    } (lndWith { }).services.chainstead.lnd.walletPasswordSecret)
    (h.expectEqual "a changed field reaches the loader" "pw"
      (loaderManifest (lndWith { services.chainstead.lnd.walletPasswordSecret.field = "pw"; }))
      .services.lnd.secrets.wallet-password.field
    )
    (h.expectEqual "the seed secret carries its enable beside path and field" {
      enable = true;
      path = "chainstead/lnd";
      field = "seed";
    } (lndWith { }).services.chainstead.lnd.seedSecret)
  ];

  renamed-units = [
    (h.expectTrue "the wallet-init and seed-store units carry the chainstead- prefix" (
      let
        units = (lndWith { }).systemd.services;
      in
      units ? chainstead-lnd-wallet-init
      && units ? chainstead-lnd-seed-store
      && !(units ? lnd-wallet-init)
      && !(units ? lnd-seed-store)
    ) "")
    (h.expectEqual "a setting on the old unit name warns where it goes now" 1 (
      lib.length (
        warningsAbout "systemd.services.chainstead-lnd-wallet-init" (lndWith {
          systemd.services.lnd-wallet-init.serviceConfig.Nice = 5;
        })
      )
    ))
    (h.expectEqual "no such warning otherwise" [ ] (warningsAbout "is now" (lndWith { })))
  ];
}
