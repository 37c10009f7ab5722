# Collects the scenarios: every scenarios/<file>.nix is a function
# { lib, harness }: { <scenario> = [ checks ]; }, and the scenario's id is
# "<file>/<scenario>".
{
  lib,
  harness,
  dir ? ./scenarios,
}:
let
  files = builtins.filter (name: lib.hasSuffix ".nix" name) (
    builtins.attrNames (lib.filterAttrs (_: kind: kind == "regular") (builtins.readDir dir))
  );
  load =
    file:
    let
      base = lib.removeSuffix ".nix" file;
    in
    lib.mapAttrs' (scenario: checks: lib.nameValuePair "${base}/${scenario}" checks) (
      import (dir + "/${file}") { inherit lib harness; }
    );
in
lib.foldl' (all: file: all // load file) { } files
