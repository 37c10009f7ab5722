# Mirrors the provisioning part of nixpkgs
# nixos/modules/services/monitoring/grafana.nix: services.grafana.enable and
# provision.{enable, dashboards.settings.providers,
# datasources.settings.datasources} (nixpkgs types the list entries with
# freeform submodules; declared as attribute sets here). Nothing is rendered.
{ lib, ... }:
let
  inherit (lib) mkOption types;
  entries = mkOption {
    type = types.listOf (types.attrsOf types.anything);
    default = [ ];
  };
in
{
  options.services.grafana = {
    enable = lib.mkEnableOption "grafana";
    provision = {
      enable = lib.mkEnableOption "provision";
      dashboards.settings = mkOption {
        type = types.nullOr (
          types.submodule {
            options.apiVersion = mkOption {
              type = types.int;
              default = 1;
            };
            options.providers = entries;
          }
        );
        default = null;
      };
      datasources.settings = mkOption {
        type = types.nullOr (
          types.submodule {
            options.apiVersion = mkOption {
              type = types.int;
              default = 1;
            };
            options.datasources = entries;
          }
        );
        default = null;
      };
    };
  };
}
