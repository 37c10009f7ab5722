# services.chainstead.access: nothing beyond loopback by default; each LAN
# switch binds its service and opens exactly its port for exactly the
# listed clients (iptables or nftables by firewall backend); Fulcrum's and
# LND's certificates name the LAN names; the command's manifest.
{ lib, harness }:
let
  h = harness;

  node =
    extra:
    h.evalConfig [
      (lib.recursiveUpdate {
        services.chainstead = {
          storage = h.tiers;
          bitcoind.enable = true;
          fulcrum.enable = true;
          lnd.enable = true;
          monerod.enable = true;
          thunderhub.enable = true;
        };
      } extra)
    ];
  lan =
    switches: node { services.chainstead.access.lan = switches; };
  lines = drv: lib.splitString "\n" (h.renderedText drv);
  fulcrumConf = config: lines config.services.chainstead.fulcrum.configFile;
  lndConf = config: lines config.services.chainstead.lnd.configFile;
  xmrConf = config: lines config.services.chainstead.monerod.configFile;
  rules = config: lib.filter (l: l != "") (lib.splitString "\n" config.networking.firewall.extraCommands);
  nft = config: lib.filter (l: l != "") (lib.splitString "\n" config.networking.firewall.extraInputRules);
  manifest = config: h.renderedJSON config.system.build.chainstead-cli-manifest.manifest;

  clients = [
    "192.168.1.0/24"
    "fd00:1::/64"
  ];
  fulcrumOn = {
    enable = true;
    allowedClients = clients;
    names = [
      "node.home.arpa"
      "192.168.1.10"
    ];
  };
  dflt = node { };
  sparrow = lan { fulcrum = fulcrumOn; };
  sparrowNft = node {
    networking.nftables.enable = true;
    services.chainstead.access.lan.fulcrum = fulcrumOn;
  };
  feather = lan {
    monerod = {
      enable = true;
      allowedClients = [ "192.168.1.20" ];
      names = [ "192.168.1.10" ];
    };
  };
  zeus = lan {
    lnd = {
      enable = true;
      allowedClients = [ "192.168.1.0/24" ];
      names = [
        "node.home.arpa"
        "192.168.1.10"
      ];
    };
  };
  thunder = lan {
    thunderhub = {
      enable = true;
      allowedClients = [ "10.0.0.0/8" ];
    };
  };
