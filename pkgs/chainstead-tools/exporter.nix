# chainstead-exporter alone; see ./default.nix.
{ callPackage }: callPackage ./default.nix { crate = "exporter"; }
