{
  description = "chainstead: bitcoind, Fulcrum, LND, ThunderHub and monerod on NixOS, with tiered storage, OpenBao secrets and instant channel backups";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      pkgsFor =
        system:
        import nixpkgs {
          inherit system;
          overlays = [ self.overlays.default ];
        };
      forAllSystems = f: lib.genAttrs systems (system: f (pkgsFor system));

      # A module per component, importing what it builds on, so a user can
      # take one without the rest (imports of the same file are merged once).
      # A component's modules by name: modules/<name>.nix or modules/<name>/.
      component = names: {
        imports = map (
          name:
          let
            file = ./modules + "/${name}.nix";
          in
          if builtins.pathExists file then file else ./modules + "/${name}"
        ) names;
      };

      host =
        system: path:
        lib.nixosSystem {
          modules = [
            self.nixosModules.default
            path
            {
              nixpkgs.hostPlatform = system;
              nixpkgs.overlays = [ self.overlays.default ];
            }
          ];
        };
    in
    {
      overlays.default = import ./pkgs/overlay.nix;

      # Every component also imports what it reads options of (storage and
      # secrets everywhere; bitcoind and the sync gate for its consumers).
      nixosModules = {
        default = ./modules;
        storage = component [ "storage" ];
        secrets = component [ "secrets" ];
        bitcoind = component [
          "storage"
          "secrets"
          "bitcoind"
          "upgrade-guard"
        ];
        monerod = component [
          "storage"
          "secrets"
          "monerod"
          "upgrade-guard"
        ];
        sync-gate = component [
          "storage"
          "secrets"
          "bitcoind"
          "sync-gate"
        ];
        fulcrum = component [
          "storage"
          "secrets"
          "bitcoind"
          "sync-gate"
          "fulcrum"
          "upgrade-guard"
        ];
        lnd = component [
          "storage"
          "secrets"
          "bitcoind"
          "sync-gate"
          "lnd"
          "upgrade-guard"
        ];
        thunderhub = component [
          "storage"
          "secrets"
          "bitcoind"
          "sync-gate"
          "lnd"
          "thunderhub"
          "upgrade-guard"
        ];
        backup = component [
          "storage"
          "secrets"
          "bitcoind"
          "sync-gate"
          "lnd"
          "backup"
          "upgrade-guard"
        ];
        # Exporters and alert rules for whichever services are imported beside
        # it (it reads the options of all of them).
        monitoring = component [
          "storage"
          "secrets"
          "bitcoind"
          "monerod"
          "sync-gate"
          "fulcrum"
          "lnd"
          "monitoring"
        ];
        # The guard of whichever guarded services are imported beside it.
        upgrade-guard = component [
          "storage"
          "secrets"
          "upgrade-guard"
        ];
        # Tor and LAN access read the options of every service they reach.
        access = component [
          "storage"
          "secrets"
          "bitcoind"
          "monerod"
          "sync-gate"
          "fulcrum"
          "lnd"
          "thunderhub"
          "tor"
          "access"
          "upgrade-guard"
        ];
        tor = self.nixosModules.access;
      };

      packages = forAllSystems (pkgs: {
        sync-gate = pkgs.chainstead-sync-gate;
        secrets = pkgs.chainstead-secrets;
        backup = pkgs.chainstead-backup;
        cli = pkgs.chainstead-cli;
        upgrade-guard = pkgs.chainstead-upgrade-guard;
        exporter = pkgs.chainstead-exporter;
        inherit (pkgs) thunderhub;
        default = pkgs.chainstead-tools;
        # The services.chainstead.* reference (docs/options.md, as nixpkgs'
        # nixosOptionsDoc renders it).
        options-doc = import ./checks/options-doc/package.nix {
          inherit pkgs lib;
          inherit (host pkgs.stdenv.hostPlatform.system { }) options;
        };
      });

      nixosConfigurations = {
        blockchain-stack = host "x86_64-linux" ./hosts/smith/blockchain-stack;
        demo = host "x86_64-linux" ./hosts/demo;
      };

      apps = lib.genAttrs systems (system: {
        demo = {
          type = "app";
          program = "${(host system ./hosts/demo).config.system.build.vm}/bin/run-chainstead-demo-vm";
          meta.description = "Boot the all-in-one regtest demo VM";
        };
      });

      checks = forAllSystems (
        pkgs:
        let
          vmTest = name: import (./checks + "/${name}.nix") { inherit pkgs; };
        in
        {
          # The Rust workspace with its unit and replay-server tests.
          rust-tests = pkgs.chainstead-tools;
          module-eval = import ./checks/eval/flake-check.nix { inherit pkgs lib; };
          lint = import ./checks/lint.nix { inherit pkgs; };
          chainstead-storage = vmTest "storage";
          chainstead-nfs-bulk = vmTest "nfs-bulk";
          chainstead-sync-gate = vmTest "sync-gate";
          chainstead-thunderhub = vmTest "thunderhub";
          chainstead-secrets = vmTest "secrets";
          chainstead-backup = vmTest "backup";
          chainstead-access = vmTest "access";
          chainstead-upgrade = vmTest "upgrade";
          chainstead-migrate-nix-bitcoin = vmTest "migrate-nix-bitcoin";
          chainstead-monitoring = vmTest "monitoring";
        }
      );

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [
            # Rust
            pkgs.cargo
            pkgs.rustc
            pkgs.clippy
            pkgs.rustfmt
            pkgs.rust-analyzer
            # Nix
            pkgs.nixfmt
            pkgs.deadnix
            pkgs.statix
            # servers and tools the integration tests start
            pkgs.monero-cli
            # Garage 2.x: the tests start `garage server --single-node
            # --default-bucket`; nixpkgs' `garage` is 1.x, `garage_2` 2.x
            # (pkgs/tools/filesystems/garage/default.nix).
            pkgs.garage_2
            pkgs.rclone
            pkgs.age
            pkgs.prometheus.cli
            pkgs.jq
            pkgs.tor
          ];
        };
      });

      # The alert rules with the default thresholds (monitoring/rules.nix;
      # services.chainstead.monitoring.ruleFile has the configured ones).
      lib.monitoring = {
        rules = import ./monitoring/rules.nix { };
        ruleFile = ./monitoring/rules/chainstead.rules.yml;
        dashboard = ./monitoring/grafana/chainstead.json;
      };

      formatter = forAllSystems (pkgs: pkgs.nixfmt-tree);
    };
}
