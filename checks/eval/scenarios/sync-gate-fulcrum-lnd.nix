# The sync gate, Fulcrum and LND: the units, path units and targets and how
# they are wired (nothing boot or a switch waits for depends on a sync), the
# gate manifests, fulcrum.conf and lnd.conf, the wallet handling, and that no
# credential ends up in a rendered file, a command line or the manifests.
{ lib, harness }:
let
  h = harness;
  inherit (h) pkgs;

  tiers = {
    fast.path = "/srv/fast";
    bulk.path = "/srv/bulk";
  };
  node =
    chainstead:
    h.evalConfig [
      {
        services.chainstead = {
          storage = tiers;
          bitcoind.enable = true;
        }
        // chainstead;
      }
    ];

  both = node {
    fulcrum.enable = true;
    lnd.enable = true;
  };
  regtest = node {
    bitcoind = {
      enable = true;
      network = "regtest";
    };
    fulcrum.enable = true;
    lnd.enable = true;
  };
  lndOnly = node { lnd.enable = true; };
  bitcoindOnly = node { };

  # Fulcrum and LND on a bitcoind elsewhere, with user and password file.
  remote = h.evalConfig [
    {
      services.chainstead = {
        storage = tiers;
        fulcrum = {
          enable = true;
          bitcoind = {
            host = "10.0.0.2";
            port = 8332;
            network = "mainnet";
            user = "electrum";
            passwordFile = "/run/chainstead/secrets/fulcrum/rpc-password";
          };
        };
        lnd = {
          enable = true;
          network = "mainnet";
          bitcoind = {
            host = "10.0.0.2";
            port = 8332;
            user = "electrum";
            passwordFile = "/run/chainstead/secrets/fulcrum/rpc-password";
            zmqRawBlock = "tcp://10.0.0.2:28332";
            zmqRawTx = "tcp://10.0.0.2:28333";
          };
        };
      };
    }
  ];

  # The same, with the password from OpenBao: the secret the bitcoind host's
  # rpc.users.electrum.passwordSecret names. Written with the old name,
  # passwordSecretPath, as these checks were; renamed-options.nix shows the
  # new name gives the same configuration.
  remoteClient = {
    host = "10.0.0.2";
    port = 8332;
    user = "electrum";
    passwordSecretPath = "chainstead/bitcoind/rpc-electrum";
  };
  openbao = {
    address = "https://bao.lan:8200";
    roleIdFile = "/var/lib/chainstead/bao/role-id";
    secretIdFile = "/var/lib/chainstead/bao/secret-id";
  };
  remoteBao = h.evalConfig [
    {
      services.chainstead = {
        storage = tiers;
        secrets = { inherit openbao; };
        fulcrum = {
          enable = true;
          bitcoind = remoteClient // {
            network = "mainnet";
          };
        };
        lnd = {
          enable = true;
          network = "mainnet";
          bitcoind = remoteClient // {
            zmqRawBlock = "tcp://10.0.0.2:28332";
            zmqRawTx = "tcp://10.0.0.2:28333";
          };
        };
      };
    }
  ];
  baoManifest = h.renderedJSON remoteBao.services.chainstead.secrets.manifest.unchecked;

  svc = config: name: config.systemd.services.${name};
  lines = drv: lib.splitString "\n" (h.renderedText drv);
  fulcrumConf = config: lines config.services.chainstead.fulcrum.configFile;
  lndConf = config: lines config.services.chainstead.lnd.configFile;
  manifest = config: name: h.renderedJSON config.system.build.chainstead-sync-gate-manifests.${name}.manifest;
  # Units pulled in at boot (and by a switch) through multi-user.target.
  bootUnits =
    config:
    lib.attrNames (lib.filterAttrs (_: s: lib.elem "multi-user.target" s.wantedBy) config.systemd.services);
  orderedAfter = config: target: lib.filter (n: lib.elem target (svc config n).after) (bootUnits config);

