# The bitcoind client type (modules/bitcoind-client.nix) Fulcrum and LND
# share, and the one bitcoind gate the sync-gate module declares from it:
# defined once whichever consumers are enabled, refused when they disagree.
{ lib, harness }:
let
  h = harness;
  inherit (h) tiers;
  stack =
    chainstead:
    h.eval [
      {
        services.chainstead = {
          storage = tiers;
          bitcoind.enable = true;
        }
        // chainstead;
      }
    ];
  node = chainstead: (stack chainstead).config;

  both = stack {
    fulcrum.enable = true;
    lnd.enable = true;
  };
  fulcrumOnly = node { fulcrum.enable = true; };
  lndOnly = node { lnd.enable = true; };

  # The files that define services.chainstead.syncGate.gates.bitcoind.
  bitcoindGateFiles =
    eval:
    map (d: baseNameOf d.file) (
      lib.filter (d: d.value ? bitcoind) eval.options.services.chainstead.syncGate.gates.definitionsWithLocations
    );
  gate = config: config.services.chainstead.syncGate.gates.bitcoind;

  remote = {
    host = "10.0.0.2";
    cookieFile = null;
    user = "electrum";
    passwordFile = "/run/keys/rpc-electrum";
  };
in
{
  one-gate = [
    (h.expectEqual "the bitcoind gate is defined once, by the sync-gate module" [ "sync-gate.nix" ]
      (bitcoindGateFiles both)
    )
    (h.expectEqual "Fulcrum alone gets the same gate as with LND" (gate both.config).backend (gate fulcrumOnly).backend)
    (h.expectEqual "LND alone gets the same gate as with Fulcrum" (gate both.config).backend (gate lndOnly).backend)
    (h.expectEqual "both consumers register their client" [
      "fulcrum"
      "lnd"
    ] (lib.attrNames both.config.services.chainstead.syncGate.bitcoindClients))
    (h.expectEqual "a remote password client gives the gate its own credential" {
      rpc-password = "/run/keys/rpc-electrum";
    } (gate (node { fulcrum = { enable = true; bitcoind = remote; }; })).credentials)
    (h.expectEqual "no credential and the cookie group with the local cookie" {
      credentials = { };
      supplementaryGroups = [ "bitcoin-rpc" ];
    } { inherit (gate lndOnly) credentials supplementaryGroups; })
  ];

  client-type = [
    (h.expectTrue "the local cookie: no password" (
      lndOnly.services.chainstead.lnd.bitcoind.usesLocalCookie && !lndOnly.services.chainstead.lnd.bitcoind.usesPassword
    ) "")
    (h.expectEqual "LND's client runs on LND's network" "regtest"
      (node {
        bitcoind = {
          enable = true;
          network = "regtest";
        };
        lnd.enable = true;
      }).services.chainstead.lnd.bitcoind.network
    )
    (h.expectEqual "the password file as each unit reads it" "/run/keys/rpc-electrum"
      ((node { fulcrum = { enable = true; bitcoind = remote; }; }).services.chainstead.fulcrum.bitcoind.passwordFileFor "fulcrum")
    )
    (h.expectEqual "no loader sets without OpenBao" { }
      ((node { fulcrum = { enable = true; bitcoind = remote; }; }).services.chainstead.fulcrum.bitcoind.secretsFor {
        fulcrum = {
          unit = "fulcrum";
          owner = "fulcrum";
        };
      })
    )
  ];

  disagreeing-consumers = [
    (h.expectAssertion "the same bitcoind with another credential is refused" (node {
      fulcrum = {
        enable = true;
        bitcoind = remote // {
          host = "127.0.0.1";
        };
      };
      lnd.enable = true;
    }) "both start from the one bitcoind sync gate")
    (h.expectAssertion "another network is refused" (node {
      bitcoind = {
        enable = true;
        network = "regtest";
      };
      fulcrum = {
        enable = true;
        bitcoind.network = "signet";
      };
      lnd.enable = true;
    }) "both start from the one bitcoind sync gate")
    (h.expectAssertion "the message names both options" (node {
      fulcrum = {
        enable = true;
        bitcoind = remote;
      };
      lnd.enable = true;
    }) "services.chainstead.fulcrum.bitcoind and services.chainstead.lnd.bitcoind")
    (h.expectNoFailedAssertions "Fulcrum and LND on the same remote bitcoind are accepted" (node {
      fulcrum = {
        enable = true;
        bitcoind = remote // {
          network = "mainnet";
        };
      };
      lnd = {
        enable = true;
        network = "mainnet";
        bitcoind = remote // {
          zmqRawBlock = "tcp://10.0.0.2:28332";
          zmqRawTx = "tcp://10.0.0.2:28333";
        };
      };
    }))
  ];
}
