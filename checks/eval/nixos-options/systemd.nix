# Mirrors nixpkgs nixos/lib/systemd-unit-options.nix, nixos/lib/systemd-lib.nix
# (unitNameType, the unitConfig/serviceConfig modules, makeJobScript),
# nixos/lib/systemd-types.nix and nixos/modules/system/boot/systemd.nix
# (services, targets, timers, paths, sockets, slices; startAt timers).
# Not mirrored: unit file rendering (systemd.units), mounts, initrd units.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    any
    attrNames
    concatMap
    concatStringsSep
    elem
    filter
    filterAttrs
    filterOverrides
    flatten
    isList
    isPath
    makeBinPath
    makeSearchPathOutput
    mapAttrs
    mergeEqualOption
    mkAfter
    mkIf
    mkMerge
    mkOption
    mkOptionDefault
    mkOptionType
    optionalAttrs
    replaceStrings
    toList
    types
    ;

  cfg = config.systemd;

  unitNameType = types.strMatching (
    "[a-zA-Z0-9@%:_.\\-]+"
    + "[.](service|socket|device|mount|automount|swap|target|path|timer|scope|slice)"
  );

  # Repeatable directives are lists and concatenate; single values must agree.
  unitOption = mkOptionType {
    name = "systemd option";
    merge =
      loc: defs:
      let
        active = filterOverrides defs;
      in
      if any (def: isList def.value) active then
        concatMap (def: toList def.value) active
      else
        mergeEqualOption loc active;
  };

  # The values nixpkgs' checkService accepts; mkIf/mkOverride wrappers are
  # looked through, as nixpkgs does.
  serviceValues = {
    Type = [
      "exec"
      "simple"
      "forking"
      "oneshot"
      "dbus"
      "notify"
      "notify-reload"
      "idle"
    ];
    Restart = [
      "no"
      "on-success"
      "on-failure"
      "on-abnormal"
      "on-abort"
      "always"
    ];
  };
  unwrap = v: if elem (v._type or "") [ "override" "if" ] then v.content else v;
  serviceConfigValid =
    attrs:
    let
      bad = filter (
        key: attrs ? ${key} && !(elem (unwrap attrs.${key}) serviceValues.${key})
      ) (attrNames serviceValues);
      messages = map (
        key: "Systemd Service field `${key}' cannot have value `${toString (unwrap attrs.${key})}'."
      ) bad;
    in
    bad == [ ] || builtins.trace (concatStringsSep "\n" messages) false;

  unitList = mkOption {
    type = types.listOf unitNameType;
    default = [ ];
  };
  lines = mkOption {
    type = types.lines;
    default = "";
  };
  settingsOf = mkOption {
    type = types.attrsOf unitOption;
    default = { };
  };

  # Options every unit kind shares (commonUnitOptions + stage2CommonUnitOptions).
  commonOptions =
    {
      name,
      config,
      options,
      ...
    }:
    {
      options = {
        enable = mkOption {
          type = types.bool;
          default = true;
        };
        name = mkOption { type = types.str; };
        overrideStrategy = mkOption {
          type = types.enum [
            "asDropinIfExists"
            "asDropin"
          ];
          default = "asDropinIfExists";
        };
        description = mkOption {
          type = types.singleLineStr;
          default = "";
        };
        documentation = mkOption {
          type = types.listOf types.str;
          default = [ ];
        };
        wantedBy = unitList;
        requiredBy = unitList;
        upheldBy = unitList;
        aliases = unitList;
        requires = unitList;
        wants = unitList;
        upholds = unitList;
        after = unitList;
        before = unitList;
        bindsTo = unitList;
        partOf = unitList;
        conflicts = unitList;
        requisite = unitList;
        onFailure = unitList;
        onSuccess = unitList;
        unitConfig = settingsOf;
        startLimitBurst = mkOption { type = types.int; };
        startLimitIntervalSec = mkOption { type = types.int; };
        restartTriggers = mkOption {
          type = types.listOf types.unspecified;
          default = [ ];
        };
        reloadTriggers = mkOption {
          type = types.listOf unitOption;
          default = [ ];
        };
      };

      # The [Unit] directives nixpkgs derives from the list options.
      config.unitConfig =
        let
          listed = key: value: optionalAttrs (value != [ ]) { ${key} = toString value; };
          triggers =
            key: value:
            optionalAttrs (value != [ ]) {
              ${key} = "${pkgs.writeText "${key}-${name}" (
                toString (map (x: if isPath x then "${x}" else x) (flatten value))
              )}";
            };
        in
        listed "Requires" config.requires
        // listed "Wants" config.wants
        // listed "Upholds" config.upholds
        // listed "After" config.after
        // listed "Before" config.before
        // listed "BindsTo" config.bindsTo
        // listed "PartOf" config.partOf
        // listed "Conflicts" config.conflicts
        // listed "Requisite" config.requisite
        // triggers "X-Restart-Triggers" config.restartTriggers
        // triggers "X-Reload-Triggers" config.reloadTriggers
        // optionalAttrs (config.description != "") { Description = config.description; }
        // listed "Documentation" config.documentation
        // listed "OnFailure" config.onFailure
        // listed "OnSuccess" config.onSuccess
        // optionalAttrs options.startLimitIntervalSec.isDefined {
          StartLimitIntervalSec = toString config.startLimitIntervalSec;
        }
        // optionalAttrs options.startLimitBurst.isDefined {
          StartLimitBurst = toString config.startLimitBurst;
        };
    };

  kindName = suffix: { name, ... }: { config.name = "${name}.${suffix}"; };

  # Shell bodies become unit-script-* store files, as makeJobScript does.
  jobScript =
    name: text: strict:
    let
      escaped = replaceStrings [ "\\" ] [ "\\\\" ] name;
      scriptName = replaceStrings [ "\\" "@" ] [ "-" "_" ] escaped;
      script =
        if strict then
          pkgs.writeShellApplication {
            name = scriptName;
            inherit text;
          }
        else
          pkgs.writeShellScriptBin scriptName ''
            set -e

            ${text}
          '';
    in
    lib.getExe (script.overrideAttrs (_: { name = "unit-script-${scriptName}"; }));

  serviceOptions =
    { name, config, ... }:
    {
      options = {
        environment = mkOption {
          type = types.attrsOf (
            types.nullOr (
              types.oneOf [
                types.str
                types.path
                types.package
              ]
            )
          );
          default = { };
        };
        path = mkOption {
          type = types.listOf (
            types.oneOf [
              types.package
              types.str
            ]
          );
          default = [ ];
        };
        serviceConfig = mkOption {
          type = types.addCheck (types.attrsOf unitOption) serviceConfigValid;
          default = { };
        };
        enableStrictShellChecks = mkOption { type = types.bool; };
        script = lines;
        scriptArgs = mkOption {
          type = types.str;
          default = "";
        };
        preStart = lines;
        postStart = lines;
        reload = lines;
        preStop = lines;
        postStop = lines;
        jobScripts = mkOption {
          type = types.coercedTo types.path lib.singleton (types.listOf types.path);
          default = [ ];
          internal = true;
        };
        restartIfChanged = mkOption {
          type = types.bool;
          default = true;
        };
        reloadIfChanged = mkOption {
          type = types.bool;
          default = false;
        };
        stopIfChanged = mkOption {
          type = types.bool;
          default = true;
        };
        notSocketActivated = mkOption {
          type = types.bool;
          default = false;
        };
        startAt = mkOption {
          type = types.either types.str (types.listOf types.str);
          default = [ ];
          apply = toList;
        };
      };

      config =
        let
          job =
            suffix: text: directive: wrap:
            mkIf (text != "") (
              let
                script = jobScript "${name}-${suffix}" text config.enableStrictShellChecks;
              in
              {
                jobScripts = script;
                serviceConfig.${directive} = wrap script;
              }
            );
        in
        mkMerge [
          {
            name = "${name}.service";
            environment.PATH = mkIf (
              config.path != [ ]
            ) "${makeBinPath config.path}:${makeSearchPathOutput "bin" "sbin" config.path}";
            enableStrictShellChecks = mkOptionDefault cfg.enableStrictShellChecks;
            path = mkAfter [
              pkgs.coreutils
              pkgs.findutils
              pkgs.gnugrep
              pkgs.gnused
              pkgs.systemd
            ];
          }
          (job "pre-start" config.preStart "ExecStartPre" lib.singleton)
          (job "start" config.script "ExecStart" (s: "${s} ${config.scriptArgs}"))
          (job "post-start" config.postStart "ExecStartPost" lib.singleton)
          (job "reload" config.reload "ExecReload" lib.id)
          (job "pre-stop" config.preStop "ExecStop" lib.id)
          (job "post-stop" config.postStop "ExecStopPost" lib.id)
        ];
    };

  unitsOf =
    modules:
    mkOption {
      type = types.attrsOf (types.submodule modules);
      default = { };
    };
in
{
  options.systemd = {
    enableStrictShellChecks = mkOption {
      type = types.bool;
      default = false;
    };
    packages = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };
    services = unitsOf [
      commonOptions
      serviceOptions
    ];
    targets = unitsOf [
      commonOptions
      (kindName "target")
    ];
    timers = unitsOf [
      commonOptions
      (kindName "timer")
      { options.timerConfig = settingsOf; }
    ];
    paths = unitsOf [
      commonOptions
      (kindName "path")
      { options.pathConfig = settingsOf; }
    ];
    sockets = unitsOf [
      commonOptions
      (kindName "socket")
      {
        options = {
          listenStreams = mkOption {
            type = types.listOf types.str;
            default = [ ];
          };
          listenDatagrams = mkOption {
            type = types.listOf types.str;
            default = [ ];
          };
          socketConfig = settingsOf;
        };
      }
    ];
    slices = unitsOf [
      commonOptions
      (kindName "slice")
      { options.sliceConfig = settingsOf; }
    ];
  };

  config.systemd.timers = mapAttrs (_: service: {
    wantedBy = [ "timers.target" ];
    timerConfig.OnCalendar = service.startAt;
  }) (filterAttrs (_: service: service.enable && service.startAt != [ ]) cfg.services);
}
