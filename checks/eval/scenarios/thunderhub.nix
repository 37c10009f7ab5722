# ThunderHub: its environment (loopback, privacy switches), the account file
# template and the secret loader's renderer that writes it at start (the
# password only ever as a file the secrets loader installs), the ordering against LND, the
# lnd-ready target and the secrets loader, the hardening exceptions, the
# firewall, basePath reaching the package, and no secret in the store.
{ lib, harness }:
let
  h = harness;
  inherit (h) pkgs;

  tiers = {
    fast.path = "/srv/fast";
    bulk.path = "/srv/bulk";
  };
  node =
    extra:
    h.evalConfig [
      {
        services.chainstead = lib.recursiveUpdate {
          storage = tiers;
          bitcoind.enable = true;
          lnd.enable = true;
          thunderhub.enable = true;
        } extra;
      }
    ];

  plain = node { };
  regtest = node {
    bitcoind.network = "regtest";
    lnd.settings.alias = "alice";
  };
  override = node { thunderhub.passwordMode = "override-env"; };
  proxied = node {
    thunderhub = {
      basePath = "/thunderhub";
      host = "0.0.0.0";
      port = 3010;
      openFirewall = true;
      mempoolUrl = "http://127.0.0.1:8999";
      fetchFees = true;
      environment.THEME = "light";
    };
  };
  withoutLnd = h.evalConfig [
    {
      services.chainstead = {
        storage = tiers;
        thunderhub.enable = true;
      };
    }
  ];

  svc = config: config.systemd.services.thunderhub;
  env = config: (svc config).environment;
  template = config: h.renderedJSON config.services.chainstead.thunderhub.accountTemplate;
  # The scripts the unit runs (system.build.chainstead-thunderhub-scripts),
  # checked to be the ones its command lines name.
  scriptOf =
    config: name:
    let
      script = config.system.build.chainstead-thunderhub-scripts.${name};
      lines = (svc config).serviceConfig.ExecStartPre ++ [ (svc config).serviceConfig.ExecStart ];
    in
    if lib.elem "${script}/bin/${name}" lines then
      script
    else
      throw "${name} is not run by thunderhub.service: ${h.show lines}";
  writer = config: h.renderedText (scriptOf config "thunderhub-account-file");
  # What the account file is rendered from: the template plus the hash's
  # placeholder (the password-less template itself in override mode).
  fileTemplateOf = config: config.system.build.chainstead-thunderhub-account-file-template;
  fileTemplate = config: h.renderedJSON (fileTemplateOf config);

  loader = config: config.systemd.services.chainstead-secrets-thunderhub;
  manifest = config: h.renderedJSON config.services.chainstead.secrets.manifest.unchecked;
