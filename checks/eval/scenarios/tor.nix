# services.chainstead.tor: off by default; per mode the daemon settings
# (bitcoind, LND, monerod), the onion services handed to nixpkgs'
# services.tor, and the assertions for contradictions.
{ lib, harness }:
let
  h = harness;

  node =
    chainstead:
    h.evalConfig [
      {
        services.chainstead = lib.recursiveUpdate {
          storage = h.tiers;
          bitcoind.enable = true;
          fulcrum.enable = true;
          lnd.enable = true;
          monerod.enable = true;
          thunderhub.enable = true;
        } chainstead;
      }
    ];
  withTor = mode: extra: node (lib.recursiveUpdate {
    tor = {
      enable = true;
      defaultMode = mode;
    };
  } extra);

  lines = drv: lib.splitString "\n" (h.renderedText drv);
  btc = config: lines config.services.chainstead.bitcoind.configFile;
  lnd = config: lines config.services.chainstead.lnd.configFile;
  xmr = config: lines config.services.chainstead.monerod.configFile;
  onions = config: config.services.tor.relay.onionServices;
  target = config: name: lib.head (onions config).${name}.map;

  off = node { };
  tor = withTor "tor" { };
  hybrid = withTor "hybrid" { };
  clearnet = withTor "clearnet" { };
