# Helpers shared by the chainstead modules: the hardening baseline every unit
# starts from, option fragments several modules use, and small renderers.
# Pure `lib` only, so the module evaluation tests can run it without nixpkgs.
{ lib }:
let
  inherit (lib) types mkOption;
in
rec {
  # systemd's strict profile, shared by every chainstead unit. Modules add to
  # it and relax single entries with a comment that says why. Each unit's
  # `systemd-analyze security` score is held to a committed limit by
  # checks/hardening; docs/hardening.md says what every unit leaves out.
  hardening = {
    ProtectSystem = "strict";
    ProtectHome = true;
    PrivateTmp = true;
    PrivateDevices = true;
    PrivateMounts = true;
    NoNewPrivileges = true;
    CapabilityBoundingSet = [ "" ];
    AmbientCapabilities = [ "" ];
    ProtectClock = true;
    ProtectControlGroups = true;
    ProtectHostname = true;
    ProtectKernelLogs = true;
    ProtectKernelModules = true;
    ProtectKernelTunables = true;
    ProtectProc = "invisible";
    ProcSubset = "pid";
    RestrictAddressFamilies = [
      "AF_UNIX"
      "AF_INET"
      "AF_INET6"
    ];
    RestrictNamespaces = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    LockPersonality = true;
    MemoryDenyWriteExecute = true;
    SystemCallArchitectures = "native";
    SystemCallFilter = [
      "@system-service"
      "~@privileged"
    ];
    SystemCallErrorNumber = "EPERM";
    UMask = "0027";
    RemoveIPC = true;
    DevicePolicy = "closed";
    KeyringMode = "private";
  };

  # Where each chain's default ports live; used for defaults and firewall rules.
  bitcoinNetworks = {
    mainnet = {
      section = "main";
      rpcPort = 8332;
      p2pPort = 8333;
    };
    testnet4 = {
      section = "testnet4";
      rpcPort = 48332;
      p2pPort = 48333;
    };
    signet = {
      section = "signet";
      rpcPort = 38332;
      p2pPort = 38333;
    };
    regtest = {
      section = "regtest";
      rpcPort = 18443;
      p2pPort = 18444;
    };
  };

  # A path to a file holding a secret. A string, not a Nix path, so that a
  # relative `./secret` is refused instead of being copied into the store.
  secretFileType = types.addCheck types.str (
    p: lib.hasPrefix "/" p && !lib.hasPrefix "${builtins.storeDir}/" p
  ) // {
    description = "absolute path to a file outside the Nix store";
  };

  mkSecretFileOption =
    description:
    mkOption {
      type = types.nullOr secretFileType;
      default = null;
      inherit description;
    };

  # Value types accepted in freeform key=value settings (bitcoin.conf,
  # fulcrum.conf, lnd.conf, monerod's config file).
  settingsValueType =
    let
      atom = types.oneOf [
        types.bool
        types.int
        types.str
      ];
    in
    types.oneOf [
      atom
      (types.listOf atom)
    ];

  # Renders one value in key=value files: booleans as 1/0 (bitcoind, monerod).
  mkValueString01 =
    v:
    if lib.isBool v then
      (if v then "1" else "0")
    else
      toString v;

  # Renders attrs as key=value lines, lists as repeated keys, nulls dropped,
  # keys sorted (stable output, stable store paths).
  toKeyValueLines =
    {
      mkValueString ? mkValueString01,
    }:
    attrs:
    lib.generators.toKeyValue {
      listsAsDuplicateKeys = true;
      mkKeyValue = k: v: "${k}=${mkValueString v}";
    } (lib.filterAttrs (_: v: v != null) attrs);

  # Names that mark a secret value; settings holding them are refused.
  secretLookingKeys = [
    "rpcpassword"
    "rpc-login"
    "rpcauth"
    "password"
    "wallet-unlock-password"
  ];

  # Assertion that no secret-looking key is set in a settings attrset.
  noSecretSettings = optionPath: settings: {
    assertion = lib.all (k: !(settings ? ${k})) secretLookingKeys;
    message = ''
      ${optionPath} sets ${
        lib.concatStringsSep ", " (lib.filter (k: settings ? ${k}) secretLookingKeys)
      }, which would put a secret into the world-readable Nix store.
      Remove it; chainstead loads credentials at runtime (see docs/secrets.md).
    '';
  };

  # The package of a chainstead tool: from the overlay when it is applied,
  # built from this repository otherwise, so the modules work without it.
  toolPackageOption =
    pkgs: attr: file:
    mkOption {
      type = types.package;
      default = pkgs.${attr} or (pkgs.callPackage file { });
      defaultText = lib.literalExpression "pkgs.${attr}";
      description = "The ${attr} package to use.";
    };

  # A tool's manifest: `value` as JSON, checked by `<package> validate` when
  # the system is built, so a bad configuration fails the build, not the
  # boot. The file before the check is `manifest` (also `passthru.unchecked`).
  checkedManifest =
    {
      pkgs,
      package,
      name,
      value,
    }:
    let
      unchecked = pkgs.writeText "${name}.json" (builtins.toJSON value);
    in
    pkgs.runCommand "${name}-manifest.json"
      {
        manifest = unchecked;
        passthru = { inherit unchecked; };
      }
      ''
        ${lib.getExe package} validate --manifest "$manifest"
        cp "$manifest" "$out"
      '';

  # Where a client on this host reaches a server bound to `address`.
  connectHost =
    address:
    if address == "0.0.0.0" then
      "127.0.0.1"
    else if address == "::" then
      "::1"
    else
      address;

  # host:port, with IPv6 addresses in brackets.
  hostPort =
    host: port: if lib.hasInfix ":" host then "[${host}]:${toString port}" else "${host}:${toString port}";

  # Options of a bitcoind RPC client (Fulcrum, LND): the local bitcoind by
  # default, another host by setting host, port and a credential.
  # `bitcoind` is config.services.chainstead.bitcoind; `runtimeDir` is where
  # the consumer assembles a config holding a password at start.
  bitcoindClientOptions =
    {
      bitcoind,
      consumer,
      runtimeDir,
    }:
    {
      host = mkOption {
        type = types.str;
        default = connectHost bitcoind.rpc.address;
        defaultText = lib.literalExpression "the local bitcoind's RPC address";
        description = "Host of bitcoind's RPC server; another host works too (reach it over a tunnel).";
      };
      port = mkOption {
        type = types.port;
        default = bitcoind.rpc.port;
        defaultText = lib.literalExpression "config.services.chainstead.bitcoind.rpc.port";
        description = "Port of bitcoind's RPC server.";
      };
      cookieFile = mkOption {
        type = types.nullOr secretFileType;
        default = if bitcoind.enable then bitcoind.rpc.cookieFile else null;
        defaultText = lib.literalExpression "the local bitcoind's cookie, when it is enabled";
        description = ''
          bitcoind's RPC cookie. The local bitcoind's cookie is readable through
          the `bitcoin-rpc` group, which ${consumer} joins.
        '';
      };
      user = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "RPC user for a bitcoind without cookie access (with {option}`passwordFile`).";
      };
      passwordFile = mkSecretFileOption ''
        File holding the RPC password of {option}`user`. Read at start into a
        config under ${runtimeDir}, never into the Nix store or the command line.
      '';
      passwordSecretPath = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "chainstead/bitcoind/rpc-electrum";
        description = ''
          Instead of {option}`passwordFile`: the KV path in OpenBao (field
          `password`) of {option}`user`'s password, the path the bitcoind host's
          `services.chainstead.bitcoind.rpc.users.<user>.secretPath` names. The
          secret loader fetches it before each start of ${consumer} and of its
          sync gates; needs {option}`services.chainstead.secrets.openbao`.
        '';
      };
    };

  # True when a bitcoind client authenticates with user and password.
  bitcoindUsesPassword = client: client.passwordFile != null || client.passwordSecretPath != null;

  # The file a unit reads a bitcoind client's RPC password from: the user's
  # passwordFile, or what the secret loader installs into the unit's own set
  # `set` from passwordSecretPath (see bitcoindPasswordSecrets). `secrets` is
  # config.services.chainstead.secrets.
  bitcoindPasswordFile =
    {
      client,
      secrets,
      set,
    }:
    if client.passwordSecretPath != null then
      "${secrets.runtimeDir}/${set}/bitcoind-rpc-password"
    else
      client.passwordFile;

  # Secret-loader sets for services.chainstead.secrets.services: one per unit
  # that reads the password (`units`: set name -> { unit, owner }), as each
  # unit requires its own loader (a shared one would stop every consumer
  # with any of them). Empty unless the password comes from OpenBao.
  bitcoindPasswordSecrets =
    { client, units }:
    lib.optionalAttrs (client.passwordSecretPath != null) (
      lib.mapAttrs (_: u: {
        inherit (u) unit owner;
        group = u.owner;
        secrets.bitcoind-rpc-password = {
          path = client.passwordSecretPath;
          field = "password";
        };
      }) units
    );

  # Assertions on a consumer's bitcoind credential; `option` names its
  # bitcoind options, `program` the consumer.
  bitcoindClientAssertions =
    {
      client,
      secrets,
      option,
      program,
    }:
    [
      {
        assertion = (client.cookieFile != null) != bitcoindUsesPassword client;
        message = ''
          ${option} needs exactly one credential: cookieFile, or user together with
          passwordFile or passwordSecretPath (${program} refuses both at once).
          cookieFile defaults to the local bitcoind's cookie: set it to null to use
          a password.
        '';
      }
      {
        assertion = (client.user != null) == bitcoindUsesPassword client;
        message = ''
          ${option}.user goes together with passwordFile or passwordSecretPath:
          the RPC user and its password are set both or neither.
        '';
      }
      {
        assertion = client.passwordFile == null || client.passwordSecretPath == null;
        message = "${option}: set passwordFile or passwordSecretPath, not both.";
      }
      {
        assertion = client.passwordSecretPath == null || secrets.openbao != null;
        message = ''
          ${option}.passwordSecretPath needs OpenBao (services.chainstead.secrets.openbao):
          the password is the one the bitcoind host stored there. Without OpenBao,
          place it in a file and set ${option}.passwordFile.
        '';
      }
    ];

  # A sync-gate manifest's description of a consumer's bitcoind. `client` is
  # the consumer's bitcoind client options, `network` its chain, `gate` the
  # gate unit that receives the password credential.
  bitcoindBackend =
    {
      client,
      network,
      gate,
    }:
    {
      kind = "bitcoind";
      rpc_url = "http://${hostPort client.host client.port}";
      chain = bitcoinNetworks.${network}.section;
    }
    // (
      if bitcoindUsesPassword client then
        {
          rpc_user = client.user;
          rpc_password_file = "/run/credentials/chainstead-sync-gate-${gate}.service/rpc-password";
        }
      else
        { cookie_file = client.cookieFile; }
    );

  # The sync gate on a consumer's bitcoind (chainstead-bitcoind-synced.target).
  bitcoindGate =
    {
      bitcoind,
      secrets,
      client,
      network,
    }:
    let
      usesPassword = bitcoindUsesPassword client;
    in
    {
      backend = bitcoindBackend {
        inherit client network;
        gate = "bitcoind";
      };
      after = lib.optional bitcoind.enable "bitcoind.service";
      supplementaryGroups = lib.optional (
        client.cookieFile != null && client.cookieFile == bitcoind.rpc.cookieFile
      ) bitcoind.rpc.group;
      credentials = lib.optionalAttrs usesPassword {
        rpc-password = bitcoindPasswordFile {
          inherit client secrets;
          set = "sync-gate-bitcoind";
        };
      };
    };

  # Where a secret lives in OpenBao's KV (or the local state directory's
  # layout): `path` and `field` options with their defaults.
  kvLocationOptions =
    {
      what,
      path,
      field,
    }:
    {
      path = mkOption {
        type = types.str;
        default = path;
        description = "KV path of ${what}.";
      };
      field = mkOption {
        type = types.str;
        default = field;
        description = "Field of ${what} at that path.";
      };
    };

  # A service's directory on the storage tier its placement option names:
  # `<tier path>/<name>` by default. `storage` is config.services.chainstead.storage.
  tierDirOption =
    {
      storage,
      placement,
      name,
      description,
    }:
    mkOption {
      type = types.str;
      default = "${toString storage.${storage.placement.${placement}}.path}/${name}";
      defaultText = lib.literalExpression ''"''${storage.<placement.${placement}>.path}/${name}"'';
      inherit description;
    };
}
