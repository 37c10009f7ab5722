# The chainstead configuration of the VM test checks/secrets.nix, taken from
# the test itself (bitcoind with a password RPC user, LND, ThunderHub, OpenBao
# over TLS by AppRole): it evaluates cleanly, each consumer has its loader, ordered
# before it, required by it and restarted with it, the manifest names every
# credential of the stack and holds no value, and the policy the test writes
# is the one docs/secrets.md shows operators.
{ lib, harness }:
let
  h = harness;

  # The VM test with a stand-in runNixOSTest that returns its arguments.
  vmTest = import ../../secrets.nix {
    pkgs = h.pkgs // {
      testers.runNixOSTest = lib.id;
    };
  };
  node = vmTest.nodes.machine { inherit (h) pkgs; };
  config = h.evalConfig [ { services = { inherit (node.services) chainstead; }; } ];

  manifest = h.renderedJSON config.services.chainstead.secrets.manifest.unchecked;
  secretsOf = service: manifest.services.${service}.secrets;
  units = config.systemd.services;
  consumers = [
    "bitcoind"
    "lnd"
    "thunderhub"
  ];

  loaderChecks =
    service:
    let
      name = "chainstead-secrets-${service}";
      loader = units.${name} or { };
      field = attr: loader.${attr} or [ ];
    in
    [
      (h.expectTrue "${service} has its loader unit ${name}" (units ? ${name})
        "units: ${h.show (builtins.attrNames units)}"
      )
      (h.expectContains "${service}.service requires its loader" "${service}.service" (
        field "requiredBy"
      ))
      (h.expectContains "the loader of ${service} runs before it" "${service}.service" (field "before"))
      (h.expectContains "a restart of ${service} loads its set again" "${service}.service" (
        field "partOf"
      ))
      (h.expectContains "the loader of ${service} loads only that set" "--service ${service}" (
        loader.serviceConfig.ExecStart or ""
      ))
      (h.expectEqual "the loader of ${service} gives up after the deadline plus a margin" 70 (
        loader.serviceConfig.TimeoutStartSec or null
      ))
    ];

  policyLines = builtins.filter (line: line != "" && !lib.hasPrefix "#" line) (
    map lib.trim (lib.splitString "\n" (builtins.readFile ../../fixtures/secrets/policy.hcl))
  );
  docs = builtins.readFile ../../../docs/secrets.md;
in
{
  evaluates = [
    (h.expectNoFailedAssertions "the VM test's stack evaluates cleanly" config)
    (h.expectEqual "OpenBao over TLS by AppRole, with the test's short deadline"
      {
        address = "https://127.0.0.1:8200";
        ca_file = node.services.chainstead.secrets.openbao.caFile;
        tls_server_name = "bao.test";
        auth.approle = {
          role_id_file = "/var/lib/chainstead/bao/role-id";
          secret_id_file = "/var/lib/chainstead/bao/secret-id";
          mount = "approle";
        };
        kv_mount = "secret";
        deadline_secs = 10;
      }
      manifest.openbao
    )
    (h.expectTrue "the CA is the one made when the test is built" (lib.hasSuffix
      "-chainstead-test-openbao-tls/ca.pem"
      manifest.openbao.ca_file
    ) manifest.openbao.ca_file)
  ];

  loaders =
    lib.concatMap loaderChecks consumers
    ++ [
      (h.expectContains "the seed is copied into OpenBao after the wallet is created" "chainstead-lnd-wallet-init.service"
        (units.chainstead-lnd-seed-store.after or [ ])
      )
      (h.expectEqual "LND unlocks its wallet from the loader's file"
        "/run/chainstead/secrets/lnd/wallet-password"
        config.services.chainstead.lnd.settings.wallet-unlock-password-file
      )
      (h.expectContains "bitcoind includes the rpcauth line from tmpfs"
        "includeconf=/run/chainstead/secrets/bitcoind/rpcauth-test-remote.conf\n"
        (h.renderedText config.services.chainstead.bitcoind.configFile)
      )
    ];

  manifest = [
    (h.expectEqual "one set per consumer, nothing else" consumers (
      builtins.attrNames manifest.services
    ))
    (h.expectEqual "each set belongs to its service"
      {
        bitcoind = "bitcoind:bitcoind";
        lnd = "lnd:lnd";
        thunderhub = "thunderhub:thunderhub";
      }
      (lib.mapAttrs (_: s: "${s.owner}:${s.group}") manifest.services)
    )
    (h.expectEqual "bitcoind: the rpcauth line of test-remote, generated when absent"
      {
        path = "chainstead/bitcoind/rpc-test-remote";
        field = "password";
        file = "rpcauth-test-remote.conf";
        transform.rpcauth.user = "test-remote";
        generated = true;
      }
      (
        let
          s = (secretsOf "bitcoind").rpcauth-test-remote;
        in
        {
          inherit (s)
            path
            field
            file
            transform
            ;
          generated = s.generate != null;
        }
      )
    )
    (h.expectEqual "LND: the wallet password, 32 characters when generated"
      {
        path = "chainstead/lnd";
        field = "wallet-password";
        file = "wallet-password";
        transform = "raw";
        length = 32;
      }
      (
        let
          s = (secretsOf "lnd").wallet-password;
        in
        {
          inherit (s)
            path
            field
            file
            transform
            ;
          inherit (s.generate) length;
        }
      )
    )
    (h.expectEqual "ThunderHub: the master password as a thunderhub- bcrypt hash"
      {
        path = "chainstead/thunderhub";
        field = "master-password";
        file = "master-password.bcrypt";
        transform.bcrypt = {
          cost = 12;
          prefix = "thunderhub-";
        };
        generated = true;
      }
      (
        let
          s = (secretsOf "thunderhub").master-password;
        in
        {
          inherit (s)
            path
            field
            file
            transform
            ;
          generated = s.generate != null;
        }
      )
    )
    (h.expectEqual "every file is 0400" [ "0400" ] (
      lib.unique (
        lib.concatMap (s: map (x: x.mode) (builtins.attrValues s.secrets)) (
          builtins.attrValues manifest.services
        )
      )
    ))
    (h.expectNoSecrets "the manifest holds names and paths only" { value = manifest; })
    (h.expectNoSecrets "no secret-looking value anywhere in the configuration" { inherit config; })
  ];

  docs = [
    (h.expectTrue "the policy fixture has rules" (policyLines != [ ]) "no rules in policy.hcl")
    (h.expectEqual "docs/secrets.md shows the policy the VM test writes" [ ] (
      builtins.filter (line: !lib.hasInfix line docs) policyLines
    ))
  ];
}
