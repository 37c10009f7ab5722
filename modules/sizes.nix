# Expected sizes of what the services keep on disk, in GB (10^9 bytes, as
# disks are sold), from public figures; the storage budget sums them per
# tier (modules/storage.nix). Each figure names its source and date; where
# no public figure was found the value is 0 and the docs say to set
# `services.chainstead.storage.directories.<name>.expectedSize` yourself.
# Late-2026 values extrapolate the latest figure by the growth its source
# gives. Pure data, so the evaluation tests and the docs read the same numbers.
{
  bitcoind = {
    # blk*.dat and rev*.dat. ≈ 725 GB in March 2026 (Blockstream/electrs#175),
    # ≈ 600 GB in April 2025 growing 50–60 GB a year (blockchain.com's chart,
    # quoted in ethereum/ethereum-org-website#15234): ≈ 760 GB late 2026.
    blocks.mainnet = 760;
    # chainstate/ and blocks/index/ (the datadir without indexes/): the
    # chainstate was ≈ 10 GB in April 2024 (bitcoin-core/bitcoincore.org#1010);
    # 12 GB leaves room for its growth and the block index.
    chainstate.mainnet = 12;
    # indexes/txindex in the format Bitcoin Core 31.x writes: the benchmark
    # of bitcoin/bitcoin#35531 (August 2026, height 961,172) made it 2.6×,
    # 40 GB, smaller, so ≈ 65 GB before that change (≈ 25 GB after it, from
    # the release that carries it).
    txindex.mainnet = 65;
  };

  # Fulcrum's database: 133 GB in August 2023 (cculianu/Fulcrum#194), growing
  # ≈ 20 GB a year by raspibolt/raspibolt#1338's estimate: ≈ 200 GB late 2026.
  fulcrum.mainnet = 200;

  monerod = {
    # LMDB, December 2025 (coincashew/coincashew#273): full 240 GB+, pruned
    # 105 GB+; monero-project/monero-docs#192 (July 2025) saw 90 GiB pruned.
    full.mainnet = 260;
    pruned.mainnet = 110;
  };

  # LND: channel.db and the wallet. The seed budgets 20 GB; busy routing
  # nodes report channel.db at 9–22 GB (lightningnetwork/lnd#6800,
  # btcpayserver/btcpayserver-docker#782, lightninglabs/lndinit#21).
  lnd.mainnet = 20;

  # ThunderHub's state directory: a few files.
  thunderhub.mainnet = 1;

  # The operating system, Nix store and logs on the root disk (the seed).
  os = 30;
}
