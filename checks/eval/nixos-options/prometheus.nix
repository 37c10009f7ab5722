# Mirrors nixpkgs nixos/modules/services/monitoring/prometheus/default.nix
# (a subset of services.prometheus and of its scrape_config keys) and
# prometheus/exporters.nix + exporters/node.nix and exporters/bitcoin.nix
# (only `node` and `bitcoin` are declared under exporters). Nothing is
# rendered or started.
{ lib, ... }:
let
  inherit (lib) mkOption types;

  # nixpkgs' mkOpt: nullable, null meaning "Prometheus' own default".
  nullable =
    type:
    mkOption {
      type = types.nullOr type;
      default = null;
    };

  staticConfig = types.submodule {
    options = {
      targets = mkOption { type = types.listOf types.str; };
      labels = mkOption {
        type = types.attrsOf types.str;
        default = { };
      };
    };
  };

  fileSdConfig = types.submodule {
    options = {
      files = mkOption { type = types.listOf types.str; };
      refresh_interval = nullable types.str;
    };
  };

  scrapeConfig = types.submodule {
    options = {
      job_name = mkOption { type = types.str; };
      scrape_interval = nullable types.str;
      scrape_timeout = nullable types.str;
      metrics_path = nullable types.str;
      honor_labels = nullable types.bool;
      scheme = nullable (
        types.enum [
          "http"
          "https"
        ]
      );
      params = nullable (types.attrsOf (types.listOf types.str));
      static_configs = nullable (types.listOf staticConfig);
      file_sd_configs = nullable (types.listOf fileSdConfig);
    };
  };

  globalConfig = types.submodule {
    options = {
      scrape_interval = nullable types.str;
      scrape_timeout = nullable types.str;
      evaluation_interval = nullable types.str;
      external_labels = nullable (types.attrsOf types.str);
    };
  };

  nodeExporter = types.submodule {
    options = {
      enable = lib.mkEnableOption "the prometheus node exporter";
      port = mkOption {
        type = types.port;
        default = 9100;
      };
      listenAddress = mkOption {
        type = types.str;
        default = "0.0.0.0";
      };
      extraFlags = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      openFirewall = mkOption {
        type = types.bool;
        default = false;
      };
      user = mkOption {
        type = types.str;
        default = "node-exporter";
      };
      group = mkOption {
        type = types.str;
        default = "node-exporter";
      };
      enabledCollectors = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      disabledCollectors = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
    };
  };

  # exporters/bitcoin.nix: mkExporterOpts plus its extraOpts (port 9332).
  bitcoinExporter = types.submodule {
    options = {
      enable = lib.mkEnableOption "the prometheus bitcoin exporter";
      port = mkOption {
        type = types.port;
        default = 9332;
      };
      listenAddress = mkOption {
        type = types.str;
        default = "0.0.0.0";
      };
      extraFlags = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      openFirewall = mkOption {
        type = types.bool;
        default = false;
      };
      rpcUser = mkOption {
        type = types.str;
        default = "bitcoinrpc";
      };
      rpcPasswordFile = mkOption { type = types.path; };
      rpcScheme = mkOption {
        type = types.enum [
          "http"
          "https"
        ];
        default = "http";
      };
      rpcHost = mkOption {
        type = types.str;
        default = "localhost";
      };
      rpcPort = mkOption {
        type = types.port;
        default = 8332;
      };
      refreshSeconds = mkOption {
        type = types.ints.unsigned;
        default = 300;
      };
      extraEnv = mkOption {
        type = types.attrsOf types.str;
        default = { };
      };
    };
  };
in
{
  options.services.prometheus = {
    enable = lib.mkEnableOption "Prometheus monitoring daemon";
    port = mkOption {
      type = types.port;
      default = 9090;
    };
    listenAddress = mkOption {
      type = types.str;
      default = "0.0.0.0";
    };
    extraFlags = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    globalConfig = mkOption {
      type = globalConfig;
      default = { };
    };
    scrapeConfigs = mkOption {
      type = types.listOf scrapeConfig;
      default = [ ];
    };
    rules = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    ruleFiles = mkOption {
      type = types.listOf types.path;
      default = [ ];
    };
    exporters = mkOption {
      type = types.submodule {
        options.node = mkOption {
          type = nodeExporter;
          default = { };
        };
        # nullOr: nixpkgs' rpcPasswordFile has no default, and the harness
        # forces every option value; an unset exporter is null here instead.
        options.bitcoin = mkOption {
          type = types.nullOr bitcoinExporter;
          default = null;
        };
      };
      default = { };
    };
  };
}
