# Module evaluation harness: evaluates modules with lib.evalModules against
# the declared NixOS options (nixos-options.nix) and stand-in pkgs
# (stub-pkgs.nix), and gives scenarios a small vocabulary of checks. A check
# is { name; ok; detail; }; `detail` says what was seen.
{
  lib,
  modules ? [ ../../modules ],
}:
let
  inherit (lib)
    concatMap
    concatStringsSep
    filter
    hasInfix
    isList
    isString
    mapAttrsToList
    stringLength
    substring
    ;

  pkgs = import ./stub-pkgs.nix { inherit lib; };
  utils = import ./stub-utils.nix { inherit lib; };
  scanner = import ./secret-scan.nix { inherit lib; };

  eval =
    extraModules:
    lib.evalModules {
      modules = [
        ./nixos-options.nix
        { _module.args = { inherit pkgs utils; }; }
      ]
      ++ modules
      ++ extraModules;
    };

  evalConfig = extraModules: (eval extraModules).config;

  # A one-line rendering of any value, cut to keep the report readable.
  show =
    value:
    let
      text =
        if isString value then
          builtins.toJSON value
        else
          lib.generators.toPretty { multiline = false; } value;
    in
    if stringLength text > 400 then substring 0 400 text + "…" else text;

  failedAssertions = config: map (a: a.message) (filter (a: !a.assertion) config.assertions);

  # The text a stub builder kept: writeText & co. keep `text`; the json, yaml
  # and toml formats keep the JSON they hand to their converter as `value`.
  renderedText =
    drv:
    let
      name = lib.attrByPath [ "name" ] (show drv) drv;
    in
    drv.text or drv.value
      or (throw "renderedText: ${name} kept no text; was it made by a stub builder?");

  renderedJSON = drv: builtins.fromJSON (renderedText drv);

  # systemd.tmpfiles.rules and .settings as one list of
  # { type; path; mode; user; group; age; argument; } (rules split on blanks).
  tmpfilesEntries =
    config:
    let
      fromRule =
        rule:
        let
          fields = filter (f: isString f && f != "") (builtins.split "[[:space:]]+" rule);
          field = i: if builtins.length fields > i then builtins.elemAt fields i else "-";
        in
        {
          type = field 0;
          path = field 1;
          mode = field 2;
          user = field 3;
          group = field 4;
          age = field 5;
          argument = concatStringsSep " " (lib.drop 6 fields);
        };
      fromSettings = concatMap (
        file:
        concatMap (path: mapAttrsToList (_: e: e // { inherit path; }) file.${path}) (
          builtins.attrNames file
        )
      ) (builtins.attrValues config.systemd.tmpfiles.settings);
    in
    map fromRule config.systemd.tmpfiles.rules
    ++ map (e: { inherit (e) type path mode user group age argument; }) fromSettings;

  secretFindings =
    {
      value,
      allow ? [ ],
    }:
    scanner.findings { inherit value allow; };

  # The parts of a configuration where a leaked secret would end up on the
  # machine (assertion and warning texts are left out: they quote options).
  secretsOfConfig =
    config: allow:
    secretFindings {
      inherit allow;
      value = removeAttrs config [
        "assertions"
        "warnings"
      ];
    };

  check = name: ok: detail: { inherit name ok detail; };

  contains =
    needle: haystack:
    if isList haystack then builtins.elem needle haystack else hasInfix needle haystack;
in
{
  inherit
    eval
    evalConfig
    failedAssertions
    pkgs
    renderedJSON
    renderedText
    secretFindings
    show
    tmpfilesEntries
    check
    ;

  # Both storage tiers as plain paths, for scenarios that only need them set.
  tiers = {
    fast.path = "/srv/fast";
    bulk.path = "/srv/bulk";
  };

  # The same harness over another module list (fixtures, a single module).
  withModules =
    modules':
    import ./default.nix {
      inherit lib;
      modules = modules';
    };

  # A unit's ExecStartPre/ExecStartPost without the upgrade guard's verify
  # and record steps, which modules/upgrade-guard.nix adds to every guarded
  # service: for checks about the service module's own steps.
  ownSteps = builtins.filter (c: !hasInfix "/bin/chainstead-upgrade-guard " c);

  expectTrue = name: ok: detail: check name ok detail;

  expectEqual =
    name: expected: actual:
    check name (expected == actual) "expected ${show expected}, got ${show actual}";

  # Substring of a string, or element of a list.
  expectContains =
    name: needle: haystack:
    check name (contains needle haystack) "looked for ${show needle} in ${show haystack}";

  expectNotContains =
    name: needle: haystack:
    check name (!contains needle haystack) "${show needle} should not be in ${show haystack}";

  expectAssertion =
    name: config: messagePart:
    let
      failed = failedAssertions config;
    in
    check name (builtins.any (hasInfix messagePart) failed)
      "wanted a failed assertion containing ${show messagePart}; failed: ${show failed}";

  expectNoFailedAssertions =
    name: config:
    let
      failed = failedAssertions config;
    in
    check name (failed == [ ]) "failed assertions: ${show failed}";

  # expectNoSecrets name { config = ...; } or { value = ...; }, optional allow.
  expectNoSecrets =
    name:
    {
      config ? null,
      value ? null,
      allow ? [ ],
    }:
    let
      findings =
        if config != null then
          secretsOfConfig config allow
        else
          secretFindings { inherit value allow; };
    in
    check name (findings == [ ])
      "secret-looking values: ${show (map (f: "${f.path}: ${f.reason}") findings)}";

  # Evaluating `modules` (with `force` picking what to evaluate, the whole
  # config by default) must fail. Inside Nix only "it failed" can be seen
  # (builtins.tryEval, which also misses `abort` and some builtin errors);
  # checks/eval/run re-evaluates the check with nix-instantiate and requires
  # `message` in the error output.
  expectEvalError =
    {
      name,
      modules ? [ ],
      message,
      force ? (config: config),
    }:
    let
      target = force (evalConfig modules);
      attempt = builtins.tryEval (builtins.deepSeq target true);
    in
    {
      inherit name;
      ok = !attempt.success;
      detail =
        if attempt.success then
          "evaluation succeeded; expected an error containing ${show message}"
        else
          "evaluation failed (its message is checked by checks/eval/run)";
      expectError = {
        inherit message target;
      };
    };
}
