# Mirrors nixpkgs nixos/modules/config/users-groups.nix: users.users,
# users.groups (members filled from extraGroups), the groups NixOS always
# declares (names only; nixpkgs gives them fixed gids from ids.nix) and the
# account assertions a service module can trip. Not mirrored: subuid ranges,
# default shells, activation scripts.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    attrNames
    attrValues
    concatMap
    concatStringsSep
    filterAttrs
    mapAttrsToList
    mkDefault
    mkIf
    mkMerge
    mkOption
    types
    ;

  cfg = config.users;

  shortName =
    what: x:
    assert
      builtins.stringLength x < 32
      || abort "${what} '${x}' is longer than 31 characters which is not allowed!";
    x;

  inherit (types) nullOr;

  user =
    { name, config, ... }:
    {
      options = {
        enable = mkOption {
          type = types.bool;
          default = true;
        };
        name = mkOption {
          type = types.passwdEntry types.str;
          apply = shortName "Username";
        };
        description = mkOption {
          type = types.passwdEntry types.str;
          default = "";
        };
        uid = mkOption {
          type = nullOr types.int;
          default = null;
        };
        isSystemUser = mkOption {
          type = types.bool;
          default = false;
        };
        isNormalUser = mkOption {
          type = types.bool;
          default = false;
        };
        group = mkOption {
          type = types.str;
          default = "";
          apply = shortName "Group name";
        };
        extraGroups = mkOption {
          type = types.listOf types.str;
          default = [ ];
        };
        home = mkOption {
          type = types.passwdEntry types.path;
          default = "/var/empty";
        };
        homeMode = mkOption {
          type = types.strMatching "[0-7]{1,5}";
          default = "700";
        };
        createHome = mkOption {
          type = types.bool;
          default = false;
        };
        useDefaultShell = mkOption {
          type = types.bool;
          default = false;
        };
        # nixpkgs: default pkgs.shadow (a stub here).
        shell = mkOption {
          type = nullOr (types.either types.shellPackage (types.passwdEntry types.path));
          default = pkgs.shadow;
        };
        hashedPassword = mkOption {
          type = nullOr (types.passwdEntry types.str);
          default = null;
        };
        password = mkOption {
          type = nullOr types.str;
          default = null;
        };
        hashedPasswordFile = mkOption {
          type = nullOr types.str;
          default = null;
        };
        initialPassword = mkOption {
          type = nullOr types.str;
          default = null;
        };
        initialHashedPassword = mkOption {
          type = nullOr (types.passwdEntry types.str);
          default = null;
        };
        packages = mkOption {
          type = types.listOf types.package;
          default = [ ];
        };
        linger = mkOption {
          type = nullOr types.bool;
          default = null;
        };
      };

      config = mkMerge [
        { name = mkDefault name; }
        (mkIf config.isNormalUser {
          group = mkDefault "users";
          createHome = mkDefault true;
          home = mkDefault "/home/${config.name}";
          useDefaultShell = mkDefault true;
          isSystemUser = mkDefault false;
        })
      ];
    };

  group =
    { name, config, ... }:
    {
      options = {
        name = mkOption { type = types.passwdEntry types.str; };
        gid = mkOption {
          type = nullOr types.int;
          default = null;
        };
        members = mkOption {
          type = types.listOf (types.passwdEntry types.str);
          default = [ ];
        };
      };

      config = {
        name = mkDefault name;
        members = mapAttrsToList (_: u: u.name) (
          filterAttrs (_: u: u.enable && builtins.elem config.name u.extraGroups) cfg.users
        );
      };
    };

  duplicates =
    ids:
    let
      sorted = builtins.sort builtins.lessThan ids;
    in
    builtins.length sorted != builtins.length (lib.unique sorted);
  setIds = attr: set: map (x: x.${attr}) (builtins.filter (x: x.${attr} != null) (attrValues set));
  groupNames = mapAttrsToList (_: g: g.name) cfg.groups;
  missingGroup = filterAttrs (_: u: u.group != "" && !builtins.elem u.group groupNames) cfg.users;
in
{
  options.users = {
    mutableUsers = mkOption {
      type = types.bool;
      default = true;
    };
    users = mkOption {
      type = types.attrsOf (types.submodule user);
      default = { };
    };
    groups = mkOption {
      type = types.attrsOf (types.submodule group);
      default = { };
    };
  };

  config = {
    users.groups = lib.genAttrs [
      "root"
      "wheel"
      "disk"
      "kmem"
      "tty"
      "floppy"
      "uucp"
      "lp"
      "cdrom"
      "tape"
      "audio"
      "video"
      "dialout"
      "nogroup"
      "users"
      "nixbld"
      "utmp"
      "adm"
      "input"
      "kvm"
      "render"
      "sgx"
      "shadow"
      "clock"
    ] (_: { });

    assertions = [
      {
        assertion = !(duplicates (setIds "uid" cfg.users) || duplicates (setIds "gid" cfg.groups));
        message = "UIDs and GIDs must be unique!";
      }
      {
        assertion = missingGroup == { };
        message = "The following users have a primary group that is undefined: ${
          concatStringsSep " " (attrNames missingGroup)
        }";
      }
    ]
    ++ concatMap (u: [
      {
        assertion = builtins.match "[a-zA-Z0-9_.][a-zA-Z0-9_.-]*" u.name != null;
        message = "The username \"${u.name}\" is not valid, it does not match the regex \"[a-zA-Z0-9_.][a-zA-Z0-9_.-]*\".";
      }
      {
        assertion = u.isNormalUser && u.uid != null -> u.uid >= 1000;
        message = "A user cannot have a users.users.${u.name}.uid set below 1000 and set users.users.${u.name}.isNormalUser.";
      }
      {
        assertion = lib.xor (
          u.isSystemUser || (u.uid != null && u.uid < 1000 && !u.isNormalUser)
        ) u.isNormalUser;
        message = "Exactly one of users.users.${u.name}.isSystemUser and users.users.${u.name}.isNormalUser must be set.";
      }
      {
        assertion = u.group != "";
        message = "users.users.${u.name}.group is unset. This used to default to nogroup, but this is unsafe.";
      }
    ]) (attrValues cfg.users);
  };
}
