//! A nix-bitcoin node's files, laid out as nix-bitcoin v0.0.139 leaves them,
//! for the migration tests. Paths and names follow its modules:
//! bitcoind.nix (datadir with the generated bitcoin.conf, regtest's files in
//! `regtest/`), fulcrum.nix (the index directly in its dataDir, fulcrum.conf
//! with the RPC password), lnd.nix (`datadir=/var/lib/lnd`: chain/ and
//! graph/ in it, the macaroons beside wallet.db, lnd.conf, the seed in
//! `lnd-seed-mnemonic`), secrets.nix (`/etc/nix-bitcoin-secrets`). The
//! database contents are stand-ins: the migration moves files, it never
//! reads them.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chainstead_cli::migrate::{Account, DataDirTarget, LndTarget, Request, Source};

pub const NETWORK: &str = "regtest";
pub const PASSWORD: &[u8] = b"correct horse battery staple\n";

pub fn seed_words() -> Vec<String> {
    // 24 distinct lower-case words; never a real seed.
    "abandon ability able about above absent absorb abstract absurd abuse access accident \
     account accuse achieve acid acoustic acquire across act action actor actress actual"
        .split(' ')
        .map(str::to_owned)
        .collect()
}

pub struct Node {
    pub root: tempfile::TempDir,
}

