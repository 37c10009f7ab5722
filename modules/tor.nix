# Tor for the chainstead services, built on nixpkgs' services.tor: a SOCKS
# client on loopback for outbound connections, a control port for the
# daemons that make their own P2P onion service (bitcoind, LND), and
# onion services for what wallets connect to (Fulcrum, monerod's restricted
# RPC, LND's REST/gRPC, ThunderHub, bitcoind's RPC on request).
#
# Per P2P daemon a mode: "clearnet" (no Tor), "tor" (Tor only: outbound
# through SOCKS, inbound only through the onion service, nothing listening
# beyond loopback) or "hybrid" (clearnet as before plus an onion service,
# onion peers reached through Tor). docs/access.md lists every outbound
# connection per mode.
#
# nixpkgs facts (nixos/modules/services/security/tor.nix):
#   services.tor.{enable, client.enable, client.socksListenAddress
#   (default 127.0.0.1:9050, IsolateDestAddr), settings (freeform torrc with
#   typed ControlPort, CookieAuthentication, CookieAuthFile,
#   CookieAuthFileGroupReadable), relay.onionServices.<name>.{map, version,
#   path}}; an onion service's directory defaults to
#   /var/lib/tor/onion/<name> (StateDirectory, 0700, owned by tor), Tor
#   writes `hostname` there; /run/tor is the RuntimeDirectory, mode 0710,
#   group tor.
# Daemon facts:
#   bitcoind (src/init.cpp, src/torcontrol.cpp): proxy, onion, onlynet,
#     listenonion (creates the onion service through torcontrol, cookie or
#     SAFECOOKIE auth, key kept in onion_v3_private_key, the address
#     advertised and listed in getnetworkinfo's localaddresses), bind with
#     `=onion` marks the onion listener (default 127.0.0.1:8334), discover.
#   LND (sample-lnd.conf): tor.active, tor.v3, tor.socks, tor.control,
#     tor.streamisolation, tor.skip-proxy-for-clearnet-targets (refused
#     together with streamisolation); with tor.v3 LND creates its onion
#     service through the control port and announces it.
#   monerod (docs/ANONYMITY_NETWORKS.md, src/p2p/net_node.cpp): tx-proxy
#     `tor,<socks ip:port>[,max connections]` sends local transactions over
#     Tor; anonymous-inbound `<onion>:<port>,<bind ip:port>[,max]` takes Tor
#     peers in; proxy (0.18.3.1+) sends all P2P through SOCKS.
{
  config,
  lib,
  ...
}:
let
  inherit (lib)
    mkOption
    mkEnableOption
    mkIf
    mkMerge
    mkDefault
    types
    literalExpression
    ;
  chainstead = import ./lib.nix { inherit lib; };
  inherit (chainstead) connectHost hostPort;
  cfg = config.services.chainstead.tor;
  inherit (config.services.chainstead)
    bitcoind
    lnd
    fulcrum
    monerod
    thunderhub
    ;

  socks = hostPort "127.0.0.1" cfg.socksPort;
  control = hostPort "127.0.0.1" cfg.controlPort;
  # Where Tor writes the control cookie: /run/tor is 0710 group tor, the
  # cookie 0640 group tor (CookieAuthFileGroupReadable), so members of the
  # tor group (bitcoind, LND) can authenticate and nobody else.
  cookieFile = "/run/tor/control.authcookie";

  modeType = types.enum [
    "clearnet"
    "tor"
    "hybrid"
  ];
  modeOption =
    what:
    mkOption {
      type = modeType;
      default = cfg.defaultMode;
      defaultText = literalExpression "config.services.chainstead.tor.defaultMode";
      description = ''
        How ${what} reaches its peers: `clearnet` (no Tor), `tor` (only
        through Tor, inbound only through its onion service) or `hybrid`
        (clearnet, plus an onion service and onion peers through Tor).
      '';
    };

  # When `on`, the onion service `name` on virtual port `port` to the
  # loopback target `addr`:`target`, as nixpkgs' module takes it.
  onionService =
    on: name: port: addr: target:
    mkIf on {
      services.tor.relay.onionServices.${name} = {
        version = 3;
        map = [
          {
            inherit port;
            target = {
              inherit addr;
              port = target;
            };
          }
        ];
      };
    };

  # A daemon that reaches its peers through Tor starts after it.
  afterTor = {
    wants = [ "tor.service" ];
    after = [ "tor.service" ];
  };

  # Mode "tor": the daemon's clearnet P2P port stays shut, and it announces
  # no clearnet address.
  closedInTorMode = name: use: mode: {
    assertion = !(use && mode == "tor" && config.services.chainstead.${name}.p2p.openFirewall);
    message = ''
      services.chainstead.tor.${name}.mode = "tor" listens on loopback only, but
      services.chainstead.${name}.p2p.openFirewall opens the clearnet P2P port.
      Set openFirewall = false, or use mode "hybrid".
    '';
  };
  noClearnetExternalInTorMode =
    name: use: mode:
    let
      external = clearnetExternal config.services.chainstead.${name}.settings;
    in
    {
      assertion = !(use && mode == "tor" && external != [ ]);
      message = ''
        services.chainstead.tor.${name}.mode = "tor", but services.chainstead.${name}.settings.externalip
        announces ${lib.concatStringsSep ", " (map toString external)},
        a clearnet address. Remove it, or use mode "hybrid".
      '';
    };

  isOnion = a: lib.hasSuffix ".onion" (lib.head (lib.splitString ":" (toString a)));
  clearnetExternal = settings: lib.filter (a: !isOnion a) (lib.toList (settings.externalip or [ ]));

  btc = cfg.bitcoind;
  ln = cfg.lnd;
  xmr = cfg.monerod;
  useBitcoind = cfg.enable && bitcoind.enable && btc.mode != "clearnet";
  useLnd = cfg.enable && lnd.enable && ln.mode != "clearnet";
  useMonerod = cfg.enable && monerod.enable && xmr.mode != "clearnet";
  restrictedPort = config.services.chainstead.access.monerodRestrictedPort;
