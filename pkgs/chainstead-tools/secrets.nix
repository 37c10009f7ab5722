# chainstead-secrets alone; see ./default.nix.
{ callPackage }: callPackage ./default.nix { crate = "secrets"; }
