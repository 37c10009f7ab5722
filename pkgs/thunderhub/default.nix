# ThunderHub, the Lightning node manager (a NestJS server plus a Vite client),
# packaged here because nixpkgs has none. The result is the app root
# $out/lib/node_modules/thunderhub (package.json, dist/, src/client/dist/,
# drizzle/, production node_modules/) and $out/bin/thunderhub, which runs
# `node dist/main.js` from that root: the server finds the client bundle, its
# version (package.json) and its database migrations relative to the working
# directory, so anywhere else `/` is a 404 and the version reads 0.0.0.
#
# checks/thunderhub-build/run repeats these build steps outside Nix and starts
# the result; docs/thunderhub-package.md says how to update the version.
{
  lib,
  buildNpmPackage,
  fetchFromGitHub,
  importNpmLock,
  makeWrapper,
  # Upstream pins Node 24 (.nvmrc v24.13.1; its Dockerfile builds on
  # node:24.13.1-alpine). nixpkgs carries that major as nodejs_24
  # (pkgs/development/web/nodejs/v24.nix); nodejs_25 and nodejs_26 exist too,
  # but are not what upstream builds and tests with. The patch release is
  # whatever the nixos-26.05 pin ships.
  nodejs_24,
  # URL prefix the web interface is served under: "" for the site root, or a
  # path such as "/thunderhub". Vite bakes it into the client bundle at build
  # time (src/client/vite.config.ts: `base`), so it is a package parameter;
  # the wrapper also sets it at run time, where the server reads BASE_PATH for
  # its route prefix (src/server/main.ts, src/server/app.module.ts).
  basePath ? "",
}:

assert lib.assertMsg (
  basePath == "" || (lib.hasPrefix "/" basePath && !lib.hasSuffix "/" basePath)
) "thunderhub: basePath must be \"\" or a path that starts with \"/\" and does not end with \"/\" (got \"${basePath}\"); the server appends \"/graphql\" and \"/api\" to it.";

let
  nodejs = nodejs_24;
  version = "0.18.4";

  src = fetchFromGitHub {
    owner = "apotdevin";
    repo = "thunderhub";
    tag = "v${version}";
    hash = "sha256-2ivqUUKAvPjxl7gk7JxPtk8rGWH9fNPr9F6g7WanYZ8=";
  };

  appDir = "lib/node_modules/thunderhub";
