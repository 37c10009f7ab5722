# Every chainstead module, all disabled until enabled, in dependency order:
# storage first, then the chains, then what builds on them.
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
  ];
}
