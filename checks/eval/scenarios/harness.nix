# Self-test of the harness, on a fixture module instead of the chainstead
# modules: assertions are found, rendered text reads back, the secret
# scanner flags planted secrets and nothing in a clean configuration, and the
# declared NixOS options reject misspelt names and wrong types.
{ lib, harness }:
let
  h = harness.withModules [ ../fixtures/tiny-service.nix ];
  inherit (h) pkgs;

  fixture = settings: h.evalConfig [ { services.evalFixture = { enable = true; } // settings; } ];
  clean = fixture { };
  leaky = fixture {
    inlinePassword = "hunter2-correct-horse";
    rpcPasswordFile = "/run/keys/rpcpassword";
  };

  fixtureConf = config: h.renderedText config.environment.etc."eval-fixture/fixture.conf".source;
  service = config: config.systemd.services.eval-fixture;

  findings = value: h.secretFindings { inherit value; };
  flagged =
    name: value: h.expectTrue name (findings value != [ ]) "findings: ${h.show (findings value)}";
  notFlagged =
    name: value: h.expectTrue name (findings value == [ ]) "findings: ${h.show (findings value)}";

  # Test vectors only, never real keys.
  pem = ''
    -----BEGIN OPENSSH PRIVATE KEY-----
    b3BlbnNzaC1rZXktdjEAAAAABG5vbmU=
    -----END OPENSSH PRIVATE KEY-----
  '';
  ageKey = "AGE-SECRET-KEY-1" + lib.strings.replicate 58 "Q";
  hex64 = lib.strings.replicate 8 "3f9a1c0b";
  token = "Zm9vYmFyYmF6cXV4-9Kd2LmQ4Tx7pWnR3sVb";

  failsWith =
    message: name: module:
    h.expectEvalError {
      inherit name message;
      modules = [ module ];
    };
  typo = failsWith "does not exist";
  badType = failsWith "is not of type";
in
{
  assertions = [
    (h.expectNoFailedAssertions "a clean configuration fails no assertion" clean)
    (h.expectAssertion "the fixture's port assertion fires" (fixture { port = 8332; })
      "must not be 8332"
    )
    (h.expectEqual "failedAssertions returns exactly the failing messages"
      [ "services.evalFixture.port must not be 8332 (bitcoind mainnet RPC); pick another port." ]
      (h.failedAssertions (fixture { port = 8332; }))
    )
    (h.expectAssertion "a user without a group trips the users-groups assertion"
      (h.evalConfig [ { users.users.nogroup-user.isSystemUser = true; } ])
      "group is unset"
    )
    (h.expectAssertion "a user in an undeclared group trips the users-groups assertion"
      (h.evalConfig [
        {
          users.users.lost = {
            isSystemUser = true;
            group = "lost";
          };
        }
      ])
      "primary group that is undefined"
    )
  ];

  rendered-text = [
    (h.expectContains "environment.etc text reads back" "port=18443\n" (fixtureConf clean))
    (h.expectEqual "writeText keeps its text verbatim" "a\nb\n" (
      h.renderedText (pkgs.writeText "x" "a\nb\n")
    ))
    (h.expectEqual "a JSON manifest reads back as data" 18443
      (h.renderedJSON clean.system.build.eval-fixture-manifest).port
    )
    (h.expectEqual "formats.keyValue renders with lib.generators" "a=1\nb=true\n" (
      h.renderedText (
        (pkgs.formats.keyValue { }).generate "kv" {
          a = 1;
          b = true;
        }
      )
    ))
    (h.expectEqual "formats.json keeps the JSON it would pretty-print" { a = [ 1 ]; } (
      h.renderedJSON ((pkgs.formats.json { }).generate "j.json" { a = [ 1 ]; })
    ))
    (h.expectEqual "writeShellScriptBin sets mainProgram, so lib.getExe finds it"
      "${pkgs.writeShellScriptBin "hello" "echo hi"}/bin/hello"
      (lib.getExe (pkgs.writeShellScriptBin "hello" "echo hi"))
    )
    (h.expectContains "writeShellApplication puts runtimeInputs on PATH"
      "export PATH=\"${pkgs.jq}/bin:$PATH\""
      (
        h.renderedText (
          pkgs.writeShellApplication {
            name = "app";
            runtimeInputs = [ pkgs.jq ];
            text = "jq --version";
          }
        )
      )
    )
    (h.expectEqual "different text gives a different store path" false (
      "${pkgs.writeText "x" "a"}" == "${pkgs.writeText "x" "b"}"
    ))
  ];

  secret-scanner = [
    (h.expectNoSecrets "a clean configuration has no secret-looking value" { config = clean; })
    (h.expectTrue "a password planted in rendered text is flagged" (builtins.any (
      f: lib.hasInfix "inline rpcpassword" f.reason
    ) (findings (fixtureConf leaky))) "findings: ${h.show (findings (fixtureConf leaky))}")
    (h.expectTrue "the planted password is found through the whole configuration" (
      findings leaky != [ ]
    ) "nothing found")
    (h.expectNotContains "findings never print the secret itself" "correct-horse" (
      h.show (findings leaky)
    ))
    (flagged "a secret-named option with an inline value is flagged" {
      rpcPassword = "hunter2hunter2";
    })
    (flagged "password: in YAML is flagged" "masterPassword: s3cr3t-value\n")
    (flagged "\"password\": in JSON is flagged" (builtins.toJSON { password = "s3cr3t-value"; }))
    (flagged "a PEM private key is flagged" pem)
    (flagged "an age secret key is flagged" ageKey)
    (flagged "64 hex digits are flagged" "seed ${hex64}")
    (flagged "a long random-looking token is flagged" "Authorization: Bearer ${token}")
    (notFlagged "store paths are not flagged" "${pkgs.fulcrum}/bin/Fulcrum ${pkgs.writeText "Abc9" "x"}")
    (notFlagged "option names are not flagged"
      "services.chainstead.bitcoind.rpcPasswordFile RestrictAddressFamilies"
    )
    (notFlagged "secret-named options holding paths are fine" {
      rpcPasswordFile = "/run/chainstead/secrets/bitcoind/rpcpassword";
      rpcpassword = "/run/keys/x";
      token = "%d/token";
      secret = "$CREDENTIALS_DIRECTORY/secret";
      password = null;
      hashedPassword = "!";
    })
    (notFlagged "credential and file references are fine"
      "LoadCredential=rpcpassword:/run/keys/rpc --token-file=/run/t password=%d/p"
    )
    (notFlagged "a block hash is not a secret"
      "assumevalid=00000000000000000001${lib.strings.replicate 44 "a"}"
    )
    (h.expectTrue "allow removes a known public value" (
      h.secretFindings {
        value = "x ${token} y";
        allow = [ token ];
      } == [ ]
    ) "allow was ignored")
  ];

  misspelt-options-fail = [
    (typo "systemd.services.<name>.wantedBY does not exist" {
      systemd.services.x.wantedBY = [ "multi-user.target" ];
    })
    (typo "serviceConfig at the systemd level does not exist" { systemd.serviceConfig.User = "x"; })
    (typo "users.user does not exist" { users.user.x.isSystemUser = true; })
    (typo "networking.firewall.allowedTCPPort does not exist" {
      networking.firewall.allowedTCPPort = [ 1 ];
    })
    (typo "an undeclared exporter does not exist" {
      services.prometheus.exporters.nodee.enable = true;
    })
    (typo "fileSystems.<path>.fstype does not exist" { fileSystems."/srv".fstype = "ext4"; })
    (typo "environment.etc.<name>.txt does not exist" { environment.etc.x.txt = "x"; })
  ];

  wrong-types-fail = [
    (badType "a port above 65535 is refused" { networking.firewall.allowedTCPPorts = [ 70000 ]; })
    (badType "wantedBy needs a unit name" { systemd.services.x.wantedBy = [ "multi-user" ]; })
    (badType "serviceConfig.Type is checked" { systemd.services.x.serviceConfig.Type = "simplex"; })
    (badType "fileSystems options must be a non-empty list" { fileSystems."/srv".options = [ ]; })
    (badType "networking.hostName refuses a domain part, as nixpkgs does" {
      networking.hostName = "node.example.org";
    })
    (h.expectEvalError {
      name = "two different single values for one directive conflict";
      modules = [
        { systemd.services.x.serviceConfig.User = "a"; }
        { systemd.services.x.serviceConfig.User = "b"; }
      ];
      message = "conflicting definition values";
    })
  ];

  declared-defaults = [
    (h.expectEqual "networking.hostName defaults to nixpkgs' distroId" "nixos" (h.evalConfig [ ]).networking.hostName)
    (h.expectEqual "a set networking.hostName reads back" "node-1"
      (h.evalConfig [ { networking.hostName = "node-1"; } ]).networking.hostName
    )
  ];

  derived-config =
    let
      config = h.evalConfig [
        { services.evalFixture.enable = true; }
        { systemd.services.eval-fixture.serviceConfig.ExecStartPre = [ "/bin/b" ]; }
        {
          systemd.services.eval-fixture.serviceConfig.ExecStartPre = [ "/bin/a" ];
          systemd.services.periodic = {
            startAt = "daily";
            script = "echo tick";
          };
          users.users.alice = {
            isNormalUser = true;
            extraGroups = [ "eval-fixture" ];
          };
        }
      ];
      inherit (config.systemd.services) periodic;
      firewall = h.evalConfig [ { networking.firewall.allowedTCPPorts = [ 443 80 443 ]; } ];
      ports = firewall.networking.firewall.allowedTCPPorts;
    in
    [
      (h.expectEqual "list directives from two modules concatenate" [ "/bin/a" "/bin/b" ] (
        lib.sort lib.lessThan (service config).serviceConfig.ExecStartPre
      ))
      (h.expectEqual "after/wants become [Unit] directives" "network-online.target"
        (service config).unitConfig.After
      )
      (h.expectEqual "startAt creates a timer" [ "daily" ]
        config.systemd.timers.periodic.timerConfig.OnCalendar
      )
      (h.expectTrue "script becomes a unit-script ExecStart" (lib.hasSuffix
        "-unit-script-periodic-start/bin/periodic-start "
        periodic.serviceConfig.ExecStart
      ) periodic.serviceConfig.ExecStart)
      (h.expectContains "path becomes PATH" "${pkgs.coreutils}/bin" (service config).environment.PATH)
      (h.expectEqual "isNormalUser implies group users and a home"
        {
          group = "users";
          home = "/home/alice";
        }
        { inherit (config.users.users.alice) group home; }
      )
      (h.expectContains "extraGroups fill the group's members" "alice"
        config.users.groups.eval-fixture.members
      )
      (h.expectEqual "tmpfilesEntries parses rules"
        {
          type = "d";
          path = "/var/lib/eval-fixture";
          mode = "0750";
          user = "eval-fixture";
          group = "eval-fixture";
          age = "-";
          argument = "-";
        }
        (builtins.head (h.tmpfilesEntries config))
      )
      (h.expectEqual "firewall ports are sorted and deduplicated" [ 80 443 ] ports)
    ];
}
