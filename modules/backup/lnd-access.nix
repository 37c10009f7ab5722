# The pusher's read-only view of LND's directory. LND makes its network
# directory 0700; the pusher reads it through ACLs that grant its user
# traversal down to the directory and read+list on it, never write (LND
# writes channel.backup 0644 under its UMask=0022). The ACLs are applied by
# the unit's root ExecStartPre, after LND's disk is mounted, and the unit
# waits for LND's disk like LND does.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.chainstead.backup;
  inherit (config.services.chainstead) lnd;
  inherit (import ./names.nix) user unit;

  # LND's directories from its data dir down to the network directory.
  lndDirs =
    let
      rel = lib.removePrefix "${lnd.dataDir}/" (dirOf cfg.channelBackupFile);
      parts = lib.filter (p: p != "") (lib.splitString "/" rel);
    in
    lib.genList (i: "${lnd.dataDir}/${lib.concatStringsSep "/" (lib.take (i + 1) parts)}") (
      lib.length parts
    );
  lndOwnsBackupDir =
    lib.hasPrefix "${lnd.dataDir}/" cfg.channelBackupFile && dirOf cfg.channelBackupFile != lnd.dataDir;
  readsLndDir = lnd.enable && lndOwnsBackupDir;

  # Applied by the unit as root before it starts (after the mount), never by
  # systemd-tmpfiles-setup at boot, which would create them under an empty
  # mount point when the disk is missing. LND creates these 0700 itself;
  # created here first (same owner and mode) so the ACLs exist before LND's
  # first start. Traverse down to the network directory, read and list it
  # (inotify needs read access to the watched directory); never write.
  # `a+`, not the recursive `A+`, which would also grant on wallet.db and
  # the macaroon database. Each line sets the mask explicitly: the `d` line
  # chmods the directory, which turns the mask into the group bits (---),
  # and tmpfiles keeps an existing mask instead of recalculating it.
  # readonly.macaroon is world-readable (LND writes only admin.macaroon
  # 0640), so traversing the macaroon directory is all LND's verify needs;
  # the pusher stays out of the lnd-macaroon group, which reads admin.macaroon.
  lndAccessRules = pkgs.writeText "chainstead-backup-lnd-access.conf" (
    lib.concatStringsSep "\n" (
      map (d: "d ${d} 0700 lnd lnd - -") lndDirs
      ++ map (d: "a+ ${d} - - - - u:${user}:--x,m::--x") (lib.init lndDirs)
      ++ [ "a+ ${lib.last lndDirs} - - - - u:${user}:r-x,m::r-x" ]
      # The group keeps its r-x (ThunderHub); the pusher may only traverse.
      ++ lib.optional cfg.verifyWithLnd "a+ ${lnd.macaroonDir} - - - - u:${user}:--x,m::r-x"
    )
    + "\n"
  );
in
{
  config = lib.mkIf cfg.enable (
    lib.mkMerge [
      {
        assertions = [
          {
            assertion = lndOwnsBackupDir || !lnd.enable;
            message = "services.chainstead.backup.channelBackupFile (${cfg.channelBackupFile}) is outside services.chainstead.lnd.dataDir; the read-only access is granted for LND's directory only.";
          }
        ];
      }
      (lib.mkIf readsLndDir {
        system.build.chainstead-backup-lnd-access = lndAccessRules;
        # RequiresMountsFor= on LND's directory, after the tier's setup.
        services.chainstead.storage.directories.lnd.units = [ unit ];
        systemd.services.${unit}.serviceConfig.ExecStartPre = [
          "+${pkgs.systemd}/bin/systemd-tmpfiles --create ${lndAccessRules}"
        ];
      })
    ]
  );
}