in
{
  loopback-by-default = [
    (h.expectNoFailedAssertions "all services without access options evaluate cleanly" dflt)
    (h.expectEqual "no port opened" [ ] dflt.networking.firewall.allowedTCPPorts)
    (h.expectEqual "no iptables rule" "" dflt.networking.firewall.extraCommands)
    (h.expectEqual "no nftables rule" "" dflt.networking.firewall.extraInputRules)
    (h.expectContains "Fulcrum SSL on loopback" "ssl=127.0.0.1:50002" (fulcrumConf dflt))
    (h.expectContains "Fulcrum TCP on loopback" "tcp=127.0.0.1:50001" (fulcrumConf dflt))
    (h.expectContains "LND REST on loopback" "restlisten=127.0.0.1:8080" (lndConf dflt))
    (h.expectContains "LND gRPC on loopback" "rpclisten=127.0.0.1:10009" (lndConf dflt))
    (h.expectNotContains "no LND SANs beyond its own" "tlsautorefresh=1" (lndConf dflt))
    (h.expectContains "monerod RPC on loopback" "rpc-bind-ip=127.0.0.1" (xmrConf dflt))
    (h.expectNotContains "no restricted listener" "rpc-restricted-bind-port=18089" (xmrConf dflt))
    (h.expectContains "monerod asks nobody for updates" "check-updates=disabled" (xmrConf dflt))
    (h.expectEqual "ThunderHub on loopback" "127.0.0.1" dflt.services.chainstead.thunderhub.host)
    (h.expectEqual "the legacy certificate names" [
      "localhost"
      "127.0.0.1"
      "::1"
    ] dflt.services.chainstead.fulcrum.ssl.subjectAltNames)
    (h.expectEqual "the manifest has no LAN entry" [ false false false false ] [
      ((manifest dflt).fulcrum ? lan)
      ((manifest dflt).monerod ? lan)
      ((manifest dflt).lnd ? lan_rest)
      ((manifest dflt).thunderhub ? lan)
    ])
    (h.expectEqual "the command is installed with its manifest" true (
      dflt.environment.etc ? "chainstead/cli.json" && lib.elem dflt.services.chainstead.access.package dflt.environment.systemPackages
    ))
  ];

  fulcrum-lan = [
    (h.expectNoFailedAssertions "Fulcrum on the LAN evaluates cleanly" sparrow)
    (h.expectContains "SSL on all interfaces" "ssl=0.0.0.0:50002" (fulcrumConf sparrow))
    (h.expectContains "TCP stays on loopback" "tcp=127.0.0.1:50001" (fulcrumConf sparrow))
    (h.expectEqual "exactly its port for exactly its clients (iptables)" [
      "iptables -w -A nixos-fw -p tcp --dport 50002 -s 192.168.1.0/24 -j nixos-fw-accept -m comment --comment chainstead-fulcrum"
      "ip6tables -w -A nixos-fw -p tcp --dport 50002 -s fd00:1::/64 -j nixos-fw-accept -m comment --comment chainstead-fulcrum"
    ] (rules sparrow))
    (h.expectEqual "not opened for everyone" [ ] sparrow.networking.firewall.allowedTCPPorts)
    (h.expectEqual "exactly its port for exactly its clients (nftables)" [
      "ip saddr { 192.168.1.0/24 } tcp dport 50002 accept comment \"chainstead-fulcrum\""
      "ip6 saddr { fd00:1::/64 } tcp dport 50002 accept comment \"chainstead-fulcrum\""
    ] (nft sparrowNft))
    (h.expectEqual "no iptables commands with nftables" "" sparrowNft.networking.firewall.extraCommands)
    (h.expectNoFailedAssertions "nftables evaluates cleanly" sparrowNft)
    (h.expectEqual "the certificate names the LAN names and loopback" [
      "localhost"
      "127.0.0.1"
      "::1"
      "node.home.arpa"
      "192.168.1.10"
    ] sparrow.services.chainstead.fulcrum.ssl.subjectAltNames)
    (h.expectEqual "the manifest: LAN names, port and the certificate" {
      hosts = [
        "node.home.arpa"
        "192.168.1.10"
      ];
      port = 50002;
    } (manifest sparrow).fulcrum.lan)
    (h.expectEqual "the certificate the command fingerprints" "/srv/fast/fulcrum/ssl/cert.pem" (manifest sparrow).fulcrum.cert_file)
    (h.expectEqual "the certificate is made before the start" 1 (lib.length (h.ownSteps sparrow.systemd.services.fulcrum.serviceConfig.ExecStartPre)))
  ];

  monerod-lan = [
    (h.expectNoFailedAssertions "monerod on the LAN evaluates cleanly" feather)
    (h.expectContains "a restricted listener on all interfaces" "rpc-restricted-bind-ip=0.0.0.0" (xmrConf feather))
    (h.expectContains "on the restricted port" "rpc-restricted-bind-port=18089" (xmrConf feather))
    (h.expectContains "what monerod needs to bind beyond loopback" "confirm-external-bind=1" (xmrConf feather))
    (h.expectContains "the unrestricted RPC stays on loopback" "rpc-bind-ip=127.0.0.1" (xmrConf feather))
    (h.expectEqual "only the restricted port, only for Feather's host" [
      "iptables -w -A nixos-fw -p tcp --dport 18089 -s 192.168.1.20 -j nixos-fw-accept -m comment --comment chainstead-monerod"
    ] (rules feather))
    (h.expectAssertion "the main RPC may not leave loopback" (node {
      services.chainstead = {
        monerod.rpc.address = "0.0.0.0";
        access.lan.monerod = {
          enable = true;
          allowedClients = [ "192.168.1.20" ];
        };
      };
    }) "the main RPC\nmust stay on loopback")
    (h.expectAssertion "the restricted port must differ from the main one" (node {
      services.chainstead = {
        monerod.rpc.port = 18089;
        access.lan.monerod = {
          enable = true;
          allowedClients = [ "192.168.1.20" ];
        };
      };
    }) "must differ")
  ];

  lnd-lan = [
    (h.expectNoFailedAssertions "LND on the LAN evaluates cleanly" zeus)
    (h.expectContains "REST on all interfaces" "restlisten=0.0.0.0:8080" (lndConf zeus))
    (h.expectContains "gRPC stays on loopback unless asked" "rpclisten=127.0.0.1:10009" (lndConf zeus))
    (h.expectContains "the address in tls.cert" "tlsextraip=192.168.1.10" (lndConf zeus))
    (h.expectContains "the name in tls.cert" "tlsextradomain=node.home.arpa" (lndConf zeus))
    (h.expectContains "tls.cert made again when they change" "tlsautorefresh=1" (lndConf zeus))
    (h.expectEqual "only REST, only for the LAN" [
      "iptables -w -A nixos-fw -p tcp --dport 8080 -s 192.168.1.0/24 -j nixos-fw-accept -m comment --comment chainstead-lnd-rest"
    ] (rules zeus))
    (h.expectEqual "a readonly macaroon by default, never admin" [
      "readonly"
      "/srv/fast/lnd/macaroons/readonly.macaroon"
    ] [
      (manifest zeus).lnd.macaroon_kind
      (manifest zeus).lnd.macaroon_file
    ])
    (h.expectEqual "gRPC when asked: its port too" [ 8080 10009 ] (
      map (r: lib.toInt (lib.elemAt (lib.splitString " " r) 7)) (rules (lan {
        lnd = {
          enable = true;
          grpc = true;
          allowedClients = [ "192.168.1.0/24" ];
          names = [ "192.168.1.10" ];
        };
      }))
    ))
    (h.expectAssertion "LND on the LAN needs names for tls.cert" (lan {
      lnd = {
        enable = true;
        allowedClients = [ "192.168.1.0/24" ];
      };
    }) "needs names")
  ];

  thunderhub-lan = [
    (h.expectNoFailedAssertions "ThunderHub on the LAN evaluates cleanly" thunder)
    (h.expectEqual "on all interfaces" "0.0.0.0" thunder.services.chainstead.thunderhub.host)
    (h.expectEqual "its port for its clients" [
      "iptables -w -A nixos-fw -p tcp --dport 3000 -s 10.0.0.0/8 -j nixos-fw-accept -m comment --comment chainstead-thunderhub"
    ] (rules thunder))
    (h.expectEqual "confined to loopback and its clients while it fetches nothing" [
      [ "localhost" "10.0.0.0/8" ]
      "any"
    ] [
      thunder.systemd.services.thunderhub.serviceConfig.IPAddressAllow
      thunder.systemd.services.thunderhub.serviceConfig.IPAddressDeny
    ])
    (h.expectEqual "not confined once a fetch is asked for" false (
      (node { services.chainstead.thunderhub.fetchPrices = true; }).systemd.services.thunderhub.serviceConfig ? IPAddressDeny
    ))
    (h.expectEqual "its outbound fetches stay off" [ false false false ] [
      thunder.services.chainstead.thunderhub.versionCheck
      thunder.services.chainstead.thunderhub.fetchPrices
      thunder.services.chainstead.thunderhub.fetchFees
    ])
  ];

  mistakes = [
    (h.expectAssertion "a switch without clients" (lan { fulcrum.enable = true; }) "allowedClients is empty")
    (h.expectAssertion "Fulcrum without names" (lan {
      fulcrum = {
        enable = true;
        allowedClients = [ "192.168.1.0/24" ];
      };
    }) "at least one entry in names")
    (h.expectAssertion "no firewall to enforce the list" (node {
      networking.firewall.enable = false;
      services.chainstead.access.lan.fulcrum = fulcrumOn;
    }) "networking.firewall.enable is false")
    (h.expectAssertion "firewalld is not supported" (node {
      networking.firewall.backend = "firewalld";
      services.chainstead.access.lan.fulcrum = fulcrumOn;
    }) "firewalld")
    (h.expectEvalError {
      name = "a client entry that is not an address is refused (it would go into a rule)";
      modules = [
        {
          services.chainstead = {
            storage = h.tiers;
            access.lan.fulcrum.allowedClients = [ "0.0.0.0/0 -j ACCEPT; x" ];
          };
        }
      ];
      force = config: config.services.chainstead.access.lan.fulcrum.allowedClients;
      message = "is not of type";
    })
    (h.expectEvalError {
      name = "a name that is neither a host name nor an address is refused";
      modules = [
        {
          services.chainstead = {
            storage = h.tiers;
            access.lan.fulcrum.names = [ "node home; rm" ];
          };
        }
      ];
      force = config: config.services.chainstead.access.lan.fulcrum.names;
      message = "is not of type";
    })
    (h.expectEqual "a switch of a disabled service opens nothing" "" (h.evalConfig [
      {
        services.chainstead = {
          storage = h.tiers;
          access.lan.fulcrum = fulcrumOn;
        };
      }
    ]).networking.firewall.extraCommands)
  ];
}
