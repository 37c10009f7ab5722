# The chainstead Rust tools, built from this repository's Cargo workspace.
# `crate = null` builds and tests the whole workspace (every binary);
# a crate name builds just that tool, so each module pulls in only its own.
{
  lib,
  rustPlatform,
  crate ? null,
}:
let
  workspace = (lib.importTOML ../../Cargo.toml).workspace.package;
  packageFlags = if crate == null then [ "--workspace" ] else [ "--package" "chainstead-${crate}" ];
in
rustPlatform.buildRustPackage {
  pname = if crate == null then "chainstead-tools" else "chainstead-${crate}";
  inherit (workspace) version;

  src = lib.fileset.toSource {
    root = ../..;
    fileset = lib.fileset.unions [
      ../../Cargo.toml
      ../../Cargo.lock
      ../../clippy.toml
      ../../rustfmt.toml
      ../../crates
      (lib.fileset.maybeMissing ../../checks/fixtures)
    ];
  };

  cargoLock.lockFile = ../../Cargo.lock;

  cargoBuildFlags = packageFlags;
  # Tests that need a real server (monerod, Garage, RustyVault, ...) are
  # #[ignore]d here and run by checks/offline, which starts those servers.
  cargoTestFlags = packageFlags;

  meta = {
    description =
      if crate == null then
        "chainstead's helper tools: sync gate, secret loader, backup pusher, upgrade guard, exporter, the chainstead command"
      else
        "chainstead-${crate}, a helper tool of the chainstead NixOS stack";
    homepage = workspace.repository;
    license = lib.licenses.mit;
    platforms = lib.platforms.linux;
  }
  # The operator command is `chainstead`; every other tool is named after its crate.
  // lib.optionalAttrs (crate != null) {
    mainProgram = if crate == "cli" then "chainstead" else "chainstead-${crate}";
  };
}
