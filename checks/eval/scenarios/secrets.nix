# The secrets module: the manifest rendered from service declarations, the
# per-service loader units and their ordering, OpenBao login assertions.
{ lib, harness }:
let
  h = harness;

  declared = {
    services.chainstead.secrets.services.demo = {
      owner = "demo";
      group = "demo";
      secrets = {
        rpc-password = {
          path = "chainstead/bitcoind";
          generate = { };
        };
        rpcauth = {
          path = "chainstead/bitcoind";
          field = "rpc-password";
          file = "rpcauth.conf";
          transform.rpcauth.user = "demo";
        };
        ui-hash = {
          path = "chainstead/ui";
          field = "password";
          transform.bcrypt.prefix = "thunderhub-";
          mode = "0440";
        };
      };
    };
  };
  openbao = {
    services.chainstead.secrets.openbao = {
      address = "https://bao.example:8200";
      roleIdFile = "/var/lib/chainstead-bootstrap/role-id";
      secretIdFile = "/var/lib/chainstead-bootstrap/secret-id";
    };
  };

  local = h.evalConfig [ declared ];
  remote = h.evalConfig [
    declared
    openbao
  ];
  manifestOf = config: h.renderedJSON config.services.chainstead.secrets.manifest.unchecked;
  loader = config: config.systemd.services.chainstead-secrets-demo;
in
{
  manifest = [
    (h.expectNoFailedAssertions "local mode evaluates cleanly" local)
    (h.expectEqual "no OpenBao means local mode" null (manifestOf local).openbao)
    (h.expectEqual "secrets land in the tmpfs runtime dir" "/run/chainstead/secrets" (manifestOf local).runtime_dir)
    (h.expectEqual "a raw, generated secret" {
      path = "chainstead/bitcoind";
      field = "rpc-password";
      file = "rpc-password";
      mode = "0400";
      transform = "raw";
      mount = null;
      owner = null;
      group = null;
      generate = {
        length = 32;
        alphabet = "alphanumeric";
      };
    } (manifestOf local).services.demo.secrets.rpc-password)
    (h.expectEqual "the rpcauth transform as the loader reads it" {
      rpcauth.user = "demo";
    } (manifestOf local).services.demo.secrets.rpcauth.transform)
    (h.expectEqual "the bcrypt transform with its prefix and default cost" {
      bcrypt = {
        cost = 12;
        prefix = "thunderhub-";
      };
    } (manifestOf local).services.demo.secrets.ui-hash.transform)
    (h.expectEqual "AppRole login from files" {
      approle = {
        role_id_file = "/var/lib/chainstead-bootstrap/role-id";
        secret_id_file = "/var/lib/chainstead-bootstrap/secret-id";
        mount = "approle";
      };
    } (manifestOf remote).openbao.auth)
    (h.expectContains "the manifest is validated at build time" "validate --manifest"
      remote.services.chainstead.secrets.manifest.buildCommand
    )
    (h.expectNoSecrets "the manifest holds names and paths only" { value = manifestOf remote; })
  ];

  units = [
    (h.expectEqual "the loader is a oneshot that stays active" {
      Type = "oneshot";
      RemainAfterExit = true;
    } { inherit ((loader local).serviceConfig) Type RemainAfterExit; })
    (h.expectContains "the consumer requires its loader" "demo.service" (loader local).requiredBy)
    (h.expectContains "the loader runs before the consumer" "demo.service" (loader local).before)
    (h.expectContains "the loader loads only its service's set" "--service demo"
      (loader local).serviceConfig.ExecStart
    )
    (h.expectEqual "local mode does not wait for the network" [ ] (loader local).after)
    (h.expectContains "with OpenBao the loader waits for the network" "network-online.target" (loader remote).after)
    (h.expectEqual "generated values are kept root-only" "0700" (loader local).serviceConfig.StateDirectoryMode)
    (h.expectEqual "local mode has no network at all" {
      PrivateNetwork = true;
      IPAddressDeny = "any";
      RestrictAddressFamilies = [ "AF_UNIX" ];
    } { inherit ((loader local).serviceConfig) PrivateNetwork IPAddressDeny RestrictAddressFamilies; })
    (h.expectEqual "with OpenBao the loader keeps its network" false (
      (loader remote).serviceConfig ? PrivateNetwork
    ))
    (h.expectContains "the loader never changes limits or priorities" "~@resources"
      (loader remote).serviceConfig.SystemCallFilter
    )
  ];

  per-service-manifests =
    let
      two = h.evalConfig [
        declared
        {
          services.chainstead.secrets.services.other = {
            owner = "other";
            group = "other";
            secrets.token.path = "chainstead/other";
          };
        }
      ];
      serviceManifest = config: name: h.renderedJSON config.services.chainstead.secrets.serviceManifests.${name}.unchecked;
    in
    [
      (h.expectEqual "each loader's manifest holds its own service only" [ "demo" ] (
        lib.attrNames (serviceManifest two "demo").services
      ))
      (h.expectContains "each loader loads its own manifest"
        "--manifest ${two.services.chainstead.secrets.serviceManifests.other}"
        two.systemd.services.chainstead-secrets-other.serviceConfig.ExecStart
      )
      (h.expectEqual "a second service leaves the first loader's unit untouched (no restart on switch)"
        (loader local).serviceConfig.ExecStart
        (loader two).serviceConfig.ExecStart
      )
      (h.expectEqual "the whole-stack manifest is installed for the operator's check"
        two.services.chainstead.secrets.manifest
        two.environment.etc."chainstead/secrets.json".source
      )
      (h.expectContains "the runtime directory is traversable, not listable" {
        type = "d";
        path = "/run/chainstead/secrets";
        mode = "0711";
        user = "root";
        group = "root";
        age = "-";
        argument = "";
      } (h.tmpfilesEntries local))
    ];

  login = [
    (h.expectAssertion "OpenBao without credentials is refused" (h.evalConfig [
      declared
      { services.chainstead.secrets.openbao.address = "https://bao.example:8200"; }
    ]) "needs a way to log in")
    (h.expectEvalError {
      name = "a credential file inside the Nix store is refused";
      modules = [
        declared
        {
          services.chainstead.secrets.openbao = {
            address = "https://bao.example:8200";
            tokenFile = "/nix/store/0000000000000000000000000000000-token";
          };
        }
      ];
      message = "is not of type";
    })
    (h.expectEqual "nothing declared, nothing loaded" { } (h.evalConfig [ ]).systemd.services)
  ];
}
