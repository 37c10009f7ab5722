# chainstead's Prometheus alert rules as a Nix value, thresholds substituted.
# `builtins.toJSON` of the result is a valid rule file (JSON is YAML).
# monitoring/rules/chainstead.rules.yml is this with the defaults; the
# offline tests check that file against `promtool check rules`, run
# monitoring/rules/tests.yml through `promtool test rules` and compare it
# with a fresh rendering, so the two cannot drift apart.
#
# Metric sources: chainstead-exporter (chainstead_bitcoind_*, _monerod_*,
# _lnd_*, _fulcrum_*, _exporter_up), the backup pusher's textfile
# (chainstead_backup_*), node_exporter (node_systemd_unit_state,
# node_filesystem_*); see docs/monitoring.md.
{
  thresholds ? { },
  # Units whose failure is an alert (regex over node_exporter's `name` label).
  unitsRegex ? "(chainstead-.+|bitcoind|fulcrum|lnd|monerod|thunderhub)\\.service",
  # The secret loader's units.
  secretUnitsRegex ? "chainstead-secrets-.+\\.service",
  # Mount points of the storage tiers (node_filesystem's `mountpoint`).
  mountpoints ? [
    "/srv/fast"
    "/srv/bulk"
  ],
}:
let
  defaults = import ./thresholds.nix;
  t = defaults // thresholds;
  min = n: "${toString n}m";
  str = toString;
  alert = name: expr: for: severity: summary: {
    alert = name;
    inherit expr;
    ${if for == null then null else "for"} = for;
    labels = {
      inherit severity;
    };
    annotations = {
      inherit summary;
    };
  };
  mountRegex = builtins.concatStringsSep "|" mountpoints;
in
{
  groups = [
    {
      name = "chainstead-chains";
      rules = [
        (alert "BitcoindHeightStalled"
          "chainstead_bitcoind_blocks <= chainstead_bitcoind_blocks offset ${min t.bitcoindStallMinutes}"
          "5m"
          "warning"
          "bitcoind's block height has not advanced for ${str t.bitcoindStallMinutes} minutes"
        )
        (alert "MonerodHeightStalled"
          "chainstead_monerod_height <= chainstead_monerod_height offset ${min t.monerodStallMinutes}"
          "5m"
          "warning"
          "monerod's block height has not advanced for ${str t.monerodStallMinutes} minutes"
        )
        (alert "BitcoindPeersLow"
          "sum without (direction) (chainstead_bitcoind_peers) < ${str t.bitcoindMinPeers}"
          (min t.peersLowMinutes)
          "warning"
          "bitcoind has fewer than ${str t.bitcoindMinPeers} peers"
        )
        (alert "MonerodPeersLow"
          "sum without (direction) (chainstead_monerod_peers) < ${str t.monerodMinPeers}"
          (min t.peersLowMinutes)
          "warning"
          "monerod has fewer than ${str t.monerodMinPeers} peers"
        )
        (alert "BitcoindNotSynced"
          "chainstead_bitcoind_initial_block_download == 1 or (chainstead_bitcoind_headers - chainstead_bitcoind_blocks) > ${str t.bitcoindMaxBehindBlocks}"
          (min t.syncGraceMinutes)
          "warning"
          "bitcoind has not been synced for ${str t.syncGraceMinutes} minutes"
        )
        (alert "MonerodNotSynchronized"
          "chainstead_monerod_synchronized == 0"
          (min t.syncGraceMinutes)
          "warning"
          "monerod has not been synchronized for ${str t.syncGraceMinutes} minutes"
        )
        (alert "FulcrumBehind"
          "chainstead_fulcrum_behind_blocks > ${str t.fulcrumMaxBehindBlocks}"
          (min t.syncGraceMinutes)
          "warning"
          "Fulcrum is more than ${str t.fulcrumMaxBehindBlocks} blocks behind bitcoind"
        )
        (alert "ExporterBackendDown"
          "chainstead_exporter_up == 0"
          (min t.backendDownMinutes)
          "critical"
          "chainstead-exporter cannot reach {{ $labels.backend }}"
        )
      ];
    }
    {
      name = "chainstead-lightning";
      rules = [
        (alert "LndNotSyncedToChain"
          "chainstead_lnd_synced_to_chain == 0"
          (min t.lndUnsyncedMinutes)
          "warning"
          "LND has not been synced to the chain for ${str t.lndUnsyncedMinutes} minutes"
        )
        (alert "LndChannelInactive"
          "chainstead_lnd_channel_active == 0"
          (min t.channelInactiveMinutes)
          "warning"
          "channel {{ $labels.chan_id }} has been inactive for ${str t.channelInactiveMinutes} minutes"
        )
        (alert "LndHtlcStuck"
          "chainstead_lnd_htlc_oldest_age_seconds > ${str (t.htlcMaxAgeMinutes * 60)} or chainstead_lnd_htlc_oldest_age_blocks > ${str t.htlcMaxAgeBlocks}"
          null
          "warning"
          "a pending HTLC is older than ${str t.htlcMaxAgeMinutes} minutes or ${str t.htlcMaxAgeBlocks} blocks"
        )
        (alert "LndLocalBalanceLow"
          "chainstead_lnd_local_balance_satoshis < ${str t.minLocalBalanceSat} and on (instance, job) chainstead_lnd_channels{state=\"active\"} > 0"
          "15m"
          "warning"
          "LND's local channel balance is below ${str t.minLocalBalanceSat} sat"
        )
      ];
    }
    {
      name = "chainstead-backup";
      rules = [
        (alert "BackupBehindChannelChange"
          "chainstead_backup_last_change_timestamp_seconds - ignoring (target, kind, artifact) group_right chainstead_backup_last_success_timestamp_seconds{artifact=\"channel\"} > ${str t.backupLagSeconds}"
          null
          "critical"
          "target {{ $labels.target }} holds no channel.backup newer than the last change for over ${str t.backupLagSeconds} s"
        )
        (alert "BackupTargetStale"
          "(time() - chainstead_backup_last_success_timestamp_seconds) > ${str t.backupMaxAgeSeconds} and on (instance, job, target, kind, artifact) chainstead_backup_up_to_date == 0"
          null
          "critical"
          "target {{ $labels.target }} ({{ $labels.artifact }}) is behind and had no successful push for ${str t.backupMaxAgeSeconds} s"
        )
      ];
    }
    {
      name = "chainstead-host";
      rules = [
        (alert "SecretLoaderFailed"
          "node_systemd_unit_state{name=~`${secretUnitsRegex}`, state=\"failed\"} == 1"
          null
          "critical"
          "the secret loader {{ $labels.name }} failed"
        )
        (alert "ChainsteadUnitFailed"
          "node_systemd_unit_state{name=~`${unitsRegex}`, state=\"failed\"} == 1"
          (min t.unitFailedMinutes)
          "critical"
          "{{ $labels.name }} failed"
        )
        (alert "StorageTierFull"
          "1 - node_filesystem_avail_bytes{mountpoint=~\"${mountRegex}\"} / node_filesystem_size_bytes{mountpoint=~\"${mountRegex}\"} > ${str t.diskFullRatio}"
          "10m"
          "warning"
          "{{ $labels.mountpoint }} is over ${str (builtins.floor (t.diskFullRatio * 100))} % full"
        )
      ];
    }
  ];
}
