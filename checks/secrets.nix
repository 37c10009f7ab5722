# VM test: every credential of the regtest stack comes from a real OpenBao,
# over TLS with the operator's CA (caFile) and the certificate's name
# (tlsServerName) while the address holds the IP.
# nixpkgs' services.openbao starts uninitialised, so at boot bitcoind's
# secret loader fails and bitcoind stays down (fail-closed). The script then
# initialises and unseals OpenBao and bootstraps it exactly as
# docs/secrets.md tells operators (KV v2 at secret/, the policy of
# checks/fixtures/secrets/policy.hcl, an AppRole role bound to the host's
# address, role_id and secret_id piped into root-only files), writes one
# existing value and leaves the others to the loader's `generate`.
# bitcoind, LND and ThunderHub then start with credentials from OpenBao: the
# rpcauth line accepts OpenBao's password and refuses others, LND's wallet
# is created and unlocked with the generated password, chainstead-lnd-seed-store keeps
# the seed in OpenBao, ThunderHub accepts OpenBao's master password. Each set
# is 0400 and owned by its service on tmpfs; no value is in the system's
# store closure, any command line or environment, or the journal. A wrong
# secret_id, a stopped OpenBao and a sealed one each keep ThunderHub down with
# the loader's message naming the cause; unsealed within the deadline, the
# waiting loader goes on by itself. Switching to a configuration with a
# second RPC user (switch-to-configuration test) generates its password into
# OpenBao and installs its rpcauth line.
#
# OpenBao facts used here:
#   nixos/modules/services/security/openbao.nix (nixpkgs): `settings` is
#     rendered to JSON; listener.<name>.type is "tcp" or "unix", address
#     defaults to 127.0.0.1:8200; storage is freeform; the unit is
#     openbao.service (Type=notify, DynamicUser, StateDirectory=openbao); the
#     package is put on PATH (the `bao` CLI).
#   nixos/tests/openbao.nix (nixpkgs): `bao operator init` JSON has
#     unseal_keys_b64 and root_token; `bao status` exits non-zero while sealed.
#   openbao internalshared/configutil/listener.go: a tcp listener takes
#     tls_cert_file and tls_key_file (TLS is on unless tls_disable).
#   openbao command/commands_*.go: the "file" physical backend is built in
#     (openbao.org/docs/configuration/storage/filesystem: `path`).
#   openbao api/client.go: the CLI reads BAO_ADDR, BAO_CACERT and BAO_TOKEN.
#   openbao command/operator_unseal.go: the key is an argument or read from
#     a terminal, never from a pipe; so the test unseals with the HTTP API
#     (openbao.org/api-docs/system/unseal: POST /v1/sys/unseal {"key": ...},
#     answering the seal status with `sealed`), the key in the request body.
#   openbao command/kv_put.go: `key=-` reads the value from stdin;
#     command/util.go PrintRaw: `-field` output has no newline when stdout
#     is not a terminal.
#   The test driver runs every command as `bash -c '<command>'`
#     (nixos/lib/test-driver), so no value is ever put into a command
#     string: values go through pipes and root-only files only.
#
# ThunderHub's GraphQL login is the one of checks/thunderhub.nix
# (GetServerAccounts, GetSessionToken; 4 public calls per 10 s).
{ pkgs }:
let
  # The loader connects to the IP and verifies the certificate for tlsName
  # (tlsServerName); the CLI and curl use the name, which /etc/hosts maps.
  address = "https://127.0.0.1:8200";
  tlsName = "bao.test";
  cliAddress = "https://${tlsName}:8200";
  baoDir = "/var/lib/chainstead/bao";
  secretsDir = "/run/chainstead/secrets";
  thunderhubUrl = "http://127.0.0.1:3000";
  bitcoindRpcUrl = "http://127.0.0.1:18443/";

  # The chainstead part of the node, also evaluated by
  # checks/eval/scenarios/secrets-stack.nix.
  # A test CA and OpenBao's certificate for tlsName, made when the test is
  # built (the same openssl recipe as crates/secrets/tests/common/rvault.rs).
  # Test material only: the key is world-readable in the store.
  tls = pkgs.runCommand "chainstead-test-openbao-tls" { nativeBuildInputs = [ pkgs.openssl ]; } ''
    mkdir -p "$out"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -keyout ca.key -out "$out/ca.pem" -days 3650 -subj "/CN=chainstead test CA" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -keyout "$out/key.pem" -out server.csr -subj "/CN=${tlsName}"
    printf '%s\n' basicConstraints=critical,CA:FALSE keyUsage=critical,digitalSignature \
      extendedKeyUsage=serverAuth subjectAltName=DNS:${tlsName} > server.ext
    openssl x509 -req -in server.csr -CA "$out/ca.pem" -CAkey ca.key -set_serial 2 \
      -days 3650 -extfile server.ext -out "$out/cert.pem"
    openssl verify -CAfile "$out/ca.pem" -verify_hostname ${tlsName} "$out/cert.pem"
  '';
  caFile = "${tls}/ca.pem";

  chainstead = {
    # Both tiers as plain directories on the root filesystem.
    storage = {
      fast.path = "/var/lib/chainstead-fast";
      bulk.path = "/var/lib/chainstead-bulk";
    };
    bitcoind = {
      enable = true;
      network = "regtest";
      memory = 512;
      # A password user: bitcoind gets its rpcauth line from the loader.
      rpc.users.test-remote = { };
    };
    lnd.enable = true;
    thunderhub.enable = true;
    secrets.openbao = {
      inherit address caFile;
      tlsServerName = tlsName;
      roleIdFile = "${baoDir}/role-id";
      secretIdFile = "${baoDir}/secret-id";
      # Fail-closed within seconds, not minutes.
      deadline = 10;
    };
  };

  # Prints a curl config line `user = "USER:<stdin>"`: the password reaches
  # curl through its config (-K), never through an argument.
  curlUser = pkgs.writeShellScript "curl-user-config" ''
    IFS= read -r password || true
    printf 'user = "%s:%s"\n' "$1" "$password"
  '';
  rpcBody = pkgs.writeText "getblockchaininfo.json" (
    builtins.toJSON {
      jsonrpc = "1.0";
      id = "chainstead-test";
      method = "getblockchaininfo";
      params = [ ];
    }
  );

  accountsQuery = pkgs.writeText "get-server-accounts.json" (
    builtins.toJSON {
      operationName = "GetServerAccounts";
      variables = { };
      query = "query GetServerAccounts { public { id get_server_accounts { name id slug type } } }";
    }
  );
  loginMutation = "mutation GetSessionToken($id: String!, $password: String!, $token: String) { public { get_session_token(id: $id, password: $password, token: $token) } }";
  # jq program for `jq -R -s --arg id ID`: the password is the whole stdin.
  loginBody = pkgs.writeText "thunderhub-login.jq" ''
    { operationName: "GetSessionToken", query: ${builtins.toJSON loginMutation}, variables: { id: $id, password: . } }
  '';
