# chainstead-sync-gate alone; see ./default.nix.
{ callPackage }: callPackage ./default.nix { crate = "sync-gate"; }