in
{
  gate-units = [
    (h.expectNoFailedAssertions "bitcoind, Fulcrum and LND evaluate cleanly" both)
    (h.expectNoFailedAssertions "the regtest stack evaluates cleanly" regtest)
    (h.expectNoFailedAssertions "Fulcrum and LND on a remote bitcoind evaluate cleanly" remote)
    (h.expectTrue "no gate without a consumer" (!(bitcoindOnly.systemd.services ? chainstead-sync-gate-bitcoind))
      "services: ${h.show (lib.attrNames bitcoindOnly.systemd.services)}"
    )
    (h.expectTrue "LND alone declares the bitcoind gate" (lndOnly.systemd.services ? chainstead-sync-gate-bitcoind) "")
    (h.expectContains "the bitcoind gate starts with multi-user" "multi-user.target"
      (svc both "chainstead-sync-gate-bitcoind").wantedBy
    )
    (h.expectContains "the bitcoind gate starts after the local bitcoind" "bitcoind.service"
      (svc both "chainstead-sync-gate-bitcoind").after
    )
    (h.expectEqual "the gate is Type=notify (READY once its manifest is loaded)" "notify"
      (svc both "chainstead-sync-gate-bitcoind").serviceConfig.Type
    )
    (h.expectEqual "a failing gate is restarted with backoff" {
      Restart = "on-failure";
      RestartSteps = 10;
      RestartMaxDelaySec = "5min";
    } { inherit ((svc both "chainstead-sync-gate-bitcoind").serviceConfig) Restart RestartSteps RestartMaxDelaySec; })
    (h.expectEqual "the gate runs as chainstead-sync" "chainstead-sync"
      (svc both "chainstead-sync-gate-bitcoind").serviceConfig.User
    )
    (h.expectContains "the gate may read the cookie (bitcoin-rpc)" "bitcoin-rpc"
      (svc both "chainstead-sync-gate-bitcoind").serviceConfig.SupplementaryGroups
    )
    (h.expectEqual "the gate keeps the strict baseline" "strict"
      (svc both "chainstead-sync-gate-bitcoind").serviceConfig.ProtectSystem
    )
    (h.expectContains "the gate may write the flag directory" "/run/chainstead/sync"
      (svc both "chainstead-sync-gate-bitcoind").serviceConfig.ReadWritePaths
    )
    (h.expectTrue "the flag directory is not a RuntimeDirectory (a gate restart keeps the flag)"
      (!((svc both "chainstead-sync-gate-bitcoind").serviceConfig ? RuntimeDirectory))
      ""
    )
    (h.expectContains "the flag directory comes from tmpfiles"
      "d /run/chainstead/sync 0755 chainstead-sync chainstead-sync - -"
      both.systemd.tmpfiles.rules
    )
    (h.expectEqual "the gate runs `wait` on its checked manifest"
      "${pkgs.chainstead-sync-gate}/bin/chainstead-sync-gate wait --manifest ${both.system.build.chainstead-sync-gate-manifests.bitcoind}"
      (svc both "chainstead-sync-gate-bitcoind").serviceConfig.ExecStart
    )
    (h.expectContains "the manifest is validated when the system is built" "validate --manifest \"$manifest\""
      both.system.build.chainstead-sync-gate-manifests.bitcoind.buildCommand
    )
    (h.expectContains "a changed manifest restarts the gate"
      both.system.build.chainstead-sync-gate-manifests.bitcoind
      (svc both "chainstead-sync-gate-bitcoind").restartTriggers
    )
    (h.expectTrue "the chainstead-sync user and the metrics group exist"
      (both.users.users ? chainstead-sync && both.users.groups ? chainstead-metrics)
      ""
    )
  ];

  path-units-and-targets = [
    (h.expectEqual "the bitcoind path unit starts the synced target when the flag exists" {
      PathExists = "/run/chainstead/sync/bitcoind";
      Unit = "chainstead-bitcoind-synced.target";
    } both.systemd.paths.chainstead-bitcoind-synced.pathConfig)
    (h.expectContains "the path unit is active from boot" "multi-user.target"
      both.systemd.paths.chainstead-bitcoind-synced.wantedBy
    )
    (h.expectEqual "the lnd path unit starts the lnd-ready target" {
      PathExists = "/run/chainstead/sync/lnd";
      Unit = "chainstead-lnd-ready.target";
    } both.systemd.paths.chainstead-lnd-ready.pathConfig)
    (h.expectEqual "the synced target is not wanted by anything at boot" [ ]
      both.systemd.targets.chainstead-bitcoind-synced.wantedBy
    )
    (h.expectEqual "the synced target orders after nothing (its start never waits)" [ ]
      both.systemd.targets.chainstead-bitcoind-synced.after
    )
    (h.expectEqual "the lnd-ready target is not wanted by anything at boot" [ ]
      both.systemd.targets.chainstead-lnd-ready.wantedBy
    )
    (h.expectEqual "nothing started by multi-user orders after the synced target" [ ]
      (orderedAfter both "chainstead-bitcoind-synced.target")
    )
    (h.expectEqual "nothing started by multi-user orders after the lnd-ready target" [ ]
      (orderedAfter both "chainstead-lnd-ready.target")
    )
    (h.expectEqual "the lnd gate runs with LND, not at boot" [ "lnd.service" ]
      (svc both "chainstead-sync-gate-lnd").wantedBy
    )
    (h.expectContains "the lnd gate starts after LND" "lnd.service" (svc both "chainstead-sync-gate-lnd").after)
  ];

  fulcrum-wiring = [
    (h.expectEqual "Fulcrum is wanted by the synced target only" [ "chainstead-bitcoind-synced.target" ]
      (svc both "fulcrum").wantedBy
    )
    (h.expectContains "Fulcrum orders after the synced target" "chainstead-bitcoind-synced.target"
      (svc both "fulcrum").after
    )
    (h.expectContains "Fulcrum orders after bitcoind" "bitcoind.service" (svc both "fulcrum").after)
    (h.expectEqual "Fulcrum runs as fulcrum" "fulcrum" (svc both "fulcrum").serviceConfig.User)
    (h.expectContains "Fulcrum reads the cookie through bitcoin-rpc" "bitcoin-rpc" both.users.users.fulcrum.extraGroups)
    (h.expectEqual "Fulcrum's /proc/meminfo exception" "all" (svc both "fulcrum").serviceConfig.ProcSubset)
    (h.expectEqual "Fulcrum keeps the strict baseline otherwise" "strict" (svc both "fulcrum").serviceConfig.ProtectSystem)
    (h.expectEqual "Fulcrum runs with its store config"
      "${pkgs.fulcrum}/bin/Fulcrum ${both.services.chainstead.fulcrum.configFile}"
      (svc both "fulcrum").serviceConfig.ExecStart
    )
    (
      let
        # A Fulcrum package like nixpkgs' 1.12, without meta.mainProgram.
        package = pkgs.fulcrum.overrideAttrs (_: {
          version = "1.12.0.1";
          meta = { };
        });
      in
      h.expectTrue "Fulcrum's executable is named, not taken from mainProgram"
        (lib.hasPrefix "${package}/bin/Fulcrum " (svc (node {
          fulcrum = {
            enable = true;
            inherit package;
          };
        }) "fulcrum").serviceConfig.ExecStart)
        ""
    )
    (h.expectEqual "the self-signed certificate is made before the start" 1
      (lib.length (h.ownSteps (svc both "fulcrum").serviceConfig.ExecStartPre))
    )
    (h.expectEqual "no certificate step with a provided certificate" 0
      (lib.length (
        h.ownSteps
          (svc (node {
            fulcrum = {
              enable = true;
              ssl.certFile = "/var/lib/acme/e/fullchain.pem";
              ssl.keyFile = "/var/lib/acme/e/key.pem";
            };
          }) "fulcrum").serviceConfig.ExecStartPre
      ))
    )
    (h.expectTrue "enabling Fulcrum turns txindex on" both.services.chainstead.bitcoind.txindex "")
    (h.expectTrue "LND alone leaves txindex off" (!lndOnly.services.chainstead.bitcoind.txindex) "")
    (h.expectContains "Fulcrum's index lives on the fast tier" "/srv/fast/fulcrum"
      (svc both "fulcrum").unitConfig.RequiresMountsFor
    )
    (h.expectEqual "the Fulcrum ports stay closed by default" [ ] both.networking.firewall.allowedTCPPorts)
    (h.expectEqual "openFirewall opens TCP and SSL" [ 50001 50002 ]
      (node { fulcrum = { enable = true; openFirewall = true; }; }).networking.firewall.allowedTCPPorts
    )
  ];

  fulcrum-gate = [
    (h.expectEqual "the Fulcrum gate compares Fulcrum's height with bitcoind's" {
      kind = "electrum";
      address = "127.0.0.1:50001";
      tls = false;
      tolerance_blocks = 1;
      reference = {
        kind = "bitcoind";
        rpc_url = "http://127.0.0.1:18443";
        chain = "regtest";
        cookie_file = "/run/chainstead/bitcoind-rpc/cookie";
      };
    } (manifest regtest "fulcrum").backend)
    (h.expectEqual "the Fulcrum gate runs with Fulcrum, not at boot" [ "fulcrum.service" ]
      (svc both "chainstead-sync-gate-fulcrum").wantedBy
    )
    (h.expectEqual "its flag starts chainstead-fulcrum-synced.target" {
      PathExists = "/run/chainstead/sync/fulcrum";
      Unit = "chainstead-fulcrum-synced.target";
    } both.systemd.paths.chainstead-fulcrum-synced.pathConfig)
    (h.expectEqual "with a password, the reference reads the gate's own credential"
      "/run/credentials/chainstead-sync-gate-fulcrum.service/rpc-password"
      (manifest remote "fulcrum").backend.reference.rpc_password_file
    )
    (h.expectTrue "LND alone has no Fulcrum gate" (!(lndOnly.systemd.services ? chainstead-sync-gate-fulcrum)) "")
  ];

  # fulcrum.dbDir: the index where another setup left it, inside dataDir.
  fulcrum-db-dir =
    let
      inDataDir = node {
        fulcrum = {
          enable = true;
          dbDir = "/srv/fast/fulcrum";
        };
      };
      fulcrumDirs =
        config:
        lib.filterAttrs (n: _: lib.hasPrefix "fulcrum" n) config.services.chainstead.storage.directories;
    in
    [
      (h.expectEqual "the default index directory is <dataDir>/db" "/srv/fast/fulcrum/db"
        both.services.chainstead.fulcrum.dbDir
      )
      (h.expectEqual "Fulcrum may write its directory only" [ "/srv/fast/fulcrum" ]
        (svc both "fulcrum").serviceConfig.ReadWritePaths
      )
      (h.expectEqual "Fulcrum requires its directory's mount" [ "/srv/fast/fulcrum" ]
        (svc both "fulcrum").unitConfig.RequiresMountsFor
      )
      (h.expectNoFailedAssertions "the index directly in dataDir evaluates cleanly" inDataDir)
      (h.expectContains "Fulcrum's datadir is dataDir itself" "datadir=/srv/fast/fulcrum" (
        fulcrumConf inDataDir
      ))
      (h.expectNotContains "and not db/ below it" "datadir=/srv/fast/fulcrum/db" (
        fulcrumConf inDataDir
      ))
      (h.expectContains "the certificate stays in ssl/" "cert=/srv/fast/fulcrum/ssl/cert.pem" (
        fulcrumConf inDataDir
      ))
      (h.expectEqual "the same storage directory, size and tier" (fulcrumDirs both) (
        fulcrumDirs inDataDir
      ))
      (h.expectEqual "the same writable paths" [ "/srv/fast/fulcrum" ]
        (svc inDataDir "fulcrum").serviceConfig.ReadWritePaths
      )
      (h.expectEqual "the same mounts" [ "/srv/fast/fulcrum" ]
        (svc inDataDir "fulcrum").unitConfig.RequiresMountsFor
      )
      (h.expectContains "a directory below dataDir is taken" "datadir=/srv/fast/fulcrum/index"
        (
          fulcrumConf (node {
            fulcrum = {
              enable = true;
              dbDir = "/srv/fast/fulcrum/index";
            };
          })
        )
      )
      (h.expectAssertion "an index outside dataDir is refused, naming both options"
        (node {
          fulcrum = {
            enable = true;
            dbDir = "/srv/fast/fulcrum-db";
          };
        })
        "services.chainstead.fulcrum.dbDir (/srv/fast/fulcrum-db) must be"
      )
    ];

  fulcrum-conf = [
    (h.expectContains "the index in db/ on the fast tier" "datadir=/srv/fast/fulcrum/db" (fulcrumConf both))
    (h.expectContains "the local bitcoind's RPC" "bitcoind=127.0.0.1:8332" (fulcrumConf both))
    (h.expectContains "regtest RPC port" "bitcoind=127.0.0.1:18443" (fulcrumConf regtest))
    (h.expectContains "cookie auth" "rpccookie=/run/chainstead/bitcoind-rpc/cookie" (fulcrumConf both))
    (h.expectContains "TCP on loopback" "tcp=127.0.0.1:50001" (fulcrumConf both))
    (h.expectContains "SSL on loopback" "ssl=127.0.0.1:50002" (fulcrumConf both))
    (h.expectContains "the self-signed certificate" "cert=/srv/fast/fulcrum/ssl/cert.pem" (fulcrumConf both))
    (h.expectContains "the self-signed key" "key=/srv/fast/fulcrum/ssl/key.pem" (fulcrumConf both))
    (h.expectContains "a provided key comes through LoadCredential" "key=/run/credentials/fulcrum.service/ssl-key"
      (fulcrumConf (node {
        fulcrum = {
          enable = true;
          ssl.certFile = "/var/lib/acme/e/fullchain.pem";
          ssl.keyFile = "/var/lib/acme/e/key.pem";
        };
      }))
    )
    (h.expectContains "half of the 2 GB budget for RocksDB" "db_mem=1024" (fulcrumConf both))
    (h.expectContains "open files sized for a mainnet index" "db_max_open_files=200" (fulcrumConf both))
    (h.expectContains "no crash-unsafe UTXO cache by default" "utxo_cache=0" (fulcrumConf both))
    (h.expectContains "no peer discovery" "peering=0" (fulcrumConf both))
    (h.expectContains "no self-announcement" "announce=0" (fulcrumConf both))
    (h.expectContains "freeform settings pass through" "max_clients_per_ip=24"
      (fulcrumConf (node { fulcrum = { enable = true; settings.max_clients_per_ip = 24; }; }))
    )
    (h.expectNotContains "no ZMQ key (Fulcrum asks bitcoind's getzmqnotifications)" "zmq"
      (h.renderedText both.services.chainstead.fulcrum.configFile)
    )
    (h.expectNoSecrets "fulcrum.conf holds no secret" { value = h.renderedText both.services.chainstead.fulcrum.configFile; })
  ];

  fulcrum-remote = [
    (h.expectContains "remote host and port" "bitcoind=10.0.0.2:8332" (fulcrumConf remote))
    (h.expectNotContains "no cookie with a password" "rpccookie" (h.renderedText remote.services.chainstead.fulcrum.configFile))
    (h.expectNotContains "the store config has no rpcpassword" "rpcpassword"
      (h.renderedText remote.services.chainstead.fulcrum.configFile)
    )
    (h.expectEqual "Fulcrum then runs with the config assembled in /run"
      "${pkgs.fulcrum}/bin/Fulcrum /run/fulcrum/fulcrum.conf"
      (svc remote "fulcrum").serviceConfig.ExecStart
    )
    (h.expectContains "the password file comes through LoadCredential"
      "bitcoind-rpc-password:/run/chainstead/secrets/fulcrum/rpc-password"
      (svc remote "fulcrum").serviceConfig.LoadCredential
    )
    (h.expectEqual "the runtime directory is private" "0700" (svc remote "fulcrum").serviceConfig.RuntimeDirectoryMode)
    (h.expectTrue "no local bitcoind: no bitcoin-rpc group" (!(lib.elem "bitcoin-rpc" remote.users.users.fulcrum.extraGroups)) "")
    (h.expectNotContains "no ordering after a bitcoind that is not here" "bitcoind.service" (svc remote "fulcrum").after)
  ];

  lnd-wiring = [
    (h.expectEqual "LND is wanted by the synced target only" [ "chainstead-bitcoind-synced.target" ]
      (svc both "lnd").wantedBy
    )
    (h.expectContains "LND orders after the synced target" "chainstead-bitcoind-synced.target" (svc both "lnd").after)
    (h.expectContains "LND restarts with the local bitcoind (new cookie)" "bitcoind.service" (svc both "lnd").partOf)
    (h.expectEqual "LND is Type=notify" "notify" (svc both "lnd").serviceConfig.Type)
    (h.expectEqual "LND runs as lnd" "lnd" (svc both "lnd").serviceConfig.User)
    (h.expectEqual "LND's umask keeps tls.cert world-readable" "0022" (svc both "lnd").serviceConfig.UMask)
    (h.expectContains "LND reads the cookie through bitcoin-rpc" "bitcoin-rpc" both.users.users.lnd.extraGroups)
    (h.expectContains "LND's data lives on the fast tier" "/srv/fast/lnd" (svc both "lnd").unitConfig.RequiresMountsFor)
    (h.expectEqual "the LND directory is traversable but not listable" "0711"
      both.services.chainstead.storage.directories.lnd.mode
    )
    (h.expectEqual "the macaroon directory is setgid lnd-macaroon" {
      mode = "2750";
      user = "lnd";
      group = "lnd-macaroon";
    } { inherit (both.services.chainstead.storage.directories.lnd-macaroons) mode user group; })
    (h.expectTrue "the macaroon group exists" (both.users.groups ? lnd-macaroon) "")
    (h.expectEqual "the interface for ThunderHub and the backup" {
      tlsCertFile = "/srv/fast/lnd/tls.cert";
      macaroonDir = "/srv/fast/lnd/macaroons";
      backupFile = "/srv/fast/lnd/data/chain/bitcoin/mainnet/channel.backup";
      restPort = 8080;
      rpcPort = 10009;
      group = "lnd-macaroon";
    } { inherit (both.services.chainstead.lnd) tlsCertFile macaroonDir backupFile restPort rpcPort group; })
    (h.expectEqual "the P2P port stays closed by default" [ ] lndOnly.networking.firewall.allowedTCPPorts)
  ];

  lnd-conf = [
    (h.expectContains "mainnet" "bitcoin.mainnet=1" (lndConf both))
    (h.expectContains "regtest" "bitcoin.regtest=1" (lndConf regtest))
    (h.expectContains "bitcoind backend" "bitcoin.node=bitcoind" (lndConf both))
    (h.expectContains "bitcoind RPC host" "bitcoind.rpchost=127.0.0.1:8332" (lndConf both))
    (h.expectContains "cookie auth" "bitcoind.rpccookie=/run/chainstead/bitcoind-rpc/cookie" (lndConf both))
    (h.expectContains "ZMQ rawblock" "bitcoind.zmqpubrawblock=tcp://127.0.0.1:28332" (lndConf both))
    (h.expectContains "ZMQ rawtx" "bitcoind.zmqpubrawtx=tcp://127.0.0.1:28333" (lndConf both))
    (h.expectContains "gRPC on loopback" "rpclisten=127.0.0.1:10009" (lndConf both))
    (h.expectContains "REST on loopback" "restlisten=127.0.0.1:8080" (lndConf both))
    (h.expectContains "unlock from the secret loader's password file" "wallet-unlock-password-file=/run/chainstead/secrets/lnd/wallet-password"
      (lndConf both)
    )
    (h.expectContains "the admin macaroon in the group directory" "adminmacaroonpath=/srv/fast/lnd/macaroons/admin.macaroon"
      (lndConf both)
    )
    (h.expectContains "no host names in tls.cert" "tlsdisableautofill=1" (lndConf both))
    (h.expectNotContains "wallet creation over RPC is never allowed in the config" "wallet-unlock-allow-create"
      (h.renderedText both.services.chainstead.lnd.configFile)
    )
    (h.expectNotContains "datadir is left to --lnddir" "datadir=" (h.renderedText both.services.chainstead.lnd.configFile))
    (h.expectNoSecrets "lnd.conf holds no secret" { value = h.renderedText both.services.chainstead.lnd.configFile; })
    (h.expectContains "a provided password file is used as is"
      "wallet-unlock-password-file=/var/lib/keys/lnd-wallet-password"
      (lndConf (node {
        lnd = {
          enable = true;
          walletPasswordFile = "/var/lib/keys/lnd-wallet-password";
        };
      }))
    )
  ];

  lnd-remote = [
    (h.expectNotContains "no cookie with a password" "rpccookie" (h.renderedText remote.services.chainstead.lnd.configFile))
    (h.expectNotContains "the store config has no rpcpass" "rpcpass" (h.renderedText remote.services.chainstead.lnd.configFile))
    (h.expectContains "remote ZMQ" "bitcoind.zmqpubrawblock=tcp://10.0.0.2:28332" (lndConf remote))
    (h.expectContains "the password file comes through LoadCredential"
      "bitcoind-rpc-password:/run/chainstead/secrets/fulcrum/rpc-password"
      (svc remote "lnd").serviceConfig.LoadCredential
    )
    (h.expectEqual "no PartOf a bitcoind that is not here" [ ] (svc remote "lnd").partOf)
  ];

  # Each unit that reads the remote bitcoind's password loads it from
  # OpenBao through a loader of its own, required by and ordered before it.
  remote-password-from-openbao =
    let
      readers = {
        fulcrum = "fulcrum";
        lnd = "lnd";
        sync-gate-bitcoind = "chainstead-sync-gate-bitcoind";
        sync-gate-fulcrum = "chainstead-sync-gate-fulcrum";
      };
      perReader =
        set: unit:
        let
          loader = svc remoteBao "chainstead-secrets-${set}";
          file = "/run/chainstead/secrets/${set}/bitcoind-rpc-password";
        in
        [
          (h.expectEqual "${unit}: the loader fetches the password's KV path and field" {
            path = "chainstead/bitcoind/rpc-electrum";
            field = "password";
            generate = null;
          } { inherit (baoManifest.services.${set}.secrets.bitcoind-rpc-password) path field generate; })
          (h.expectContains "${unit}: requires its loader" "${unit}.service" loader.requiredBy)
          (h.expectContains "${unit}: its loader runs first" "${unit}.service" loader.before)
          (h.expectContains "${unit}: the password comes through LoadCredential"
            (if lib.hasPrefix "chainstead-sync-gate-" unit then "rpc-password:${file}" else "bitcoind-rpc-password:${file}")
            (svc remoteBao unit).serviceConfig.LoadCredential
          )
        ];
    in
    [
      (h.expectNoFailedAssertions "Fulcrum and LND with the remote password from OpenBao evaluate cleanly" remoteBao)
      (h.expectEqual "one loader set per reader of the password, besides LND's wallet password"
        (lib.attrNames readers)
        (lib.attrNames baoManifest.services)
      )
      (h.expectEqual "LND's set keeps its wallet password" [
        "bitcoind-rpc-password"
        "wallet-password"
      ] (lib.attrNames baoManifest.services.lnd.secrets))
      (h.expectEqual "the gate reads its credential, with the user" {
        rpc_user = "electrum";
        rpc_password_file = "/run/credentials/chainstead-sync-gate-bitcoind.service/rpc-password";
      } { inherit ((manifest remoteBao "bitcoind").backend) rpc_user rpc_password_file; })
      (h.expectEqual "Fulcrum runs with the config assembled in /run"
        "${pkgs.fulcrum}/bin/Fulcrum /run/fulcrum/fulcrum.conf"
        (svc remoteBao "fulcrum").serviceConfig.ExecStart
      )
      (h.expectNoSecrets "the manifests hold names and paths only" {
        value = [
          baoManifest
          (manifest remoteBao "bitcoind")
          (manifest remoteBao "fulcrum")
        ];
      })
    ]
    ++ lib.concatLists (lib.mapAttrsToList perReader readers);

  lnd-wallet = [
    (h.expectEqual "the wallet is created by a root oneshot after LND" {
      User = "root";
      Type = "oneshot";
    } { inherit ((svc both "chainstead-lnd-wallet-init").serviceConfig) User Type; })
    (h.expectContains "wallet-init runs after LND" "lnd.service" (svc both "chainstead-lnd-wallet-init").after)
    (h.expectContains "wallet-init runs with every start of LND" "lnd.service" (svc both "chainstead-lnd-wallet-init").wantedBy)
    (h.expectEqual "the password reaches it through LoadCredential" [ "wallet-password:/run/chainstead/secrets/lnd/wallet-password" ]
      (svc both "chainstead-lnd-wallet-init").serviceConfig.LoadCredential
    )
    (h.expectEqual "the secret loader provides a generated wallet password" {
      path = "chainstead/lnd";
      field = "wallet-password";
      length = 32;
    } (
      let
        spec = both.services.chainstead.secrets.services.lnd.secrets.wallet-password;
      in
      {
        inherit (spec) path field;
        inherit (spec.generate) length;
      }
    ))
    (h.expectContains "LND requires its secrets loader" "lnd.service"
      (svc both "chainstead-secrets-lnd").requiredBy
    )
    (h.expectEqual "a provided password file needs no loader" false (
      (node {
        lnd = {
          enable = true;
          walletPasswordFile = "/var/lib/keys/lnd-wallet-password";
        };
      }).systemd.services ? chainstead-secrets-lnd
    ))
    (h.expectEqual "without OpenBao the seed stays on the host only" false (
      both.systemd.services ? chainstead-lnd-seed-store
    ))
    (h.expectContains "with OpenBao the seed is copied there after the wallet is made"
      "chainstead-lnd-wallet-init.service"
      (svc (node {
        lnd.enable = true;
        secrets.openbao = {
          address = "https://bao.example:8200";
          tokenFile = "/var/lib/keys/bao-token";
        };
      }) "chainstead-lnd-seed-store").after
    )
    (h.expectEqual "it may write the seed's directory only" [ "/var/lib/chainstead/lnd-seed" ]
      (svc both "chainstead-lnd-wallet-init").serviceConfig.ReadWritePaths
    )
    (h.expectContains "the seed's directory is root-only" "d /var/lib/chainstead/lnd-seed 0700 root root - -"
      both.systemd.tmpfiles.rules
    )
    (h.expectEqual "wallet-init keeps an empty capability set" [ "" ]
      (svc both "chainstead-lnd-wallet-init").serviceConfig.CapabilityBoundingSet
    )
  ];

  lnd-gate = [
    (h.expectEqual "the lnd gate manifest" {
      version = 1;
      name = "lnd";
      flag_file = "/run/chainstead/sync/lnd";
      metrics_dir = "/var/lib/prometheus-node-exporter-text-files";
      poll = {
        slow_secs = 20;
        fast_secs = 1;
      };
      backend = {
        kind = "lnd";
        rest_url = "https://127.0.0.1:8080";
        tls_cert_file = "/srv/fast/lnd/tls.cert";
      };
    } (manifest both "lnd"))
    (h.expectEqual "the lnd gate needs no credential group" [ "chainstead-metrics" ]
      (svc both "chainstead-sync-gate-lnd").serviceConfig.SupplementaryGroups
    )
  ];

  bitcoind-gate = [
    (h.expectEqual "the bitcoind gate manifest (mainnet, cookie)" {
      version = 1;
      name = "bitcoind";
      flag_file = "/run/chainstead/sync/bitcoind";
      metrics_dir = "/var/lib/prometheus-node-exporter-text-files";
      poll = {
        slow_secs = 20;
        fast_secs = 1;
      };
      backend = {
        kind = "bitcoind";
        rpc_url = "http://127.0.0.1:8332";
        chain = "main";
        cookie_file = "/run/chainstead/bitcoind-rpc/cookie";
      };
    } (manifest both "bitcoind"))
    (h.expectEqual "regtest: chain and port as getblockchaininfo reports them" {
      chain = "regtest";
      rpc_url = "http://127.0.0.1:18443";
    } { inherit ((manifest regtest "bitcoind").backend) chain rpc_url; })
    (h.expectEqual "testnet4's chain name" "testnet4"
      (manifest (node {
        bitcoind = {
          enable = true;
          network = "testnet4";
        };
        lnd.enable = true;
      }) "bitcoind").backend.chain
    )
    (h.expectEqual "a remote bitcoind with a password file" {
      kind = "bitcoind";
      rpc_url = "http://10.0.0.2:8332";
      chain = "main";
      rpc_user = "electrum";
      rpc_password_file = "/run/credentials/chainstead-sync-gate-bitcoind.service/rpc-password";
    } (manifest remote "bitcoind").backend)
    (h.expectContains "the gate gets the password file through LoadCredential"
      "rpc-password:/run/chainstead/secrets/fulcrum/rpc-password"
      (svc remote "chainstead-sync-gate-bitcoind").serviceConfig.LoadCredential
    )
    (h.expectEqual "poll intervals come from the options" {
      slow_secs = 30;
      fast_secs = 2;
    } (manifest (node {
      lnd.enable = true;
      syncGate.poll = {
        slowSecs = 30;
        fastSecs = 2;
      };
    }) "bitcoind").poll)
  ];

  operator-lncli =
    let
      wrapper = lib.findFirst (p: (p.name or "") == "lncli") null both.environment.systemPackages;
    in
    [
      (h.expectTrue "an lncli wrapper is installed" (wrapper != null) "")
      (h.expectContains "lncli uses the network" "'--network=mainnet'" (h.renderedText wrapper))
      (h.expectContains "lncli uses the admin macaroon" "'--macaroonpath=/srv/fast/lnd/macaroons/admin.macaroon'"
        (h.renderedText wrapper)
      )
      (h.expectContains "lncli uses the TLS certificate" "'--tlscertpath=/srv/fast/lnd/tls.cert'" (h.renderedText wrapper))
      (h.expectContains "lncli talks to the gRPC port" "'--rpcserver=127.0.0.1:10009'" (h.renderedText wrapper))
    ];

  no-secrets = [
    (h.expectNoSecrets "no secret anywhere in the configuration" { config = both; })
    (h.expectNoSecrets "no secret anywhere with a remote bitcoind" { config = remote; })
    (h.expectNoSecrets "the gate manifests hold no secret" {
      value = [
        (manifest both "bitcoind")
        (manifest both "lnd")
        (manifest remote "bitcoind")
        (manifest remote "fulcrum")
      ];
    })
  ];

  refused = [
    (h.expectAssertion "Fulcrum refuses a pruned bitcoind" (node {
      bitcoind = {
        enable = true;
        prune = 1000;
      };
      fulcrum.enable = true;
    }) "must not be a pruning node")
    (h.expectAssertion "Fulcrum refuses txindex = false" (node {
      bitcoind = {
        enable = true;
        txindex = false;
      };
      fulcrum.enable = true;
    }) "needs services.chainstead.bitcoind.txindex = true")
    (h.expectAssertion "Fulcrum refuses both a cookie and a password" (node {
      fulcrum = {
        enable = true;
        bitcoind = {
          user = "u";
          passwordFile = "/run/secret";
        };
      };
    }) "exactly one credential")
    (h.expectAssertion "a password from OpenBao needs OpenBao" (node {
      fulcrum = {
        enable = true;
        bitcoind = remoteClient // {
          cookieFile = null;
        };
      };
    }) "passwordSecret needs OpenBao")
    (h.expectAssertion "a password without its user is refused, next to the local cookie" (node {
      secrets = { inherit openbao; };
      fulcrum = {
        enable = true;
        bitcoind.passwordSecretPath = "chainstead/bitcoind/rpc-electrum";
      };
    }) "exactly one credential")
    (h.expectAssertion "a password without its user is refused" (node {
      secrets = { inherit openbao; };
      lnd = {
        enable = true;
        bitcoind = remoteClient // {
          cookieFile = null;
          user = null;
        };
      };
    }) "set both or neither")
    (h.expectAssertion "a user without a password is refused" (node {
      lnd = {
        enable = true;
        bitcoind = {
          cookieFile = null;
          user = "lnd";
        };
      };
    }) "exactly one credential")
    (h.expectAssertion "a password file and a KV path are not both set" (node {
      secrets = { inherit openbao; };
      lnd = {
        enable = true;
        bitcoind = remoteClient // {
          cookieFile = null;
          passwordFile = "/run/secret";
        };
      };
    }) "not both")
    (h.expectAssertion "a certificate without its key is refused" (node {
      fulcrum = {
        enable = true;
        ssl.certFile = "/var/lib/acme/e/fullchain.pem";
      };
    }) "must be set together")
    (h.expectAssertion "an rpcpassword in Fulcrum's settings is refused" (node {
      fulcrum = {
        enable = true;
        settings.rpcpassword = "x";
      };
    }) "would put a secret into the world-readable Nix store")
    (h.expectAssertion "LND refuses a missing ZMQ endpoint" (node {
      bitcoind = {
        enable = true;
        zmq.rawtx = null;
      };
      lnd.enable = true;
    }) "ZMQ rawblock and rawtx")
    (h.expectAssertion "LND refuses bitcoind.rpcpass in settings" (node {
      lnd = {
        enable = true;
        settings."bitcoind.rpcpass" = "x";
      };
    }) "bitcoind.passwordFile")
    (h.expectAssertion "LND on another network than the local bitcoind is refused" (node {
      lnd = {
        enable = true;
        network = "signet";
      };
    }) "differs from")
    (h.expectAssertion "a fast poll slower than the slow one is refused" (node {
      lnd.enable = true;
      syncGate.poll = {
        slowSecs = 5;
        fastSecs = 10;
      };
    }) "must not exceed")
    (h.expectEvalError {
      name = "a wallet password file in the Nix store is refused";
      modules = [
        {
          services.chainstead = {
            storage = tiers;
            bitcoind.enable = true;
            lnd = {
              enable = true;
              walletPasswordFile = "${builtins.storeDir}/0000000000000000000000000000000a-pw";
            };
          };
        }
      ];
      force = config: config.services.chainstead.lnd.walletPasswordFile;
      message = "is not of type";
    })
  ];

  one-bitcoind-gate = [
    (h.expectAssertion "Fulcrum and LND on different bitcoinds are refused with a clear message" (node {
      fulcrum = {
        enable = true;
        bitcoind = {
          host = "10.0.0.2";
          cookieFile = null;
          user = "fulcrum";
          passwordFile = "/run/keys/fulcrum-rpc";
        };
      };
      lnd.enable = true;
    }) "both start from the one bitcoind sync gate")
  ];

  lnd-restore = [
    (h.expectEqual "a restore rescans with LND's usual window" 2500 both.services.chainstead.lnd.recoveryWindow)
  ];
}
