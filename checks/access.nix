# VM test: reaching the node privately. A regtest node with Tor (hybrid,
# network disabled: there is no Tor network in the test) and the Fulcrum
# and LND LAN switches for one client address. Tor writes the onion
# services' hostname files; bitcoind and LND make their own P2P onion
# services through the control port and report them (getnetworkinfo,
# getinfo). A client VM in the allowed list reaches Fulcrum's TLS port by
# the listed name, its certificate verifying against that name and pinned
# by the fingerprint `chainstead fingerprint` prints; a VM outside the list
# is refused. `chainstead connect zeus` prints an lndconnect URI for the
# listed name. A new name in the list, switched with
# `switch-to-configuration test`, makes a new certificate that names it.
#
# Not exercised: publishing onion descriptors and reaching the services
# through Tor (no Tor network), wallets themselves (Sparrow, Feather, Zeus).
{ pkgs, ... }:
let
  fast = "/var/lib/chainstead-fast";
  cert = "${fast}/fulcrum/ssl/cert.pem";

  # The nodes' addresses on the test network (the test driver numbers the
  # nodes in name order: client 1, node 2, outsider 3).
  clientAddress = "192.168.1.1";

  # Electrum over TLS to HOST:50002, verified against CAFILE and HOST: prints
  # the height from blockchain.headers.subscribe.
  electrumTls = pkgs.writeText "electrum-tls.py" ''
    import json
    import socket
    import ssl
    import sys

    host, cafile = sys.argv[1], sys.argv[2]
    context = ssl.create_default_context(cafile=cafile)
    sock = context.wrap_socket(socket.create_connection((host, 50002), timeout=10), server_hostname=host)
    stream = sock.makefile("rwb")
    for number, (method, params) in enumerate([
        ("server.version", ["chainstead-test", "1.4"]),
        ("blockchain.headers.subscribe", []),
    ]):
        stream.write((json.dumps({"jsonrpc": "2.0", "id": number, "method": method, "params": params}) + "\n").encode())
    stream.flush()
    while True:
        reply = json.loads(stream.readline())
        if reply.get("id") == 1:
            print(reply["result"]["height"])
            break
  '';

  # The chainstead part of the node, also evaluated by
  # checks/eval/scenarios/access-vm.nix (passthru.chainsteadNode).
  chainsteadNode = {
    # No Tor network here: Tor makes its onion services offline.
    services.tor.settings.DisableNetwork = true;

    services.chainstead = {
      storage = {
        fast.path = fast;
        bulk.path = "/var/lib/chainstead-bulk";
      };
      bitcoind = {
        enable = true;
        network = "regtest";
        memory = 512;
      };
      fulcrum = {
        enable = true;
        memory = 512;
      };
      lnd.enable = true;
      tor = {
        enable = true;
        defaultMode = "hybrid";
        lnd.restOnion = true;
      };
      access.lan = {
        fulcrum = {
          enable = true;
          allowedClients = [ clientAddress ];
          names = [ "node" ];
        };
        lnd = {
          enable = true;
          allowedClients = [ clientAddress ];
          names = [ "node" ];
        };
      };
    };
  };

  clientTools =
    { pkgs, ... }:
    {
      environment.systemPackages = [ pkgs.python3 ];
    };
