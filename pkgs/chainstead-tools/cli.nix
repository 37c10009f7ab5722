# chainstead-cli alone (the operator's `chainstead` command); see ./default.nix.
{ callPackage }:
callPackage ./default.nix {
  crate = "cli";
  mainProgram = "chainstead";
}
