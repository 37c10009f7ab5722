# Mirrors nixpkgs nixos/modules/system/etc/etc.nix (the environment.etc
# entries; `text` becomes `source` through pkgs.writeText, as in nixpkgs).
{ lib, pkgs, ... }:
let
  inherit (lib) mkOption types;

  file =
    {
      name,
      config,
      options,
      ...
    }:
    {
      options = {
        enable = mkOption {
          type = types.bool;
          default = true;
        };
        target = mkOption { type = types.str; };
        text = mkOption {
          type = types.nullOr types.lines;
          default = null;
        };
        source = mkOption { type = types.path; };
        mode = mkOption {
          type = types.str;
          default = "symlink";
        };
        uid = mkOption {
          type = types.int;
          default = 0;
        };
        gid = mkOption {
          type = types.int;
          default = 0;
        };
        user = mkOption {
          type = types.str;
          default = "+${toString config.uid}";
        };
        group = mkOption {
          type = types.str;
          default = "+${toString config.gid}";
        };
      };

      config = {
        target = lib.mkDefault name;
        source = lib.mkIf (config.text != null) (
          lib.mkDerivedConfig options.text (
            pkgs.writeText ("etc-" + lib.replaceStrings [ "/" ] [ "-" ] name)
          )
        );
      };
    };
in
{
  options.environment.etc = mkOption {
    type = types.attrsOf (types.submodule file);
    default = { };
  };
}