in
pkgs.testers.runNixOSTest {
  name = "chainstead-access";
  passthru = { inherit chainsteadNode; };

  nodes = {
    client = clientTools;
    outsider = clientTools;

    node =
      { pkgs, lib, ... }:
      {
        imports = [
          ../modules
          chainsteadNode
        ];
        virtualisation = {
          memorySize = 3072;
          cores = 2;
        };
        environment.systemPackages = [
          pkgs.jq
          pkgs.openssl
        ];

        # The configuration to switch to: one more name for Fulcrum.
        specialisation.more-names.configuration.services.chainstead.access.lan.fulcrum.names =
          lib.mkForce [
            "node"
            "node.home.arpa"
          ];
      };
  };

  testScript = ''
    start_all()

    with subtest("Tor writes the onion services' hostname files"):
        node.wait_for_unit("tor.service")
        for service in ["chainstead-fulcrum-ssl", "chainstead-lnd-rest"]:
            node.wait_until_succeeds(f"grep -Eqx '[a-z2-7]{{56}}\\.onion' /var/lib/tor/onion/{service}/hostname", timeout=60)
        node.fail("runuser -u nobody -- cat /var/lib/tor/onion/chainstead-fulcrum-ssl/hostname")

    with subtest("bitcoind reports its own onion address"):
        node.wait_for_unit("bitcoind.service")
        node.wait_until_succeeds("bitcoin-cli getnetworkinfo | jq -e '[.localaddresses[].address] | any(endswith(\".onion\"))'", timeout=120)
        node.succeed("bitcoin-cli getnetworkinfo | jq -e '[.networks[] | select(.name == \"onion\")][0].reachable'")

    with subtest("one block releases Fulcrum and LND"):
        node.succeed("bitcoin-cli createwallet miner")
        address = node.succeed("bitcoin-cli -rpcwallet=miner getnewaddress").strip()
        node.succeed(f"bitcoin-cli generatetoaddress 1 {address}")
        node.wait_for_unit("fulcrum.service", timeout=60)
        node.wait_for_unit("lnd.service", timeout=120)

    with subtest("LND announces its onion address"):
        node.wait_until_succeeds("lncli getinfo | jq -e '.uris | any(contains(\".onion:\"))'", timeout=180)

    with subtest("the certificate names the listed host; the command prints its fingerprint"):
        node.wait_until_succeeds("test -s ${cert}", timeout=60)
        node.succeed("openssl x509 -in ${cert} -noout -ext subjectAltName | grep -q 'DNS:node'")
        fingerprint = node.succeed("chainstead fingerprint").strip()
        expected = node.succeed("openssl x509 -in ${cert} -noout -fingerprint -sha256").strip().split("=", 1)[1]
        assert fingerprint == expected, f"{fingerprint} != {expected}"
        out = node.succeed("chainstead connect sparrow")
        assert "node:50002" in out and fingerprint in out, out
        assert ".onion:50002" in out, out

    with subtest("the listed client reaches Fulcrum's TLS port by name, verified"):
        pem = node.succeed("cat ${cert}")
        client.succeed(f"cat > /tmp/cert.pem <<'EOF'\n{pem}EOF")
        client.wait_until_succeeds("test \"$(python3 ${electrumTls} node /tmp/cert.pem)\" = 1", timeout=120)
        # The name verifies; an address not in the certificate does not.
        client.fail("python3 ${electrumTls} 192.168.1.2 /tmp/cert.pem")

    with subtest("a host outside the list is refused"):
        outsider.succeed("ping -c 1 -W 5 node")  # the network itself works
        outsider.succeed(f"cat > /tmp/cert.pem <<'EOF'\n{pem}EOF")
        outsider.fail("timeout 15 python3 ${electrumTls} node /tmp/cert.pem")
        # The plain TCP port stays on loopback for everyone.
        client.fail("timeout 5 bash -c '</dev/tcp/node/50001'")

    with subtest("Zeus gets an lndconnect URI for the listed name, with a warning"):
        node.wait_until_succeeds("test -e ${fast}/lnd/macaroons/readonly.macaroon", timeout=120)
        out = node.succeed("chainstead connect zeus 2>/tmp/warnings")
        assert "lndconnect://node:8080?cert=" in out and "&macaroon=" in out, out
        node.succeed("grep -q credential /tmp/warnings")
        node.fail("runuser -u nobody -- chainstead connect zeus")
        client.wait_until_succeeds("timeout 5 bash -c '</dev/tcp/node/8080'", timeout=60)
        outsider.fail("timeout 5 bash -c '</dev/tcp/node/8080'")

    with subtest("a new name makes a new certificate, the same list keeps it"):
        node.succeed("systemctl restart fulcrum.service")
        node.wait_for_unit("fulcrum.service")
        assert node.succeed("chainstead fingerprint").strip() == fingerprint, "unchanged names changed the certificate"
        node.succeed("/run/current-system/specialisation/more-names/bin/switch-to-configuration test")
        node.wait_for_unit("fulcrum.service")
        node.wait_until_succeeds("openssl x509 -in ${cert} -noout -ext subjectAltName | grep -q 'DNS:node.home.arpa'", timeout=60)
        assert node.succeed("chainstead fingerprint").strip() != fingerprint, "the certificate was not made again"
  '';
}
