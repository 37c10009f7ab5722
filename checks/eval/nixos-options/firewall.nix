# Mirrors nixpkgs nixos/modules/services/networking/firewall.nix (the port
# options, per-interface ports and trusted interfaces; no rule rendering).
{ lib, ... }:
let
  inherit (lib) mkOption types;

  portOptions = {
    allowedTCPPorts = mkOption {
      type = types.listOf types.port;
      default = [ ];
      apply = ports: lib.unique (builtins.sort builtins.lessThan ports);
    };
    allowedUDPPorts = mkOption {
      type = types.listOf types.port;
      default = [ ];
      apply = ports: lib.unique (builtins.sort builtins.lessThan ports);
    };
    allowedTCPPortRanges = mkOption {
      type = types.listOf (types.attrsOf types.port);
      default = [ ];
    };
    allowedUDPPortRanges = mkOption {
      type = types.listOf (types.attrsOf types.port);
      default = [ ];
    };
  };
in
{
  options.networking.firewall = portOptions // {
    enable = mkOption {
      type = types.bool;
      default = true;
    };
    trustedInterfaces = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    interfaces = mkOption {
      type = types.attrsOf (types.submodule { options = portOptions; });
      default = { };
    };
  };
}
