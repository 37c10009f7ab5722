# bitcoind: the rendered bitcoin.conf, RPC and cookie handling, the unit, the
# operator's bitcoin-cli wrapper, and the assertions that guard its settings.
{ lib, harness }:
let
  h = harness;
  inherit (h) pkgs;

  # nixpkgs' bitcoind versions: 31.1 near the pin; 27.0 predates rpccookieperms.
  bitcoindAt = version: pkgs.bitcoind.overrideAttrs { inherit version; };

  node =
    bitcoind:
    h.evalConfig [
      {
        services.chainstead = {
          storage = {
            fast.path = "/srv/fast";
            bulk.path = "/srv/bulk";
          };
          bitcoind = {
            enable = true;
            package = lib.mkDefault (bitcoindAt "31.1");
          }
          // bitcoind;
        };
      }
    ];
  conf = config: h.renderedText config.services.chainstead.bitcoind.configFile;
  lines = config: lib.splitString "\n" (conf config);
  service = config: config.systemd.services.bitcoind;

  mainnet = node { };
  regtest = node { network = "regtest"; };
in
{
  bitcoin-conf = [
    (h.expectNoFailedAssertions "a default node evaluates cleanly" mainnet)
    (h.expectEqual "the chain is the only global key, the rest sits in its section" [
      "chain=main"
      ""
      "[main]"
    ] (lib.sublist 1 3 (lines mainnet)))
    (h.expectContains "RPC binds to loopback" "rpcbind=127.0.0.1" (lines mainnet))
    (h.expectContains "RPC allows loopback only" "rpcallowip=127.0.0.1" (lines mainnet))
    (h.expectContains "mainnet RPC port" "rpcport=8332" (lines mainnet))
    (h.expectContains "RPC server on" "server=1" (lines mainnet))
    (h.expectContains "no pruning by default" "prune=0" (lines mainnet))
    (h.expectContains "no txindex unless asked (Fulcrum asks)" "txindex=0" (lines mainnet))
    (h.expectContains "ZMQ rawblock for LND" "zmqpubrawblock=tcp://127.0.0.1:28332" (lines mainnet))
    (h.expectContains "ZMQ rawtx for LND" "zmqpubrawtx=tcp://127.0.0.1:28333" (lines mainnet))
    (h.expectContains "ZMQ hashblock for Fulcrum" "zmqpubhashblock=tcp://127.0.0.1:28334" (lines mainnet))
    (h.expectContains "the cookie is group-readable (bitcoind >= 28)" "rpccookieperms=group" (lines mainnet))
    (h.expectContains "readiness comes through -startupnotify" "startupnotify=${pkgs.systemd}/bin/systemd-notify --ready" (
      lines mainnet
    ))
    (h.expectNotContains "par is left to bitcoind unless set" "par=" (conf mainnet))
    (h.expectContains "par is rendered when set" "par=2" (lines (node { par = 2; })))
    (h.expectContains "freeform settings pass through" "maxconnections=40" (
      lines (node { settings.maxconnections = 40; })
    ))
    (h.expectNotContains "a null ZMQ endpoint is not rendered" "zmqpubhashblock" (
      conf (node { zmq.hashblock = null; })
    ))
    (h.expectNoSecrets "bitcoin.conf holds no secret" { value = conf mainnet; })
  ];

  networks = [
    (h.expectContains "regtest gets its own section" "[regtest]" (lines regtest))
    (h.expectContains "regtest RPC port" "rpcport=18443" (lines regtest))
    (h.expectContains "regtest P2P port" "port=18444" (lines regtest))
    (h.expectContains "testnet4 section" "[testnet4]" (lines (node { network = "testnet4"; })))
    (h.expectContains "signet RPC port" "rpcport=38332" (lines (node { network = "signet"; })))
  ];

  dbcache-from-memory = [
    (h.expectContains "half of the 4 GB default budget" "dbcache=2048" (lines mainnet))
    (h.expectContains "half of a 12 GB budget" "dbcache=6144" (lines (node { memory = 12288; })))
    (h.expectContains "never below bitcoind's own default" "dbcache=450" (lines (node { memory = 512; })))
    (h.expectContains "an explicit dbcache wins" "dbcache=1000" (
      lines (node { settings.dbcache = 1000; })
    ))
  ];

  unit = [
    (h.expectEqual "Type=notify with NotifyAccess=all for the startupnotify child" {
      Type = "notify";
      NotifyAccess = "all";
    } { inherit ((service mainnet).serviceConfig) Type NotifyAccess; })
    (h.expectEqual "runs as the static bitcoind user" "bitcoind" (service mainnet).serviceConfig.User)
    (h.expectEqual "strict hardening baseline" "strict" (service mainnet).serviceConfig.ProtectSystem)
    (h.expectContains "started with multi-user" "multi-user.target" (service mainnet).wantedBy)
    (h.expectContains "may write its datadir" "/srv/fast/bitcoind" (service mainnet).serviceConfig.ReadWritePaths)
    (h.expectContains "may write its blocks" "/srv/bulk/bitcoind-blocks" (service mainnet).serviceConfig.ReadWritePaths)
    (h.expectContains "the config is passed by path" "'-conf=${mainnet.services.chainstead.bitcoind.configFile}'"
      (service mainnet).serviceConfig.ExecStart
    )
    (h.expectEqual "no cookie chmod needed on bitcoind >= 28" [ ] (h.ownSteps (service mainnet).serviceConfig.ExecStartPost))
    (h.expectEqual "bitcoind < 28 gets a privileged chmod of the cookie after start" 1 (
      lib.length (h.ownSteps (service (node { package = bitcoindAt "27.0"; })).serviceConfig.ExecStartPost)
    ))
    (h.expectNotContains "bitcoind < 28 gets no rpccookieperms (it would refuse to start)" "rpccookieperms" (
      conf (node { package = bitcoindAt "27.0"; })
    ))
    (h.expectNoSecrets "no secret anywhere in the configuration" { config = mainnet; })
  ];

  rpc-cookie = [
    (h.expectEqual "the cookie path is fixed and outside the datadir" "/run/chainstead/bitcoind-rpc/cookie"
      mainnet.services.chainstead.bitcoind.rpc.cookieFile
    )
    (h.expectContains "the cookie directory is setgid bitcoin-rpc" {
      type = "d";
      path = "/run/chainstead/bitcoind-rpc";
      mode = "2750";
      user = "bitcoind";
      group = "bitcoin-rpc";
      age = "-";
      argument = "";
    } (h.tmpfilesEntries mainnet))
    (h.expectTrue "the bitcoin-rpc group exists" (mainnet.users.groups ? bitcoin-rpc) "groups: ${h.show (lib.attrNames mainnet.users.groups)}")
    (h.expectContains "the cookie file is passed on the command line" "'-rpccookiefile=/run/chainstead/bitcoind-rpc/cookie'"
      (service mainnet).serviceConfig.ExecStart
    )
  ];

  operator-cli =
    let
      wrapper = lib.findFirst (p: (p.name or "") == "bitcoin-cli") null mainnet.environment.systemPackages;
    in
    [
      (h.expectTrue "a bitcoin-cli wrapper is installed" (wrapper != null) "systemPackages: ${h.show (map (p: p.name or "?") mainnet.environment.systemPackages)}")
      (h.expectContains "the wrapper uses the node's datadir" "'-datadir=/srv/fast/bitcoind'" (h.renderedText wrapper))
      (h.expectContains "the wrapper uses the cookie" "'-rpccookiefile=/run/chainstead/bitcoind-rpc/cookie'" (h.renderedText wrapper))
      (h.expectContains "the wrapper passes the operator's arguments" "\"$@\"" (h.renderedText wrapper))
      (h.expectContains "the wrapper reads a config of its own" "-bitcoin-cli.conf'" (h.renderedText wrapper))
      (h.expectNotContains "not bitcoin.conf, whose rpcauth includes group members cannot read"
        "${mainnet.services.chainstead.bitcoind.configFile}"
        (h.renderedText wrapper)
      )
    ];

  rpc-users =
    let
      withUsers = node { rpc.users.fulcrum-remote = { }; };
      loaderSecret = withUsers.services.chainstead.secrets.services.bitcoind.secrets.rpcauth-fulcrum-remote;
    in
    [
      (h.expectContains "bitcoin.conf includes the runtime rpcauth line"
        "includeconf=/run/chainstead/secrets/bitcoind/rpcauth-fulcrum-remote.conf"
        (lines withUsers)
      )
      (h.expectTrue "the include is global, before the network section" (
        lib.lists.findFirstIndex (lib.hasPrefix "includeconf=") null (lines withUsers)
        < lib.lists.findFirstIndex (l: l == "[main]") null (lines withUsers)
      ) (conf withUsers))
      (h.expectNotContains "no rpcauth value in the store" "rpcauth=" (conf withUsers))
      (h.expectEqual "the loader derives the rpcauth line from a generated password" {
        path = "chainstead/bitcoind/rpc-fulcrum-remote";
        field = "password";
        file = "rpcauth-fulcrum-remote.conf";
        transform.rpcauth.user = "fulcrum-remote";
      } { inherit (loaderSecret) path field file transform; })
      (h.expectTrue "a missing password is generated" (loaderSecret.generate != null) (h.show loaderSecret.generate))
      (h.expectContains "bitcoind requires its secrets loader" "bitcoind.service"
        withUsers.systemd.services.chainstead-secrets-bitcoind.requiredBy
      )
      (h.expectEqual "without password users there is no loader" false (
        mainnet.systemd.services ? chainstead-secrets-bitcoind
      ))
      (h.expectNotContains "without password users nothing is included" "includeconf" (conf mainnet))
    ];

  firewall = [
    (h.expectEqual "P2P stays closed by default" [ ] mainnet.networking.firewall.allowedTCPPorts)
    (h.expectEqual "openFirewall opens the network's P2P port" [ 8333 ]
      (node { p2p.openFirewall = true; }).networking.firewall.allowedTCPPorts
    )
  ];

  refused-settings = [
    (h.expectAssertion "an rpcpassword in settings is refused" (node { settings.rpcpassword = "x"; }) "would put a secret into the world-readable Nix store")
    (h.expectAssertion "txindex with pruning is refused" (node {
      txindex = true;
      prune = 1000;
    }) "cannot be")
    (h.expectAssertion "a prune target below 550 MiB is refused" (node { prune = 100; }) "below")
    (h.expectNoFailedAssertions "prune = 550 is fine" (node { prune = 550; }))
    (h.expectEvalError {
      name = "a misspelt chainstead option fails the evaluation";
      modules = [ { services.chainstead.bitcoind.netwrok = "regtest"; } ];
      message = "does not exist";
    })
    (h.expectEvalError {
      name = "an unknown network is a type error";
      modules = [ { services.chainstead.bitcoind.network = "testnet3"; } ];
      message = "is not of type";
    })
  ];
}
