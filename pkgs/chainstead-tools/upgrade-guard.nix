# chainstead-upgrade-guard alone; see ./default.nix.
{ callPackage }: callPackage ./default.nix { crate = "upgrade-guard"; }
