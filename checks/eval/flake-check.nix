# The module evaluation tests as a flake check: the same scenarios, harness,
# declared options and stub pkgs as checks/eval/run, with nixpkgs' lib. The
# checks are evaluated while the flake is evaluated; a failing check throws
# with the names of the failed checks, otherwise the derivation writes the
# report. expectEvalError checks only see "it failed" here (tryEval); the
# runner also checks their message.
{ pkgs, lib }:
let
  harness = import ./default.nix { inherit lib; };
  scenarios = import ./scenarios.nix { inherit lib harness; };

  results = lib.concatMap (
    id: map (check: check // { name = "[${id}] ${check.name}"; }) scenarios.${id}
  ) (builtins.attrNames scenarios);
  failed = builtins.filter (check: !check.ok) results;
  line = check: if check.ok then "PASS ${check.name}" else "FAIL ${check.name}: ${check.detail}";
  failures = builtins.length failed;
  summary = "eval: ${toString (builtins.length results - failures)} passed, ${toString failures} failed";
in
if failed != [ ] then
  throw ''
    chainstead module evaluation checks failed:
    ${lib.concatMapStringsSep "\n" line failed}
    ${summary}''
else
  pkgs.runCommand "chainstead-eval-checks"
    {
      report = lib.concatMapStringsSep "\n" line results + "\n${summary}\n";
      passAsFile = [ "report" ];
    }
    ''
      cat "$reportPath"
      cp "$reportPath" "$out"
    ''
