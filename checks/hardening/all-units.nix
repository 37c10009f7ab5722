# A configuration with every chainstead unit in it: the five services, the
# sync gates, a secret loader per consumer (OpenBao by AppRole), LND's seed
# store, the backup pusher, the exporter, both storage tiers' setup units,
# Tor for every service (hybrid) and a LAN switch (Fulcrum: the certificate
# step in its ExecStartPre), and the nix-bitcoin migration (which adopts
# data only with the block files in bitcoind's datadir and Fulcrum's index
# directly in its own). tor.service is nixpkgs' own unit, not scored
# here. Evaluated by units.nix for the hardening table; not a host anyone
# deploys.
{
  services.chainstead = {
    storage = {
      fast.path = "/srv/fast";
      bulk = {
        path = "/srv/bulk";
        device = "/dev/disk/by-label/bulk";
      };
      directories.lnd-channel-backups = {
        tier = "bulk";
        path = "/srv/bulk/lnd-channel-backups";
        user = "chainstead-backup";
        group = "chainstead-backup";
        mode = "0700";
        units = [ ];
      };
    };
    secrets.openbao = {
      address = "https://bao.home.arpa:8200";
      roleIdFile = "/etc/chainstead/bao/role-id";
      secretIdFile = "/etc/chainstead/bao/secret-id";
    };
    bitcoind = {
      enable = true;
      rpc.users.remote-wallet = { };
      blocksDir = null;
    };
    fulcrum = {
      enable = true;
      dbDir = "/srv/fast/fulcrum";
    };
    lnd = {
      enable = true;
      # The secret loader's file, as without the migration (which would make
      # its own copy of nix-bitcoin's password the default): LND's loader
      # stays in the table.
      walletPasswordFile = "/run/chainstead/secrets/lnd/wallet-password";
    };
    thunderhub.enable = true;
    monerod.enable = true;
    backup = {
      enable = true;
      targets.hdd.directory.path = "/srv/bulk/lnd-channel-backups";
    };
    tor.enable = true;
    access.lan.fulcrum = {
      enable = true;
      allowedClients = [ "192.168.1.0/24" ];
      names = [ "node.home.arpa" ];
    };
    monitoring.enable = true;
    migrate.nixBitcoin.enable = true;
  };
}
