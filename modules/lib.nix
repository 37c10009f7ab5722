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
  # `validate` is the command line before `--manifest`, for a tool with
  # more than one manifest (`chainstead status --validate`).
  checkedManifest =
    {
      pkgs,
      package,
      name,
      value,
      validate ? "validate",
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
        ${lib.getExe package} ${validate} --manifest "$manifest"
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

  # Where a secret lives in OpenBao's KV (or the local state directory's
  # layout): `path` and `field` options, with defaults where given. Every
  # option naming such a secret is `<what>Secret` of this shape.
  kvSecretOptions =
    {
      what,
      path ? null,
      field,
    }:
    {
      path = mkOption (
        {
          type = types.str;
          description = "KV path of ${what}.";
        }
        // lib.optionalAttrs (path != null) { default = path; }
      );
      field = mkOption {
        type = types.str;
        default = field;
        description = "Field of ${what} at that path.";
      };
    };

  # The same as a submodule type, for `<what>Secret = mkOption { type = ...; }`
  # (nullable, or in an attrsOf); `options` adds options beside path and field.
  kvSecretType =
    {
      options ? { },
      ...
    }@args:
    types.submodule { options = kvSecretOptions (removeAttrs args [ "options" ]) // options; };

  # Inside a submodule with renamed options (lib.mkChangedOptionModule sets
  # `warnings`): where their warnings collect, for the module to pass on.
  renameWarningsOption = mkOption {
    type = types.listOf types.str;
    default = [ ];
    internal = true;
    description = "Warnings about renamed options in this submodule.";
  };

  # A `<what>Secret` option: the submodule with its defaults.
  mkKvSecretOption =
    {
      description,
      ...
    }@args:
    mkOption {
      type = kvSecretType (removeAttrs args [ "description" ]);
      default = { };
      inherit description;
    };

  # A service's directory on the storage tier its placement option names:
  # `<tier path>/<name>` by default. `storage` is config.services.chainstead.storage.
  # The read-only option that exposes a module's rendered configuration
  # (`file` names it in the docs' default).
  configFileOption =
    file: value: description:
    mkOption {
      type = types.package;
      readOnly = true;
      default = value;
      defaultText = lib.literalExpression "${file} rendered from settings";
      inherit description;
    };

  # A P2P daemon's switch that opens its P2P port for `who`; off by default.
  p2pOpenFirewallOption =
    who:
    mkOption {
      type = types.bool;
      default = false;
      description = "Open the P2P port in the firewall so ${who} can connect in.";
    };

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
