# Default alert thresholds; services.chainstead.monitoring.thresholds
# overrides any of them. Minutes unless the name says otherwise.
{
  # Bitcoin blocks come every 10 minutes on average; an hour without one
  # happens a few times a month, 90 minutes very rarely.
  bitcoindStallMinutes = 90;
  # Monero targets 2-minute blocks.
  monerodStallMinutes = 30;
  bitcoindMinPeers = 4;
  monerodMinPeers = 4;
  peersLowMinutes = 15;
  # Still not synced this long after it stopped being synced (or started):
  # a fresh initial block download takes longer and is expected to alert.
  syncGraceMinutes = 720;
  bitcoindMaxBehindBlocks = 2;
  fulcrumMaxBehindBlocks = 2;
  backendDownMinutes = 5;
  # LND reports synced_to_chain=false for a short while after every block.
  lndUnsyncedMinutes = 30;
  channelInactiveMinutes = 30;
  htlcMaxAgeMinutes = 60;
  htlcMaxAgeBlocks = 12;
  minLocalBalanceSat = 100000;
  # channel.backup is pushed within seconds of a change.
  backupLagSeconds = 600;
  backupMaxAgeSeconds = 172800;
  unitFailedMinutes = 1;
  diskFullRatio = 0.85;
}
