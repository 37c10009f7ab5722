# The options reference for users, built with nixpkgs' nixosOptionsDoc from a
# real NixOS evaluation with the chainstead modules (flake output
# packages.<system>.options-doc; `nix build .#options-doc` gives one Markdown
# file). It hides the options docs/options.md hides and names declarations
# relative to the repository. nixosOptionsDoc's arguments and its
# optionsCommonMark output: nixos/lib/make-options-doc/default.nix.
{
  pkgs,
  lib,
  options,
}:
let
  doc = import ./render.nix {
    inherit lib options;
    root = ../..;
  };
in
(pkgs.nixosOptionsDoc {
  options = {
    services.chainstead = options.services.chainstead;
  };
  transformOptions = doc.transform;
}).optionsCommonMark
