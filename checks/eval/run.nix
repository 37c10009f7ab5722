# Entry point for checks/eval/run (nix-instantiate --eval --strict --json).
# `nixpkgsLib` is a nixpkgs (or nixpkgs.lib) checkout containing lib/.
# Attributes:
#   results        every check as { scenario; index; name; status; detail; message; }
#                  status: pass | fail | error (the check itself failed to
#                  evaluate) | expect-error (the runner decides)
#   ids            the scenario ids
#   selected       results of scenario `only`
#   count          number of checks in scenario `only`
#   single         result of check `index` of scenario `only`
#   raw            check `index` of scenario `only`, evaluated without tryEval
#   forceExpected  evaluates what check `index` of `only` expects to fail
{
  nixpkgsLib,
  only ? null,
  index ? null,
}:
let
  lib = import "${nixpkgsLib}/lib";
  harness = import ./default.nix { inherit lib; };
  scenarios = import ./scenarios.nix { inherit lib harness; };
  ids = builtins.attrNames scenarios;

  inherit (builtins) deepSeq tryEval;

  guard = value: fallback: if (tryEval (deepSeq value true)).success then value else fallback;

  render =
    scenario: index: check:
    let
      base = {
        inherit scenario index;
        name = guard (toString check.name) "check #${toString index}";
        detail = "";
        message = null;
      };
      expected = (tryEval (check ? expectError)).value or false;
      ok = tryEval (deepSeq check.ok check.ok);
      detail = guard (
        if builtins.isString check.detail then check.detail else harness.show check.detail
      ) "";
    in
    if !(tryEval (deepSeq base.name (builtins.isAttrs check))).success then
      base // { status = "error"; }
    else if expected then
      base
      // {
        status = "expect-error";
        message = guard check.expectError.message null;
      }
    else if !ok.success then
      base // { status = "error"; }
    else if !builtins.isBool ok.value then
      base
      // {
        status = "fail";
        detail = "the check's `ok' is not a boolean";
      }
    else
      base
      // {
        status = if ok.value then "pass" else "fail";
        inherit detail;
      };

  renderScenario =
    scenario:
    let
      checks = scenarios.${scenario};
      listed = tryEval (builtins.isList checks && builtins.seq (builtins.length checks) true);
    in
    if listed.success && listed.value then
      lib.imap0 (render scenario) checks
    else
      [
        {
          inherit scenario;
          index = null;
          name = "(scenario)";
          status = "error";
          detail = "the scenario is not a list of checks";
          message = null;
        }
      ];

  picked = builtins.elemAt scenarios.${only} index;
in
{
  inherit ids;
  results = builtins.concatMap renderScenario ids;
  selected = renderScenario only;
  count = builtins.length scenarios.${only};
  single = render only index picked;
  raw = deepSeq [
    picked.name
    picked.ok
    picked.detail
  ] { inherit (picked) name ok detail; };
  forceExpected = deepSeq picked.expectError.target "evaluation unexpectedly succeeded";
}
