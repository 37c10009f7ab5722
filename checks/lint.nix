# Nix lint for users with nixpkgs: deadnix and statix over the whole tree.
# (Formatting is `nix fmt`, the flake's nixfmt formatter.)
{ pkgs }:
pkgs.runCommand "chainstead-lint"
  {
    nativeBuildInputs = [
      pkgs.deadnix
      pkgs.statix
    ];
    src = ../.;
  }
  ''
    cd "$src"
    deadnix --fail .
    statix check .
    touch "$out"
  ''
