# Mirrors the parts of nixpkgs nixos/modules/services/security/tor.nix the
# chainstead modules set: services.tor.{enable, client.enable,
# client.socksListenAddress, settings (freeform torrc; the typed keys used
# here with their types), relay.onionServices.<name>.{map, version, path,
# settings}} and the tor group the module creates. The `map` entries and
# `path`'s default (/var/lib/tor/onion/<name>) are as nixpkgs has them; the
# torrc itself is not rendered.
{ config, lib, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.services.tor;

  optionBool = mkOption {
    type = types.nullOr types.bool;
    default = null;
  };
  optionPath = mkOption {
    type = types.nullOr types.path;
    default = null;
  };
  optionAddress = mkOption {
    type = types.nullOr types.str;
    default = null;
  };
  optionPort = mkOption {
    type = types.nullOr (types.oneOf [
      types.port
      (types.enum [ "auto" ])
    ]);
    default = null;
  };
  optionFlags = mkOption {
    type = types.listOf types.str;
    default = [ ];
  };
  freeform = types.attrsOf (types.nullOr (types.oneOf [
    types.str
    types.int
    types.bool
    (types.listOf types.str)
  ]));

  socksPort = types.oneOf [
    types.port
    (types.submodule {
      options = {
        unix = optionPath;
        addr = optionAddress;
        port = optionPort;
        flags = optionFlags;
        IsolateDestAddr = mkOption {
          type = types.bool;
          default = false;
        };
      };
    })
  ];

  controlPort = types.oneOf [
    types.port
    (types.enum [ "auto" ])
    (types.listOf (types.oneOf [
      types.port
      (types.enum [ "auto" ])
      (types.submodule {
        options = {
          unix = optionPath;
          flags = optionFlags;
          addr = optionAddress;
          port = optionPort;
        };
      })
    ]))
  ];

  onionService = types.submodule (
    { name, ... }:
    {
      options = {
        path = mkOption { type = types.path; };
        secretKey = optionPath;
        map = mkOption {
          type = types.listOf (types.oneOf [
            types.port
            (types.submodule {
              options = {
                port = optionPort;
                target = mkOption {
                  default = null;
                  type = types.nullOr (types.submodule {
                    options = {
                      unix = optionPath;
                      addr = optionAddress;
                      port = optionPort;
                    };
                  });
                };
              };
            })
          ]);
          apply = map (v: if lib.isInt v then { port = v; target = null; } else v);
        };
        version = mkOption {
          type = types.nullOr (types.enum [ 2 3 ]);
          default = null;
        };
        settings = mkOption {
          type = types.submodule { freeformType = freeform; };
          default = { };
        };
      };
      config.path = lib.mkDefault "/var/lib/tor/onion/${name}";
    }
  );
in
{
  options.services.tor = {
    enable = lib.mkEnableOption "Tor daemon";
    client = {
      enable = lib.mkEnableOption "the routing of application connections";
      socksListenAddress = mkOption {
        type = socksPort;
        default = {
          addr = "127.0.0.1";
          port = 9050;
          IsolateDestAddr = true;
        };
      };
    };
    relay.onionServices = mkOption {
      type = types.attrsOf onionService;
      default = { };
    };
    settings = mkOption {
      type = types.submodule {
        freeformType = freeform;
        options = {
          ControlPort = mkOption {
            type = controlPort;
            default = [ ];
          };
          CookieAuthentication = optionBool;
          CookieAuthFile = optionPath;
          CookieAuthFileGroupReadable = optionBool;
          DisableNetwork = optionBool;
        };
      };
      default = { };
    };
  };

  # nixpkgs creates these with the service (with the fixed ids of
  # nixos/modules/misc/ids.nix; isSystemUser stands in for them here).
  config = lib.mkIf cfg.enable {
    users.groups.tor = { };
    users.users.tor = {
      group = "tor";
      isSystemUser = true;
    };
  };
}