in
pkgs.testers.runNixOSTest {
  name = "chainstead-secrets";

  nodes.machine =
    { pkgs, ... }:
    {
      imports = [ ../modules ];
      virtualisation = {
        memorySize = 4096;
        cores = 2;
      };
      environment = {
        systemPackages = [
          pkgs.curl
          pkgs.jq
        ];
        # The `bao` CLI (on PATH through the openbao module) talks to it.
        variables = {
          BAO_ADDR = cliAddress;
          BAO_CACERT = caFile;
        };
      };
      networking.hosts."127.0.0.1" = [ tlsName ];

      services = {
        openbao = {
          enable = true;
          settings = {
            # TLS on loopback only: the loader and the CLI are local.
            listener.default = {
              type = "tcp";
              address = "127.0.0.1:8200";
              tls_cert_file = "${tls}/cert.pem";
              tls_key_file = "${tls}/key.pem";
            };
            # Survives `systemctl stop/start openbao` (inmem would not);
            # without HA an unsealed node is active at once (raft elects).
            storage.file.path = "/var/lib/openbao";
          };
        };
        inherit chainstead;
      };

      # The configuration change to switch to: a second password RPC user.
      specialisation.second-rpc-user.configuration.services.chainstead.bitcoind.rpc.users.second = { };
    };

  testScript =
    { nodes, ... }:
    let
      inherit (nodes.machine.services.chainstead) secrets;
      check = "${secrets.package}/bin/chainstead-secrets check --manifest ${secrets.manifest} --online";
      policy = ./fixtures/secrets/policy.hcl;
    in
    ''
      import json

      def as_operator(command):
          # The root token from the init output, in the environment of this
          # command's (root's) processes only, never in an argument.
          return f'export BAO_TOKEN="$(jq -r .root_token /root/bao-init.json)"; {command}'

      def operator(command):
          return machine.succeed(as_operator(command))

      def unseal():
          machine.wait_for_unit("openbao.service")
          machine.wait_for_open_port(8200)
          machine.succeed(
              "jq '{key: .unseal_keys_b64[0]}' /root/bao-init.json"
              " | curl -fsS --cacert ${caFile} --data-binary @- ${cliAddress}/v1/sys/unseal"
              " | jq -e '.sealed == false'"
          )

      def now():
          # A second boundary, so `--since` leaves out what came before.
          machine.sleep(1)
          return machine.succeed("date +%s").strip()

      def loader_log(service, since):
          return machine.succeed(f"journalctl -u chainstead-secrets-{service}.service -o cat --no-pager --since @{since}")

      def invocation(unit):
          return machine.succeed(f"systemctl show -p InvocationID --value {unit}").strip()

      def row(table, secret):
          lines = [line for line in table.splitlines() if f" {secret} " in f" {line} "]
          assert len(lines) == 1, f"no single row for {secret} in:\n{table}"
          return lines[0]

      def rpc_status(config):
          return machine.succeed(
              f"curl -sS -K {config} -o /tmp/rpc.json -w '%{{http_code}}'"
              " -H 'content-type: text/plain;' --data-binary @${rpcBody} ${bitcoindRpcUrl}"
          ).strip()

      def gql(body_file, cookies=""):
          jar = f"-b {cookies} -c {cookies}" if cookies else ""
          out = machine.succeed(
              f"curl -sS {jar} -H 'content-type: application/json' --data-binary @{body_file} ${thunderhubUrl}/graphql"
          )
          return json.loads(out)

      def login(password_command, account_id, cookies):
          # The body is built from the password on stdin, never from argv.
          machine.succeed(as_operator(
              f"umask 077; {password_command} | jq -R -s --arg id {account_id} -f ${loginBody} > /root/login.json"
          ))
          return gql("/root/login.json", cookies)

      master_password = "bao kv get -mount=secret -field=master-password chainstead/thunderhub"

      def login_eventually(account_id, attempts=6):
          # One attempt per throttle window; LND may still be opening its wallet.
          reply = None
          for _ in range(attempts):
              machine.sleep(11)
              reply = login(master_password, account_id, "/root/cookies")
              if "errors" not in reply:
                  return reply
          raise Exception(f"no login after {attempts} attempts: {reply}")

      machine.start()

      with subtest("at boot, before OpenBao is set up, bitcoind's loader fails and no consumer starts"):
          machine.wait_for_unit("multi-user.target")
          machine.wait_for_unit("openbao.service")
          machine.wait_for_open_port(8200)
          status = json.loads(machine.fail("bao status -format=json"))
          assert not status["initialized"], status
          machine.wait_until_succeeds("systemctl is-failed chainstead-secrets-bitcoind.service", timeout=120)
          log = machine.succeed("journalctl -u chainstead-secrets-bitcoind.service -o cat --no-pager")
          # Not bootstrapped yet: the role_id file is not there.
          assert "${baoDir}/role-id" in log, log
          machine.fail("systemctl is-active bitcoind.service")
          machine.fail("systemctl is-active lnd.service")
          machine.fail("systemctl is-active thunderhub.service")
          machine.succeed("test ! -e ${secretsDir}/bitcoind")

      with subtest("OpenBao is initialised and unsealed"):
          machine.succeed("umask 077; bao operator init -key-shares=1 -key-threshold=1 -format=json > /root/bao-init.json")
          machine.succeed("jq -e '(.unseal_keys_b64 | length) == 1 and (.root_token | length) > 0' /root/bao-init.json")
          status = json.loads(machine.fail("bao status -format=json"))
          assert status["initialized"] and status["sealed"], status
          unseal()
          status = json.loads(machine.succeed("bao status -format=json"))
          assert not status["sealed"], status

      with subtest("bootstrap as docs/secrets.md says: KV v2, the policy, an AppRole role, the IDs on the host"):
          operator("bao secrets enable -path=secret -version=2 kv")
          operator("bao policy write chainstead ${policy}")
          operator("bao auth enable approle")
          operator(
              "bao write auth/approle/role/node1"
              " token_policies=chainstead token_ttl=5m token_max_ttl=15m"
              " secret_id_ttl=0 secret_id_num_uses=0"
              " secret_id_bound_cidrs=127.0.0.1/32 token_bound_cidrs=127.0.0.1/32"
          )
          # Step 4 with the host's side of the ssh pipe run locally.
          operator(
              "bao read -field=role_id auth/approle/role/node1/role-id"
              " | sh -c 'install -d -m 0700 ${baoDir} && umask 077 && cat > ${baoDir}/role-id'"
          )
          operator(
              "bao write -f -field=secret_id auth/approle/role/node1/secret-id"
              " | sh -c 'umask 077 && cat > ${baoDir}/secret-id'"
          )
          machine.succeed("chmod 0400 ${baoDir}/role-id ${baoDir}/secret-id")

          operator("bao secrets list -format=json | jq -e '.\"secret/\".type == \"kv\" and .\"secret/\".options.version == \"2\"'")
          assert 'path "secret/data/chainstead/*"' in operator("bao policy read chainstead")
          operator(
              "bao read -format=json auth/approle/role/node1 | jq -e '.data.token_policies == [\"chainstead\"]"
              " and .data.secret_id_num_uses == 0 and .data.secret_id_ttl == 0'"
          )
          assert machine.succeed("stat -c '%a %U' ${baoDir}").strip() == "700 root"
          for name in ["role-id", "secret-id"]:
              assert machine.succeed(f"stat -c '%a %U %G' ${baoDir}/{name}").strip() == "400 root root"
              machine.succeed(f"test -s ${baoDir}/{name}")

      with subtest("an existing value is written before the first start (kv put ... password=-)"):
          operator(
              "head -c 24 /dev/urandom | base64 | tr -d '/+=\\n'"
              " | bao kv put -mount=secret chainstead/bitcoind/rpc-test-remote password=-"
          )
          operator("bao kv get -mount=secret -format=json chainstead/bitcoind/rpc-test-remote | jq -e '.data.metadata.version == 1'")

      with subtest("check --online: present, or absent and generated by the first load"):
          table = machine.succeed("${check}")
          print(table)
          assert row(table, "rpcauth-test-remote").rstrip().endswith("present"), table
          assert "absent: load generates it" in row(table, "wallet-password"), table
          assert "absent: load generates it" in row(table, "master-password"), table

      with subtest("bitcoind starts with the rpcauth line derived from OpenBao's password"):
          machine.succeed("systemctl start bitcoind.service")
          machine.succeed("systemctl is-active chainstead-secrets-bitcoind.service bitcoind.service")
          machine.succeed("bitcoin-cli -rpcwait getblockchaininfo | jq -e '.chain == \"regtest\"'")
          machine.succeed(
              "grep -Eqx 'rpcauth=test-remote:[0-9a-f]{32}[$][0-9a-f]{64}' ${secretsDir}/bitcoind/rpcauth-test-remote.conf"
          )
          # Only the hash is installed, not the password.
          operator("! grep -qF -f <(bao kv get -mount=secret -field=password chainstead/bitcoind/rpc-test-remote; echo) ${secretsDir}/bitcoind/rpcauth-test-remote.conf")
          operator(
              "umask 077; bao kv get -mount=secret -field=password chainstead/bitcoind/rpc-test-remote"
              " | ${curlUser} test-remote > /root/rpc-right.conf"
          )
          operator(
              "umask 077; bao kv get -mount=secret -field=password chainstead/bitcoind/rpc-test-remote"
              " | ${curlUser} someone-else > /root/rpc-wrong-user.conf"
          )
          machine.succeed("umask 077; head -c 24 /dev/urandom | base64 | ${curlUser} test-remote > /root/rpc-wrong-password.conf")
          assert rpc_status("/root/rpc-right.conf") == "200"
          machine.succeed("jq -e '.error == null and .result.chain == \"regtest\"' /tmp/rpc.json")
          assert rpc_status("/root/rpc-wrong-password.conf") == "401"
          assert rpc_status("/root/rpc-wrong-user.conf") == "401"
          # Not overwritten by the loader: still the value written above.
          operator("bao kv get -mount=secret -format=json chainstead/bitcoind/rpc-test-remote | jq -e '.data.metadata.version == 1'")

      with subtest("one block releases LND; its generated wallet password is in OpenBao and opens the wallet"):
          machine.succeed("bitcoin-cli createwallet miner")
          mining_address = machine.succeed("bitcoin-cli -rpcwallet=miner getnewaddress").strip()
          machine.succeed(f"bitcoin-cli generatetoaddress 1 {mining_address}")
          machine.wait_until_succeeds("systemctl is-active lnd.service", timeout=240)
          machine.wait_for_unit("chainstead-lnd-wallet-init.service", timeout=180)
          machine.wait_until_succeeds("lncli getinfo | jq -e '.identity_pubkey | length == 66'", timeout=180)
          machine.succeed("systemctl is-active chainstead-secrets-lnd.service")
          operator("bao kv get -mount=secret -format=json chainstead/lnd | jq -e '.data.data[\"wallet-password\"] | test(\"^[A-Za-z0-9]{32}$\")'")
          operator("cmp -s <(bao kv get -mount=secret -field=wallet-password chainstead/lnd) ${secretsDir}/lnd/wallet-password")

      with subtest("chainstead-lnd-seed-store kept the seed in OpenBao, equal to the root-only seed file"):
          machine.wait_for_unit("chainstead-lnd-seed-store.service", timeout=120)
          assert machine.succeed("stat -c '%a %U' /var/lib/chainstead/lnd-seed/seed").strip() == "400 root"
          operator("bao kv get -mount=secret -format=json chainstead/lnd | jq -e '.data.data.seed | split(\" \") | length == 24'")
          operator("cmp -s <(bao kv get -mount=secret -field=seed chainstead/lnd; echo) /var/lib/chainstead/lnd-seed/seed")

      with subtest("a restarted LND unlocks its wallet with the password loaded again from OpenBao"):
          loaded = invocation("chainstead-secrets-lnd.service")
          machine.succeed("systemctl restart lnd.service")
          assert invocation("chainstead-secrets-lnd.service") != loaded, "the loader did not run again (PartOf=)"
          machine.wait_until_succeeds("lncli getinfo | jq -e '.identity_pubkey | length == 66'", timeout=180)
          operator("cmp -s <(bao kv get -mount=secret -field=wallet-password chainstead/lnd) ${secretsDir}/lnd/wallet-password")

      with subtest("ThunderHub accepts the master password from OpenBao and refuses another"):
          machine.wait_until_succeeds("systemctl is-active thunderhub.service", timeout=240)
          machine.succeed("systemctl is-active chainstead-secrets-thunderhub.service")
          machine.wait_until_succeeds("curl -fsS -o /dev/null ${thunderhubUrl}/api/config", timeout=120)
          operator(
              "bao kv get -mount=secret -format=json chainstead/thunderhub"
              " | jq -e '.data.metadata.version == 1 and (.data.data[\"master-password\"] | test(\"^[A-Za-z0-9]{32}$\"))'"
          )
          machine.succeed(
              "grep -Eqx 'thunderhub-[$]2b[$]12[$][./A-Za-z0-9]{53}' ${secretsDir}/thunderhub/master-password.bcrypt"
          )
          listed = gql("${accountsQuery}")["data"]["public"]["get_server_accounts"]
          assert len(listed) == 1, listed
          account_id = listed[0]["id"]
          reply = login_eventually(account_id)
          assert reply["data"]["public"]["get_session_token"] != "", reply
          machine.succeed("grep -q Thub-Auth /root/cookies")
          machine.sleep(11)
          reply = login("head -c 24 /dev/urandom | base64 -w0", account_id, "/root/cookies-wrong")
          assert reply["errors"][0]["message"] == "Wrong credentials for login", reply
          machine.fail("grep -q Thub-Auth /root/cookies-wrong")

      with subtest("each set is on tmpfs, its files 0400 and owned by the service"):
          assert machine.succeed("findmnt -no FSTYPE -T ${secretsDir}").strip() == "tmpfs"
          for path, owner in [
              ("bitcoind/rpcauth-test-remote.conf", "bitcoind bitcoind"),
              ("lnd/wallet-password", "lnd lnd"),
              ("thunderhub/master-password.bcrypt", "thunderhub thunderhub"),
          ]:
              got = machine.succeed(f"stat -c '%a %U %G' ${secretsDir}/{path}").strip()
              assert got == f"400 {owner}", f"{path}: {got}"
              machine.fail(f"runuser -u nobody -- cat ${secretsDir}/{path}")
          for service in ["bitcoind", "lnd", "thunderhub"]:
              assert machine.succeed(f"stat -c '%a' ${secretsDir}/{service}").strip() == "711"

      with subtest("no value in the store, a command line, an environment, the journal or check's table"):
          # One value per line (an empty line would match everything).
          operator(
              "umask 077; {"
              " bao kv get -mount=secret -field=password chainstead/bitcoind/rpc-test-remote; echo;"
              " bao kv get -mount=secret -field=wallet-password chainstead/lnd; echo;"
              " bao kv get -mount=secret -field=master-password chainstead/thunderhub; echo;"
              " bao kv get -mount=secret -field=seed chainstead/lnd; echo;"
              " cat ${baoDir}/secret-id; echo;"
              " } > /root/secret-values"
          )
          machine.succeed("test \"$(wc -l < /root/secret-values)\" -eq 5")
          machine.succeed("test -z \"$(awk 'length($0) < 16' /root/secret-values)\"")
          # The scan finds a value where there is one...
          found = machine.succeed("grep -rlsF -f /root/secret-values ${secretsDir}/lnd")
          assert "wallet-password" in found, found
          # ...and none in the system's closure.
          hits = machine.succeed(
              "nix-store -qR /run/current-system | xargs grep -rlsF -f /root/secret-values -- || true",
              timeout=1800,
          )
          assert hits.strip() == "", f"secret values in the store: {hits}"
          machine.fail("grep -q -s -a -F -f /root/secret-values /proc/[0-9]*/cmdline /proc/[0-9]*/environ")
          assert machine.succeed("journalctl -o cat --no-pager | grep -c -F -f /root/secret-values || true").strip() == "0"
          table = machine.succeed("${check}")
          assert "MISSING" not in table and "ERROR" not in table, table
          assert row(table, "wallet-password").rstrip().endswith("present"), table
          assert row(table, "master-password").rstrip().endswith("present"), table
          assert machine.succeed("${check} | grep -c -F -f /root/secret-values || true").strip() == "0"

      with subtest("a wrong secret_id fails at once with the files named and its value blanked"):
          machine.succeed("cp -a ${baoDir}/secret-id /root/secret-id.good")
          machine.succeed("umask 077; head -c 18 /dev/urandom | base64 > /root/secret-id.wrong")
          machine.succeed("install -m 0400 /root/secret-id.wrong ${baoDir}/secret-id")
          since = now()
          machine.fail("systemctl restart thunderhub.service")
          log = loader_log("thunderhub", since)
          assert "OpenBao refused the AppRole login" in log, log
          assert "${baoDir}/secret-id" in log, log
          assert "gave up" not in log, log
          blanked = machine.succeed(
              f"journalctl -u chainstead-secrets-thunderhub.service -o cat --no-pager --since @{since}"
              " | grep -c -F -f /root/secret-id.wrong || true"
          )
          assert blanked.strip() == "0", "the loader showed the wrong secret_id"
          machine.fail("systemctl is-active thunderhub.service")
          machine.succeed("test ! -e ${secretsDir}/thunderhub")
          machine.succeed("install -m 0400 /root/secret-id.good ${baoDir}/secret-id")

      with subtest("OpenBao stopped: a restart of ThunderHub fails closed, naming the address and the state"):
          machine.succeed("systemctl stop openbao.service")
          since = now()
          machine.fail("systemctl restart thunderhub.service")
          log = loader_log("thunderhub", since)
          assert "OpenBao at ${address} is unreachable" in log, log
          assert "gave up after" in log and "10s deadline" in log, log
          machine.fail("systemctl is-active thunderhub.service")
          machine.succeed("systemctl is-failed chainstead-secrets-thunderhub.service")
          machine.succeed("test ! -e ${secretsDir}/thunderhub")
          machine.fail("curl -fsS -o /dev/null ${thunderhubUrl}/api/config")
          # What runs keeps running: LND read its password when it started.
          machine.succeed("lncli getinfo | jq -e '.identity_pubkey | length == 66'")

      with subtest("OpenBao sealed: the loader fails at the deadline, or goes on when unsealed in time"):
          machine.succeed("systemctl start openbao.service")
          machine.wait_for_unit("openbao.service")
          machine.wait_for_open_port(8200)
          status = json.loads(machine.fail("bao status -format=json"))
          assert status["sealed"], status
          since = now()
          machine.fail("systemctl restart thunderhub.service")
          log = loader_log("thunderhub", since)
          assert "OpenBao at ${address} is sealed (503)" in log, log
          assert "gave up after" in log, log
          machine.fail("systemctl is-active thunderhub.service")

          since = now()
          machine.succeed("systemctl start --no-block thunderhub.service")
          machine.wait_until_succeeds(
              f"journalctl -u chainstead-secrets-thunderhub.service -o cat --no-pager --since @{since}"
              " | grep -F 'is sealed (503); retrying' > /dev/null",
              timeout=8,
          )
          unseal()
          machine.wait_until_succeeds("systemctl is-active thunderhub.service", timeout=60)
          machine.succeed("systemctl is-active chainstead-secrets-thunderhub.service")
          assert "gave up" not in loader_log("thunderhub", since)
          machine.wait_until_succeeds("curl -fsS -o /dev/null ${thunderhubUrl}/api/config", timeout=120)
          login_eventually(account_id)
          machine.succeed("${check}")

      with subtest("switch-to-configuration test with a new RPC user: generated into OpenBao, loaded, accepted"):
          loaded = invocation("chainstead-secrets-bitcoind.service")
          machine.succeed("/run/current-system/specialisation/second-rpc-user/bin/switch-to-configuration test")
          assert invocation("chainstead-secrets-bitcoind.service") != loaded, "the loader did not run again"
          machine.succeed("systemctl is-active chainstead-secrets-bitcoind.service bitcoind.service")
          machine.succeed("bitcoin-cli -rpcwait getblockchaininfo")
          got = machine.succeed("stat -c '%a %U %G' ${secretsDir}/bitcoind/rpcauth-second.conf").strip()
          assert got == "400 bitcoind bitcoind", got
          operator(
              "bao kv get -mount=secret -format=json chainstead/bitcoind/rpc-second"
              " | jq -e '.data.metadata.version == 1 and (.data.data.password | test(\"^[A-Za-z0-9]{32}$\"))'"
          )
          operator(
              "umask 077; bao kv get -mount=secret -field=password chainstead/bitcoind/rpc-second"
              " | ${curlUser} second > /root/rpc-second.conf"
          )
          assert rpc_status("/root/rpc-second.conf") == "200"
          # The existing user keeps its value and its access.
          assert rpc_status("/root/rpc-right.conf") == "200"
          operator("bao kv get -mount=secret -format=json chainstead/bitcoind/rpc-test-remote | jq -e '.data.metadata.version == 1'")
    '';
}
