# The upgrade VM test's node (checks/upgrade.nix, through its `passthru`),
# evaluated here: both configurations evaluate cleanly, the newer one's LND
# package reports the newer version to the guard over the same binary, the
# copy lands where the test looks for it, and the test script renders.
{ lib, harness }:
let
  h = harness;

  # runNixOSTest as the identity: the test's arguments, not a test.
  test = import ../../upgrade.nix {
    pkgs = h.pkgs // {
      inherit lib;
      testers.runNixOSTest = args: args;
    };
  };
  inherit (test.passthru) realVersion newerVersion;

  base = h.evalConfig [ test.passthru.chainsteadNode ];
  newer = h.evalConfig [
    test.passthru.chainsteadNode
    test.passthru.newer
  ];
  manifest = config: h.renderedJSON config.system.build.chainstead-upgrade-guard-lnd-manifest.unchecked;
  lndPackage = config: config.services.chainstead.lnd.package;
  script = test.testScript { nodes.machine = base; };
in
{
  nodes = [
    (h.expectEqual "the test is named chainstead-upgrade" "chainstead-upgrade" test.name)
    (h.expectNoFailedAssertions "the base configuration evaluates cleanly" base)
    (h.expectNoFailedAssertions "the newer configuration evaluates cleanly" newer)
    (h.expectEqual "the base guard compares the real LND version" realVersion (manifest base).package_version)
    (h.expectEqual "the newer guard compares the newer version" newerVersion (manifest newer).package_version)
    (h.expectTrue "the newer version is newer" (lib.versionOlder realVersion newerVersion)
      "${realVersion} vs ${newerVersion}"
    )
    (h.expectEqual "the newer package links the same LND" [ h.pkgs.lnd ] (lndPackage newer).paths)
    (h.expectEqual "the copy goes where the test looks" "/var/lib/chainstead-fast/lnd-pre-upgrade"
      (manifest base).pre_upgrade.dir
    )
    (h.expectContains "the copy holds the regtest channel.db the test checks"
      "/var/lib/chainstead-fast/lnd/data/graph/regtest/channel.db"
      (manifest base).pre_upgrade.paths
    )
    (h.expectEqual "the record the test reads" "/var/lib/chainstead-fast/lnd/.chainstead-upgrade-guard.json"
      (manifest base).state_file
    )
    (h.expectContains "the script reads the record through the base manifest"
      "${base.system.build.chainstead-upgrade-guard-lnd-manifest}"
      script
    )
    (h.expectContains "the script checks systemctl status for the refusal" "refusing to start lnd ${realVersion}"
      script
    )
  ];
}