in
{
  evaluates = [
    (h.expectNoFailedAssertions "bitcoind, LND and ThunderHub evaluate cleanly" plain)
    (h.expectNoFailedAssertions "the override password mode evaluates cleanly" override)
    (h.expectNoFailedAssertions "a proxied, firewalled ThunderHub evaluates cleanly" proxied)
    (h.expectAssertion "ThunderHub without the local LND is refused" withoutLnd "services.chainstead.lnd.enable = true")
    (h.expectAssertion "a password in `environment` is refused"
      (node { thunderhub.environment.MASTER_PASSWORD_OVERRIDE = "x"; })
      "sets MASTER_PASSWORD_OVERRIDE"
    )
    (h.expectAssertion "the Fedimint gateway password in `environment` is refused"
      (node { thunderhub.environment.FM_GATEWAY_PASSWORD = "x"; })
      "sets FM_GATEWAY_PASSWORD"
    )
    (h.expectAssertion "HOST through `environment` is refused (use `host`)"
      (node { thunderhub.environment.HOST = "0.0.0.0"; })
      "sets HOST"
    )
    (h.expectEvalError {
      name = "a basePath with a trailing slash is refused";
      modules = [
        {
          services.chainstead = {
            storage = tiers;
            bitcoind.enable = true;
            lnd.enable = true;
            thunderhub = {
              enable = true;
              basePath = "/thunderhub/";
            };
          };
        }
      ];
      force = config: config.services.chainstead.thunderhub.basePath;
      message = "is not of type";
    })
  ];

  environment = [
    (h.expectEqual "loopback, port 3000, no base path, production, the account file" {
      HOST = "127.0.0.1";
      PORT = "3000";
      BASE_PATH = "";
      NODE_ENV = "production";
      ACCOUNT_CONFIG_PATH = "/srv/fast/thunderhub/accounts.yaml";
    } { inherit (env plain) HOST PORT BASE_PATH NODE_ENV ACCOUNT_CONFIG_PATH; })
    (h.expectEqual "privacy by default: no version check, no prices, no fees, no Amboss pushes" {
      NO_VERSION_CHECK = "true";
      FETCH_PRICES = "false";
      FETCH_FEES = "false";
      DISABLE_HEALTHCHECK_PINGS = "true";
      DISABLE_BALANCE_PUSHES = "true";
    } { inherit (env plain) NO_VERSION_CHECK FETCH_PRICES FETCH_FEES DISABLE_HEALTHCHECK_PINGS DISABLE_BALANCE_PUSHES; })
    (h.expectTrue "no MEMPOOL_URL unless one is given" (!(env plain ? MEMPOOL_URL)) "")
    (h.expectTrue "no password variable in the unit" (!(env plain ? MASTER_PASSWORD_OVERRIDE)) "")
    (h.expectTrue "no password variable in the unit, override mode either" (!(env override ? MASTER_PASSWORD_OVERRIDE)) "")
    (h.expectEqual "host, port, base path, mempool URL, fees and extra variables from the options" {
      HOST = "0.0.0.0";
      PORT = "3010";
      BASE_PATH = "/thunderhub";
      MEMPOOL_URL = "http://127.0.0.1:8999";
      FETCH_FEES = "true";
      FETCH_PRICES = "false";
      THEME = "light";
    } { inherit (env proxied) HOST PORT BASE_PATH MEMPOOL_URL FETCH_FEES FETCH_PRICES THEME; })
    (h.expectEqual "versionCheck = true turns NO_VERSION_CHECK off" "false"
      (env (node { thunderhub.versionCheck = true; })).NO_VERSION_CHECK
    )
    (h.expectEqual "the read-only environment option is what the unit gets"
      (removeAttrs (env plain) [ "PATH" ])
      plain.services.chainstead.thunderhub.environmentVariables
    )
  ];

  account-template = [
    (h.expectEqual "the account file template (mainnet, admin macaroon)" {
      hashed = true;
      defaultNetwork = "mainnet";
      backupsEnabled = false;
      healthCheckPingEnabled = false;
      onchainPushEnabled = false;
      channelPushEnabled = false;
      privateChannelPushEnabled = false;
      accounts = [
        {
          name = "LND (mainnet)";
          serverUrl = "127.0.0.1:10009";
          macaroonPath = "/srv/fast/lnd/macaroons/admin.macaroon";
          certificatePath = "/srv/fast/lnd/tls.cert";
          network = "mainnet";
        }
      ];
    } (template plain))
    (h.expectEqual "regtest, the LND alias as the account name" {
      name = "alice";
      network = "regtest";
    } { inherit (builtins.head (template regtest).accounts) name network; })
    (h.expectEqual "the read-only macaroon when asked for" "/srv/fast/lnd/macaroons/readonly.macaroon"
      (builtins.head (template (node { thunderhub.macaroonKind = "readonly"; })).accounts).macaroonPath
    )
    (h.expectEqual "LND's gRPC port and address follow the LND options" "127.0.0.1:10019"
      (builtins.head (template (node {
        lnd = {
          rpcAddress = "0.0.0.0";
          rpcPort = 10019;
        };
      })).accounts).serverUrl
    )
    (h.expectTrue "the template holds no password" (!(template plain ? masterPassword)) "")
    (h.expectTrue "no account has a password of its own" (lib.all (a: !(a ? password)) (template plain).accounts) "")
    (h.expectEqual "exposed as system.build too" plain.services.chainstead.thunderhub.accountTemplate
      plain.system.build.chainstead-thunderhub-account-template
    )
    (h.expectNoSecrets "the template holds no secret" { value = h.renderedText plain.services.chainstead.thunderhub.accountTemplate; })
  ];

  account-file-script = [
    (h.expectContains "the loader's template renderer writes it" "exec chainstead-secrets render" (writer plain))
    (h.expectContains "the renderer comes from the secrets package" "${plain.services.chainstead.secrets.package}/bin"
      (writer plain)
    )
    (h.expectContains "it reads the bcrypt hash from the loader's file (never a value)"
      "--thunderhub-hash @master-password-hash@=/run/chainstead/secrets/thunderhub/master-password.bcrypt"
      (writer plain)
    )
    (h.expectEqual "it puts the hash into the template as masterPassword (a placeholder inside a JSON string)"
      ((template plain) // { masterPassword = "@master-password-hash@"; })
      (fileTemplate plain)
    )
    (h.expectEqual "the placeholder sits between quotes, so the hash is written JSON-encoded" 1 (
      lib.length (lib.splitString ''"masterPassword":"@master-password-hash@"'' (h.renderedText (fileTemplateOf plain))) - 1
    ))
    (h.expectNotContains "it refuses anything but ThunderHub's stored form (--thunderhub-hash, not an unchecked secret)"
      "--json-secret"
      (writer plain)
    )
    (h.expectNotContains "no unchecked line secret either" "--secret " (writer plain))
    (h.expectContains "it reads the template from the store" "--template ${fileTemplateOf plain}" (writer plain))
    (h.expectNoSecrets "the rendered template holds no secret" { value = h.renderedText (fileTemplateOf plain); })
    (h.expectContains "the file is read-only, so ThunderHub never rewrites it" "--mode 0400" (writer plain))
    (h.expectEqual "it runs as thunderhub (no + or ! prefix), so the file is owned by thunderhub"
      [ "${scriptOf plain "thunderhub-account-file"}/bin/thunderhub-account-file" ]
      (svc plain).serviceConfig.ExecStartPre
    )
    (h.expectContains "the file lands in the state directory" "--out /srv/fast/thunderhub/accounts.yaml" (writer plain))
    (h.expectNotContains "no jq any more" "jq" (writer plain))
    (h.expectNotContains "override mode puts no hash into the file" "masterPassword" (writer override))
    (h.expectNotContains "override mode reads no hash" "--thunderhub-hash" (writer override))
    (h.expectEqual "override mode renders the password-less template as it is"
      "${override.services.chainstead.thunderhub.accountTemplate}"
      "${fileTemplateOf override}"
    )
    (h.expectContains "override mode writes the same file, read-only"
      "--template ${override.services.chainstead.thunderhub.accountTemplate} --out /srv/fast/thunderhub/accounts.yaml --mode 0400"
      (writer override)
    )
    (h.expectEqual "the script runs before ThunderHub" 1 (lib.length (svc plain).serviceConfig.ExecStartPre))
  ];

  password = [
    (h.expectEqual "the login password: generated, bcrypt with ThunderHub's prefix" {
      path = "chainstead/thunderhub";
      field = "master-password";
      file = "master-password.bcrypt";
      transform.bcrypt = {
        cost = 12;
        prefix = "thunderhub-";
      };
      generate = {
        length = 32;
        alphabet = "alphanumeric";
      };
      mode = "0400";
    } {
      inherit ((manifest plain).services.thunderhub.secrets.master-password)
        path
        field
        file
        transform
        generate
        mode
        ;
    })
    (h.expectEqual "the secret files belong to thunderhub" {
      owner = "thunderhub";
      group = "thunderhub";
    } { inherit ((manifest plain).services.thunderhub) owner group; })
    (h.expectEqual "override mode installs the plaintext instead" {
      file = "master-password";
      transform = "raw";
    } { inherit ((manifest override).services.thunderhub.secrets.master-password) file transform; })
    (h.expectEqual "hashed mode runs ThunderHub directly" "${pkgs.thunderhub}/bin/thunderhub"
      (svc plain).serviceConfig.ExecStart
    )
    (h.expectContains "override mode passes the plaintext from the file into the environment"
      "MASTER_PASSWORD_OVERRIDE=\"$(< /run/chainstead/secrets/thunderhub/master-password)\""
      (h.renderedText (scriptOf override "thunderhub-start"))
    )
    (h.expectContains "override mode then execs ThunderHub" "exec ${pkgs.thunderhub}/bin/thunderhub"
      (h.renderedText (scriptOf override "thunderhub-start"))
    )
  ];

  ordering = [
    (h.expectEqual "wanted by the lnd-ready target only, never at boot" [ "chainstead-lnd-ready.target" ]
      (svc plain).wantedBy
    )
    (h.expectContains "after the lnd-ready target" "chainstead-lnd-ready.target" (svc plain).after)
    (h.expectContains "after LND" "lnd.service" (svc plain).after)
    (h.expectContains "requisite LND: a manual start never starts LND past the gate" "lnd.service" (svc plain).requisite)
    (h.expectNotContains "does not pull LND in" "lnd.service" (svc plain).requires)
    (h.expectEqual "part of LND (restarts with it, also after Restart=on-failure)" [ "lnd.service" ]
      (svc plain).partOf
    )
    (h.expectEqual "not BindsTo (a crash of LND would leave it stopped)" [ ] (svc plain).bindsTo)
    (h.expectContains "the unit file has Requisite=lnd.service" "lnd.service" (svc plain).unitConfig.Requisite)
    (h.expectEqual "the unit file is PartOf LND" "lnd.service" (svc plain).unitConfig.PartOf)
    (h.expectEqual "the secrets loader is required by ThunderHub and runs before it" {
      requiredBy = [ "thunderhub.service" ];
      before = [ "thunderhub.service" ];
    } { inherit (loader plain) requiredBy before; })
    (h.expectContains "the state directory's setup runs first" "chainstead-storage-fast.service" (svc plain).after)
    (h.expectEqual "the state directory must be mounted" [ "/srv/fast/thunderhub" ]
      (svc plain).unitConfig.RequiresMountsFor
    )
    (h.expectEqual "the lnd-ready target stays out of boot" [ ] plain.systemd.targets.chainstead-lnd-ready.wantedBy)
  ];

  unit = [
    (h.expectEqual "runs as thunderhub" {
      User = "thunderhub";
      Group = "thunderhub";
    } { inherit ((svc plain).serviceConfig) User Group; })
    (h.expectContains "thunderhub may read LND's macaroons" "lnd-macaroon" plain.users.users.thunderhub.extraGroups)
    (h.expectTrue "a static system user" plain.users.users.thunderhub.isSystemUser "")
    (h.expectEqual "the state directory on the fast tier, owned by thunderhub" {
      tier = "fast";
      path = "/srv/fast/thunderhub";
      user = "thunderhub";
      group = "thunderhub";
      mode = "0750";
    } { inherit (plain.services.chainstead.storage.directories.thunderhub) tier path user group mode; })
    (h.expectEqual "it may write its state directory only" [ "/srv/fast/thunderhub" ]
      (svc plain).serviceConfig.ReadWritePaths
    )
    (h.expectEqual "the strict baseline" "strict" (svc plain).serviceConfig.ProtectSystem)
    (h.expectEqual "Node's JIT exception" false (svc plain).serviceConfig.MemoryDenyWriteExecute)
    (h.expectContains "V8's pkey system calls are allowed" "@pkey" (svc plain).serviceConfig.SystemCallFilter)
    (h.expectContains "privileged system calls stay denied" "~@privileged" (svc plain).serviceConfig.SystemCallFilter)
    (h.expectEqual "no capabilities" [ "" ] (svc plain).serviceConfig.CapabilityBoundingSet)
    (h.expectEqual "restarted after a crash" "on-failure" (svc plain).serviceConfig.Restart)
  ];

  firewall-and-package = [
    (h.expectEqual "the port stays closed by default" [ ] plain.networking.firewall.allowedTCPPorts)
    (h.expectEqual "openFirewall opens the port" [ 3010 ] proxied.networking.firewall.allowedTCPPorts)
    (h.expectEqual "no warning by default" [ ] plain.warnings)
    (h.expectTrue "opening the firewall for a loopback-only ThunderHub warns"
      (lib.any (lib.hasInfix "listens on 127.0.0.1 only") (node { thunderhub.openFirewall = true; }).warnings)
      ""
    )
    (h.expectEqual "no base path: the package as given" pkgs.thunderhub plain.services.chainstead.thunderhub.finalPackage)
    (h.expectEqual "a base path is passed to the package" { basePath = "/thunderhub"; }
      (proxied.services.chainstead.thunderhub.finalPackage.overrideArgs or null)
    )
    (h.expectEqual "and that package is the one that runs"
      "${proxied.services.chainstead.thunderhub.finalPackage}/bin/thunderhub"
      (svc proxied).serviceConfig.ExecStart
    )
    (h.expectTrue "the overridden package is another store path"
      ("${proxied.services.chainstead.thunderhub.finalPackage}" != "${pkgs.thunderhub}")
      ""
    )
  ];

  no-secrets = [
    (h.expectNoSecrets "no secret anywhere in the configuration" { config = plain; })
    (h.expectNoSecrets "none in override mode either" { config = override; })
    (h.expectNoSecrets "the secrets manifest names files, not values" { value = manifest plain; })
  ];
}
