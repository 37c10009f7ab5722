# Reaching the node from the LAN, one switch per service, off by default:
# Fulcrum's SSL port for Sparrow, monerod's restricted RPC for Feather,
# LND's REST/gRPC for Zeus, ThunderHub for a browser. Each switch binds the
# service beyond loopback and opens its port in the firewall for the listed
# clients only (addresses or subnets), never for everyone.
#
# Also the `chainstead` operator command (crates/cli) and its manifest,
# /etc/chainstead/cli.json: where every LAN name, onion `hostname` file,
# certificate and the macaroon to hand out are.
#
# Firewall: rules through the NixOS firewall's documented options, chosen
# by its backend (nixos/modules/services/networking/firewall.nix,
# `networking.firewall.backend`): nftables lines in
# `networking.firewall.extraInputRules` (appended to the input-allow chain,
# firewall-nftables.nix), or iptables commands in
# `networking.firewall.extraCommands` appending to the `nixos-fw` chain,
# which firewall-start flushes and rebuilds on every (re)load, so no stop
# commands are needed (firewall-iptables.nix). firewalld is not supported.
#
# Daemon facts:
#   monerod (src/daemon/daemon.cpp, src/rpc/core_rpc_server.cpp): a second
#     RPC server, always restricted, starts when rpc-restricted-bind-port is
#     given, on rpc-restricted-bind-ip; binding RPC beyond loopback needs
#     confirm-external-bind (src/rpc/rpc_args.cpp). The unrestricted RPC
#     stays on loopback: asserted below.
#   LND (sample-lnd.conf): tlsextraip, tlsextradomain add SANs to tls.cert;
#     tlsautorefresh makes a new tls.cert when they change.
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
    mkMerge
    mkDefault
    types
    literalExpression
    ;
  chainstead = import ./lib.nix { inherit lib; };
  cfg = config.services.chainstead.access;
  inherit (config.services.chainstead)
    bitcoind
    fulcrum
    monerod
    lnd
    thunderhub
    tor
    ;
  fw = config.networking.firewall;

  # An IPv4 or IPv6 address or CIDR subnet, nothing else: these strings go
  # into firewall rules verbatim.
  ipv4 = "[0-9]{1,3}(\\.[0-9]{1,3}){3}(/[0-9]{1,2})?";
  ipv6 = "[0-9a-fA-F:]*:[0-9a-fA-F:.]*(/[0-9]{1,3})?";
  clientType = types.strMatching "${ipv4}|${ipv6}" // {
    description = "IPv4 or IPv6 address or subnet (CIDR)";
  };
  isIPv6 = lib.hasInfix ":";
  isLoopback = a: lib.hasPrefix "127." a || a == "::1" || a == "localhost";
  isIP = s: builtins.match ipv4 s != null || builtins.match ipv6 s != null;

  lanOptions =
    {
      what,
      defaultAddress ? "0.0.0.0",
      extra ? { },
    }:
    {
      enable = mkEnableOption "${what} on the LAN, for the clients in {option}`allowedClients` only";
      address = mkOption {
        type = types.str;
        default = defaultAddress;
        description = "Address ${what} binds to when on the LAN (all interfaces by default; the firewall limits who gets in).";
      };
      allowedClients = mkOption {
        type = types.listOf clientType;
        default = [ ];
        example = [
          "192.168.1.0/24"
          "fd00:1::/64"
        ];
        description = "Addresses or subnets allowed to connect; the port stays closed to everyone else.";
      };
      names = mkOption {
        type = types.listOf (types.strMatching "[A-Za-z0-9:][A-Za-z0-9.:-]*") // {
          description = "list of host names or addresses";
        };
        default = [ ];
        example = [
          "node.home.arpa"
          "192.168.1.10"
        ];
        description = "Host names and addresses clients use to reach this node (printed by `chainstead connect`; SANs where there is a certificate).";
      };
    }
    // extra;

  lanSubmodule = args: types.submodule { options = lanOptions args; };

  l = cfg.lan;
  on = {
    fulcrum = fulcrum.enable && l.fulcrum.enable;
    monerod = monerod.enable && l.monerod.enable;
    lnd = lnd.enable && l.lnd.enable;
    thunderhub = thunderhub.enable && l.thunderhub.enable;
  };

  # The ports each LAN switch opens, for its clients only.
  openings = lib.concatLists [
    (lib.optional (on.fulcrum && fulcrum.ssl.enable) {
      name = "fulcrum";
      inherit (fulcrum.ssl) port;
      inherit (l.fulcrum) allowedClients;
    })
    (lib.optional on.monerod {
      name = "monerod";
      port = cfg.monerodRestrictedPort;
      inherit (l.monerod) allowedClients;
    })
    (lib.optional (on.lnd && l.lnd.rest) {
      name = "lnd-rest";
      port = lnd.restPort;
      inherit (l.lnd) allowedClients;
    })
    (lib.optional (on.lnd && l.lnd.grpc) {
      name = "lnd-grpc";
      port = lnd.rpcPort;
      inherit (l.lnd) allowedClients;
    })
    (lib.optional on.thunderhub {
      name = "thunderhub";
      inherit (thunderhub) port;
      inherit (l.thunderhub) allowedClients;
    })
  ];

  nftRules = lib.concatMapStrings (
    o:
    let
      v4 = lib.filter (c: !isIPv6 c) o.allowedClients;
      v6 = lib.filter isIPv6 o.allowedClients;
      rule = family: set: ''
        ${family} saddr { ${lib.concatStringsSep ", " set} } tcp dport ${toString o.port} accept comment "chainstead-${o.name}"
      '';
    in
    lib.optionalString (v4 != [ ]) (rule "ip" v4) + lib.optionalString (v6 != [ ]) (rule "ip6" v6)
  ) openings;

  iptablesCommands = lib.concatMapStrings (
    o:
    lib.concatMapStrings (c: ''
      ${if isIPv6 c then "ip6tables" else "iptables"} -w -A nixos-fw -p tcp --dport ${toString o.port} -s ${c} -j nixos-fw-accept -m comment --comment chainstead-${o.name}
    '') o.allowedClients
  ) openings;

  # SANs of Fulcrum's certificate: loopback always, plus the LAN names.
  fulcrumSans = [
    "localhost"
    "127.0.0.1"
    "::1"
  ]
  ++ l.fulcrum.names;

  hostname = name: tor.onionServices.${name} or null;
  onionEntry =
    name: port:
    let
      file = hostname name;
    in
    if file == null then
      null
    else
      {
        hostname_file = file;
        inherit port;
      };
  lanEntry =
    enabled: names: port:
    if enabled && names != [ ] then
      {
        hosts = names;
        inherit port;
      }
    else
      null;
  dropNulls = lib.filterAttrs (_: v: v != null);

  manifestValue = {
    version = 1;
  }
  // lib.optionalAttrs bitcoind.enable {
    bitcoind = dropNulls {
      mode = if tor.enable then tor.bitcoind.mode else "clearnet";
      rpc_onion = onionEntry "chainstead-bitcoind-rpc" bitcoind.rpc.port;
    };
  }
  // lib.optionalAttrs fulcrum.enable {
    fulcrum = dropNulls {
      cert_file = fulcrum.ssl.effectiveCertFile;
      lan = lanEntry on.fulcrum l.fulcrum.names fulcrum.ssl.port;
      onion_ssl = onionEntry "chainstead-fulcrum-ssl" fulcrum.ssl.port;
      onion_tcp = onionEntry "chainstead-fulcrum-tcp" fulcrum.tcp.port;
    };
  }
  // lib.optionalAttrs monerod.enable {
    monerod = dropNulls {
      lan = lanEntry on.monerod l.monerod.names cfg.monerodRestrictedPort;
      onion = onionEntry "chainstead-monerod-rpc" cfg.monerodRestrictedPort;
    };
  }
  // lib.optionalAttrs lnd.enable {
    lnd = dropNulls {
      tls_cert_file = lnd.tlsCertFile;
      macaroon_file = "${lnd.macaroonDir}/${l.lnd.macaroonKind}.macaroon";
      macaroon_kind = l.lnd.macaroonKind;
      lan_rest = lanEntry (on.lnd && l.lnd.rest) l.lnd.names lnd.restPort;
      lan_grpc = lanEntry (on.lnd && l.lnd.grpc) l.lnd.names lnd.rpcPort;
      onion_rest = onionEntry "chainstead-lnd-rest" lnd.restPort;
      onion_grpc = onionEntry "chainstead-lnd-grpc" lnd.rpcPort;
    };
  }
  // lib.optionalAttrs thunderhub.enable {
    thunderhub = dropNulls {
      lan = lanEntry on.thunderhub l.thunderhub.names thunderhub.port;
      onion = onionEntry "chainstead-thunderhub" 80;
    };
  };

  manifest = chainstead.checkedManifest {
    inherit pkgs;
    inherit (cfg) package;
    name = "chainstead-cli";
    value = manifestValue;
  };

  thunderhubFetches =
    thunderhub.versionCheck || thunderhub.fetchPrices || thunderhub.fetchFees || thunderhub.mempoolUrl != null;

  anyService = bitcoind.enable || fulcrum.enable || monerod.enable || lnd.enable || thunderhub.enable;

  lanAssertions =
    name: what:
    lib.optionals l.${name}.enable [
      {
        assertion = l.${name}.allowedClients != [ ];
        message = "services.chainstead.access.lan.${name}.enable is on, but allowedClients is empty: list the addresses or subnets of the ${what} clients (the port stays closed otherwise).";
      }
      {
        assertion = !fw.enable || fw.backend != "firewalld";
        message = "services.chainstead.access.lan.${name} renders nftables or iptables rules; networking.firewall.backend = \"firewalld\" is not supported. Use the nftables or iptables backend.";
      }
      {
        assertion = fw.enable;
        message = "services.chainstead.access.lan.${name} enforces allowedClients in the NixOS firewall, but networking.firewall.enable is false. Enable the firewall.";
      }
    ];
