# ThunderHub: the web interface of the local LND, on loopback by default,
# started once LND's RPC is active (chainstead-lnd-ready.target) and
# restarted with LND. Its account file is generated at every start from the
# LND module's paths; the login password comes from the secrets loader,
# pre-hashed, so ThunderHub never has to rewrite the file.
#
# ThunderHub facts used here (apotdevin/thunderhub v0.18.4):
#   src/server/config/configuration.ts: ACCOUNT_CONFIG_PATH,
#     MASTER_PASSWORD_OVERRIDE, BASE_PATH, MEMPOOL_URL (falls back to
#     https://mempool.space), NO_VERSION_CHECK (=== "true"), FETCH_PRICES and
#     FETCH_FEES (!== "false"), DISABLE_HEALTHCHECK_PINGS and
#     DISABLE_BALANCE_PUSHES (=== "true"); NODE_ENV=production gives a random
#     JWT secret per start; FM_GATEWAY_PASSWORD is the Fedimint gateway's
#     password (refused in `environment` with the other secrets).
#   src/server/main.ts: listens on HOST (all interfaces when unset) and PORT
#     (3001 when unset), routes under BASE_PATH.
#   src/server/modules/files/files.service.ts and files.types.ts: the
#     account file (YAML, parsed with js-yaml 4, so JSON is accepted) has
#     `masterPassword`, `hashed`, `defaultNetwork` and `accounts: [{ name,
#     serverUrl, macaroonPath, certificatePath, network, password }]`;
#     passwords without the `thunderhub-` prefix are bcrypt-hashed and the
#     file rewritten at start (skipped when `hashed: true`); a missing file
#     is created; MASTER_PASSWORD_OVERRIDE replaces the master password.
#     src/server/utils/crypto.ts: the stored form is "thunderhub-" + bcrypt.
#   src/server/modules/api/amboss/amboss.service.ts: health-check pings and
#     balance pushes run every minute when the account file enables them.
#   The issue's measurements: LND unreachable at start is logged once and
#     its subscriptions are never retried, hence the ordering below.
#   Checked outside NixOS (Node 20, this module's environment and account
#     file, the secrets loader's bcrypt hash): the account is listed, the
#     loader's password passes and a wrong one is refused, the file is not
#     rewritten.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    mkOption
    mkEnableOption
    mkIf
    types
    literalExpression
    ;
  chainstead = import ./lib.nix { inherit lib; };
  inherit (chainstead) connectHost hostPort;
  cfg = config.services.chainstead.thunderhub;
  inherit (config.services.chainstead) lnd storage secrets;
  secretsDir = "${secrets.runtimeDir}/thunderhub";

  hashed = cfg.passwordMode == "hashed-account-file";
  # What the secrets loader installs: the bcrypt hash in the stored form
  # ThunderHub compares against, or the plaintext for the override.
  passwordFile = "${secretsDir}/${if hashed then "master-password.bcrypt" else "master-password"}";

  finalPackage = if cfg.basePath == "" then cfg.package else cfg.package.override { inherit (cfg) basePath; };

  # The account file without its password: paths and names only, so it may
  # sit in the Nix store. Written as JSON, which js-yaml reads as YAML.
  accountTemplateValue = {
    # No plaintext password is ever in the file: never rewrite it.
    hashed = true;
    defaultNetwork = lnd.network;
    # Amboss pushes and pings stay off (amboss.service.ts reads these).
    backupsEnabled = false;
    healthCheckPingEnabled = false;
    onchainPushEnabled = false;
    channelPushEnabled = false;
    privateChannelPushEnabled = false;
    accounts = [
      {
        name = cfg.nodeName;
        serverUrl = hostPort (connectHost lnd.rpcAddress) lnd.rpcPort;
        macaroonPath = "${lnd.macaroonDir}/${cfg.macaroonKind}.macaroon";
        certificatePath = lnd.tlsCertFile;
        inherit (lnd) network;
      }
    ];
  };
  accountTemplate = pkgs.writeText "thunderhub-accounts.json" (builtins.toJSON accountTemplateValue);

  # What is rendered at every start: in hashed mode the template plus
  # `masterPassword` as a placeholder inside a JSON string, which the secret
  # loader's template renderer replaces with the hash (read from the
  # loader's file, checked for ThunderHub's stored form: anything else would
  # be taken as a plaintext password and rewritten); in override mode the
  # template as it is. No secret in either.
  hashPlaceholder = "@master-password-hash@";
  accountFileTemplate =
    if hashed then
      pkgs.writeText "thunderhub-accounts.json.template" (
        builtins.toJSON (accountTemplateValue // { masterPassword = hashPlaceholder; })
      )
    else
      accountTemplate;

  # Writes the account file for this start, atomically and read-only (mode
  # 0400, owner thunderhub, who runs it): ThunderHub has nothing to write
  # into it. Only the hash's path is on the command line.
  writeAccountFile = pkgs.writeShellApplication {
    name = "thunderhub-account-file";
    runtimeInputs = [ secrets.package ];
    text =
      if hashed then
        ''
          exec chainstead-secrets render --template ${accountFileTemplate} --out ${cfg.accountFile} --mode 0400 \
            --thunderhub-hash ${hashPlaceholder}=${passwordFile}
        ''
      else
        ''
          exec chainstead-secrets render --template ${accountFileTemplate} --out ${cfg.accountFile} --mode 0400
        '';
  };

  # Override mode: the plaintext goes from the loader's file into the
  # environment of ThunderHub's own process only (not argv, not the unit).
  startWithOverride = pkgs.writeShellApplication {
    name = "thunderhub-start";
    runtimeInputs = [ ];
    text = ''
      MASTER_PASSWORD_OVERRIDE="$(< ${passwordFile})"
      export MASTER_PASSWORD_OVERRIDE
      exec ${lib.getExe finalPackage}
    '';
  };

  boolString = b: if b then "true" else "false";

  environment = {
    HOST = cfg.host;
    PORT = toString cfg.port;
    BASE_PATH = cfg.basePath;
    NODE_ENV = "production";
    ACCOUNT_CONFIG_PATH = cfg.accountFile;
    # Privacy: no call to api.github.com, blockchain.info or mempool.space
    # for the version, prices and fees.
    NO_VERSION_CHECK = boolString (!cfg.versionCheck);
    FETCH_PRICES = boolString cfg.fetchPrices;
    FETCH_FEES = boolString cfg.fetchFees;
    # Server-side off switches for the Amboss pushes, on top of the account
    # file that never enables them.
    DISABLE_HEALTHCHECK_PINGS = "true";
    DISABLE_BALANCE_PUSHES = "true";
  }
  // lib.optionalAttrs (cfg.mempoolUrl != null) { MEMPOOL_URL = cfg.mempoolUrl; }
  // cfg.environment;

  # Variables this module sets itself, or that would carry a secret in the
  # world-readable unit file.
  ownedVariables = [
    "HOST"
    "PORT"
    "BASE_PATH"
    "NODE_ENV"
    "ACCOUNT_CONFIG_PATH"
  ];
  secretVariables = [
    "MASTER_PASSWORD_OVERRIDE"
    "FM_GATEWAY_PASSWORD"
    "DB_ENCRYPTION_KEY"
    "DB_POSTGRES_URL"
    "YML_ENV_1"
    "YML_ENV_2"
    "YML_ENV_3"
    "YML_ENV_4"
  ];
  refused = lib.filter (v: cfg.environment ? ${v}) (ownedVariables ++ secretVariables);

  isLoopback = host: host == "localhost" || host == "::1" || lib.hasPrefix "127." host;
in
{
  options.services.chainstead.thunderhub = {
    enable = mkEnableOption "ThunderHub, the web interface of the local LND (unit `thunderhub.service`, started once LND's RPC is active)";

    package = chainstead.toolPackageOption pkgs "thunderhub" ../pkgs/thunderhub;

    memory = mkOption {
      type = types.ints.positive;
      default = 768;
      description = ''
        Memory in MiB for ThunderHub (a Node.js server), counted in the host's
        memory budget ({option}`services.chainstead.memory`), which derives the
        unit's `MemoryHigh=`/`MemoryMax=` from it.
      '';
    };

    finalPackage = mkOption {
      type = types.package;
      readOnly = true;
      default = finalPackage;
      defaultText = literalExpression "package.override { inherit basePath; } (package itself when basePath is \"\")";
      description = "The package that runs: {option}`package` built for {option}`basePath`.";
    };

    host = mkOption {
      type = types.str;
      default = "127.0.0.1";
      description = ''
        Address the web interface listens on. Loopback by default: reach it
        through an SSH tunnel or a TLS reverse proxy (docs/thunderhub.md).
      '';
    };

    port = mkOption {
      type = types.port;
      default = 3000;
      description = "Port of the web interface.";
    };

    basePath = mkOption {
      type = types.strMatching "(/[^/]+)*";
      default = "";
      example = "/thunderhub";
      description = ''
        URL prefix the interface is served under, for a reverse proxy that
        serves it beside other sites: "" or a path such as "/thunderhub" (no
        trailing slash). The client bakes it in when it is built, so a
        non-empty value builds its own package.
      '';
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open {option}`port` in the firewall (only useful with a non-loopback {option}`host`).";
    };

    dataDir = chainstead.tierDirOption {
      inherit storage;
      placement = "thunderhub";
      name = "thunderhub";
      description = "ThunderHub's state directory; it holds the generated account file.";
    };

    accountFile = mkOption {
      type = types.str;
      default = "${cfg.dataDir}/accounts.yaml";
      defaultText = literalExpression ''"''${dataDir}/accounts.yaml"'';
      readOnly = true;
      description = ''
        The account file (ACCOUNT_CONFIG_PATH), written read-only at every
        start from {option}`accountTemplate` and, in the hashed password mode,
        the master password's bcrypt hash.
      '';
    };

    accountTemplate = mkOption {
      type = types.package;
      readOnly = true;
      default = accountTemplate;
      defaultText = literalExpression "the account file without its password, as JSON";
      description = "The account file without its password (world-readable in the Nix store: names and paths only).";
    };

    nodeName = mkOption {
      type = types.str;
      default = lnd.settings.alias or "LND (${lnd.network})";
      defaultText = literalExpression ''lnd.settings.alias or "LND (''${network})"'';
      description = "Name of the account on the login page (shown before login).";
    };

    macaroonKind = mkOption {
      type = types.enum [
        "admin"
        "readonly"
        "invoice"
      ];
      default = "admin";
      description = ''
        Which of LND's macaroons ThunderHub uses: `admin` to manage the node
        (channels, payments, fees), `readonly` to only look at it.
      '';
    };

    passwordMode = mkOption {
      type = types.enum [
        "hashed-account-file"
        "override-env"
      ];
      default = "hashed-account-file";
      description = ''
        How the login password reaches ThunderHub. `hashed-account-file`:
        the secrets loader installs a bcrypt hash (`thunderhub-$2b$...`) and
        it goes into the account file as `masterPassword`; ThunderHub never
        sees the plaintext. `override-env`: the loader installs the
        plaintext and it is passed as MASTER_PASSWORD_OVERRIDE in the
        environment of ThunderHub's process only.
      '';
    };

    # Generated (32 letters and digits) when missing.
    passwordSecret = chainstead.mkKvSecretOption {
      what = "the login password";
      path = "chainstead/thunderhub";
      field = "master-password";
      description = "Where the login password is in OpenBao (or the local secret store).";
    };

    versionCheck = mkOption {
      type = types.bool;
      default = false;
      description = "Let the interface ask api.github.com for the latest ThunderHub release (NO_VERSION_CHECK).";
    };

    fetchPrices = mkOption {
      type = types.bool;
      default = false;
      description = "Let the interface fetch fiat prices from blockchain.info (FETCH_PRICES).";
    };

    fetchFees = mkOption {
      type = types.bool;
      default = false;
      description = "Let the interface fetch fee estimates from {option}`mempoolUrl` (FETCH_FEES).";
    };

    mempoolUrl = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "http://127.0.0.1:8999";
      description = ''
        A mempool.space-compatible explorer, ideally your own (MEMPOOL_URL).
        `null` leaves it unset and ThunderHub falls back to
        https://mempool.space, which it asks for fees (when
        {option}`fetchFees` is on) and for the chain height while LND is not
        synced to the chain.
      '';
    };

    environment = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = {
        THEME = "light";
        CURRENCY = "btc";
        LOG_LEVEL = "warn";
      };
      description = ''
        Further ThunderHub variables (see its `.env`). World-readable in the
        unit file: variables that carry secrets are refused.
      '';
    };

    environmentVariables = mkOption {
      type = types.attrsOf types.str;
      readOnly = true;
      default = environment;
      defaultText = literalExpression "the environment thunderhub.service runs with";
      description = "The full environment of `thunderhub.service` (no secret in it).";
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = lnd.enable;
        message = ''
          services.chainstead.thunderhub manages the LND of this host: set
          services.chainstead.lnd.enable = true.
        '';
      }
      {
        assertion = refused == [ ];
        message = ''
          services.chainstead.thunderhub.environment sets ${lib.concatStringsSep ", " refused}.
          HOST, PORT, BASE_PATH, NODE_ENV and ACCOUNT_CONFIG_PATH come from the module's
          options (host, port, basePath, ...); secrets would be world-readable in the unit
          file (the login password comes from the secrets loader, see docs/thunderhub.md).
        '';
      }
      {
        assertion = cfg.basePath == "" || cfg.package ? override;
        message = ''
          services.chainstead.thunderhub.basePath is set, but services.chainstead.thunderhub.package
          cannot be overridden with it (no `override`); use a package made with callPackage.
        '';
      }
    ];

    warnings = lib.optional (cfg.openFirewall && isLoopback cfg.host) ''
      services.chainstead.thunderhub.openFirewall opens port ${toString cfg.port}, but
      ThunderHub listens on ${cfg.host} only; set services.chainstead.thunderhub.host too.
    '';

    services.chainstead = {
      # Started by LND's gate; a Node.js process.
      memory.services.thunderhub = {
        budget = cfg.memory;
        runsDuringInitialSync = false;
      };

      storage.directories.thunderhub = {
        tier = storage.placement.thunderhub;
        path = cfg.dataDir;
        user = "thunderhub";
        group = "thunderhub";
        units = [ "thunderhub" ];
        placementOption = "thunderhub";
        expectedSize = lib.mkDefault ((import ./sizes.nix).thunderhub.${lnd.network} or 0);
      };

      # Local mode generates the value once into the loader's state
      # directory; with OpenBao it is generated there when missing.
      secrets.services.thunderhub = {
        owner = "thunderhub";
        group = "thunderhub";
        secrets.master-password = {
          inherit (cfg.passwordSecret) path field;
          generate = { };
        }
        // (
          if hashed then
            {
              file = "master-password.bcrypt";
              transform.bcrypt.prefix = "thunderhub-";
            }
          else
            {
              file = "master-password";
              transform = "raw";
            }
        );
      };
    };

    system.build = {
      chainstead-thunderhub-account-template = accountTemplate;
      # What the account file is rendered from (the template itself in
      # override mode).
      chainstead-thunderhub-account-file-template = accountFileTemplate;
      # The scripts thunderhub.service runs, for inspection and the tests.
      chainstead-thunderhub-scripts = {
        thunderhub-account-file = writeAccountFile;
      }
      // lib.optionalAttrs (!hashed) { thunderhub-start = startWithOverride; };
    };

    users = {
      users.thunderhub = {
        isSystemUser = true;
        group = "thunderhub";
        # Reads the chosen macaroon (tls.cert is world-readable).
        extraGroups = [ lnd.group ];
        description = "ThunderHub web interface";
      };
      groups.thunderhub = { };
    };

    networking.firewall.allowedTCPPorts = lib.optional cfg.openFirewall cfg.port;

    systemd.services.thunderhub = {
      description = "ThunderHub, web interface of LND (${lnd.network})";
      documentation = [ "https://docs.thunderhub.io/" ];
      # Started by LND's gate once its RPC is active, never at boot on its
      # own: ThunderHub does not retry LND after a failed start.
      wantedBy = [ "chainstead-lnd-ready.target" ];
      after = [
        "chainstead-lnd-ready.target"
        "lnd.service"
      ];
      # Its subscriptions to LND die with the connection, so it stops when
      # LND stops and restarts, after LND is up again, whenever LND
      # restarts, by hand or by Restart=on-failure (PartOf=; systemd
      # propagates both, the restart as a try-restart to running units).
      # Requisite=, not Requires=: a manual start of ThunderHub fails while
      # LND is down instead of starting LND behind the sync gate's back. Not
      # BindsTo=: a crash of LND would stop ThunderHub at once, and the
      # try-restart that follows LND's restart ten seconds later leaves a
      # stopped unit stopped (systemd/systemd#11695), so ThunderHub would
      # stay down.
      requisite = [ "lnd.service" ];
      partOf = [ "lnd.service" ];
      inherit environment;

      serviceConfig = chainstead.hardening // {
        # exec
        ExecStartPre = [ (lib.getExe writeAccountFile) ];
        ExecStart = if hashed then lib.getExe finalPackage else lib.getExe startWithOverride;
        Type = "exec";
        Restart = "on-failure";
        RestartSec = "10s";

        # identity and paths
        User = "thunderhub";
        Group = "thunderhub";
        ReadWritePaths = [ cfg.dataDir ];

        # exceptions to the baseline
        MemoryDenyWriteExecute = false; # V8's JIT compiler needs writable and executable memory
        SystemCallFilter = [
          "@system-service"
          "@pkey" # V8 protects its JIT code with memory protection keys (pkey_alloc, pkey_mprotect)
          "~@privileged"
        ];
      };
    };
  };
}
