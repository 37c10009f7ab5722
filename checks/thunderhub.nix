# VM test: ThunderHub on a regtest bitcoind + LND. It is held back until
# LND's RPC is active (one mined block releases the sync gate), then serves
# its login page on the configured port and base path, lists the account
# generated from the LND module over GraphQL, accepts the password the
# secrets loader generated and refuses a wrong one, never rewrites its
# read-only account file, and makes no outbound request with the privacy
# defaults (an nftables counter on the thunderhub user's non-loopback
# traffic stays at zero; a price query made on purpose moves it, so the
# counter is shown to see ThunderHub's requests). A restart of LND, by hand
# or after a crash, restarts ThunderHub after it.
#
# ThunderHub's API (apotdevin/thunderhub v0.18.4):
#   src/client/src/graphql/queries/getServerAccounts.ts: GetServerAccounts,
#     answered by PublicQueriesResolver.get_server_accounts
#     (src/server/modules/api/account/account.resolver.ts).
#   src/client/src/graphql/mutations/getSessionToken.ts: GetSessionToken,
#     answered by PublicResolver.get_session_token
#     (src/server/modules/api/public/public.resolver.ts): "Wrong credentials
#     for login" for a wrong password; with the right one it asks LND for its
#     wallet info, returns LND's version and sets the Thub-Auth cookie
#     (src/server/utils/appConstants.ts). The public resolvers allow 4 calls
#     per 10 s, hence the pauses below.
#   src/server/modules/api/bitcoin/bitcoin.resolver.ts: getBitcoinPrice
#     fetches https://blockchain.info/ticker whenever it is asked; only the
#     client consults FETCH_PRICES (src/server/config/configuration.ts
#     hands it over in /api/config).
{ pkgs, ... }:
let
  fast = "/var/lib/chainstead-fast";
  port = 3010;
  basePath = "/thunderhub";
  url = "http://127.0.0.1:${toString port}${basePath}";
  # Local mode of the secrets loader: <state_dir>/<mount>/<path>/<field>
  # (crates/secrets/src/local.rs), with the module's defaults.
  passwordFile = "/var/lib/chainstead/secrets/secret/chainstead/thunderhub/master-password";

  # The hosts ThunderHub's server may call (src/server/config/configuration.ts)
  # resolve to TEST-NET-1, so an attempt becomes a connection the counter
  # sees instead of a failed DNS lookup made by nscd on ThunderHub's behalf.
  upstreamHosts = [
    "api.github.com"
    "blockchain.info"
    "mempool.space"
    "blockstream.info"
    "api.boltz.exchange"
    "amboss.tech"
    "api.amboss.tech"
    "magma.amboss.tech"
    "account.amboss.tech"
    "rails.amboss.tech"
    "api.amboss.space"
  ];

  # Counts (and rejects) every packet the thunderhub user sends anywhere but
  # loopback.
  outboundRules = pkgs.writeText "thunderhub-outbound.nft" ''
    table inet chainstead_test {
      counter thunderhub_out { }
      chain out {
        type filter hook output priority 0; policy accept;
        meta skuid "thunderhub" ip daddr != 127.0.0.0/8 counter name "thunderhub_out" reject
        meta skuid "thunderhub" ip6 daddr != ::1 counter name "thunderhub_out" reject
      }
    }
  '';

  accountsQuery = pkgs.writeText "get-server-accounts.json" (
    builtins.toJSON {
      operationName = "GetServerAccounts";
      variables = { };
      query = "query GetServerAccounts { public { id get_server_accounts { name id slug type } } }";
    }
  );
  loginMutation = "mutation GetSessionToken($id: String!, $password: String!, $token: String) { public { get_session_token(id: $id, password: $password, token: $token) } }";
  priceQuery = pkgs.writeText "get-bitcoin-price.json" (builtins.toJSON { query = "query { getBitcoinPrice }"; });
