# chainstead-backup alone; see ./default.nix.
{ callPackage }: callPackage ./default.nix { crate = "backup"; }