in
buildNpmPackage {
  pname = "thunderhub";
  inherit version src nodejs;

  # package-lock.json (lockfileVersion 3) gives every package a registry
  # `resolved` URL and an sha512 `integrity`, so each tarball is its own
  # fixed-output fetch and there is no npmDepsHash to maintain
  # (pkgs/build-support/node/import-npm-lock/default.nix). Reading the lock
  # from the fetched source is import-from-derivation: evaluation fetches
  # the source tarball first.
  npmDeps = importNpmLock { npmRoot = src; };
  # importNpmLock needs its own hook (npmHooks.npmConfigHook expects a
  # fetchNpmDeps cache). It runs `npm install --ignore-scripts`, then
  # `npm rebuild`, which runs the install scripts of every package and the
  # root's own postinstall; `prepare` (husky) does not run
  # (import-npm-lock/hooks/npm-config-hook.sh). The hook is built against
  # nixpkgs' default nodejs: override it, or node-gyp would compile
  # better-sqlite3 against other headers (npm_config_nodedir) than the Node
  # that runs it (import-npm-lock/hooks/default.nix).
  npmConfigHook = importNpmLock.npmConfigHook.override { inherit nodejs; };

  # The install scripts that `npm rebuild` runs and that matter:
  # - better-sqlite3 runs `prebuild-install || node-gyp rebuild --release`.
  #   prebuild-install would download a prebuilt binary; naming the package
  #   here makes it skip the download, so node-gyp always compiles it from
  #   the bundled SQLite source (prebuild-install's rc.js compares this
  #   variable with the package name). node-gyp uses nodejs.python, which
  #   buildNpmPackage adds to nativeBuildInputs, make and the C++ compiler
  #   from stdenv, and the Node headers from npm_config_nodedir, which the
  #   hook sets to the source of `nodejs`.
  # - the root postinstall `patch-package` applies
  #   patches/@lightningpolar+tapd-api+0.7.0-alpha.patch (runtime code:
  #   lets the tapd client connect without a pinned certificate).
  #   installCheckPhase proves the shipped tree carries it.
  # - @nestjs/core calls opencollective and ignores its failure; secp256k1
  #   loads its bundled x86_64 prebuild or compiles with node-gyp, and falls
  #   back to its JavaScript implementation if neither works.
  env.npm_config_build_from_source = "better-sqlite3";

  nativeBuildInputs = [ makeWrapper ];

  # Not in `env`: with NODE_ENV=production during the configure phase,
  # `npm install` would omit the devDependencies (nest CLI, TypeScript, Vite)
  # that the build needs.
  preBuild = ''
    export NODE_ENV=production
    export BASE_PATH=${lib.escapeShellArg basePath}
  '';
  # npmBuildScript defaults to "build": `npm run build` runs upstream's
  # prebuild (clean), `nest build` (dist/) and `vite build` (src/client/dist/).

  # The default npmInstallHook installs what `npm pack` would publish, which
  # leaves out dist/ (ignored by git): install the app root by hand instead.
  # Its prune step is repeated here (npm-install-hook.sh).
  installPhase = ''
    runHook preInstall

    npm prune --omit=dev --no-save
    find node_modules -maxdepth 1 -type d -empty -delete
    # npm's cache of the tree, whose `resolved` fields name every tarball in
    # the store; nothing reads it at run time and it would pull them all
    # into the closure.
    rm -f node_modules/.package-lock.json
    # Keep only the compiled addon: node-gyp's Makefiles, config.gypi and
    # object files name the Node source tree and the build directory.
    find node_modules/better-sqlite3/build -mindepth 1 -maxdepth 1 ! -name Release -exec rm -rf {} +
    find node_modules/better-sqlite3/build/Release -mindepth 1 -maxdepth 1 \
      ! -name better_sqlite3.node -exec rm -rf {} +

    app=$out/${appDir}
    mkdir -p "$app/src/client"
    cp -r dist drizzle node_modules "$app/"
    cp -r src/client/dist "$app/src/client/dist"
    # importNpmLock's hook swaps in a package.json whose dependencies point
    # into the store and keeps upstream's as .package.json.orig (newer
    # nixpkgs restore it in their postInstall, older ones right after
    # configure); ship upstream's either way.
    if [ -f .package.json.orig ]; then
      cp .package.json.orig "$app/package.json"
    else
      cp package.json "$app/package.json"
    fi

    # NODE_ENV=production is not optional: without it the server signs
    # sessions with a fixed development JWT secret and writes schema.gql
    # into its working directory (src/server/config/configuration.ts,
    # src/server/app.module.ts).
    makeWrapper ${lib.getExe nodejs} "$out/bin/thunderhub" \
      --chdir "$app" \
      --set NODE_ENV production \
      --set BASE_PATH ${lib.escapeShellArg basePath} \
      --add-flags "$app/dist/main.js"

    runHook postInstall
  '';

  doInstallCheck = true;
  installCheckPhase = ''
    runHook preInstallCheck

    app=$out/${appDir}
    # The addon loads in the Node that runs the app (same ABI) and works.
    (cd "$app" && ${lib.getExe nodejs} -e \
      'const D = require("better-sqlite3"); if (new D(":memory:").prepare("select 1 as x").get().x !== 1) process.exit(1)')
    # The shipped tree carries upstream's patches (patch-package ran).
    for p in ${src}/patches/*.patch; do
      patch --dry-run --reverse --strip=1 --directory="$app" --input="$p" > /dev/null
    done
    # The shipped package.json is upstream's, not the one with store paths.
    if grep -q '${builtins.storeDir}/' "$app/package.json"; then
      echo "package.json in $app refers to the Nix store" >&2
      exit 1
    fi
    [ "$(${lib.getExe nodejs} -p 'require(process.argv[1]).version' "$app/package.json")" = ${lib.escapeShellArg version} ]

    runHook postInstallCheck
  '';

  passthru = {
    inherit basePath nodejs;
  };

  meta = {
    description = "Web interface to monitor and manage a Lightning node (LND)";
    homepage = "https://thunderhub.io";
    changelog = "https://github.com/apotdevin/thunderhub/blob/v${version}/CHANGELOG.md";
    # LICENSE in the repository: MIT, Copyright (c) 2018 Anthony Potdevin.
    license = lib.licenses.mit;
    mainProgram = "thunderhub";
    platforms = lib.platforms.linux;
  };
}
