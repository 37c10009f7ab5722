# Mirrors nixpkgs nixos/modules/services/networking/firewall.nix (the port
# options, per-interface ports, trusted interfaces and `backend`; no rule
# rendering), firewall-nftables.nix (`extraInputRules`),
# firewall-iptables.nix (`extraCommands`) and nftables.nix
# (`networking.nftables.enable`), with nixpkgs' types and defaults.
{ config, lib, ... }:
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
    # services.firewalld is not mirrored; its case of the default is left out.
    backend = mkOption {
      type = types.enum [
        "iptables"
        "nftables"
        "firewalld"
      ];
      default = if config.networking.nftables.enable then "nftables" else "iptables";
    };
    extraInputRules = mkOption {
      type = types.lines;
      default = "";
    };
    extraCommands = mkOption {
      type = types.lines;
      default = "";
    };
  };

  options.networking.nftables.enable = mkOption {
    type = types.bool;
    default = false;
  };

  # As firewall-nftables.nix asserts: iptables commands do nothing there.
  config.assertions = lib.optional (config.networking.firewall.backend == "nftables") {
    assertion = config.networking.firewall.extraCommands == "";
    message = "extraCommands is incompatible with the nftables based firewall: ${config.networking.firewall.extraCommands}";
  };
}
