# Mirrors nixpkgs nixos/modules/system/boot/systemd/tmpfiles.nix
# (rules, settings, packages; the rule files themselves are not rendered).
{ lib, ... }:
let
  inherit (lib) mkOption types;

  entry =
    { name, ... }:
    {
      options = {
        type = mkOption {
          type = types.str;
          default = name;
        };
        mode = mkOption {
          type = types.str;
          default = "-";
        };
        user = mkOption {
          type = types.str;
          default = "-";
        };
        group = mkOption {
          type = types.str;
          default = "-";
        };
        age = mkOption {
          type = types.str;
          default = "-";
        };
        argument = mkOption {
          type = types.str;
          default = "";
        };
      };
    };
in
{
  options.systemd.tmpfiles = {
    rules = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };

    # <file name>.<path>.<type> = { mode, user, group, age, argument }
    settings = mkOption {
      type = types.attrsOf (types.attrsOf (types.attrsOf (types.submodule entry)));
      default = { };
    };

    packages = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };
  };
}
