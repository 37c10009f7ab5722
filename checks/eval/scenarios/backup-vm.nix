# The chainstead part of the backup VM test's nodes (checks/backup.nix,
# through its `passthru.chainsteadNodes`), evaluated here: no failed
# assertions, the pusher unit with both targets in its manifests, the
# credentials where the test's Garage fixture writes them, the network
# settings the two nodes rely on, and the test script renders against the
# evaluated nodes.
{ lib, harness }:
let
  h = harness;

  # runNixOSTest as the identity: the test's arguments, not a test.
  test = import ../../backup.nix {
    pkgs = h.pkgs // {
      inherit lib;
      testers.runNixOSTest = args: args;
    };
  };

  alice = h.evalConfig [ test.passthru.chainsteadNodes.alice ];
  bob = h.evalConfig [ test.passthru.chainsteadNodes.bob ];

  svc = alice.systemd.services.chainstead-backup;
  manifest = h.renderedJSON alice.system.build.chainstead-backup-manifest.manifest;
  operator = h.renderedJSON alice.system.build.chainstead-backup-operator-manifest.manifest;
  target = m: name: lib.findFirst (t: t.name == name) null m.targets;
  targetNames = m: lib.sort lib.lessThan (map (t: t.name) m.targets);

  usbDir = "/mnt/usb/lnd-backup";
  credDir = "/run/credentials/chainstead-backup.service";
  secretsDir = "/run/chainstead/secrets/backup";

  script = test.testScript { nodes = { inherit alice bob; }; };
  bobConf = h.renderedText bob.services.chainstead.bitcoind.configFile;
in
{
  nodes = [
    (h.expectEqual "the test is named chainstead-backup" "chainstead-backup" test.name)
    (h.expectNoFailedAssertions "alice (bitcoind, LND, the pusher) evaluates cleanly" alice)
    (h.expectNoFailedAssertions "bob (bitcoind, LND) evaluates cleanly" bob)
    (h.expectTrue "only alice runs the pusher" (
      alice.systemd.services ? chainstead-backup && !(bob.systemd.services ? chainstead-backup)
    ) "")
    (h.expectContains "bob's bitcoind follows alice's (in the regtest section)" "[regtest]\n"
      bobConf
    )
    (h.expectTrue "connect=alice:18444 is inside [regtest]" (
      lib.hasInfix "connect=alice:18444\n" (lib.last (lib.splitString "[regtest]" bobConf))
    ) bobConf)
    (h.expectContains "alice's bitcoind P2P port is open for bob" 18444
      alice.networking.firewall.allowedTCPPorts
    )
    (h.expectContains "bob's LND P2P port is open for alice" 9735
      bob.networking.firewall.allowedTCPPorts
    )
  ];

  pusher = [
    (h.expectContains "the pusher watches with its checked manifest" "watch --manifest"
      svc.serviceConfig.ExecStart
    )
    (h.expectEqual "both targets in the service manifest" [
      "garage"
      "usb"
    ] (targetNames manifest))
    (h.expectEqual "both targets in the operator manifest" [
      "garage"
      "usb"
    ] (targetNames operator))
    (h.expectEqual "the directory target" {
      kind = "directory";
      path = usbDir;
    } { inherit (target manifest "usb") kind path; })
    (h.expectEqual "the S3 target: Garage on loopback, path-style, region garage" {
      kind = "s3";
      endpoint = "http://127.0.0.1:3900";
      bucket = "lnd-backup";
      region = "garage";
      prefix = "alice";
      allow_http = false;
    } { inherit (target manifest "garage") kind endpoint bucket region prefix allow_http; })
    (h.expectEqual "it watches LND's regtest channel.backup"
      "/var/lib/chainstead-fast/lnd/data/chain/bitcoin/regtest/channel.backup"
      manifest.channel_backup
    )
    (h.expectTrue "LND verifies each new file before it is pushed" (manifest ? lnd) (
      h.show manifest
    ))
    (h.expectContains "the directory target is writable for the unit" "-${usbDir}"
      svc.serviceConfig.ReadWritePaths
    )
    (h.expectTrue "the directory target's folder exists, owned by the pusher, 0700" (lib.any (
      e: e.type == "d" && e.path == usbDir && e.user == "chainstead-backup" && e.mode == "0700"
    ) (h.tmpfilesEntries alice)) (h.show (h.tmpfilesEntries alice)))
    (h.expectEqual "the operator's manifest is /etc/chainstead/backup.json (what the test script uses)"
      alice.system.build.chainstead-backup-operator-manifest
      alice.environment.etc."chainstead/backup.json".source
    )
  ];

  credentials = [
    (h.expectContains "the key id reaches the unit by LoadCredential"
      "garage-access-key-id:${secretsDir}/garage-key-id"
      svc.serviceConfig.LoadCredential
    )
    (h.expectContains "the secret key reaches the unit by LoadCredential"
      "garage-secret-access-key:${secretsDir}/garage-secret"
      svc.serviceConfig.LoadCredential
    )
    (h.expectEqual "the service manifest names them by their systemd credential paths" {
      access_key_id_file = "${credDir}/garage-access-key-id";
      secret_access_key_file = "${credDir}/garage-secret-access-key";
    } { inherit (target manifest "garage") access_key_id_file secret_access_key_file; })
    (h.expectEqual "the operator manifest names the files the fixture writes" {
      access_key_id_file = "${secretsDir}/garage-key-id";
      secret_access_key_file = "${secretsDir}/garage-secret";
    } { inherit (target operator "garage") access_key_id_file secret_access_key_file; })
    (h.expectNoSecrets "no credential value in either manifest" {
      value = [
        manifest
        operator
      ];
    })
  ];

  test-script = [
    (h.expectTrue "the test script renders against the evaluated nodes" (builtins.isString script) "")
    (h.expectContains "it follows the runbook: verify"
      "chainstead-backup verify --manifest /etc/chainstead/backup.json"
      script
    )
    (h.expectContains "it follows the runbook: restore --from"
      "restore --manifest /etc/chainstead/backup.json --from"
      script
    )
    (h.expectContains "it follows the runbook: lncli verifychanbackup --multi_file"
      "lncli verifychanbackup --multi_file"
      script
    )
    (h.expectContains "it reads LND's channel.backup from the evaluated path"
      "/var/lib/chainstead-fast/lnd/data/chain/bitcoin/regtest/channel.backup"
      script
    )
    (h.expectContains "it reads the metrics file the pusher writes"
      "${alice.services.chainstead.backup.metricsDir}/chainstead-backup.prom"
      script
    )
  ];
}
