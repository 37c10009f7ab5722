# Adds chainstead's packages to nixpkgs: the Rust tools, one attribute per
# tool plus all of them together, and ThunderHub (nixpkgs has no package).
final: _prev: {
  chainstead-tools = final.callPackage ./chainstead-tools { };
  chainstead-sync-gate = final.callPackage ./chainstead-tools/sync-gate.nix { };
  chainstead-secrets = final.callPackage ./chainstead-tools/secrets.nix { };
  chainstead-backup = final.callPackage ./chainstead-tools/backup.nix { };
  chainstead-cli = final.callPackage ./chainstead-tools/cli.nix { };
  chainstead-upgrade-guard = final.callPackage ./chainstead-tools/upgrade-guard.nix { };
  chainstead-exporter = final.callPackage ./chainstead-tools/exporter.nix { };
  thunderhub = final.callPackage ./thunderhub { };
}
