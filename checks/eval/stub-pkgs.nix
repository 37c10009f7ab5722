# A small stand-in for nixpkgs' `pkgs`, enough to evaluate the chainstead
# modules without nixpkgs. Packages are fake derivations (a made-up store path
# derived from their contents, nothing is ever built). The builders mirror
# pkgs/build-support/trivial-builders/default.nix and pkgs/pkgs-lib/formats.nix
# and keep their inputs as attributes, as real derivations do (`.text` of a
# writeText result is the text there too), so tests can read them back.
{ lib }:
let
  inherit (lib)
    concatMapStringsSep
    concatStrings
    isFunction
    makeBinPath
    mapAttrs
    mapAttrsToList
    optionalAttrs
    optionalString
    types
    ;

  # Store paths use nix-base32, which has no "e"; a sha256 hex digest with
  # "e" swapped for "g" is a valid-looking hash part.
  fakeHash =
    seed:
    builtins.substring 0 32 (lib.replaceStrings [ "e" ] [ "g" ] (builtins.hashString "sha256" seed));

  # A fake derivation: `attrs` stay on the result (as mkDerivation arguments
  # do), the store path depends on all string-like inputs.
  fake =
    attrs:
    let
      inherit (attrs) name;
      seed = builtins.toJSON (
        mapAttrs (_: v: if isFunction v then "<function>" else v) (removeAttrs attrs [ "passthru" ])
      );
      self =
        removeAttrs attrs [ "passthru" ]
        // (attrs.passthru or { })
        // {
          type = "derivation";
          outPath = "${builtins.storeDir}/${fakeHash seed}-${name}";
          drvPath = "${builtins.storeDir}/${fakeHash "drv:${seed}"}-${name}.drv";
          outputName = "out";
          outputs = [ "out" ];
          out = self;
          all = [ self ];
          meta = lib.attrByPath [ "meta" ] { } attrs;
          overrideAttrs = f: fake (attrs // (if isFunction f then f attrs else f));
          # callPackage's override: the package function's arguments are
          # not known here, so the overridden ones are kept as
          # `overrideArgs` (and change the store path, as they would).
          override =
            f:
            let
              before = attrs.overrideArgs or { };
            in
            fake (attrs // { overrideArgs = before // (if isFunction f then f before else f); });
        };
    in
    self;

  # Packages chainstead uses. mainProgram is set where nixpkgs sets it
  # (checked: fulcrum, monero-cli, proxmox-backup-client, nodejs); bitcoind,
  # lnd, coreutils, util-linux and systemd have none in nixpkgs, so
  # lib.getExe warns and falls back to the package name, as it does there.
  # Versions are placeholders except where DESIGN.md records the nixpkgs one.
  packages = [
    { pname = "bitcoind"; }
    {
      pname = "monero-cli";
      version = "0.18.4.4";
      mainProgram = "monero-wallet-cli";
    }
    {
      pname = "fulcrum";
      # nixpkgs pkgs/by-name/fu/fulcrum/package.nix (2.1.2, mainProgram "Fulcrum").
      version = "2.1.2";
      mainProgram = "Fulcrum";
    }
    {
      pname = "lnd";
      version = "0.19.3-beta";
    }
    {
      pname = "openssl";
      mainProgram = "openssl";
    }
    { pname = "coreutils"; }
    { pname = "findutils"; }
    { pname = "gnugrep"; }
    { pname = "gnused"; }
    {
      pname = "bash";
      mainProgram = "bash";
      passthru.shellPath = "/bin/bash";
    }
    {
      pname = "jq";
      mainProgram = "jq";
    }
    {
      pname = "curl";
      mainProgram = "curl";
    }
    { pname = "util-linux"; }
    # For snapshots before an upgrade; neither sets mainProgram in nixpkgs.
    { pname = "zfs"; }
    { pname = "btrfs-progs"; }
    {
      pname = "age";
      mainProgram = "age";
    }
    {
      pname = "proxmox-backup-client";
      mainProgram = "proxmox-backup-client";
    }
    { pname = "systemd"; }
    {
      pname = "shadow";
      passthru.shellPath = "/bin/nologin";
    }
    {
      pname = "nodejs";
      mainProgram = "node";
    }
    # For the nix-bitcoin-shaped fixture (checks/fixtures/nix-bitcoin-shaped.nix):
    # pkgs/by-name/ln/lndinit and pkgs/by-name/pw/pwgen set mainProgram.
    {
      pname = "lndinit";
      mainProgram = "lndinit";
    }
    {
      pname = "pwgen";
      mainProgram = "pwgen";
    }
    # Packaged by chainstead itself (pkgs/ and the overlay).
    {
      pname = "thunderhub";
      mainProgram = "thunderhub";
    }
    {
      pname = "chainstead-sync-gate";
      mainProgram = "chainstead-sync-gate";
    }
    {
      pname = "chainstead-secrets";
      mainProgram = "chainstead-secrets";
    }
    {
      pname = "chainstead-backup";
      mainProgram = "chainstead-backup";
    }
    {
      pname = "chainstead-cli";
      mainProgram = "chainstead";
    }
    {
      pname = "chainstead-upgrade-guard";
      mainProgram = "chainstead-upgrade-guard";
    }
    {
      pname = "chainstead-exporter";
      mainProgram = "chainstead-exporter";
    }
  ];

  package =
    {
      pname,
      version ? "0-stub",
      mainProgram ? null,
      passthru ? { },
    }:
    {
      name = pname;
      value = fake {
        inherit pname version passthru;
        name = "${pname}-${version}";
        meta = optionalAttrs (mainProgram != null) { inherit mainProgram; };
      };
    };

  packageSet = builtins.listToAttrs (map package packages);

  runtimeShell = "${packageSet.bash}/bin/bash";

  writeTextFile =
    {
      name,
      text,
      executable ? false,
      destination ? "",
      checkPhase ? "",
      meta ? { },
      passthru ? { },
      allowSubstitutes ? false,
      preferLocalBuild ? true,
      derivationArgs ? { },
    }:
    assert lib.assertMsg (
      destination != "" -> (lib.hasPrefix "/" destination && destination != "/")
    ) "destination must be an absolute path, relative to the derivation's out path, got '${destination}' instead.";
    let
      binName = builtins.match "/bin/([^/]+)" destination;
    in
    fake (
      removeAttrs derivationArgs [ "meta" "passthru" ]
      // {
        inherit
          name
          text
          executable
          destination
          checkPhase
          allowSubstitutes
          preferLocalBuild
          ;
        meta =
          optionalAttrs (executable && binName != null) { mainProgram = builtins.head binName; }
          // meta
          // derivationArgs.meta or { };
        passthru = passthru // derivationArgs.passthru or { };
      }
    );

  shebang = text: ''
    #!${runtimeShell}
    ${text}
  '';

  runCommandWith =
    local: name: env: buildCommand:
    fake (
      optionalAttrs local {
        preferLocalBuild = true;
        allowSubstitutes = false;
      }
      // env
      // {
        inherit name buildCommand;
      }
    );

  # Format generators: the module-facing `type`s are nixpkgs' own; `generate`
  # keeps what nixpkgs keeps. json/yaml/toml hand the value to a tool as the
  # JSON string `value` (so does nixpkgs); ini and keyValue render with lib.
  jsonLike =
    description: nullable:
    let
      valueType =
        (if nullable then types.nullOr else lib.id) (
          types.oneOf [
            types.bool
            types.int
            types.float
            types.str
            types.path
            (types.attrsOf valueType)
            (types.listOf valueType)
          ]
        )
        // {
          inherit description;
        };
    in
    {
      type = valueType;
      generate =
        name: value:
        fake {
          inherit name;
          value = builtins.toJSON value;
          passAsFile = [ "value" ];
          preferLocalBuild = true;
        };
    };

  atomType =
    description:
    types.nullOr (
      types.oneOf [
        types.bool
        types.int
        types.float
        types.str
      ]
    )
    // {
      inherit description;
    };

  listAtom =
    single: listsAsDuplicateKeys: listToValue:
    if listsAsDuplicateKeys then
      types.coercedTo single lib.singleton (types.listOf single)
      // {
        description = single.description + " or a list of them for duplicate keys";
      }
    else if listToValue != null then
      types.coercedTo single lib.singleton (types.nonEmptyListOf single)
      // {
        description = single.description + " or a non-empty list of them";
      }
    else
      single;

  flattenLists =
    listToValue:
    if listToValue == null then
      lib.id
    else
      mapAttrs (_: v: if builtins.isList v then listToValue v else v);

  formats = {
    json = _: jsonLike "JSON value" true;
    yaml = formats.yaml_1_1;
    yaml_1_1 = _: jsonLike "YAML 1.1 value" true;
    yaml_1_2 = _: jsonLike "YAML 1.2 value" true;
    toml = _: jsonLike "TOML value" false;

    keyValue =
      {
        listsAsDuplicateKeys ? false,
        listToValue ? null,
        ...
      }@args:
      assert listsAsDuplicateKeys -> listToValue == null;
      {
        type = types.attrsOf (
          listAtom (atomType "atom (null, bool, int, float or string)") listsAsDuplicateKeys
            listToValue
        );
        generate =
          name: value:
          self.writeText name (
            lib.generators.toKeyValue (removeAttrs args [ "listToValue" ]) (
              flattenLists listToValue value
            )
          );
      };

    # atomsCoercedToLists is not supported here.
    ini =
      {
        listsAsDuplicateKeys ? false,
        listToValue ? null,
        ...
      }@args:
      assert listsAsDuplicateKeys -> listToValue == null;
      let
        atom =
          listAtom (atomType "INI atom (null, bool, int, float or string)") listsAsDuplicateKeys
            listToValue;
      in
      {
        type = types.attrsOf (
          types.attrsOf atom
          // {
            description = "section of an INI file (attrs of ${atom.description})";
          }
        );
        lib.types.atom = atom;
        generate =
          name: value:
          self.writeText name (
            lib.generators.toINI (removeAttrs args [ "listToValue" ]) (
              mapAttrs (_: flattenLists listToValue) value
            )
          );
      };
  };

  self = packageSet // {
    inherit
      lib
      formats
      runtimeShell
      writeTextFile
      ;

    stdenv.hostPlatform = {
      system = "x86_64-linux";
      isLinux = true;
      isx86_64 = true;
    };

    callPackage =
      fn: _:
      let
        what = if builtins.isFunction fn then "a function" else baseNameOf (toString fn);
      in
      throw "stub-pkgs: callPackage is not available in module eval tests; add a stub for ${what} to checks/eval/stub-pkgs.nix";

    writeText =
      name: text:
      assert lib.assertMsg (lib.strings.isConvertibleWithToString text)
        "pkgs.writeText ${name}: The second argument should be a string, but it's a ${builtins.typeOf text} instead.";
      writeTextFile {
        inherit name;
        text = toString text;
      };

    writeTextDir =
      path: text:
      writeTextFile {
        inherit text;
        name = baseNameOf path;
        destination = "/${path}";
      };

    writeScript =
      name: text:
      writeTextFile {
        inherit name text;
        executable = true;
      };

    writeScriptBin =
      name: text:
      writeTextFile {
        inherit name text;
        executable = true;
        destination = "/bin/${name}";
      };

    writeShellScript =
      name: text:
      writeTextFile {
        inherit name;
        executable = true;
        text = shebang text;
      };

    writeShellScriptBin =
      name: text:
      writeTextFile {
        inherit name;
        executable = true;
        destination = "/bin/${name}";
        text = shebang text;
        meta.mainProgram = name;
      };

    writeShellApplication =
      {
        name,
        text,
        runtimeInputs ? [ ],
        runtimeEnv ? null,
        meta ? { },
        passthru ? { },
        checkPhase ? null,
        excludeShellChecks ? [ ],
        extraShellCheckFlags ? [ ],
        bashOptions ? [
          "errexit"
          "nounset"
          "pipefail"
        ],
        derivationArgs ? { },
        inheritPath ? true,
      }:
      writeTextFile {
        inherit name meta derivationArgs;
        executable = true;
        destination = "/bin/${name}";
        allowSubstitutes = true;
        preferLocalBuild = false;
        checkPhase = if checkPhase == null then "" else checkPhase;
        passthru = passthru // {
          inherit excludeShellChecks extraShellCheckFlags;
        };
        text =
          shebang (concatMapStringsSep "\n" (option: "set -o ${option}") bashOptions)
          + optionalString (runtimeEnv != null) (
            concatStrings (
              mapAttrsToList (var: value: ''
                ${lib.toShellVar var value}
                export ${var}
              '') runtimeEnv
            )
          )
          + optionalString (runtimeInputs != [ ]) ''

            export PATH="${makeBinPath runtimeInputs}${optionalString inheritPath ":$PATH"}"
          ''
          + ''

            ${text}
          '';
      };

    runCommand = runCommandWith false;
    runCommandLocal = runCommandWith true;

    symlinkJoin =
      args@{
        name ? "${args.pname}-${args.version}",
        paths,
        postBuild ? "",
        ...
      }:
      # symlinkJoin's own defaults, which the caller's arguments override.
      fake (
        {
          preferLocalBuild = true;
          allowSubstitutes = false;
        }
        // args
        // {
          inherit name paths postBuild;
        }
      );
  };
in
self
