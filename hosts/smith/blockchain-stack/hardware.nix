# Disks of the Proxmox VM, by label so that the order Proxmox attaches them
# in does not matter. Create them once with:
#   mkfs.ext4 -L nixos /dev/sda1   (the NVMe/Ceph RBD disk, 640 GB)
#   (the bulk tier is an NFS export from Smith; chainstead mounts it)
{
  boot = {
    loader.grub = {
      enable = true;
      # Proxmox's default SCSI controller shows the boot disk as /dev/sda.
      device = "/dev/sda";
    };
    initrd.availableKernelModules = [
      "virtio_pci"
      "virtio_scsi"
      "sd_mod"
    ];
  };

  fileSystems."/" = {
    device = "/dev/disk/by-label/nixos";
    fsType = "ext4";
  };

  services.qemuGuest.enable = true;
}
