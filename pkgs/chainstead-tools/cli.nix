# chainstead-cli (the `chainstead` operator command) alone; see ./default.nix.
{ callPackage }: callPackage ./default.nix { crate = "cli"; }
