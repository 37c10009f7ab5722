# Module evaluation checks for modules/status.nix: the manifest follows the
# enabled services, holds no secret, the command is installed, and the
# operator group exists with what it needs (cookie group, macaroon ACL).
{ lib, harness }:
let
  h = harness;

  storage = {
    fast.path = "/srv/fast";
    bulk.path = "/srv/bulk";
  };
  node =
    extra:
    h.evalConfig [
      {
        users.users.alice.isNormalUser = true;
        services.chainstead = lib.recursiveUpdate {
          inherit storage;
          status = {
            enable = true;
            operators = [ "alice" ];
          };
        } extra;
      }
    ];

  full = node {
    bitcoind.enable = true;
    lnd.enable = true;
    fulcrum.enable = true;
    monerod.enable = true;
    backup = {
      enable = true;
      targets.usb.directory.path = "/mnt/usb/lnd-backup";
    };
    status.addresses = [
      {
        service = "lnd";
        kind = "onion";
        hostnameFile = "/var/lib/tor/onion/lnd/hostname";
        port = 9735;
      }
    ];
  };
  moneroOnly = node { monerod.enable = true; };
  withTor = node {
    bitcoind.enable = true;
    lnd.enable = true;
    tor = {
      enable = true;
      lnd.restOnion = true;
    };
  };
  disabled = h.evalConfig [
    {
      services.chainstead = {
        inherit storage;
        monerod.enable = true;
        status.enable = false;
      };
    }
  ];
  byDefault = h.evalConfig [
    {
      services.chainstead = {
        inherit storage;
        monerod.enable = true;
      };
    }
  ];
  noService = h.evalConfig [ { services.chainstead = { inherit storage; }; } ];

  manifest = config: h.renderedJSON config.system.build.chainstead-status-manifest.unchecked;
  names = config: map (s: s.name) (manifest config).services;
  svc = config: name: lib.findFirst (s: s.name == name) null (manifest config).services;
  m = manifest full;
in
{
  manifest = [
    (h.expectNoFailedAssertions "the full stack evaluates" full)
    (h.expectEqual "one entry per enabled service" [
      "bitcoind"
      "monerod"
      "fulcrum"
      "lnd"
    ] (names full))
    (h.expectEqual "only monerod when only monerod is enabled" [ "monerod" ] (names moneroOnly))
    (h.expectEqual "monerod's backend is its RPC port, regtest-aware nettype" {
      kind = "monerod";
      rpc_url = "http://127.0.0.1:18081";
      nettype = "mainnet";
    } (svc full "monerod").backend)
    (h.expectEqual "bitcoind's backend is the gate's, with the cookie" full.services.chainstead.syncGate.gates.bitcoind.backend
      (svc full "bitcoind").backend
    )
    (h.expectEqual "the gate's flag and metrics files" {
      name = "bitcoind";
      unit = "chainstead-sync-gate-bitcoind.service";
      flag_file = "/run/chainstead/sync/bitcoind";
      metrics_file = "${full.services.chainstead.syncGate.metricsDir}/chainstead-sync-gate-bitcoind.prom";
    } (svc full "bitcoind").gate)
    (h.expectEqual "LND is asked with the read-only macaroon" "${full.services.chainstead.lnd.macaroonDir}/readonly.macaroon" (svc full "lnd").macaroon_file)
    (h.expectEqual "the backup targets and state directory" {
      unit = "chainstead-backup.service";
      state_dir = "/var/lib/chainstead/backup";
      metrics_file = "${full.services.chainstead.backup.metricsDir}/chainstead-backup.prom";
      targets = [
        {
          name = "usb";
          kind = "directory";
        }
      ];
      max_age_secs = 3600;
    } m.backup)
    (h.expectContains "the secret sets with their file names, never values" "wallet-password" m.secrets.sets.lnd.files)
    (h.expectEqual "both tiers" [
      {
        name = "fast";
        path = "/srv/fast";
      }
      {
        name = "bulk";
        path = "/srv/bulk";
      }
    ] m.tiers)
    (h.expectEqual "the onion address file" "/var/lib/tor/onion/lnd/hostname" (lib.head m.addresses).hostname_file)
    (h.expectEqual "no addresses unless configured" [ ] (manifest moneroOnly).addresses)
    (h.expectEqual "the onion services of the tor module, by hostname file" [
      {
        service = "lnd-rest";
        kind = "onion";
        port = null;
        address = null;
        hostname_file = withTor.services.chainstead.tor.onionServices.chainstead-lnd-rest;
      }
    ] (lib.filter (a: a.service == "lnd-rest") (manifest withTor).addresses))
    (h.expectEqual "no backup section without the backup module" null (manifest moneroOnly).backup)
    (h.expectNoSecrets "the manifest holds no secret" { value = m; })
    (h.expectEqual "installed at /etc/chainstead/status.json" full.system.build.chainstead-status-manifest
      full.environment.etc."chainstead/status.json".source
    )
    (h.expectContains "checked with `chainstead status --validate` when built" "/bin/chainstead status --validate --manifest"
      full.system.build.chainstead-status-manifest.buildCommand
    )
  ];

  operators = [
    (h.expectContains "the command is installed" full.services.chainstead.status.package full.environment.systemPackages)
    (h.expectTrue "the operator group exists" (full.users.groups ? chainstead-operator) "")
    (h.expectContains "operators join it" "alice" full.users.groups.chainstead-operator.members)
    (h.expectContains "and the cookie group" full.services.chainstead.bitcoind.rpc.group full.users.users.alice.extraGroups)
    (h.expectNotContains "but not the macaroon group (admin.macaroon)" full.services.chainstead.lnd.group full.users.users.alice.extraGroups)
    (h.expectContains "the group may traverse to readonly.macaroon"
      "a+ ${full.services.chainstead.lnd.macaroonDir} - - - - g:chainstead-operator:--x,m::r-x"
      full.systemd.tmpfiles.rules
    )
    (h.expectNotContains "no cookie group without bitcoind" "bitcoin-rpc" moneroOnly.users.users.alice.extraGroups)
    (h.expectTrue "on by default once a service is enabled" byDefault.services.chainstead.status.enable "")
    (h.expectTrue "off without any service" (!noService.services.chainstead.status.enable) "")
    (h.expectTrue "nothing without enable" (
      !(disabled.users.groups ? chainstead-operator) && !(disabled.environment.etc ? "chainstead/status.json")
    ) "")
  ];
}
