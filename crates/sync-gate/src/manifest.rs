//! The manifest the NixOS module renders for one gate: which backend to
//! watch, how to reach it, where the flag and the metrics go.
//!
//! It holds addresses and credential *file* names, never secret values, so
//! it can live in the Nix store. [`Manifest::load`] parses and validates it
//! offline (no network, no file reads beyond the manifest itself), which is
//! what `validate` runs at build time.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use chainstead_common::manifest::{self, Invalid, PlainHttp, Problems, Validate};
use serde::Deserialize;

// The settings of the backends the exporter reads too live with the shared
// clients; the gate's manifest embeds them unchanged.
pub use chainstead_clients::settings::{
    host_port, BitcoindBackend, BitcoindKind, ElectrumBackend, MonerodBackend, BITCOIN_CHAINS,
    MONERO_NETTYPES,
};

/// The only manifest version this build understands.
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    /// Gate name: used in status lines, metric labels and file names.
    pub name: String,
    /// Written atomically once the backend is ready; never removed by us.
    pub flag_file: PathBuf,
    /// node_exporter textfile directory; no metrics when absent.
    #[serde(default)]
    pub metrics_dir: Option<PathBuf>,
    #[serde(default)]
    pub poll: Poll,
    pub backend: Backend,
}

/// Poll intervals. Far from the tip the gate asks every `slow_secs`; near it
/// (or when the distance is unknown) every `fast_secs`; after release every
/// `monitor_secs`. Every request gives up after `timeout_secs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Poll {
    #[serde(default = "default_slow")]
    pub slow_secs: f64,
    #[serde(default = "default_fast")]
    pub fast_secs: f64,
    /// Optional addition to the contract: interval once released.
    #[serde(default = "default_monitor")]
    pub monitor_secs: f64,
    /// Optional addition to the contract: per-request timeout.
    #[serde(default = "default_timeout")]
    pub timeout_secs: f64,
}

fn default_slow() -> f64 {
    20.0
}
fn default_fast() -> f64 {
    1.0
}
fn default_monitor() -> f64 {
    30.0
}
fn default_timeout() -> f64 {
    10.0
}

impl Default for Poll {
    fn default() -> Self {
        Self {
            slow_secs: default_slow(),
            fast_secs: default_fast(),
            monitor_secs: default_monitor(),
            timeout_secs: default_timeout(),
        }
    }
}

impl Poll {
    pub fn slow(&self) -> Duration {
        Duration::from_secs_f64(self.slow_secs)
    }
    pub fn fast(&self) -> Duration {
        Duration::from_secs_f64(self.fast_secs)
    }
    pub fn monitor(&self) -> Duration {
        Duration::from_secs_f64(self.monitor_secs)
    }
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_secs)
    }
}

/// Which daemon to watch; `kind` selects the variant.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Backend {
    Bitcoind(BitcoindBackend),
    Monerod(MonerodBackend),
    Lnd(LndBackend),
    Electrum(ElectrumBackend),
}

