# The chainstead part of the access VM test's node (checks/access.nix,
# through its `passthru.chainsteadNode`), evaluated here: no failed
# assertion, Fulcrum's and LND's REST port opened for the client address
# only, the onion services the test reads, and the command's manifest with
# the name the client connects to.
{ lib, harness }:
let
  h = harness;

  # runNixOSTest as the identity: the test's arguments, not a test.
  test = import ../../access.nix {
    pkgs = h.pkgs // {
      inherit lib;
      testers.runNixOSTest = args: args;
    };
  };
  node = h.evalConfig [ test.passthru.chainsteadNode ];
  manifest = h.renderedJSON node.system.build.chainstead-cli-manifest.manifest;
in
{
  node = [
    (h.expectNoFailedAssertions "the node evaluates cleanly" node)
    (h.expectEqual "Fulcrum SSL and LND REST for the client only" [
      "iptables -w -A nixos-fw -p tcp --dport 50002 -s 192.168.1.1 -j nixos-fw-accept -m comment --comment chainstead-fulcrum"
      "iptables -w -A nixos-fw -p tcp --dport 8080 -s 192.168.1.1 -j nixos-fw-accept -m comment --comment chainstead-lnd-rest"
    ] (lib.filter (l: l != "") (lib.splitString "\n" node.networking.firewall.extraCommands)))
    (h.expectEqual "the onion services the test reads" [
      "chainstead-fulcrum-ssl"
      "chainstead-lnd-rest"
    ] (lib.attrNames node.services.tor.relay.onionServices))
    (h.expectEqual "no Tor network in the test" true node.services.tor.settings.DisableNetwork)
    (h.expectEqual "the name the client connects to" [ "node" ] manifest.fulcrum.lan.hosts)
    (h.expectContains "the name in the certificate" "node" node.services.chainstead.fulcrum.ssl.subjectAltNames)
    (h.expectEqual "Zeus's URI from the readonly macaroon" "readonly" manifest.lnd.macaroon_kind)
  ];
}