fn write(path: &Path, contents: &[u8], mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

impl Node {
    /// A node as nix-bitcoin leaves it on regtest, with lndinit's seed form.
    pub fn new() -> Node {
        let node = Node {
            root: tempfile::tempdir().unwrap(),
        };
        let b = node.nb_bitcoind();
        write(
            &b.join("bitcoin.conf"),
            b"regtest=1\n[regtest]\nrpcauth=public:x$y\n",
            0o640,
        );
        write(&b.join("regtest/blocks/blk00000.dat"), &[0xf9; 4096], 0o600);
        write(&b.join("regtest/blocks/rev00000.dat"), &[0x01; 512], 0o600);
        write(&b.join("regtest/blocks/index/000003.ldb"), b"index", 0o600);
        write(&b.join("regtest/chainstate/000005.ldb"), b"utxo", 0o600);
        write(&b.join("regtest/debug.log"), b"log\n", 0o600);
        let f = node.nb_fulcrum();
        write(
            &f.join("fulcrum.conf"),
            b"datadir = /var/lib/fulcrum\nrpcpassword = hunter2\n",
            0o600,
        );
        write(&f.join("meta/CURRENT"), b"MANIFEST-000001\n", 0o644);
        write(&f.join("headers"), &[0x02; 800], 0o644);
        write(&f.join("utxoset/000007.sst"), b"sst", 0o644);
        let l = node.nb_lnd();
        write(
            &l.join("lnd.conf"),
            b"datadir=/var/lib/lnd\nbitcoind.rpcpass=hunter2\n",
            0o600,
        );
        write(
            &l.join("lnd-seed-mnemonic"),
            seed_words().join(" ").as_bytes(),
            0o400,
        );
        let chain = l.join("chain/bitcoin").join(NETWORK);
        write(&chain.join("wallet.db"), b"wallet", 0o600);
        write(&chain.join("macaroons.db"), b"macaroon root key", 0o600);
        write(&chain.join("admin.macaroon"), b"admin", 0o600);
        write(&chain.join("readonly.macaroon"), b"readonly", 0o644);
        write(&chain.join("invoice.macaroon"), b"invoice", 0o644);
        write(&chain.join("channel.backup"), b"scb", 0o600);
        write(
            &l.join("graph").join(NETWORK).join("channel.db"),
            b"channels",
            0o600,
        );
        write(
            &l.join("graph").join(NETWORK).join("sphinxreplay.db"),
            b"replay",
            0o600,
        );
        let s = node.nb_secrets();
        write(&s.join("lnd-wallet-password"), PASSWORD, 0o440);
        write(&s.join("lnd-cert"), b"-----BEGIN CERTIFICATE-----\n", 0o444);
        write(
            &s.join("lnd-key"),
            b"-----BEGIN EC PRIVATE KEY-----\n",
            0o440,
        );
        node
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }
    pub fn nb_bitcoind(&self) -> PathBuf {
        self.path("var/lib/bitcoind")
    }
    pub fn nb_fulcrum(&self) -> PathBuf {
        self.path("var/lib/fulcrum")
    }
    pub fn nb_lnd(&self) -> PathBuf {
        self.path("var/lib/lnd")
    }
    pub fn nb_secrets(&self) -> PathBuf {
        self.path("etc/nix-bitcoin-secrets")
    }
    pub fn fast(&self) -> PathBuf {
        self.path("var/lib/chainstead")
    }

    /// The caller as every account: chown to oneself needs no privilege.
    pub fn me() -> Account {
        let uid = nix::unistd::getuid();
        let user = nix::unistd::User::from_uid(uid).unwrap().unwrap();
        Account {
            name: user.name,
            uid: uid.as_raw(),
            gid: nix::unistd::getgid().as_raw(),
        }
    }

    /// chainstead's example-host layout: everything under the fast tier.
    pub fn request(&self) -> Request {
        self.request_into(&self.fast())
    }

    pub fn request_into(&self, fast: &Path) -> Request {
        Request {
            network: NETWORK.into(),
            source: Source {
                bitcoind: self.nb_bitcoind(),
                fulcrum: self.nb_fulcrum(),
                lnd: self.nb_lnd(),
                secrets: self.nb_secrets(),
            },
            bitcoind: Some(DataDirTarget {
                dir: fast.join("bitcoind"),
                owner: Self::me(),
            }),
            fulcrum: Some(DataDirTarget {
                dir: fast.join("fulcrum"),
                owner: Self::me(),
            }),
            lnd: Some(LndTarget {
                dir: fast.join("lnd"),
                macaroon_dir: fast.join("lnd/macaroons"),
                seed_file: self.fast().join("lnd-seed/seed"),
                password_file: self.fast().join("lnd-wallet-password"),
                owner: Self::me(),
                macaroon_gid: Self::me().gid,
            }),
        }
    }

    /// Every entry under the root: kind, mode, inode and contents, by
    /// relative path; what "nothing was changed" is checked against.
    pub fn snapshot(&self) -> BTreeMap<String, (String, u32, u64, Vec<u8>)> {
        let mut out = BTreeMap::new();
        let mut stack = vec![self.root.path().to_owned()];
        while let Some(p) = stack.pop() {
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p
                .strip_prefix(self.root.path())
                .unwrap()
                .display()
                .to_string();
            let (kind, data) = if m.is_dir() {
                for e in fs::read_dir(&p).unwrap() {
                    stack.push(e.unwrap().path());
                }
                ("dir", Vec::new())
            } else if m.file_type().is_symlink() {
                (
                    "link",
                    fs::read_link(&p)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                )
            } else {
                ("file", fs::read(&p).unwrap())
            };
            out.insert(rel, (kind.to_owned(), m.mode() & 0o7777, m.ino(), data));
        }
        out
    }

    /// The snapshot without inodes, with this node's root and the dates of
    /// the marker and tombstone files cut from contents (and contents
    /// shortened to stay readable in a failed assertion): two nodes reaching
    /// the same end state compare equal.
    pub fn shape(&self) -> BTreeMap<String, (String, u32, String)> {
        let root = self.root.path().display().to_string();
        self.snapshot()
            .into_iter()
            .map(|(k, (kind, mode, _, data))| {
                let text = String::from_utf8_lossy(&data).replace(&root, "ROOT");
                let text = text.split(" on 2").next().unwrap_or_default();
                let short: String = text.chars().take(60).collect();
                (k, (kind, mode, format!("{} bytes: {short}", data.len())))
            })
            .collect()
    }

    pub fn inode(&self, rel: &str) -> u64 {
        fs::metadata(self.path(rel)).unwrap().ino()
    }
}
