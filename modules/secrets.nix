# Secrets for the whole stack, loaded at runtime by chainstead-secrets from
# OpenBao (or generated once locally when no OpenBao is configured) into
# /run/chainstead/secrets/<service>/. Service modules declare what they need
# in `services.chainstead.secrets.services.<service>`; users configure only
# where OpenBao is and how to log in. No value ever enters the Nix store.
#
# One oneshot per consuming service, `chainstead-secrets-<service>.service`,
# ordered before the consumer and required by it: a service whose secrets
# cannot be loaded does not start (fail-closed). It stays active after a
# load and is part of its consumer (PartOf=), so `systemctl restart <consumer>`
# loads that one set again first; with OpenBao unreachable the restart fails
# with the loader's message and the old set is gone.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    mkOption
    mkIf
    types
    literalExpression
    ;
  chainstead = import ./lib.nix { inherit lib; };
  cfg = config.services.chainstead.secrets;

  # "raw", or exactly one tagged transform: { rpcauth.user = ...; } or
  # { bcrypt = { ... }; } (JSON: serde's externally tagged enum).
  transformType = types.either (types.enum [ "raw" ]) (
    types.attrTag {
      rpcauth = mkOption {
        description = "A bitcoind `rpcauth=` line (salted HMAC-SHA256) for this RPC user.";
        type = types.submodule {
          options.user = mkOption {
            type = types.str;
            description = "RPC user name of the rpcauth= line.";
          };
        };
      };
      bcrypt = mkOption {
        description = "A bcrypt hash of the value.";
        type = types.submodule {
          options = {
            cost = mkOption {
              type = types.ints.between 4 31;
              default = 12;
              description = "bcrypt cost.";
            };
            prefix = mkOption {
              type = types.str;
              default = "";
              description = "Text put before the hash (ThunderHub wants `thunderhub-`).";
            };
          };
        };
      };
    }
  );

  secretType = types.submodule (
    { name, ... }:
    {
      options = {
        path = mkOption {
          type = types.str;
          example = "chainstead/bitcoind";
          description = "Path of the secret inside the KV mount (without `data/` for KV v2).";
        };
        field = mkOption {
          type = types.str;
          default = name;
          description = "Field of the secret holding the value.";
        };
        mount = mkOption {
          type = types.nullOr types.str;
          default = null;
          description = "KV mount; {option}`services.chainstead.secrets.openbao.kvMount` when null.";
        };
        file = mkOption {
          type = types.str;
          default = name;
          description = "File name under the service's secrets directory.";
        };
        mode = mkOption {
          type = types.strMatching "0[0-7]{3}";
          default = "0400";
          description = "Mode of the installed file.";
        };
        owner = mkOption {
          type = types.nullOr types.str;
          default = null;
          description = "Owner of the file; the service's owner when null.";
        };
        group = mkOption {
          type = types.nullOr types.str;
          default = null;
          description = "Group of the file; the service's group when null.";
        };
        transform = mkOption {
          type = transformType;
          default = "raw";
          example = literalExpression ''{ rpcauth.user = "lnd"; }'';
          description = ''
            What is installed: the value itself (`raw`), a bitcoind `rpcauth=`
            line derived from it, or a bcrypt hash of it.
          '';
        };
        generate = mkOption {
          type = types.nullOr (
            types.submodule {
              options = {
                length = mkOption {
                  type = types.ints.between 16 256;
                  default = 32;
                  description = "Length of a generated value.";
                };
                alphabet = mkOption {
                  type = types.enum [
                    "alphanumeric"
                    "hex"
                    "base64url"
                  ];
                  default = "alphanumeric";
                  description = "Characters of a generated value.";
                };
              };
            }
          );
          default = null;
          description = ''
            Generate the value when it is missing and store it back: in OpenBao
            (KV v2 only, check-and-set 0, so two hosts racing keep one value) or,
            in local mode, once into {option}`services.chainstead.secrets.stateDir`.
            Without it a missing value fails the load; place it with
            `chainstead-secrets store` (docs/secrets.md).
          '';
        };
      };
    }
  );

  serviceType = types.submodule (
    { name, ... }:
    {
      options = {
        owner = mkOption {
          type = types.str;
          description = "User that owns the service's secret files.";
        };
        group = mkOption {
          type = types.str;
          description = "Group of the service's secret files.";
        };
        unit = mkOption {
          type = types.str;
          default = name;
          description = "systemd service (without `.service`) that consumes the set; it requires the loader.";
        };
        secrets = mkOption {
          type = types.attrsOf secretType;
          default = { };
          description = "The service's secrets.";
        };
      };
    }
  );

  manifest = {
    version = 1;
    openbao =
      if cfg.openbao == null then
        null
      else
        {
          inherit (cfg.openbao) address;
          ca_file = cfg.openbao.caFile;
          tls_server_name = cfg.openbao.tlsServerName;
          auth =
            if cfg.openbao.tokenFile != null then
              { token_file = cfg.openbao.tokenFile; }
            else
              {
                approle = {
                  role_id_file = cfg.openbao.roleIdFile;
                  secret_id_file = cfg.openbao.secretIdFile;
                  mount = cfg.openbao.approleMount;
                };
              };
          kv_mount = cfg.openbao.kvMount;
          deadline_secs = cfg.openbao.deadline;
        };
    state_dir = cfg.stateDir;
    runtime_dir = cfg.runtimeDir;
    services = lib.mapAttrs (_: svc: {
      inherit (svc) owner group;
      secrets = lib.mapAttrs (_: s: {
        inherit (s)
          path
          field
          file
          mode
          transform
          mount
          owner
          group
          generate
          ;
      }) svc.secrets;
    }) cfg.services;
  };

  # The loader runs with ProtectHome=true (the shared baseline).
  hiddenByProtectHome =
    path:
    lib.any (dir: path == dir || lib.hasPrefix "${dir}/" path) [
      "/root"
      "/home"
      "/run/user"
    ];

  # The build fails, not the boot, when a manifest is invalid.
  checked =
    name: value:
    chainstead.checkedManifest {
      inherit pkgs name value;
      inherit (cfg) package;
    };

  # The whole stack's manifest, for `store` and the operator's `check`.
  checkedManifest = checked "chainstead-secrets" manifest;
  # One per loader unit, holding only its service: a change to one
  # service's secrets changes (and restarts on switch) only that loader.
  serviceManifests = lib.mapAttrs (
    service: _: checked "chainstead-secrets-${service}" (manifest // { services = { ${service} = manifest.services.${service}; }; })
  ) cfg.services;
in
{
  options.services.chainstead.secrets = {
    package = chainstead.toolPackageOption pkgs "chainstead-secrets" ../pkgs/chainstead-tools/secrets.nix;

    openbao = mkOption {
      default = null;
      description = ''
        Where the secrets come from. `null` is local mode: each secret is
        generated once into {option}`stateDir` (root-only) and installed from
        there, so the stack works without OpenBao.
      '';
      type = types.nullOr (
        types.submodule {
          options = {
            address = mkOption {
              type = types.str;
              example = "https://bao.home.arpa:8200";
              description = "OpenBao address (what `BAO_ADDR` would hold).";
            };
            caFile = mkOption {
              type = types.nullOr types.str;
              default = null;
              description = "CA certificate (PEM) that signed OpenBao's TLS certificate, when not in the system store.";
            };
            tlsServerName = mkOption {
              type = types.nullOr types.str;
              default = null;
              description = "Name to verify OpenBao's certificate against, when it differs from the address.";
            };
            roleIdFile = chainstead.mkSecretFileOption "File holding the AppRole role_id, placed on the host out of band.";
            secretIdFile = chainstead.mkSecretFileOption "File holding the AppRole secret_id, placed on the host out of band.";
            approleMount = mkOption {
              type = types.str;
              default = "approle";
              description = "Mount path of the AppRole auth method.";
            };
            tokenFile = chainstead.mkSecretFileOption "File holding an OpenBao token, instead of AppRole.";
            kvMount = mkOption {
              type = types.str;
              default = "secret";
              description = "KV mount holding chainstead's secrets (v1 or v2, detected at runtime).";
            };
            deadline = mkOption {
              type = types.ints.positive;
              default = 120;
              description = ''
                Seconds to keep retrying while OpenBao is unreachable, sealed or
                in standby before the loader fails and the consumer stays down.
              '';
            };
          };
        }
      );
    };

    stateDir = mkOption {
      type = types.str;
      default = "/var/lib/chainstead/secrets";
      readOnly = true;
      description = "Where local mode keeps the generated values (root-only; the loader's StateDirectory).";
    };

    runtimeDir = mkOption {
      type = types.str;
      default = "/run/chainstead/secrets";
      readOnly = true;
      description = "tmpfs directory holding one subdirectory of secret files per service.";
    };

    services = mkOption {
      type = types.attrsOf serviceType;
      default = { };
      description = "Secrets per consuming service; declared by the chainstead service modules.";
    };

    manifest = mkOption {
      type = types.package;
      readOnly = true;
      default = checkedManifest;
      defaultText = literalExpression "the validated JSON manifest";
      description = ''
        The manifest of every service's secrets (paths and names, never a
        value), also installed as /etc/chainstead/secrets.json for
        `chainstead-secrets check` and `store`.
      '';
    };

    serviceManifests = mkOption {
      type = types.attrsOf types.package;
      readOnly = true;
      default = serviceManifests;
      defaultText = literalExpression "one validated manifest per service";
      description = "The manifest each `chainstead-secrets-<service>` unit loads: that service's secrets only.";
    };
  };

  config = mkIf (cfg.services != { }) {
    assertions = lib.optionals (cfg.openbao != null) [
      {
        assertion =
          cfg.openbao.tokenFile != null
          || (cfg.openbao.roleIdFile != null && cfg.openbao.secretIdFile != null);
        message = ''
          services.chainstead.secrets.openbao needs a way to log in: set roleIdFile and
          secretIdFile (AppRole, recommended) or tokenFile. See docs/secrets.md.
        '';
      }
      {
        assertion = !(cfg.openbao.tokenFile != null && cfg.openbao.roleIdFile != null);
        message = "services.chainstead.secrets.openbao: set either tokenFile or roleIdFile/secretIdFile, not both.";
      }
    ]
    ++ map (opt: {
      assertion = cfg.openbao.${opt} == null || !(hiddenByProtectHome cfg.openbao.${opt});
      message = ''
        services.chainstead.secrets.openbao.${opt} = "${toString cfg.openbao.${opt}}" is under /root or
        /home, which the loader unit cannot see (ProtectHome=). Place it elsewhere,
        e.g. under /var/lib/chainstead/bao/ (docs/secrets.md).
      '';
    }) (lib.optionals (cfg.openbao != null) [
      "roleIdFile"
      "secretIdFile"
      "tokenFile"
      "caFile"
    ]);

    system.build.chainstead-secrets-manifest = checkedManifest;

    services.chainstead.storage.reservedPaths = [ cfg.stateDir ];

    # For the operator: `chainstead-secrets check --manifest /etc/chainstead/secrets.json`.
    environment = {
      etc."chainstead/secrets.json".source = checkedManifest;
      systemPackages = [ cfg.package ];
    };

    # Settings, not rules: other modules declare /run/chainstead the same way
    # and identical definitions merge instead of duplicating a line.
    systemd.tmpfiles.settings."10-chainstead" = {
      "/run/chainstead".d = {
        mode = "0755";
        user = "root";
        group = "root";
      };
      # Traversable, not listable: which services have secrets is nobody's business.
      ${cfg.runtimeDir}.d = {
        mode = "0711";
        user = "root";
        group = "root";
      };
    };

    systemd.services = lib.mapAttrs' (
      service: svc:
      lib.nameValuePair "chainstead-secrets-${service}" {
        description = "Load the secrets of ${svc.unit}.service";
        requiredBy = [ "${svc.unit}.service" ];
        before = [ "${svc.unit}.service" ];
        # A (manual) restart of the consumer restarts the loader first.
        partOf = [ "${svc.unit}.service" ];
        wants = lib.optional (cfg.openbao != null) "network-online.target";
        after = lib.optional (cfg.openbao != null) "network-online.target";

        serviceConfig = chainstead.hardening // {
          # exec
          Type = "oneshot";
          RemainAfterExit = true;
          # The loader gives up by itself after `deadline`; this only catches a hang.
          TimeoutStartSec = if cfg.openbao == null then 60 else cfg.openbao.deadline + 60;
          ExecStart = lib.escapeShellArgs [
            (lib.getExe cfg.package)
            "load"
            "--manifest"
            serviceManifests.${service}
            "--service"
            service
          ];

          # identity and paths: root, to give each file its owner
          StateDirectory = "chainstead/secrets";
          StateDirectoryMode = "0700";
          ReadWritePaths = [ cfg.runtimeDir ];
          UMask = "0077";

          # exceptions to the baseline
          CapabilityBoundingSet = [
            "CAP_CHOWN" # files belong to the consuming service
            "CAP_DAC_READ_SEARCH" # role_id/secret_id files may be root-only in other dirs
          ];
          SystemCallFilter = [
            "@system-service"
            "~@privileged"
            "@chown" # fchown, which ~@privileged removes (systemd's seccomp-util.c)
            "~@resources" # it never changes limits, priorities or memory policy
          ];
        }
        # Local mode generates secrets here and talks to no server at all.
        // lib.optionalAttrs (cfg.openbao == null) {
          PrivateNetwork = true;
          IPAddressDeny = "any";
          RestrictAddressFamilies = [ "AF_UNIX" ];
        };
      }
    ) cfg.services;
  };
}
