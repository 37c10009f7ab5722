# Disks of the Proxmox VM, by label so that the order Proxmox attaches them
# in does not matter. Create them once with:
#   mkfs.ext4 -L nixos /dev/sda1   (the NVMe/Ceph RBD disk, ≈ 150 GB)
#   mkfs.ext4 -L bulk  /dev/sdb    (the HDD disk, ≈ 800 GB; chainstead mounts it)
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
