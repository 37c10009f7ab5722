# The seed's node: a Proxmox VM on host Smith (4 vCPU, 12 GB RAM) with an
# NVMe disk on Ceph RBD for the OS, the indexes, LND and Fulcrum, and the
# block files on an NFS export of a ZFS dataset on Smith's HDD pool
# (chainstead.nix has the disk and memory budgets). Deploy from a machine
# with Nix:
#
#   nixos-rebuild switch --flake .#blockchain-stack --target-host root@<host>
{ modulesPath, ... }:
{
  imports = [
    (modulesPath + "/profiles/qemu-guest.nix")
    ./hardware.nix
    ./chainstead.nix
  ];

  networking.hostName = "blockchain-stack";

  services.openssh = {
    enable = true;
    settings = {
      PasswordAuthentication = false;
      PermitRootLogin = "prohibit-password";
    };
  };
  # Put the deploying operator's public key here.
  users.users.root.openssh.authorizedKeys.keys = [ ];

  system.stateVersion = "26.05";
}
