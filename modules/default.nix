# Every chainstead module, all disabled until enabled, in dependency order:
# storage first, then the chains, then what builds on them, then how it
# is reached (Tor, the LAN) and watched (monitoring, which reads them all);
# the upgrade guard, as it wraps the services' units; the nix-bitcoin
# migration, which runs before the services and their guards;
# `chainstead status` last, as it reads every module's options.
{
  imports = [
    ./storage.nix
    ./secrets.nix
    ./bitcoind.nix
    ./monerod.nix
    ./sync-gate.nix
    ./fulcrum.nix
    ./lnd.nix
    ./thunderhub.nix
    ./backup
    ./tor.nix
    ./access.nix
    ./monitoring.nix
    ./upgrade-guard.nix
    ./migrate.nix
    ./status.nix
  ];
}
