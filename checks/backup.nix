# VM test (issue 5): two LND nodes in regtest open a channel, and within
# seconds the new channel.backup is on both of alice's backup targets: a
# directory (standing in for a USB disk or a PBS datastore mount) and Garage
# over S3 (nixpkgs `services.garage`, single node, on alice's loopback). The
# restore runbook of docs/backup.md is followed: `verify`, `restore --from`,
# then `lncli verifychanbackup --multi_file` accepts the restored copies. Also:
# the pending channel is pushed before it confirms; a corrupted copy is
# refused by LND; `restore` of a version that does not exist fails with a
# clear message; the pusher's user reads channel.backup but can neither
# write LND's directory nor read the wallet; the S3 secret is on no command
# line and in no log; the metrics textfile has a last success per target; a
# target that is down does not hold the other back and catches up when it
# returns; a `switch-to-configuration test` that changes a pusher setting
# restarts the pusher (not LND), which pushes no new version of the same
# content.
#
# Nodes: each runs its own regtest bitcoind; bob's follows alice's
# (`connect=alice:18444`, Bitcoin Core's regtest P2P port, open on alice),
# so blocks mined on alice release bob's sync gate as well. LND's P2P port
# (9735) is open on bob for alice's `lncli connect`.
#
# Garage facts (nixpkgs nixos/modules/services/web-servers/garage.nix:
# `package` has no default and must be set; `environmentFile` goes to the
# unit's EnvironmentFile; `settings` is freeform TOML rendered to
# /etc/garage.toml, which the `garage` CLI reads; the service runs with
# DynamicUser and a StateDirectory under /var/lib/garage; Garage 1.0 and
# later need `replication_factor`, which some versions of the module assert;
# pkgs/tools/filesystems/garage/default.nix: `garage_2`). The single-node
# layout, bucket, key and permission follow the shape of nixpkgs
# nixos/tests/garage/common.nix and basic.nix (`garage node id`, `layout
# assign -z -c`, `layout apply --version`, `bucket create`, `key create`,
# `bucket allow --read --write ... --key`), checked against Garage 2.5 by
# hand: `garage node id -q` prints `<id>@<addr>`, the first layout applies as
# version 1, `key create` prints `Key ID:` and `Secret key:` lines. The RPC
# secret comes from GARAGE_RPC_SECRET in the environment file (Garage reads it
# instead of `rpc_secret`), generated at boot, never in the store.
#
# LND facts (lightningnetwork/lnd): chanbackup/pubsub.go (SubSwapper.Start)
# rewrites channel.backup whenever LND starts; channel_notifier.go hands the
# SubSwapper both PendingOpenChannelEvent and OpenChannelEvent, so a channel
# is in the file while pending and the file is rewritten once it is open.
# Test framework facts (nixpkgs nixos/lib/testing): run.nix has a `passthru`
# option (here: the chainstead node configs for the eval scenario);
# network.nix puts every node's name in every node's /etc/hosts.
{ pkgs, ... }:
let
  inherit (pkgs) lib;

  fast = "/var/lib/chainstead-fast";
  usbDir = "/mnt/usb/lnd-backup";
  bucket = "lnd-backup";
  prefix = "alice";
  s3Port = 3900;
  # Where the secret loader would put the target's credentials
  # (docs/backup.md, "Targets"); here the Garage fixture unit writes them.
  keyIdFile = "/run/chainstead/secrets/backup/garage-key-id";
  secretFile = "/run/chainstead/secrets/backup/garage-secret";
  garageRpcEnv = "/run/garage-test/rpc.env";

  storage = {
    fast.path = fast;
    bulk.path = "/var/lib/chainstead-bulk";
  };

  # The chainstead part of each node, also evaluated by
  # checks/eval/scenarios/backup-vm.nix (through `passthru`).
  chainsteadNodes = {
    alice = {
      services.chainstead = {
        inherit storage;
        bitcoind = {
          enable = true;
          network = "regtest";
          memory = 512;
          # bob's bitcoind connects in.
          p2p.openFirewall = true;
        };
        lnd = {
          enable = true;
          settings.alias = "alice";
        };
        backup = {
          enable = true;
          targets = {
            usb.directory.path = usbDir;
            garage.s3 = {
              # Loopback: plain http is accepted without allowHttp.
              endpoint = "http://127.0.0.1:${toString s3Port}";
              inherit bucket prefix;
              region = "garage";
              accessKeyIdFile = keyIdFile;
              secretAccessKeyFile = secretFile;
            };
          };
        };
      };
      # The directory target's folder must exist (the module does not create
      # it, so a missing disk fails the target): the "mounted disk".
      systemd.tmpfiles.rules = [ "d ${usbDir} 0700 chainstead-backup chainstead-backup - -" ];
    };

    bob = {
      services.chainstead = {
        inherit storage;
        bitcoind = {
          enable = true;
          network = "regtest";
          memory = 512;
          # Follow alice's chain only.
          settings.connect = "alice:18444";
        };
        lnd = {
          enable = true;
          settings.alias = "bob";
          # alice connects to bob's LND.
          p2p.openFirewall = true;
        };
      };
    };
  };