in
{
  options.services.chainstead.tor = {
    enable = mkEnableOption ''
      Tor for the chainstead services (nixpkgs' services.tor: a SOCKS
      client on loopback, a control port for bitcoind and LND, onion
      services for wallets). Off by default; nothing else changes until it
      is on
    '';

    defaultMode = mkOption {
      type = modeType;
      default = "hybrid";
      description = ''
        Mode of every P2P daemon whose own mode is not set. `hybrid` keeps
        the initial sync at clearnet speed; switch to `tor` once synced
        (docs/access.md).
      '';
    };

    socksPort = mkOption {
      type = types.port;
      default = 9050;
      description = "Port of Tor's SOCKS proxy on 127.0.0.1.";
    };

    controlPort = mkOption {
      type = types.port;
      default = 9051;
      description = "Port of Tor's control port on 127.0.0.1 (cookie authentication; bitcoind and LND use it).";
    };

    bitcoind = {
      mode = modeOption "bitcoind";
      onionPort = mkOption {
        type = types.port;
        default = 8334;
        description = "Loopback port of bitcoind's onion listener (`bind=...=onion`), the target of its onion service.";
      };
      rpcOnion = mkOption {
        type = types.bool;
        default = false;
        description = ''
          An onion service to bitcoind's RPC port, for remote RPC clients.
          Off by default: RPC clients need an rpcauth user, and most
          wallets should use Fulcrum instead.
        '';
      };
    };

    lnd = {
      mode = modeOption "LND";
      restOnion = mkOption {
        type = types.bool;
        default = false;
        description = "An onion service to LND's REST port, for Zeus over Tor (`chainstead connect zeus`).";
      };
      grpcOnion = mkOption {
        type = types.bool;
        default = false;
        description = "An onion service to LND's gRPC port.";
      };
    };

    fulcrum = {
      sslOnion = mkOption {
        type = types.bool;
        default = true;
        description = "An onion service to Fulcrum's SSL port, for Sparrow from anywhere without an open port.";
      };
      tcpOnion = mkOption {
        type = types.bool;
        default = false;
        description = "An onion service to Fulcrum's plain TCP port (Tor already encrypts end to end).";
      };
    };

    monerod = {
      mode = modeOption "monerod";
      rpcOnion = mkOption {
        type = types.bool;
        default = true;
        description = "An onion service to monerod's restricted RPC, for Feather over Tor.";
      };
      inbound = {
        enable = mkOption {
          type = types.bool;
          default = false;
          description = ''
            An onion service for Monero peers (`anonymous-inbound`). monerod
            needs the address in its configuration: enable this, rebuild,
            read it with `chainstead connect`, then set {option}`address`.
          '';
        };
        port = mkOption {
          type = types.port;
          default = 18084;
          description = "Loopback port monerod takes Tor peers on.";
        };
        address = mkOption {
          type = types.nullOr (types.strMatching "[a-z2-7]{56}\\.onion");
          default = null;
          example = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion";
          description = "This node's Monero P2P onion address, from `chainstead connect` once Tor made it.";
        };
      };
    };

    thunderhub.onion = mkOption {
      type = types.bool;
      default = false;
      description = "An onion service to ThunderHub (port 80 of the onion address).";
    };

    onionServices = mkOption {
      type = types.attrsOf types.str;
      readOnly = true;
      default = lib.mapAttrs (name: _: "${config.services.tor.relay.onionServices.${name}.path}/hostname") (
        lib.filterAttrs (name: _: lib.hasPrefix "chainstead-" name) config.services.tor.relay.onionServices
      );
      defaultText = literalExpression "{ <onion service> = \"<its directory>/hostname\"; }";
      description = "The `hostname` file of each onion service this module made (read by `chainstead connect`).";
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      assertions = [
        (noClearnetExternalInTorMode "bitcoind" useBitcoind btc.mode)
        (closedInTorMode "bitcoind" useBitcoind btc.mode)
        (noClearnetExternalInTorMode "lnd" useLnd ln.mode)
        (closedInTorMode "lnd" useLnd ln.mode)
        {
          assertion = !(useLnd && ln.mode == "tor" && (lnd.settings."tor.skip-proxy-for-clearnet-targets" or false));
          message = ''
            services.chainstead.tor.lnd.mode = "tor", but services.chainstead.lnd.settings sets
            tor.skip-proxy-for-clearnet-targets, which connects to clearnet peers directly.
            Remove it, or use mode "hybrid".
          '';
        }
        (closedInTorMode "monerod" useMonerod xmr.mode)
      ];

      warnings = lib.optional (monerod.enable && xmr.inbound.enable && xmr.inbound.address == null) ''
        services.chainstead.tor.monerod.inbound is on, but its address is not set yet, so monerod
        does not take Tor peers. Read it with `chainstead connect` and set
        services.chainstead.tor.monerod.inbound.address.
      '';

      services.tor = {
        enable = true;
        client = {
          enable = true;
          socksListenAddress = {
            addr = "127.0.0.1";
            port = cfg.socksPort;
            IsolateDestAddr = true;
          };
        };
        settings = {
          ControlPort = [
            {
              addr = "127.0.0.1";
              port = cfg.controlPort;
            }
          ];
          CookieAuthentication = true;
          CookieAuthFile = cookieFile;
          CookieAuthFileGroupReadable = true;
        };
      };
    }

    # bitcoind: its own onion service through the control port.
    (mkIf useBitcoind {
      services.chainstead.bitcoind.settings = {
        # Explicit: -proxy alone would turn listening off (init.cpp,
        # parameter interaction), and with it the onion service.
        listen = true;
        listenonion = true;
        torcontrol = control;
        bind =
          if btc.mode == "tor" then
            [
              (hostPort "127.0.0.1" bitcoind.p2p.port)
              "${hostPort "127.0.0.1" btc.onionPort}=onion"
            ]
          else
            [
              (hostPort "0.0.0.0" bitcoind.p2p.port)
              "${hostPort "127.0.0.1" btc.onionPort}=onion"
            ];
      }
      // (
        if btc.mode == "tor" then
          {
            proxy = socks;
            onlynet = "onion";
            # No clearnet address of ours to find or announce.
            discover = false;
          }
        else
          { onion = socks; }
      );
      users.users.bitcoind.extraGroups = [ "tor" ];
      systemd.services.bitcoind = afterTor;
    })
    (mkIf (cfg.enable && bitcoind.enable && btc.mode == "clearnet") {
      # bitcoind would otherwise make an onion service through the local control port.
      services.chainstead.bitcoind.settings.listenonion = false;
    })
    (onionService (bitcoind.enable && btc.rpcOnion) "chainstead-bitcoind-rpc" bitcoind.rpc.port (connectHost bitcoind.rpc.address) bitcoind.rpc.port)

    # LND: tor.v3 makes and announces its onion service through the control port.
    (mkIf useLnd {
      services.chainstead.lnd = {
        settings = {
          "tor.active" = true;
          "tor.v3" = true;
          "tor.socks" = socks;
          "tor.control" = control;
        }
        // (
          if ln.mode == "tor" then
            { "tor.streamisolation" = true; }
          else
            { "tor.skip-proxy-for-clearnet-targets" = true; }
        );
        p2p.address = mkIf (ln.mode == "tor") (mkDefault "127.0.0.1");
      };
      users.users.lnd.extraGroups = [ "tor" ];
      systemd.services.lnd = afterTor;
    })
    (onionService (lnd.enable && ln.restOnion) "chainstead-lnd-rest" lnd.restPort (connectHost lnd.restAddress) lnd.restPort)
    (onionService (lnd.enable && ln.grpcOnion) "chainstead-lnd-grpc" lnd.rpcPort (connectHost lnd.rpcAddress) lnd.rpcPort)

    # Fulcrum: onion services only; it makes no outbound connection but to bitcoind.
    (onionService (fulcrum.enable && fulcrum.ssl.enable && cfg.fulcrum.sslOnion) "chainstead-fulcrum-ssl" fulcrum.ssl.port (connectHost fulcrum.ssl.address) fulcrum.ssl.port)
    (onionService (fulcrum.enable && cfg.fulcrum.tcpOnion) "chainstead-fulcrum-tcp" fulcrum.tcp.port (connectHost fulcrum.tcp.address) fulcrum.tcp.port)

    # monerod: transactions over Tor, all P2P over Tor in "tor" mode.
    (mkIf useMonerod {
      services.chainstead.monerod = {
        settings = {
          tx-proxy = "tor,${socks},16";
        }
        // lib.optionalAttrs (xmr.mode == "tor") {
          proxy = socks;
          # The hourly checkpoint lookup would go to the system resolver.
          disable-dns-checkpoints = true;
        };
        p2p.address = mkIf (xmr.mode == "tor") (mkDefault "127.0.0.1");
      };
      systemd.services.monerod = afterTor;
    })
    (onionService (monerod.enable && xmr.rpcOnion) "chainstead-monerod-rpc" restrictedPort "127.0.0.1" restrictedPort)
    (onionService (monerod.enable && xmr.inbound.enable) "chainstead-monerod-p2p" xmr.inbound.port "127.0.0.1" xmr.inbound.port)
    (mkIf (monerod.enable && xmr.inbound.enable) {
      services.chainstead.monerod.settings.anonymous-inbound = mkIf (xmr.inbound.address != null) "${xmr.inbound.address}:${toString xmr.inbound.port},${hostPort "127.0.0.1" xmr.inbound.port},16";
    })

    (onionService (thunderhub.enable && cfg.thunderhub.onion) "chainstead-thunderhub" 80 (connectHost thunderhub.host) thunderhub.port)
  ]);
}