in
pkgs.testers.runNixOSTest {
  name = "chainstead-thunderhub";

  nodes.machine =
    { pkgs, ... }:
    {
      imports = [ ../modules ];
      virtualisation = {
        memorySize = 3072;
        cores = 2;
      };
      environment.systemPackages = [
        pkgs.curl
        pkgs.iproute2
        pkgs.jq
        pkgs.nftables
      ];
      networking.hosts."192.0.2.1" = upstreamHosts;

      services.chainstead = {
        # Both tiers as plain directories on the root filesystem.
        storage = {
          fast.path = fast;
          bulk.path = "/var/lib/chainstead-bulk";
        };
        bitcoind = {
          enable = true;
          network = "regtest";
          memory = 512;
        };
        lnd = {
          enable = true;
          settings.alias = "alice";
        };
        thunderhub = {
          enable = true;
          inherit port basePath;
        };
      };
    };

  testScript = ''
    import json

    def invocation(unit):
        return machine.succeed(f"systemctl show -p InvocationID --value {unit}").strip()

    def gql(body_file, cookies=""):
        jar = f"-b {cookies} -c {cookies}" if cookies else ""
        out = machine.succeed(
            f"curl -sS {jar} -H 'content-type: application/json' --data-binary @{body_file} ${url}/graphql"
        )
        return json.loads(out)

    def login(password_file, cookies):
        # The body is built from the file: the password never enters argv.
        machine.succeed(
            f"jq -n --arg id {account_id} --rawfile pw {password_file} "
            "'{operationName: \"GetSessionToken\", query: $q, variables: {id: $id, password: ($pw | rtrimstr(\"\\n\"))}}' "
            "--arg q '${loginMutation}' > /tmp/login.json"
        )
        return gql("/tmp/login.json", cookies)

    def login_eventually(attempts=6):
        # Right after a restart LND may still be opening its wallet; one
        # attempt per throttle window.
        reply = None
        for _ in range(attempts):
            machine.sleep(11)
            reply = login("${passwordFile}", "/tmp/cookies")
            if "errors" not in reply:
                return reply
        raise Exception(f"no login after {attempts} attempts: {reply}")

    def outbound_packets():
        out = machine.succeed("nft -j list counter inet chainstead_test thunderhub_out")
        counters = [o["counter"] for o in json.loads(out)["nftables"] if "counter" in o]
        return counters[0]["packets"]

    machine.start()
    machine.wait_for_unit("multi-user.target")
    machine.succeed("nft -f ${outboundRules}")

    with subtest("ThunderHub is held back while LND is not running"):
        machine.wait_for_unit("chainstead-sync-gate-bitcoind.service")
        machine.fail("systemctl is-active lnd.service")
        machine.fail("systemctl is-active thunderhub.service")
        machine.fail("systemctl list-jobs --no-legend | grep thunderhub")

    with subtest("one mined block releases LND, then LND's RPC releases ThunderHub"):
        machine.succeed("bitcoin-cli createwallet miner")
        address = machine.succeed("bitcoin-cli -rpcwallet=miner getnewaddress").strip()
        machine.succeed(f"bitcoin-cli generatetoaddress 1 {address}")
        # Polled with is-active: wait_for_unit gives up on a unit that is
        # inactive at a moment when no job is queued yet.
        machine.wait_until_succeeds("systemctl is-active lnd.service", timeout=180)
        machine.wait_until_succeeds("systemctl is-active chainstead-lnd-ready.target", timeout=240)
        machine.wait_until_succeeds("systemctl is-active thunderhub.service", timeout=60)
        machine.wait_until_succeeds("curl -fsS -o /dev/null ${url}/api/config", timeout=120)
        started = machine.succeed("date +%s").strip()

    with subtest("it listens on 127.0.0.1:${toString port} only"):
        listening = machine.succeed("ss -Hltn 'sport = :${toString port}' | awk '{print $4}' | sort -u").split()
        assert listening == ["127.0.0.1:${toString port}"], f"listening on {listening}"

    with subtest("the login page is served under the base path"):
        status = machine.succeed("curl -sS -o /tmp/index.html -w '%{http_code} %{content_type}' ${url}/")
        assert status.startswith("200 text/html"), status
        machine.succeed("grep -q '<div id=\"root\">' /tmp/index.html")
        machine.succeed("grep -qE '<script[^>]* src=\"${basePath}/assets/index-[^\"]+[.]js\"' /tmp/index.html")
        outside = machine.succeed("curl -sS -o /dev/null -w '%{http_code}' http://127.0.0.1:${toString port}/api/config")
        assert outside != "200", f"/api/config outside the base path answered {outside}"

    with subtest("the client is told not to ask for versions, prices or fees"):
        config = json.loads(machine.succeed("curl -fsS ${url}/api/config"))
        assert config["basePath"] == "${basePath}", config
        assert config["apiUrl"] == "${basePath}/graphql", config
        assert config["noVersionCheck"] is True, config
        assert config["fetchPrices"] is False, config
        assert config["fetchFees"] is False, config

    with subtest("the account file is generated read-only, with a pre-hashed password"):
        account_file = "${fast}/thunderhub/accounts.yaml"
        assert machine.succeed(f"stat -c '%a %U' {account_file}").strip() == "400 thunderhub"
        accounts = json.loads(machine.succeed(f"cat {account_file}"))
        assert accounts["masterPassword"].startswith("thunderhub-$2b$12$"), "not a thunderhub- bcrypt hash"
        assert accounts["accounts"][0]["serverUrl"] == "127.0.0.1:10009", accounts
        assert accounts["accounts"][0]["macaroonPath"] == "${fast}/lnd/macaroons/admin.macaroon", accounts
        assert accounts["accounts"][0]["certificatePath"] == "${fast}/lnd/tls.cert", accounts
        machine.fail(f"runuser -u nobody -- cat {account_file}")
        machine.fail("grep -q -F -f ${passwordFile} " + account_file)
        # Rendered atomically: no temporary file of the renderer is left.
        assert ".tmp-" not in machine.succeed("ls -A ${fast}/thunderhub"), "a temporary file was left behind"
        account_sum = machine.succeed(f"sha256sum {account_file}")

    with subtest("GraphQL lists exactly the configured account"):
        reply = gql("${accountsQuery}")
        listed = reply["data"]["public"]["get_server_accounts"]
        assert [(a["name"], a["type"]) for a in listed] == [("alice", "server")], reply
        account_id = listed[0]["id"]

    with subtest("the loader's password logs in, a wrong one is refused"):
        machine.succeed("stat -c '%a %U' ${passwordFile} | grep -x '400 root'")
        reply = login_eventually()
        # The reply is LND's version, from the wallet info ThunderHub fetched
        # with the configured macaroon and certificate.
        assert reply["data"]["public"]["get_session_token"] != "", reply
        machine.succeed("grep -q Thub-Auth /tmp/cookies")
        machine.succeed("head -c 24 /dev/urandom | base64 > /tmp/wrong-password")
        reply = login("/tmp/wrong-password", "/tmp/cookies-wrong")
        assert reply["errors"][0]["message"] == "Wrong credentials for login", reply
        machine.fail("grep -q Thub-Auth /tmp/cookies-wrong")
        assert account_sum == machine.succeed(f"sha256sum {account_file}"), "the account file was rewritten"

    with subtest("the password is on no command line and in no environment"):
        machine.fail("grep -q -s -a -F -f ${passwordFile} /proc/[0-9]*/cmdline /proc/[0-9]*/environ")

    with subtest("no outbound request with the privacy defaults"):
        # One Amboss interval (60 s) after the start, logged in and idle.
        machine.wait_until_succeeds(f"test $(( $(date +%s) - {started} )) -ge 75", timeout=120)
        assert outbound_packets() == 0, f"{outbound_packets()} outbound packets from thunderhub"
        # The counter does see ThunderHub's own requests: ask for a price.
        machine.sleep(11)
        gql("${priceQuery}", "/tmp/cookies")
        machine.wait_until_succeeds("nft -j list counter inet chainstead_test thunderhub_out | jq -e '[.nftables[].counter.packets? // empty] | .[0] > 0'", timeout=30)

    with subtest("a restart of LND restarts ThunderHub after it"):
        before = invocation("thunderhub.service")
        machine.succeed("systemctl restart lnd.service")
        machine.wait_until_succeeds("systemctl is-active thunderhub.service", timeout=120)
        assert before != invocation("thunderhub.service"), "ThunderHub was not restarted with LND"
        machine.wait_until_succeeds("curl -fsS -o /dev/null ${url}/api/config", timeout=120)
        login_eventually()

    with subtest("a crash of LND restarts ThunderHub too, once LND is back"):
        before = invocation("thunderhub.service")
        lnd_before = invocation("lnd.service")
        machine.succeed("systemctl kill --signal=KILL lnd.service")
        machine.wait_until_succeeds(f"test \"$(systemctl show -p InvocationID --value lnd.service)\" != {lnd_before}", timeout=60)
        machine.wait_until_succeeds("systemctl is-active lnd.service", timeout=180)
        machine.wait_until_succeeds(f"test \"$(systemctl show -p InvocationID --value thunderhub.service)\" != {before}", timeout=180)
        machine.wait_until_succeeds("systemctl is-active thunderhub.service", timeout=120)
        machine.wait_until_succeeds("curl -fsS -o /dev/null ${url}/api/config", timeout=120)
        login_eventually()
  '';
}