impl Backend {
    pub fn kind(&self) -> &'static str {
        match self {
            Backend::Bitcoind(_) => "bitcoind",
            Backend::Monerod(_) => "monerod",
            Backend::Lnd(_) => "lnd",
            Backend::Electrum(_) => "electrum",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LndBackend {
    pub rest_url: String,
    pub tls_cert_file: PathBuf,
}

impl Manifest {
    /// Reads, parses and validates a manifest file; the error names every
    /// problem (see [`chainstead_common::manifest::load`]).
    pub fn load(path: &Path) -> Result<Self> {
        manifest::load(path)
    }

    /// Parses and validates manifest text.
    pub fn parse(text: &str) -> Result<Self> {
        Ok(manifest::parse(text)?)
    }

    /// Checks everything that can be checked without the network.
    pub fn validate(&self) -> std::result::Result<(), Invalid> {
        self.check()
    }

    /// Where the metrics textfile goes, if metrics are enabled.
    pub fn metrics_file(&self) -> Option<PathBuf> {
        self.metrics_dir
            .as_ref()
            .map(|d| d.join(format!("chainstead-sync-gate-{}.prom", self.name)))
    }
}

impl Validate for Manifest {
    fn validate(&self, p: &mut Problems) {
        if self.version != VERSION {
            p.push(
                "version",
                format!(
                    "{} is not supported, this chainstead-sync-gate understands only {VERSION}; \
                     rebuild the manifest with the matching chainstead module",
                    self.version
                ),
            );
        }
        // Used in file names and metric labels.
        p.file_name("name", &self.name);
        if p.absolute_path("flag_file", &self.flag_file) && self.flag_file.file_name().is_none() {
            p.push(
                "flag_file",
                format!("{}: it must name a file", self.flag_file.display()),
            );
        }
        if let Some(dir) = &self.metrics_dir {
            p.absolute_path("metrics_dir", dir);
        }
        self.poll.validate(p);
        self.backend.validate(p);
    }
}

impl Backend {
    /// The offline checks of a `backend` object; fields are named
    /// `backend.*` (`chainstead status` reuses them for its manifest).
    pub fn validate(&self, p: &mut Problems) {
        match self {
            Backend::Bitcoind(b) => b.validate(p, "backend"),
            Backend::Monerod(b) => b.validate(p, "backend"),
            Backend::Lnd(b) => b.validate(p),
            Backend::Electrum(b) => b.validate(p, "backend"),
        }
    }
}

impl Poll {
    fn validate(&self, p: &mut Problems) {
        for (field, v, min, max) in [
            ("poll.slow_secs", self.slow_secs, 0.05, 3600.0),
            ("poll.fast_secs", self.fast_secs, 0.05, 3600.0),
            ("poll.monitor_secs", self.monitor_secs, 0.05, 86400.0),
            ("poll.timeout_secs", self.timeout_secs, 0.05, 600.0),
        ] {
            if !(v.is_finite() && (min..=max).contains(&v)) {
                p.push(
                    field,
                    format!("{v}: use a number of seconds from {min} to {max}"),
                );
            }
        }
        if self.fast_secs > self.slow_secs {
            p.push(
                "poll.fast_secs",
                format!(
                    "{} is larger than `poll.slow_secs` ({}): fast polling must not be slower",
                    self.fast_secs, self.slow_secs
                ),
            );
        }
    }
}

impl LndBackend {
    fn validate(&self, p: &mut Problems) {
        // LND's REST listener always speaks TLS (lnd.conf `restlisten`).
        p.http_url("backend.rest_url", &self.rest_url, PlainHttp::Never);
        p.absolute_path("backend.tls_cert_file", &self.tls_cert_file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bitcoind(extra: &str) -> String {
        format!(
            r#"{{"version":1,"name":"bitcoind","flag_file":"/run/chainstead/sync/bitcoind",
                "backend":{{"kind":"bitcoind","rpc_url":"http://127.0.0.1:8332","chain":"main"{extra}}}}}"#
        )
    }

    #[test]
    fn accepts_the_documented_shapes() {
        let m =
            Manifest::parse(&bitcoind(r#","cookie_file":"/var/lib/bitcoind/.cookie""#)).unwrap();
        assert_eq!(m.poll.slow_secs, 20.0);
        assert_eq!(m.backend.kind(), "bitcoind");
        Manifest::parse(&bitcoind(
            r#","rpc_user":"x","rpc_password_file":"/run/chainstead/secrets/x/pw""#,
        ))
        .unwrap();
        Manifest::parse(
            r#"{"version":1,"name":"monerod","flag_file":"/run/f","metrics_dir":"/var/m",
                "poll":{"slow_secs":20,"fast_secs":1},
                "backend":{"kind":"monerod","rpc_url":"http://127.0.0.1:18081","nettype":"mainnet"}}"#,
        )
        .unwrap();
        Manifest::parse(
            r#"{"version":1,"name":"lnd","flag_file":"/run/f",
                "backend":{"kind":"lnd","rest_url":"https://127.0.0.1:8080","tls_cert_file":"/var/lib/lnd/tls.cert"}}"#,
        )
        .unwrap();
        let m = Manifest::parse(
            r#"{"version":1,"name":"fulcrum","flag_file":"/run/f",
                "backend":{"kind":"electrum","address":"127.0.0.1:50001","tls":false,"tls_cert_file":null,
                  "tolerance_blocks":0,
                  "reference":{"kind":"bitcoind","rpc_url":"http://127.0.0.1:8332","chain":"regtest",
                               "cookie_file":"/var/lib/bitcoind/regtest/.cookie"}}}"#,
        )
        .unwrap();
        assert_eq!(m.metrics_file(), None, "no metrics without metrics_dir");
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (bitcoind(r#","cookie_file":"/c","colour":1"#), "colour"),
            (bitcoind(""), "backend.cookie_file"),
            (
                bitcoind(r#","cookie_file":"relative/.cookie""#),
                "backend.cookie_file",
            ),
            (
                bitcoind(r#","cookie_file":"/c""#)
                    .replace("http://127.0.0.1:8332", "127.0.0.1:8332"),
                "backend.rpc_url",
            ),
            (
                bitcoind(r#","cookie_file":"/c""#).replace("\"main\"", "\"mainnet\""),
                "backend.chain",
            ),
            (
                bitcoind(r#","cookie_file":"/c""#).replace("\"version\":1", "\"version\":2"),
                "version",
            ),
            (
                bitcoind(r#","cookie_file":"/c""#)
                    .replace("\"bitcoind\",\"flag", "\"bit coind\",\"flag"),
                "name",
            ),
        ];
        for (text, field) in cases {
            let err = format!("{:#}", Manifest::parse(&text).unwrap_err());
            assert!(err.contains(field), "{field} not named in: {err}");
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = bitcoind(r#","cookie_file":"relative/.cookie""#)
            .replace("\"main\"", "\"mainnet\"")
            .replace("\"version\":1", "\"version\":2")
            .replace("http://127.0.0.1:8332", "127.0.0.1:8332")
            .replace("\"/run/chainstead/sync/bitcoind\"", "\"flag\"");
        let err = Manifest::parse(&text).unwrap_err();
        let problems = &err.downcast_ref::<Invalid>().unwrap().0;
        let fields: Vec<&str> = problems
            .iter()
            .map(|p| p.split(':').next().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "version",
                "flag_file",
                "backend.rpc_url",
                "backend.chain",
                "backend.cookie_file"
            ],
            "{err:#}"
        );
    }

    #[test]
    fn secret_files_stay_out_of_the_store() {
        let err = Manifest::parse(&bitcoind(
            r#","rpc_user":"x","rpc_password_file":"/nix/store/abc-pw""#,
        ))
        .unwrap_err();
        assert!(
            format!("{err:#}")
                .contains("backend.rpc_password_file: /nix/store/abc-pw is in the Nix store"),
            "{err:#}"
        );
    }

    #[test]
    fn unknown_fields_name_their_path() {
        let err = Manifest::parse(
            r#"{"version":1,"name":"b","flag_file":"/f","poll":{"slow_secs":1,"colour":1},
                "backend":{"kind":"monerod","rpc_url":"http://127.0.0.1:18081","nettype":"mainnet"}}"#,
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("poll.colour: unknown field `colour`"),
            "{err:#}"
        );
    }

    #[test]
    fn electrum_tls_needs_a_certificate() {
        let err = Manifest::parse(
            r#"{"version":1,"name":"fulcrum","flag_file":"/run/f",
                "backend":{"kind":"electrum","address":"127.0.0.1:50002","tls":true,
                  "reference":{"rpc_url":"http://127.0.0.1:8332","chain":"main","cookie_file":"/c"}}}"#,
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("backend.tls_cert_file"),
            "{err:#}"
        );
    }

    #[test]
    fn host_port_forms() {
        assert_eq!(
            host_port("a", "127.0.0.1:50001").unwrap(),
            ("127.0.0.1".into(), 50001)
        );
        assert_eq!(
            host_port("a", "[::1]:50001").unwrap(),
            ("::1".into(), 50001)
        );
        assert!(host_port("a", "127.0.0.1").is_err());
        assert!(host_port("a", "127.0.0.1:0").is_err());
    }
}
