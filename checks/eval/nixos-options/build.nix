# Mirrors nixpkgs nixos/modules/system/build.nix (`system.build`, freeform)
# and nixos/modules/config/system-path.nix (`environment.systemPackages`).
{ lib, ... }:
let
  inherit (lib) mkOption types;
in
{
  options = {
    system.build = mkOption {
      default = { };
      type = types.submoduleWith {
        modules = [ { freeformType = types.lazyAttrsOf (types.uniq types.unspecified); } ];
      };
    };

    environment.systemPackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };
  };
}
