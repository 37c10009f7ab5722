# Entry point for checks/options-doc/run (nix-instantiate --eval --strict
# --json): the chainstead modules evaluated with the eval harness
# (checks/eval), nixpkgs' lib from `nixpkgsLib` (the checkout containing lib/).
# Attributes:
#   markdown  docs/options.md as it should read
#   missing   of the option paths in `refs` (a JSON list of strings such as
#             "services.chainstead.lnd.dataDir"), those no declared option
#             has: see `known` below
{
  nixpkgsLib,
  refs ? "[]",
}:
let
  lib = import "${nixpkgsLib}/lib";
  harness = import ../eval/default.nix { inherit lib; };
  inherit (harness.eval [ ]) options;
  doc = import ./render.nix {
    inherit lib options;
    root = ../..;
  };

  # A path names an option when, part by part, it equals an option's name
  # (`<name>`, `*` and `‹name›` in either stand for any attribute name), is
  # a prefix of one (a group such as services.chainstead.storage), or goes
  # below an option whose type holds free-form keys: an open submodule
  # (settings.<key>) or an attribute set with no options declared below it
  # (environment.<VAR>). Below an attribute set of submodules
  # (backup.targets.<name>) the submodule's options are the only names.
  wildcard = part: part == "*" || lib.hasPrefix "<" part || lib.hasPrefix "‹" part;
  partsMatch = a: b: a == b || wildcard a || wildcard b;
  prefixMatch =
    short: long:
    builtins.length short <= builtins.length long
    && lib.all (i: partsMatch (builtins.elemAt short i) (builtins.elemAt long i)) (
      lib.range 0 (builtins.length short - 1)
    );
  hasSubOptions =
    o:
    lib.any (
      sub: builtins.length sub.loc > builtins.length o.loc && prefixMatch o.loc sub.loc
    ) doc.all;
  freeform =
    o:
    lib.hasPrefix "open submodule" o.type
    || (lib.hasInfix "attribute set of" o.type && !hasSubOptions o);
  known =
    path:
    let
      parts = lib.splitString "." path;
    in
    lib.any (
      o:
      prefixMatch parts o.loc
      || (prefixMatch o.loc parts && freeform o)
    ) doc.all;
in
{
  inherit (doc) markdown;
  missing = builtins.filter (p: !known p) (builtins.fromJSON refs);
}
