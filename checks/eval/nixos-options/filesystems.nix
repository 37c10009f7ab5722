# Mirrors nixpkgs nixos/modules/tasks/filesystems.nix (fileSystems entries,
# the mount options they derive, the label/device assertion) and the
# neededForBoot flag from nixos/modules/system/boot/stage-1.nix. Not
# mirrored: utils.fsNeededForBoot's fixed list of boot paths, fstab text.
{ config, lib, ... }:
let
  inherit (lib)
    mkIf
    mkMerge
    mkOption
    types
    ;

  nonEmpty = s: builtins.match "[ \t\n]*" s == null;
  withCheck =
    what: type: check:
    types.addCheck type check // { description = "${type.description} (with check: ${what})"; };
  nonEmptyStr = withCheck "non-empty" types.str nonEmpty;
  mountPath = withCheck "non-empty without trailing slash" types.str (
    s: nonEmpty s && builtins.match ".+/" s == null
  );
  escapeLabel = lib.replaceStrings [ " " "\t" ] [ "\\040" "\\011" ];

  fileSystem =
    { name, config, ... }:
    {
      options = {
        enable = mkOption {
          type = types.bool;
          default = true;
        };
        mountPoint = mkOption {
          type = mountPath;
          default = name;
        };
        device = mkOption {
          type = types.nullOr nonEmptyStr;
          default = null;
        };
        fsType = mkOption {
          type = nonEmptyStr;
          default = "auto";
        };
        options = mkOption {
          type = types.nonEmptyListOf nonEmptyStr;
          default = [ "defaults" ];
        };
        depends = mkOption {
          type = types.listOf mountPath;
          default = [ ];
        };
        label = mkOption {
          type = types.nullOr nonEmptyStr;
          default = null;
        };
        autoFormat = mkOption {
          type = types.bool;
          default = false;
        };
        autoResize = mkOption {
          type = types.bool;
          default = false;
        };
        noCheck = mkOption {
          type = types.bool;
          default = false;
        };
        neededForBoot = mkOption {
          type = types.bool;
          default = false;
        };
      };

      config = {
        device = mkIf (config.label != null) (
          lib.mkDefault "/dev/disk/by-label/${escapeLabel config.label}"
        );
        options = mkMerge [
          (mkIf config.autoResize [ "x-systemd.growfs" ])
          (mkIf config.autoFormat [ "x-systemd.makefs" ])
          (mkIf config.neededForBoot [ "x-initrd.mount" ])
          (mkIf (config.depends != [ ] && !config.neededForBoot) (
            map (dir: "x-systemd.requires-mounts-for=${dir}") config.depends
          ))
        ];
      };
    };
in
{
  options.fileSystems = mkOption {
    type = types.attrsOf (types.submodule fileSystem);
    default = { };
    apply = lib.filterAttrs (_: fs: fs.enable);
  };

  config.assertions = map (fs: {
    assertion = fs.label != null -> fs.device == "/dev/disk/by-label/${escapeLabel fs.label}";
    message =
      "The filesystem with mount point ${fs.mountPoint} has its label and device set to "
      + "inconsistent values: label: ${toString fs.label}, device: ${toString fs.device}. "
      + "'filesystems.<name>.label' and 'filesystems.<name>.device' are mutually exclusive. "
      + "Please set only one.";
  }) (builtins.attrValues config.fileSystems);
}
