# The NixOS options the chainstead modules set, declared (not freeform) with
# the names and types nixpkgs gives them, so a misspelt or mistyped option
# fails here as it would on a real system. Each file names its nixpkgs source.
{
  imports = [
    ./nixos-options/assertions.nix
    ./nixos-options/build.nix
    ./nixos-options/etc.nix
    ./nixos-options/filesystems.nix
    ./nixos-options/firewall.nix
    ./nixos-options/grafana.nix
    ./nixos-options/networking.nix
    ./nixos-options/prometheus.nix
    ./nixos-options/systemd.nix
    ./nixos-options/tmpfiles.nix
    ./nixos-options/tor.nix
    ./nixos-options/users-groups.nix
  ];
}