in
{
  options.services.chainstead.access = {
    package = chainstead.toolPackageOption pkgs "chainstead-cli" ../pkgs/chainstead-tools/cli.nix;

    lan = {
      fulcrum = mkOption {
        type = lanSubmodule { what = "Fulcrum's SSL port (Sparrow)"; };
        default = { };
        description = ''
          Fulcrum's SSL port on the LAN. Its self-signed certificate names
          {option}`names` (plus localhost, 127.0.0.1, ::1) and is made again
          when they change; `chainstead fingerprint` prints what to pin.
        '';
      };
      monerod = mkOption {
        type = lanSubmodule { what = "monerod's restricted RPC (Feather)"; };
        default = { };
        description = ''
          monerod's restricted RPC (view-only calls) on the LAN, on
          {option}`services.chainstead.access.monerodRestrictedPort`. The
          unrestricted RPC never leaves loopback.
        '';
      };
      lnd = mkOption {
        type = types.submodule {
          options = lanOptions {
            what = "LND's REST and gRPC (Zeus)";
            extra = {
              rest = mkOption {
                type = types.bool;
                default = true;
                description = "Open LND's REST port (what Zeus uses).";
              };
              grpc = mkOption {
                type = types.bool;
                default = false;
                description = "Open LND's gRPC port too.";
              };
              macaroonKind = mkOption {
                type = types.enum [
                  "readonly"
                  "invoice"
                  "admin"
                ];
                default = "readonly";
                description = ''
                  The macaroon `chainstead connect zeus` puts into the
                  lndconnect URI. `admin` can spend every coin: choose it
                  only knowingly.
                '';
              };
            };
          };
        };
        default = { };
        description = ''
          LND's REST (and optionally gRPC) on the LAN. {option}`names` go
          into LND's tls.cert (`tlsextraip`/`tlsextradomain`).
        '';
      };
      thunderhub = mkOption {
        type = lanSubmodule { what = "ThunderHub's web interface"; };
        default = { };
        description = ''
          ThunderHub on the LAN (plain HTTP: for a trusted LAN; otherwise
          put a TLS reverse proxy in front, docs/access.md).
        '';
      };
    };

    confineThunderhub = mkOption {
      type = types.bool;
      default = true;
      description = ''
        While ThunderHub's outbound fetches are off (versionCheck,
        fetchPrices, fetchFees off, no mempoolUrl), let its unit talk to
        loopback and its LAN clients only (`IPAddressDeny=any`), so its
        fallback to https://mempool.space cannot leave the host either.
      '';
    };

    monerodRestrictedPort = mkOption {
      type = types.port;
      default = 18089;
      description = "Port of monerod's second, restricted RPC server: the LAN and onion target for Feather.";
    };

    manifest = mkOption {
      type = types.package;
      readOnly = true;
      default = manifest;
      defaultText = literalExpression "the checked chainstead-cli manifest";
      description = "The `chainstead` command's manifest (/etc/chainstead/cli.json; paths and addresses, no secret).";
    };
  };

  config = mkMerge [
    (mkIf anyService {
      assertions =
        lanAssertions "fulcrum" "Sparrow"
        ++ lanAssertions "monerod" "Feather"
        ++ lanAssertions "lnd" "Zeus"
        ++ lanAssertions "thunderhub" "browser"
        ++ [
          {
            assertion = !on.fulcrum || (fulcrum.ssl.enable && l.fulcrum.names != [ ]);
            message = "services.chainstead.access.lan.fulcrum needs services.chainstead.fulcrum.ssl.enable and at least one entry in names (the host name or address Sparrow connects to, put into the certificate).";
          }
          {
            assertion = !on.lnd || l.lnd.names != [ ];
            message = "services.chainstead.access.lan.lnd needs names: the host names or addresses Zeus connects to, put into LND's tls.cert.";
          }
          {
            assertion = !(on.monerod || (tor.enable && tor.monerod.rpcOnion && monerod.enable)) || isLoopback monerod.rpc.address;
            message = ''
              services.chainstead.monerod.rpc.address is ${monerod.rpc.address}: the main RPC
              must stay on loopback. Feather gets the restricted RPC on
              services.chainstead.access.monerodRestrictedPort instead.
            '';
          }
          {
            assertion = !(on.monerod || (tor.enable && tor.monerod.rpcOnion && monerod.enable)) || cfg.monerodRestrictedPort != monerod.rpc.port;
            message = "services.chainstead.access.monerodRestrictedPort (${toString cfg.monerodRestrictedPort}) must differ from services.chainstead.monerod.rpc.port.";
          }
        ];

      environment.etc."chainstead/cli.json".source = manifest;
      environment.systemPackages = [ cfg.package ];
      system.build.chainstead-cli-manifest = manifest;
    })

    # Firewall: each LAN port for its clients only.
    (mkIf (openings != [ ] && fw.backend == "nftables") {
      networking.firewall.extraInputRules = nftRules;
    })
    (mkIf (openings != [ ] && fw.backend == "iptables") {
      networking.firewall.extraCommands = iptablesCommands;
    })

    # Fulcrum: the SSL port beyond loopback, the LAN names in the certificate.
    (mkIf on.fulcrum {
      services.chainstead.fulcrum.ssl = {
        address = mkDefault l.fulcrum.address;
        subjectAltNames = fulcrumSans;
      };
    })

    # monerod: a second, restricted RPC server for Feather (LAN or onion).
    (mkIf (monerod.enable && (on.monerod || (tor.enable && tor.monerod.rpcOnion))) {
      services.chainstead.monerod.settings = {
        rpc-restricted-bind-ip = if on.monerod then l.monerod.address else "127.0.0.1";
        rpc-restricted-bind-port = cfg.monerodRestrictedPort;
      }
      // lib.optionalAttrs (on.monerod && !isLoopback l.monerod.address) {
        confirm-external-bind = true;
      };
    })

    # LND: REST/gRPC beyond loopback, the LAN names in tls.cert.
    (mkIf on.lnd {
      services.chainstead.lnd = {
        restAddress = mkIf l.lnd.rest (mkDefault l.lnd.address);
        rpcAddress = mkIf l.lnd.grpc (mkDefault l.lnd.address);
        settings =
          let
            ips = lib.filter isIP l.lnd.names;
            domains = lib.filter (n: !isIP n) l.lnd.names;
          in
          {
            tlsautorefresh = true;
          }
          // lib.optionalAttrs (ips != [ ]) { tlsextraip = ips; }
          // lib.optionalAttrs (domains != [ ]) { tlsextradomain = domains; };
      };
    })

    (mkIf on.thunderhub {
      services.chainstead.thunderhub.host = mkDefault l.thunderhub.address;
    })

    # Nothing calls a third party by default (docs/access.md lists what does).
    (mkIf monerod.enable {
      # monerod's default (`notify`) asks updates.moneropulse.* over DNS for
      # new releases (src/daemon/command_line_args.h); Nix pins the version.
      services.chainstead.monerod.settings.check-updates = mkDefault "disabled";
    })
    (mkIf (thunderhub.enable && cfg.confineThunderhub && !thunderhubFetches) {
      systemd.services.thunderhub.serviceConfig = {
        IPAddressAllow = [ "localhost" ] ++ lib.optionals on.thunderhub l.thunderhub.allowedClients;
        IPAddressDeny = "any";
      };
    })
  ];
}
