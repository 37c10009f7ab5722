# Mirrors nixpkgs nixos/modules/tasks/network-interfaces.nix (`networking.hostName`,
# type unchanged). Its default there is config.system.nixos.distroId, which
# nixos/modules/misc/version.nix sets to "nixos"; written out here.
{ lib, ... }:
let
  inherit (lib) mkOption types;
in
{
  options.networking.hostName = mkOption {
    type = types.strMatching "^$|^[[:alnum:]]([[:alnum:]_-]{0,61}[[:alnum:]])?$";
    default = "nixos";
  };
}
