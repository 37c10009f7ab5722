# The unit files of every service in all-units.nix, as the hardening check
# hands them to `systemd-analyze security --offline=true`:
#   nix-instantiate --eval --strict --json units.nix --argstr nixpkgsLib DIR
# gives { failedAssertions; units; unsandboxed; }: the configuration's failed
# assertions, every enabled service as { "<name>.service" = "<unit file>"; },
# and for the check's self-test one unit (the bitcoind sync gate) with the
# shared baseline (modules/lib.nix, `hardening`) taken out.
{
  nixpkgsLib,
  modules ? [ ./all-units.nix ],
}:
let
  lib = import "${nixpkgsLib}/lib";
  harness = import ../eval/default.nix { inherit lib; };
  chainstead = import ../../modules/lib.nix { inherit lib; };
  config = harness.evalConfig modules;

  # As nixpkgs renders a section (nixos/lib/systemd-lib.nix, attrsToSection):
  # keys sorted, a list as one line per entry, booleans as true/false. An
  # empty entry ("CapabilityBoundingSet=") is kept: systemd reads it as
  # "reset the list", so [ "" ] is the empty set.
  toOption =
    x:
    if builtins.isBool x then
      (if x then "true" else "false")
    else
      toString x;
  section =
    name: attrs:
    "[${name}]\n"
    + lib.concatStrings (
      lib.concatLists (
        lib.mapAttrsToList (key: value: map (x: "${key}=${toOption x}\n") (lib.toList value)) attrs
      )
    );

  # [Unit] and [Service]; the environment is left out (nothing in it is
  # scored, and nixpkgs quotes it in ways this check need not mirror).
  unitFile = service: section "Unit" service.unitConfig + "\n" + section "Service" service.serviceConfig;
  withoutBaseline =
    service:
    service
    // {
      serviceConfig = removeAttrs service.serviceConfig (builtins.attrNames chainstead.hardening);
    };
  bare = config.systemd.services.chainstead-sync-gate-bitcoind;
in
{
  unsandboxed.${bare.name} = unitFile (withoutBaseline bare);
  failedAssertions = harness.failedAssertions config;
  units = lib.mapAttrs' (_: service: lib.nameValuePair service.name (unitFile service)) (
    lib.filterAttrs (_: service: service.enable) config.systemd.services
  );
}