in
{
  off-by-default = [
    (h.expectNoFailedAssertions "a node without Tor evaluates cleanly" off)
    (h.expectEqual "no Tor daemon" false off.services.tor.enable)
    (h.expectEqual "no onion service" { } (onions off))
    (h.expectNotContains "bitcoind: no proxy" "proxy=127.0.0.1:9050" (btc off))
    (h.expectNotContains "bitcoind: no onlynet" "onlynet=onion" (btc off))
    (h.expectNotContains "LND: Tor off" "tor.active=1" (lnd off))
    (h.expectNotContains "monerod: no tx-proxy" "tx-proxy=tor,127.0.0.1:9050,16" (xmr off))
  ];

  tor-daemon = [
    (h.expectNoFailedAssertions "Tor-only evaluates cleanly" tor)
    (h.expectEqual "nixpkgs' Tor, as a client" [ true true ] [
      tor.services.tor.enable
      tor.services.tor.client.enable
    ])
    (h.expectEqual "SOCKS on loopback" {
      addr = "127.0.0.1";
      port = 9050;
    } { inherit (tor.services.tor.client.socksListenAddress) addr port; })
    (h.expectEqual "control port on loopback only" [ "127.0.0.1:9051" ] (
      map (c: "${c.addr}:${toString c.port}") tor.services.tor.settings.ControlPort
    ))
    (h.expectEqual "cookie authentication, group-readable cookie in /run/tor" [
      true
      "/run/tor/control.authcookie"
      true
    ] [
      tor.services.tor.settings.CookieAuthentication
      tor.services.tor.settings.CookieAuthFile
      tor.services.tor.settings.CookieAuthFileGroupReadable
    ])
    (h.expectContains "bitcoind may read the cookie" "tor" tor.users.users.bitcoind.extraGroups)
    (h.expectContains "LND may read the cookie" "tor" tor.users.users.lnd.extraGroups)
    (h.expectNotContains "monerod needs no control port" "tor" tor.users.users.monero.extraGroups)
    (h.expectContains "bitcoind starts after Tor" "tor.service" tor.systemd.services.bitcoind.after)
  ];

  bitcoind-modes = [
    (h.expectContains "tor: all P2P through SOCKS" "proxy=127.0.0.1:9050" (btc tor))
    (h.expectContains "tor: onion peers only" "onlynet=onion" (btc tor))
    (h.expectContains "tor: own onion service" "listenonion=1" (btc tor))
    (h.expectContains "tor: listening, although -proxy would turn it off" "listen=1" (btc tor))
    (h.expectContains "tor: through the control port" "torcontrol=127.0.0.1:9051" (btc tor))
    (h.expectContains "tor: clearnet listener on loopback only" "bind=127.0.0.1:8333" (btc tor))
    (h.expectContains "tor: the onion listener" "bind=127.0.0.1:8334=onion" (btc tor))
    (h.expectNotContains "tor: nothing on all interfaces" "bind=0.0.0.0:8333" (btc tor))
    (h.expectContains "tor: no clearnet address discovered" "discover=0" (btc tor))
    (h.expectContains "hybrid: onion peers through Tor" "onion=127.0.0.1:9050" (btc hybrid))
    (h.expectNotContains "hybrid: clearnet peers direct" "proxy=127.0.0.1:9050" (btc hybrid))
    (h.expectNotContains "hybrid: every network" "onlynet=onion" (btc hybrid))
    (h.expectContains "hybrid: clearnet listener" "bind=0.0.0.0:8333" (btc hybrid))
    (h.expectContains "hybrid: and the onion one" "bind=127.0.0.1:8334=onion" (btc hybrid))
    (h.expectContains "clearnet: no onion service through the local Tor" "listenonion=0" (btc clearnet))
    (h.expectNotContains "clearnet: no proxy" "onion=127.0.0.1:9050" (btc clearnet))
    (h.expectContains "the mode is per service" "onlynet=onion" (
      btc (withTor "hybrid" { tor.bitcoind.mode = "tor"; })
    ))
    (h.expectEqual "no RPC onion unless asked" false (onions tor ? chainstead-bitcoind-rpc))
    (h.expectEqual "an RPC onion when asked, to the RPC port" {
      port = 8332;
      target = {
        addr = "127.0.0.1";
        port = 8332;
        unix = null;
      };
    } (target (withTor "tor" { tor.bitcoind.rpcOnion = true; }) "chainstead-bitcoind-rpc"))
  ];

  lnd-modes = [
    (h.expectContains "tor: Tor on" "tor.active=1" (lnd tor))
    (h.expectContains "tor: v3 onion service, announced" "tor.v3=1" (lnd tor))
    (h.expectContains "tor: SOCKS" "tor.socks=127.0.0.1:9050" (lnd tor))
    (h.expectContains "tor: control port" "tor.control=127.0.0.1:9051" (lnd tor))
    (h.expectContains "tor: a circuit per connection" "tor.streamisolation=1" (lnd tor))
    (h.expectContains "tor: P2P on loopback only" "listen=127.0.0.1:9735" (lnd tor))
    (h.expectContains "hybrid: clearnet peers direct" "tor.skip-proxy-for-clearnet-targets=1" (lnd hybrid))
    (h.expectNotContains "hybrid: no stream isolation (LND refuses both)" "tor.streamisolation=1" (lnd hybrid))
    (h.expectContains "hybrid: P2P on all interfaces" "listen=0.0.0.0:9735" (lnd hybrid))
    (h.expectNotContains "clearnet: Tor off" "tor.active=1" (lnd clearnet))
  ];

  monerod-modes = [
    (h.expectContains "hybrid: transactions over Tor" "tx-proxy=tor,127.0.0.1:9050,16" (xmr hybrid))
    (h.expectNotContains "hybrid: blocks over clearnet" "proxy=127.0.0.1:9050" (xmr hybrid))
    (h.expectContains "tor: all P2P over Tor" "proxy=127.0.0.1:9050" (xmr tor))
    (h.expectContains "tor: P2P on loopback only" "p2p-bind-ip=127.0.0.1" (xmr tor))
    (h.expectContains "tor: no DNS checkpoint lookups" "disable-dns-checkpoints=1" (xmr tor))
    (h.expectNotContains "hybrid: DNS checkpoints as monerod does them" "disable-dns-checkpoints=1" (xmr hybrid))
    (h.expectNotContains "clearnet: no tx-proxy" "tx-proxy=tor,127.0.0.1:9050,16" (xmr clearnet))
    (h.expectContains "restricted RPC for the onion, on loopback" "rpc-restricted-bind-ip=127.0.0.1" (xmr hybrid))
    (h.expectContains "on its own port" "rpc-restricted-bind-port=18089" (xmr hybrid))
    (h.expectNotContains "no external bind for a loopback listener" "confirm-external-bind=1" (xmr hybrid))
    (h.expectContains "the main RPC stays on loopback" "rpc-bind-ip=127.0.0.1" (xmr hybrid))
    (h.expectNotContains "anonymous-inbound only with an address" "anonymous-inbound" (
      xmr (withTor "tor" { tor.monerod.inbound.enable = true; })
    ))
    (h.expectContains "a warning says what to do" "inbound.address" (
      lib.concatStrings (withTor "tor" { tor.monerod.inbound.enable = true; }).warnings
    ))
    (h.expectContains "anonymous-inbound with the address" "anonymous-inbound=pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion:18084,127.0.0.1:18084,16" (
      xmr (withTor "tor" {
        tor.monerod.inbound = {
          enable = true;
          address = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion";
        };
      })
    ))
  ];

  onion-services = [
    (h.expectEqual "by default: Fulcrum SSL and monerod's restricted RPC" [
      "chainstead-fulcrum-ssl"
      "chainstead-monerod-rpc"
    ] (lib.attrNames (onions hybrid)))
    (h.expectEqual "all v3" [ 3 3 ] (lib.mapAttrsToList (_: o: o.version) (onions hybrid)))
    (h.expectEqual "Fulcrum's onion port to its SSL port on loopback" {
      port = 50002;
      target = {
        addr = "127.0.0.1";
        port = 50002;
        unix = null;
      };
    } (target hybrid "chainstead-fulcrum-ssl"))
    (h.expectEqual "monerod's onion to the restricted RPC" 18089 (target hybrid "chainstead-monerod-rpc").target.port)
    (h.expectEqual "the hostname files, in Tor's state directory" {
      chainstead-fulcrum-ssl = "/var/lib/tor/onion/chainstead-fulcrum-ssl/hostname";
      chainstead-monerod-rpc = "/var/lib/tor/onion/chainstead-monerod-rpc/hostname";
    } hybrid.services.chainstead.tor.onionServices)
    (h.expectEqual "ThunderHub, LND REST and Fulcrum TCP when asked" [
      "chainstead-fulcrum-ssl"
      "chainstead-fulcrum-tcp"
      "chainstead-lnd-rest"
      "chainstead-monerod-rpc"
      "chainstead-thunderhub"
    ] (lib.attrNames (onions (withTor "hybrid" {
      tor = {
        thunderhub.onion = true;
        lnd.restOnion = true;
        fulcrum.tcpOnion = true;
      };
    }))))
    (h.expectEqual "ThunderHub's onion is port 80 to its port" {
      port = 80;
      target = {
        addr = "127.0.0.1";
        port = 3000;
        unix = null;
      };
    } (target (withTor "hybrid" { tor.thunderhub.onion = true; }) "chainstead-thunderhub"))
    (h.expectEqual "none for a disabled service" [ "chainstead-fulcrum-ssl" ] (lib.attrNames (onions (
      h.evalConfig [
        {
          services.chainstead = {
            storage = h.tiers;
            bitcoind.enable = true;
            fulcrum.enable = true;
            tor.enable = true;
          };
        }
      ]
    ))))
    (h.expectContains "the command lists the onion files" "/var/lib/tor/onion/chainstead-fulcrum-ssl/hostname" (
      h.renderedText hybrid.system.build.chainstead-cli-manifest.manifest
    ))
  ];

  contradictions = [
    (h.expectAssertion "Tor-only bitcoind with a clearnet externalip" (withTor "tor" {
      bitcoind.settings.externalip = "203.0.113.5";
    }) "a clearnet address")
    (h.expectNoFailedAssertions "an onion externalip is fine in Tor-only" (withTor "tor" {
      bitcoind.settings.externalip = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion";
    }))
    (h.expectNoFailedAssertions "a clearnet externalip is fine in hybrid" (withTor "hybrid" {
      bitcoind.settings.externalip = "203.0.113.5";
    }))
    (h.expectAssertion "Tor-only bitcoind with an open P2P port" (withTor "tor" {
      bitcoind.p2p.openFirewall = true;
    }) "bitcoind.p2p.openFirewall")
    (h.expectAssertion "Tor-only LND with a clearnet externalip" (withTor "tor" {
      lnd.settings.externalip = "203.0.113.5:9735";
    }) "services.chainstead.lnd.settings.externalip")
    (h.expectAssertion "Tor-only LND told to skip the proxy" (withTor "tor" {
      lnd.settings."tor.skip-proxy-for-clearnet-targets" = true;
    }) "skip-proxy-for-clearnet-targets")
    (h.expectAssertion "Tor-only monerod with an open P2P port" (withTor "tor" {
      monerod.p2p.openFirewall = true;
    }) "monerod.p2p.openFirewall")
    (h.expectEvalError {
      name = "an inbound address that is not an onion address is refused";
      modules = [
        {
          services.chainstead = {
            storage = h.tiers;
            monerod.enable = true;
            tor = {
              enable = true;
              monerod.inbound.address = "203.0.113.5";
            };
          };
        }
      ];
      force = config: config.services.chainstead.tor.monerod.inbound.address;
      message = "is not of type";
    })
  ];
}