in
pkgs.testers.runNixOSTest {
  name = "chainstead-backup";

  passthru = { inherit chainsteadNodes; };

  nodes = {
    alice =
      { config, pkgs, ... }:
      {
        imports = [
          ../modules
          chainsteadNodes.alice
        ];
        virtualisation = {
          memorySize = 2048;
          cores = 2;
          # Garage wants at least 1 GiB free (nixpkgs nixos/tests/garage).
          diskSize = 4096;
        };
        environment.systemPackages = [
          pkgs.curl
          pkgs.jq
        ];

        # The configuration change to switch to: a pusher setting only.
        specialisation.keep-fewer.configuration.services.chainstead.backup.retention.keepLast = 10;

        services.garage = {
          enable = true;
          package = pkgs.garage_2;
          environmentFile = garageRpcEnv;
          settings = {
            replication_factor = 1;
            rpc_bind_addr = "127.0.0.1:3901";
            rpc_public_addr = "127.0.0.1:3901";
            s3_api = {
              s3_region = "garage";
              api_bind_addr = "127.0.0.1:${toString s3Port}";
            };
          };
        };

        systemd.services = {
          # A random RPC secret at boot, outside the store, kept across
          # restarts of Garage.
          garage-rpc-secret = {
            description = "Test fixture: Garage's RPC secret";
            requiredBy = [ "garage.service" ];
            before = [ "garage.service" ];
            serviceConfig = {
              Type = "oneshot";
              RemainAfterExit = true;
              UMask = "0077";
            };
            script = ''
              mkdir -p ${dirOf garageRpcEnv}
              if [ ! -s ${garageRpcEnv} ]; then
                secret="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
                printf 'GARAGE_RPC_SECRET=%s\n' "$secret" > ${garageRpcEnv}
              fi
            '';
          };

          # The operator's part: a single-node layout, the bucket, and a key
          # for the pusher written to root-only files (as the secret loader
          # would), before the pusher starts. Wanted, not required, by the
          # pusher: stopping Garage later must not stop the pusher.
          garage-test-setup = {
            description = "Test fixture: Garage layout, bucket and key for chainstead-backup";
            after = [ "garage.service" ];
            requires = [ "garage.service" ];
            before = [ "chainstead-backup.service" ];
            wantedBy = [ "chainstead-backup.service" ];
            # Once per boot: a restart of the pusher pulls this unit in again,
            # and a second `layout apply --version 1` would fail.
            unitConfig.ConditionPathExists = "!${secretFile}";
            path = [
              config.services.garage.package
              pkgs.gawk
            ];
            serviceConfig = {
              Type = "oneshot";
              RemainAfterExit = true;
              UMask = "0077";
              EnvironmentFile = garageRpcEnv;
            };
            script = ''
              for _ in $(seq 60); do
                if garage status >/dev/null 2>&1; then
                  break
                fi
                sleep 1
              done
              node="$(garage node id -q 2>/dev/null | cut -d@ -f1)"
              garage layout assign -z alice -c 1G "$node"
              garage layout apply --version 1
              garage bucket create ${bucket}

              # The key's output holds the secret: into a root-only file,
              # never to the journal.
              out="$(mktemp)"
              trap 'rm -f "$out"' EXIT
              garage key create chainstead-backup > "$out"
              garage bucket allow --read --write ${bucket} --key chainstead-backup
              # The secret file last: its existence means the setup is done.
              mkdir -p ${dirOf keyIdFile}
              awk '$1 == "Key" && $2 == "ID:" { print $3 }' "$out" > ${keyIdFile}
              test -s ${keyIdFile}
              awk '$1 == "Secret" && $2 == "key:" { print $3 }' "$out" > ${secretFile}.tmp
              test -s ${secretFile}.tmp
              mv ${secretFile}.tmp ${secretFile}
            '';
          };
        };
      };

    bob = {
      imports = [
        ../modules
        chainsteadNodes.bob
      ];
      virtualisation = {
        memorySize = 2048;
        cores = 2;
      };
      environment.systemPackages = [ pkgs.jq ];
    };
  };

  testScript =
    { nodes, ... }:
    let
      # alice's chainstead configuration (the Python `alice` is her machine).
      cs = nodes.alice.services.chainstead;
      lndFile = cs.lnd.backupFile;
      manifest = "/etc/chainstead/backup.json";
      metricsFile = "${cs.backup.metricsDir}/chainstead-backup.prom";

      # Exit 0 once the directory target's newest copy is byte for byte
      # LND's current channel.backup and the pusher reports each target
      # named in the arguments as holding that content.
      pushed = pkgs.writeShellScript "backup-pushed" ''
        set -euo pipefail
        export PATH=${
          lib.makeBinPath [
            pkgs.coreutils
            pkgs.jq
            cs.backup.package
          ]
        }:$PATH
        lnd_sha="$(sha256sum < ${lndFile} | cut -d' ' -f1)"
        name="$(cat ${usbDir}/latest)"
        usb_sha="$(sha256sum < "${usbDir}/$name" | cut -d' ' -f1)"
        if [ "$usb_sha" != "$lnd_sha" ]; then
          echo "usb: latest is $name ($usb_sha); LND's channel.backup is $lnd_sha" >&2
          exit 1
        fi
        status="$(chainstead-backup status --manifest ${manifest} --json)"
        for target in "$@"; do
          if ! jq -e --arg t "$target" --arg sha "$lnd_sha" \
            '.channel.sha256 == $sha and any(.targets[]; .name == $t and .current)' \
            <<<"$status" >/dev/null; then
            echo "$target: does not hold $lnd_sha yet" >&2
            exit 1
          fi
        done
      '';

      # Reads an object of the pusher's bucket straight from Garage's S3 API
      # (SigV4 signed by curl, path-style), without chainstead-backup. The
      # key reaches curl in a root-only config file, never in its argv.
      # Garage refuses a request without X-Amz-Content-Sha256 (seen with
      # Garage 2.5), which curl's --aws-sigv4 then signs as given.
      s3Get = pkgs.writeShellScript "s3-get" ''
        set -euo pipefail
        umask 077
        conf="$(mktemp)"
        trap 'rm -f "$conf"' EXIT
        printf 'user = "%s:%s"\n' "$(cat ${keyIdFile})" "$(cat ${secretFile})" > "$conf"
        ${lib.getExe pkgs.curl} -fsS -K "$conf" --aws-sigv4 aws:amz:garage:s3 \
          -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
          "http://127.0.0.1:${toString s3Port}/${bucket}/${prefix}/$1"
      '';
    in
    ''
      import json

      def status():
          return json.loads(alice.succeed("chainstead-backup status --manifest ${manifest} --json"))

      def versions():
          return {t["name"]: t["last_version"] for t in status()["targets"]}

      def lncli(machine, args):
          return json.loads(machine.succeed(f"lncli {args}"))

      def lnd_sha():
          return alice.succeed("sha256sum < ${lndFile} | cut -d' ' -f1").strip()

      def wait_rewritten(old_sha):
          # LND replaced channel.backup (new bytes: a new nonce at least).
          alice.wait_until_succeeds(f"test \"$(sha256sum < ${lndFile} | cut -d' ' -f1)\" != {old_sha}", timeout=180)

      def wait_synced(height):
          for machine in (alice, bob):
              machine.wait_until_succeeds(
                  f"lncli getinfo | jq -e '.synced_to_chain and .block_height == {height}'", timeout=180
              )

      def mine(count, address):
          alice.succeed(f"bitcoin-cli generatetoaddress {count} {address}")
          height = int(alice.succeed("bitcoin-cli getblockcount").strip())
          wait_synced(height)

      start_all()

      with subtest("both nodes come up, alice is funded and connects to bob"):
          alice.wait_for_unit("multi-user.target")
          bob.wait_for_unit("multi-user.target")
          alice.succeed("bitcoin-cli createwallet miner")
          miner = alice.succeed("bitcoin-cli -rpcwallet=miner getnewaddress").strip()
          alice.succeed(f"bitcoin-cli generatetoaddress 1 {miner}")
          # bob's bitcoind follows alice's; the block releases both sync gates.
          bob.wait_until_succeeds("test \"$(bitcoin-cli getblockcount)\" = 1", timeout=120)
          for machine in (alice, bob):
              machine.wait_until_succeeds("systemctl is-active lnd.service", timeout=300)
              machine.wait_until_succeeds("lncli getinfo | jq -e '.identity_pubkey | length == 66'", timeout=300)
          bob_key = lncli(bob, "getinfo")["identity_pubkey"]
          address = lncli(alice, "newaddress p2wkh")["address"]
          # 101 blocks: the first coinbase to alice's LND wallet matures.
          mine(101, address)
          alice.wait_until_succeeds("lncli walletbalance | jq -e '(.confirmed_balance | tonumber) > 0'", timeout=120)
          alice.succeed(f"lncli connect {bob_key}@bob:9735")
          alice.wait_until_succeeds(
              f"lncli listpeers | jq -e --arg k {bob_key} 'any(.peers[]; .pub_key == $k)'", timeout=60
          )

      with subtest("before the channel, both targets hold LND's current (empty) channel.backup"):
          alice.wait_for_unit("garage-test-setup.service")
          alice.wait_for_unit("chainstead-backup.service")
          alice.wait_until_succeeds("${pushed} usb garage", timeout=60)
          before = versions()
          assert sorted(before) == ["garage", "usb"], before
          assert all(before.values()), f"a target holds nothing: {before}"
          empty_sha = lnd_sha()
          print(alice.succeed("chainstead-backup status --manifest ${manifest}"))

      with subtest("the pending channel is pushed to both targets before it confirms"):
          lncli(alice, f"openchannel --node_key {bob_key} --local_amt 100000")
          alice.wait_until_succeeds("lncli pendingchannels | jq -e '.pending_open_channels | length == 1'", timeout=60)
          wait_rewritten(empty_sha)
          alice.wait_until_succeeds("${pushed} usb garage", timeout=15)
          pending_sha = lnd_sha()
          pending = versions()
          for target in ("usb", "garage"):
              assert pending[target] > before[target], f"{target}: {pending[target]} is not newer than {before[target]}"

      with subtest("the open channel's channel.backup is on both targets within seconds"):
          mine(6, miner)
          alice.wait_until_succeeds("lncli listchannels | jq -e '.channels | length == 1 and .[0].active'", timeout=180)
          # LND rewrites it when the channel is marked open.
          wait_rewritten(pending_sha)
          alice.wait_until_succeeds("${pushed} usb garage", timeout=15)
          report = status()
          written = float(alice.succeed("date -r ${lndFile} +%s.%N").strip())
          for row in report["targets"]:
              assert row["last_version"] == report["channel"]["name"], row
              assert row["last_version"].endswith(lnd_sha()[:12]), row
              lag = row["last_success"] - written
              print(f"{row['name']}: acknowledged {lag:.3f} s after LND wrote channel.backup")
              assert 0 <= lag <= 5, f"{row['name']}: acknowledged {lag:.3f} s after the write"

      with subtest("verify and restore (the runbook) give LND's bytes from every target"):
          rows = json.loads(alice.succeed("chainstead-backup verify --manifest ${manifest} --json"))
          assert sorted(r["target"] for r in rows) == ["garage", "local", "usb"], rows
          for row in rows:
              assert row["ok"] and row["result"].startswith("OK: "), row
          for target in ("usb", "garage"):
              out = f"/root/from-{target}.backup"
              alice.succeed(f"chainstead-backup restore --manifest ${manifest} --from {target} --out {out}")
              alice.succeed(f"cmp {out} ${lndFile}")
              assert alice.succeed(f"stat -c %a {out}").strip() == "600"
          # Garage read back with a plain S3 client, not the tool.
          newest = alice.succeed("${s3Get} latest").strip()
          assert newest == report["channel"]["name"], f"Garage's latest names {newest}"
          alice.succeed(f"${s3Get} {newest} > /root/from-s3.backup")
          alice.succeed("cmp /root/from-s3.backup ${lndFile}")

      with subtest("lncli verifychanbackup accepts the pushed copies and refuses a corrupted one"):
          for copy in ("from-usb", "from-garage", "from-s3"):
              alice.succeed(f"lncli verifychanbackup --multi_file /root/{copy}.backup")
          alice.succeed("cp /root/from-usb.backup /root/corrupt.backup")
          alice.succeed("dd if=/dev/zero of=/root/corrupt.backup bs=1 seek=30 count=8 conv=notrunc")
          alice.fail("cmp /root/corrupt.backup /root/from-usb.backup")
          alice.fail("lncli verifychanbackup --multi_file /root/corrupt.backup")

      with subtest("restore of a version that does not exist fails clearly and writes nothing"):
          missing = "channel.backup.20000101T000000.000000000Z.000000000000"
          for target, words in (("usb", "failed to read"), ("garage", "failed to download")):
              alice.succeed(
                  f"rc=0; chainstead-backup restore --manifest ${manifest} --from {target} --version {missing} "
                  f"--out /root/missing.backup 2>/root/missing.err || rc=$?; test $rc -eq 1"
              )
              alice.succeed(f"grep -F '{words}' /root/missing.err")
              alice.succeed(f"grep -F '{missing}' /root/missing.err")
              alice.succeed("test ! -e /root/missing.backup")
          alice.succeed(
              "rc=0; chainstead-backup restore --manifest ${manifest} --from nas --out /root/missing.backup "
              "2>/root/missing.err || rc=$?; test $rc -eq 1"
          )
          alice.succeed("grep -F 'failed to find target' /root/missing.err")

      with subtest("the pusher is an unprivileged user with a read-only view of LND's directory"):
          assert alice.succeed("systemctl show -p User --value chainstead-backup.service").strip() == "chainstead-backup"
          alice.succeed("runuser -u chainstead-backup -- cat ${lndFile} > /dev/null")
          alice.fail("runuser -u chainstead-backup -- touch ${cs.lnd.networkDir}/x")
          alice.fail("runuser -u chainstead-backup -- cp ${lndFile} ${lndFile}.new")
          alice.succeed("test -s ${cs.lnd.networkDir}/wallet.db")
          alice.fail("runuser -u chainstead-backup -- cat ${cs.lnd.networkDir}/wallet.db > /dev/null")
          alice.succeed("test ! -e ${cs.lnd.networkDir}/x")

      with subtest("the S3 secret is on no command line, in no environment and not in the journal"):
          # Patterns from the file: the secret never enters grep's own argv.
          alice.fail("grep -q -s -a -F -f ${secretFile} /proc/[0-9]*/cmdline /proc/[0-9]*/environ")
          alice.fail("journalctl --no-pager -b | grep -q -F -f ${secretFile}")

      with subtest("the metrics textfile has a last success per target"):
          for target in ("usb", "garage"):
              labels = f'target="{target}",[^}}]*artifact="channel"'
              alice.succeed(
                  f"grep -E '^chainstead_backup_last_success_timestamp_seconds[{{]{labels}[}}] [1-9]' ${metricsFile}"
              )
              alice.succeed(f"grep -E '^chainstead_backup_up_to_date[{{]{labels}[}}] 1$' ${metricsFile}")
          alice.succeed("grep -E '^chainstead_backup_rejected_total 0$' ${metricsFile}")

      with subtest("after the pusher restarts (its ACLs applied again) a rewrite still reaches the targets at once"):
          # The unit re-applies its tmpfiles rules on every start; the view of
          # LND's directory (and the inotify watch on it) must survive that.
          alice.succeed("systemctl restart chainstead-backup.service")
          alice.wait_for_unit("chainstead-backup.service")
          alice.succeed("runuser -u chainstead-backup -- test -r ${lndFile}")
          alice.succeed("runuser -u chainstead-backup -- ls ${builtins.dirOf lndFile} > /dev/null")
          old_sha = lnd_sha()
          alice.succeed("systemctl restart lnd.service")
          wait_rewritten(old_sha)
          # Well inside the minute reconcile: only the inotify watch is this fast.
          alice.wait_until_succeeds("${pushed} usb garage", timeout=20)

      with subtest("with Garage down the directory target still gets the next version; Garage catches up"):
          alice.succeed("systemctl stop garage.service")
          old_sha = lnd_sha()
          # LND rewrites channel.backup whenever it starts.
          alice.succeed("systemctl restart lnd.service")
          wait_rewritten(old_sha)
          # Within one reconcile (60 s) even if LND, still starting, could
          # not be asked to verify the file at the first attempt.
          alice.wait_until_succeeds("${pushed} usb", timeout=75)
          alice.fail("${pushed} garage")
          # Its failed attempts are recorded (state and metrics) as they happen.
          alice.wait_until_succeeds(
              "chainstead-backup status --manifest ${manifest} --json | jq -e "
              "'.targets[] | select(.name == \"garage\") | (.current | not) and .last_error != null and .failures_total > 0'",
              timeout=15,
          )
          alice.wait_until_succeeds(
              "grep -E '^chainstead_backup_up_to_date[{]target=\"garage\",[^}]*artifact=\"channel\"[}] 0$' ${metricsFile}",
              timeout=15,
          )
          print(alice.succeed("chainstead-backup status --manifest ${manifest}"))
          alice.fail("chainstead-backup verify --manifest ${manifest}")
          alice.succeed("systemctl start garage.service")
          # The pusher's backoff tops out at 60 s.
          alice.wait_until_succeeds("${pushed} usb garage", timeout=120)
          alice.succeed("chainstead-backup verify --manifest ${manifest}")
          alice.succeed("chainstead-backup restore --manifest ${manifest} --from garage --out /root/latest.backup")
          alice.succeed("lncli verifychanbackup --multi_file /root/latest.backup")

      with subtest("switch-to-configuration test restarts the pusher, which pushes nothing new"):
          held = versions()
          pusher_before = alice.succeed("systemctl show -p InvocationID --value chainstead-backup.service").strip()
          lnd_before = alice.succeed("systemctl show -p InvocationID --value lnd.service").strip()
          alice.succeed("/run/current-system/specialisation/keep-fewer/bin/switch-to-configuration test")
          alice.wait_for_unit("chainstead-backup.service")
          assert pusher_before != alice.succeed("systemctl show -p InvocationID --value chainstead-backup.service").strip(), "the pusher was not restarted"
          assert lnd_before == alice.succeed("systemctl show -p InvocationID --value lnd.service").strip(), "LND was restarted"
          alice.succeed("jq -e '.retention.keep_last == 10' ${manifest}")
          alice.wait_until_succeeds("${pushed} usb garage", timeout=30)
          # The same content keeps its name across a restart.
          assert versions() == held, f"{versions()} != {held}"
    '';
}
