# The bitcoind RPC client of a consumer (Fulcrum, LND) as one option type:
# where bitcoind is (the local one by default), which credential to use, and,
# in read-only options the consumer reads, what follows from that: cookie or
# password, the file each unit reads the password from, the secret-loader
# sets that fetch it from OpenBao, the assertions and the sync gate's backend.
# Not a NixOS module: `import ./bitcoind-client.nix { inherit lib; }` gives a
# function from the consumer's context to the submodule type.
{ lib }:
let
  inherit (lib) types mkOption literalExpression;
  chainstead = import ./lib.nix { inherit lib; };
  inherit (chainstead) connectHost hostPort bitcoinNetworks;
in
{
  # `bitcoind` and `secrets` are config.services.chainstead.{bitcoind,secrets};
  # `option` is where the client is declared (for messages), `consumer` the
  # program, `runtimeDir` where it assembles a config holding the password;
  # `network` is merged into the `network` option (its default, say).
  bitcoind,
  secrets,
  option,
  consumer,
  runtimeDir,
  network,
  extraModules ? [ ],
}:
types.submodule (
  [
    (
      { config, ... }:
      let
        usesPassword = config.passwordFile != null || config.passwordSecret != null;
        # The RPC password as the unit with secret-loader set `set` reads it.
        passwordFileFor =
          set:
          if config.passwordSecret != null then
            "${secrets.runtimeDir}/${set}/bitcoind-rpc-password"
          else
            config.passwordFile;
        backendFor =
          gate:
          {
            kind = "bitcoind";
            rpc_url = "http://${hostPort config.host config.port}";
            chain = bitcoinNetworks.${config.network}.section;
          }
          // (
            if usesPassword then
              {
                rpc_user = config.user;
                rpc_password_file = "/run/credentials/chainstead-sync-gate-${gate}.service/rpc-password";
              }
            else
              { cookie_file = config.cookieFile; }
          );
        readOnly =
          type: description: value:
          mkOption {
            inherit type;
            readOnly = true;
            internal = true;
            default = value;
            inherit description;
          };
      in
      {
        imports = [
          # The name before passwordSecret: a KV path, its field `password`.
          (lib.mkChangedOptionModule [ "passwordSecretPath" ] [ "passwordSecret" ] (
            c:
            if c.passwordSecretPath == null then
              null
            else
              {
                path = c.passwordSecretPath;
                field = "password";
              }
          ))
        ];

        options = {
          host = mkOption {
            type = types.str;
            default = connectHost bitcoind.rpc.address;
            defaultText = literalExpression "the local bitcoind's RPC address";
            description = "Host of bitcoind's RPC server; another host works too (reach it over a tunnel).";
          };
          port = mkOption {
            type = types.port;
            default = bitcoind.rpc.port;
            defaultText = literalExpression "config.services.chainstead.bitcoind.rpc.port";
            description = "Port of bitcoind's RPC server.";
          };
          network = mkOption (
            {
              type = types.enum (lib.attrNames bitcoinNetworks);
              description = "Network of that bitcoind; the sync gate refuses a node on another chain.";
            }
            // network
          );
          cookieFile = mkOption {
            type = types.nullOr chainstead.secretFileType;
            default = if bitcoind.enable then bitcoind.rpc.cookieFile else null;
            defaultText = literalExpression "the local bitcoind's cookie, when it is enabled";
            description = ''
              bitcoind's RPC cookie. The local bitcoind's cookie is readable through
              the `bitcoin-rpc` group, which ${consumer} joins.
            '';
          };
          user = mkOption {
            type = types.nullOr types.str;
            default = null;
            description = "RPC user for a bitcoind without cookie access (with {option}`passwordFile` or {option}`passwordSecret`).";
          };
          passwordFile = chainstead.mkSecretFileOption ''
            File holding the RPC password of {option}`user`. Read at start into a
            config under ${runtimeDir}, never into the Nix store or the command line.
          '';
          passwordSecret = mkOption {
            type = types.nullOr (
              chainstead.kvSecretType {
                what = "the RPC password";
                field = "password";
              }
            );
            default = null;
            example = {
              path = "chainstead/bitcoind/rpc-electrum";
              field = "password";
            };
            description = ''
              Instead of {option}`passwordFile`: where {option}`user`'s password is
              in OpenBao, the secret the bitcoind host's
              `services.chainstead.bitcoind.rpc.users.<user>.passwordSecret` names.
              The secret loader fetches it before each start of ${consumer} and of
              its sync gates; needs {option}`services.chainstead.secrets.openbao`.
            '';
          };

          warnings = chainstead.renameWarningsOption;

          usesPassword =
            readOnly types.bool "Whether the client authenticates with user and password (else with the cookie)."
              usesPassword;
          usesLocalCookie =
            readOnly types.bool "Whether the client reads the local bitcoind's cookie (and its unit joins its group)."
              (config.cookieFile != null && config.cookieFile == bitcoind.rpc.cookieFile);
          passwordFileFor = readOnly (types.functionTo (types.nullOr types.str)) ''
            Function from a secret-loader set name to the file a unit with that
            set reads the RPC password from: {option}`passwordFile`, or what the
            loader installs from {option}`passwordSecret`.
          '' passwordFileFor;

          secretsFor = readOnly (types.functionTo types.raw) ''
            Function from { <set> = { unit; owner; }; } to the loader sets for
            services.chainstead.secrets.services: one per unit that reads the
            password, as each unit requires its own loader (a shared one would
            stop every consumer with any of them). Empty without OpenBao.
          '' (
            units:
            lib.optionalAttrs (config.passwordSecret != null) (
              lib.mapAttrs (_: u: {
                inherit (u) unit owner;
                group = u.owner;
                secrets.bitcoind-rpc-password = { inherit (config.passwordSecret) path field; };
              }) units
            )
          );

          backendFor = readOnly (types.functionTo types.raw) ''
            Function from a gate name to a sync-gate manifest's description of
            this bitcoind, reading the password from that gate's credential.
          '' backendFor;

          gateFor = readOnly (types.functionTo types.raw) ''
            Function from a gate name to the gate's backend, groups and
            credentials (services.chainstead.syncGate.gates.<name>).
          '' (gate: {
            backend = backendFor gate;
            supplementaryGroups = lib.optional config.usesLocalCookie bitcoind.rpc.group;
            credentials = lib.optionalAttrs usesPassword { rpc-password = passwordFileFor "sync-gate-${gate}"; };
          });

          option = readOnly types.str "Where the client is declared, for messages." option;

          connection = readOnly types.raw "What must agree between clients of the one bitcoind gate." {
            inherit (config)
              host
              port
              network
              cookieFile
              user
              passwordFile
              passwordSecret
              ;
          };

          assertions = readOnly (types.listOf types.raw) "The credential's checks, for the consumer's assertions." [
            {
              assertion = (config.cookieFile != null) != usesPassword;
              message = ''
                ${option} needs exactly one credential: cookieFile, or user together with
                passwordFile or passwordSecret (${consumer} refuses both at once).
                cookieFile defaults to the local bitcoind's cookie: set it to null to use
                a password.
              '';
            }
            {
              assertion = (config.user != null) == usesPassword;
              message = ''
                ${option}.user goes together with passwordFile or passwordSecret
                (the RPC user and its password are set both or neither).
              '';
            }
            {
              assertion = config.passwordFile == null || config.passwordSecret == null;
              message = "${option}: set passwordFile or passwordSecret, not both.";
            }
            {
              assertion = config.passwordSecret == null || secrets.openbao != null;
              message = ''
                ${option}.passwordSecret needs OpenBao (services.chainstead.secrets.openbao):
                the password is the one the bitcoind host stored there. Without OpenBao,
                place it in a file and set ${option}.passwordFile.
              '';
            }
          ];
        };
      }
    )
  ]
  ++ extraModules
)
