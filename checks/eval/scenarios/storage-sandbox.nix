# The tier setup units run in the shared sandbox (modules/lib.nix,
# `hardening`) with only the exceptions their job needs: root with the file
# capabilities for owners and modes, setgid allowed, write access to their
# tier alone, no network. A tier without a device gets its directory made
# first by one unsandboxed rule; a tier with one does not.
{ lib, harness }:
let
  h = harness;
  chainstead = import ../../../modules/lib.nix { inherit lib; };

  config = h.evalConfig [
    {
      services.chainstead = {
        storage = {
          fast.path = "/srv/fast";
          bulk = {
            path = "/srv/bulk";
            device = "/dev/disk/by-label/bulk";
          };
        };
        bitcoind.enable = true;
        lnd.enable = true;
        monerod.enable = true;
      };
    }
  ];
  setup = tier: config.systemd.services."chainstead-storage-${tier}".serviceConfig;
  exceptions = [
    "CapabilityBoundingSet"
    "RestrictSUIDSGID"
    "SystemCallFilter"
    "RestrictAddressFamilies"
  ];
  kept = removeAttrs chainstead.hardening exceptions;
  fastRules = h.renderedText config.services.chainstead.storage.setupRules.fast;
  preStart = (setup "fast").ExecStartPre or [ ];
  # The one rule, as the stub writeText names it by name and text.
  mountPointStep = "+${h.pkgs.systemd}/bin/systemd-tmpfiles --create ${
    h.pkgs.writeText "chainstead-fast-mount-point.conf" "d /srv/fast 0755 root root - -\n"
  }";
in
{
  setup-sandbox = [
    (h.expectNoFailedAssertions "the layout evaluates cleanly" config)
    (h.expectEqual "every baseline setting but the named exceptions is kept" kept (
      builtins.intersectAttrs kept (setup "fast")
    ))
    (h.expectEqual "root keeps only the capabilities for owners and modes" [
      "CAP_CHOWN"
      "CAP_FOWNER"
      "CAP_DAC_OVERRIDE"
      "CAP_FSETID"
    ] (setup "bulk").CapabilityBoundingSet)
    (h.expectEqual "each setup writes to its own tier only" {
      fast = [ "/srv/fast" ];
      bulk = [ "/srv/bulk" ];
    } (lib.genAttrs [ "fast" "bulk" ] (tier: (setup tier).ReadWritePaths)))
    (h.expectEqual "chown comes back into the system call filter, nothing more of @privileged"
      (chainstead.hardening.SystemCallFilter ++ [ "@chown" "~@resources" ])
      (setup "fast").SystemCallFilter
    )
    (h.expectContains "a setgid directory is why RestrictSUIDSGID is off" " 2750 lnd " fastRules)
    (h.expectEqual "so RestrictSUIDSGID is off" false (setup "fast").RestrictSUIDSGID)
    (h.expectEqual "no network" {
      PrivateNetwork = true;
      RestrictAddressFamilies = [ "AF_UNIX" ];
      IPAddressDeny = "any";
    } { inherit (setup "fast") PrivateNetwork RestrictAddressFamilies IPAddressDeny; })
  ];

  mount-point = [
    (h.expectEqual "a tier without a device gets one unsandboxed step: the tier's own directory"
      [ mountPointStep ]
      preStart
    )
    (h.expectEqual "a tier with a device gets none: its mount makes the directory" [ ] (
      (setup "bulk").ExecStartPre or [ ]
    ))
  ];
}
