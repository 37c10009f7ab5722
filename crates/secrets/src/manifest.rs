//! The manifest the NixOS module renders: where OpenBao is, how to log in,
//! and per consuming service which secrets go into which files. It holds
//! paths, addresses and names, never a secret value.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Result;
use chainstead_common::manifest::{self, PlainHttp, Problems, Validate};
use serde::Deserialize;

pub use chainstead_common::manifest::Invalid;

/// The default KV mount, as `bao secrets enable -version=2 -path=secret kv`
/// and the dev server create it.
pub const DEFAULT_KV_MOUNT: &str = "secret";

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    /// `null` (or absent) selects local mode: every secret is generated once
    /// into `state_dir`.
    #[serde(default)]
    pub openbao: Option<OpenBao>,
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    #[serde(default = "default_runtime_dir")]
    pub runtime_dir: PathBuf,
    pub services: BTreeMap<String, Service>,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/chainstead/secrets")
}

fn default_runtime_dir() -> PathBuf {
    PathBuf::from("/run/chainstead/secrets")
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenBao {
    /// `https://bao.example.org:8200`; `http://` only makes sense on loopback.
    pub address: String,
    /// PEM file with the CA that signed OpenBao's certificate; when set it is
    /// the only trusted root (like `BAO_CACERT`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Name to verify the certificate against when `address` holds an IP or
    /// a name the certificate does not carry (like `BAO_TLS_SERVER_NAME`).
    #[serde(default)]
    pub tls_server_name: Option<String>,
    pub auth: Auth,
    /// Mount used by secrets that name none.
    #[serde(default = "default_kv_mount")]
    pub kv_mount: String,
    /// How long to keep retrying while OpenBao is unreachable, sealed or on
    /// standby before failing.
    #[serde(default = "default_deadline_secs")]
    pub deadline_secs: u64,
    /// Upper bound for one HTTP request.
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,
}

fn default_kv_mount() -> String {
    DEFAULT_KV_MOUNT.to_owned()
}

fn default_deadline_secs() -> u64 {
    120
}

fn default_request_timeout_secs() -> u64 {
    10
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Auth {
    /// AppRole login; both files are placed on the host out of band.
    #[serde(rename = "approle")]
    AppRole(AppRole),
    /// A file holding a token (for operators and tests); never revoked by us.
    #[serde(rename = "token_file")]
    TokenFile(PathBuf),
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRole {
    pub role_id_file: PathBuf,
    pub secret_id_file: PathBuf,
    /// Where the AppRole auth method is mounted (`bao auth enable approle`).
    #[serde(default = "default_approle_mount")]
    pub mount: String,
}

fn default_approle_mount() -> String {
    "approle".to_owned()
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// User owning the files (name or numeric id).
    pub owner: String,
    /// Group of the files (name or numeric id).
    pub group: String,
    pub secrets: BTreeMap<String, SecretSpec>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    /// KV mount; `openbao.kv_mount` when absent.
    #[serde(default)]
    pub mount: Option<String>,
    /// Path inside the mount, without `data/` (added for KV v2).
    pub path: String,
    pub field: String,
    /// Destination file name inside `<runtime_dir>/<service>/`.
    pub file: String,
    #[serde(default = "default_mode")]
    pub mode: String,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub transform: Transform,
    #[serde(default)]
    pub generate: Option<Generate>,
}

fn default_mode() -> String {
    "0400".to_owned()
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Transform {
    /// The value itself, byte for byte.
    #[default]
    #[serde(rename = "raw")]
    Raw,
    /// A bitcoind `rpcauth=user:salt$hmac` line for an `includeconf` file.
    #[serde(rename = "rpcauth")]
    Rpcauth { user: String },
    /// A bcrypt hash (`$2b$`), prefixed (ThunderHub wants `thunderhub-`).
    #[serde(rename = "bcrypt")]
    Bcrypt {
        #[serde(default = "default_bcrypt_cost")]
        cost: u32,
        #[serde(default)]
        prefix: String,
    },
}

fn default_bcrypt_cost() -> u32 {
    12
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generate {
    #[serde(default = "default_length")]
    pub length: usize,
    #[serde(default)]
    pub alphabet: Alphabet,
}

fn default_length() -> usize {
    32
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Alphabet {
    #[default]
    Alphanumeric,
    Hex,
    Base64url,
}

/// Where a value lives: the unit that is read, generated and stored once per
/// run even when several services use it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KvRef {
    pub mount: String,
    pub path: String,
    pub field: String,
}

impl fmt::Display for KvRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}#{}", self.mount, self.path, self.field)
    }
}

impl Manifest {
    /// Reads, parses and validates a manifest; the error names every
    /// problem (see [`chainstead_common::manifest::load`]).
    pub fn load(path: &Path) -> Result<Self> {
        manifest::load(path)
    }

    pub fn default_mount(&self) -> &str {
        self.openbao
            .as_ref()
            .map_or(DEFAULT_KV_MOUNT, |b| b.kv_mount.as_str())
    }

    pub fn kv_ref(&self, spec: &SecretSpec) -> KvRef {
        KvRef {
            mount: spec
                .mount
                .clone()
                .unwrap_or_else(|| self.default_mount().to_owned()),
            path: spec.path.clone(),
            field: spec.field.clone(),
        }
    }

    /// Offline checks only: no network, no user lookups (the build sandbox
    /// has no users), no writes.
    pub fn validate(&self) -> std::result::Result<(), Invalid> {
        self.check()
    }
}

impl Validate for Manifest {
    fn validate(&self, errs: &mut Problems) {
        if self.version != 1 {
            errs.push(
                "version",
                format!(
                    "{} is not supported, this chainstead-secrets reads version 1",
                    self.version
                ),
            );
        }
        errs.absolute_path("state_dir", &self.state_dir);
        errs.absolute_path("runtime_dir", &self.runtime_dir);
        if let Some(bao) = &self.openbao {
            validate_openbao(errs, bao);
        }
        // The same KV value may feed several files, but must be generated the
        // same way everywhere or the result would depend on ordering.
        let mut generators: HashMap<KvRef, (String, Option<Generate>)> = HashMap::new();
        for (sname, service) in &self.services {
            let at = format!("services.{sname}");
            // The service's directory: <runtime_dir>/<service>/.
            errs.file_name(&at, sname);
            check_id(errs, &format!("{at}.owner"), &service.owner);
            check_id(errs, &format!("{at}.group"), &service.group);
            if service.secrets.is_empty() {
                errs.push(
                    &format!("{at}.secrets"),
                    "empty; drop the service or add a secret",
                );
            }
            let mut files = BTreeSet::new();
            for (name, spec) in &service.secrets {
                let at = format!("{at}.secrets.{name}");
                validate_secret(errs, &at, spec);
                if !files.insert(spec.file.as_str()) {
                    errs.push(
                        &format!("{at}.file"),
                        format!(
                            "{:?} is used by another secret of the same service; give each a distinct file name",
                            spec.file
                        ),
                    );
                }
                let r = self.kv_ref(spec);
                match generators.get(&r) {
                    Some((other, g)) if *g != spec.generate => errs.push(
                        &format!("{at}.generate"),
                        format!(
                            "differs from {other}, which uses the same value {r}; make them equal"
                        ),
                    ),
                    Some(_) => {}
                    None => {
                        generators.insert(r, (at.clone(), spec.generate.clone()));
                    }
                }
            }
        }
    }
}

fn validate_openbao(errs: &mut Problems, bao: &OpenBao) {
    // Plain http only on loopback: the token and every value would cross
    // the network in the clear.
    if let Some(url) = errs.http_url("openbao.address", &bao.address, PlainHttp::Loopback) {
        if url.path() != "/" && !url.path().is_empty() {
            errs.push(
                "openbao.address",
                format!(
                    "{:?} must not carry a path; give scheme, host and port only",
                    bao.address
                ),
            );
        }
        if url.query().is_some() {
            errs.push(
                "openbao.address",
                format!("{:?} must not carry a query", bao.address),
            );
        }
    }
    if let Some(ca) = &bao.ca_file {
        errs.absolute_path("openbao.ca_file", ca);
    }
    if let Some(name) = &bao.tls_server_name {
        if name.is_empty() || name.contains(['/', ':', ' ']) {
            errs.push(
                "openbao.tls_server_name",
                format!("{name:?} must be a bare DNS name"),
            );
        }
        let host_is_ip = reqwest::Url::parse(&bao.address)
            .ok()
            .and_then(|u| {
                u.host_str().map(|h| {
                    h.trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<std::net::IpAddr>()
                        .is_ok()
                })
            })
            .unwrap_or(false);
        if !host_is_ip {
            errs.push(
                "openbao.tls_server_name",
                format!(
                    "set, so openbao.address ({}) must name the server by IP address; \
                     with a DNS name in the address, drop tls_server_name",
                    bao.address
                ),
            );
        }
    }
    match &bao.auth {
        Auth::AppRole(a) => {
            errs.secret_file("openbao.auth.approle.role_id_file", &a.role_id_file);
            errs.secret_file("openbao.auth.approle.secret_id_file", &a.secret_id_file);
            check_mount(errs, "openbao.auth.approle.mount", &a.mount);
        }
        Auth::TokenFile(p) => {
            errs.secret_file("openbao.auth.token_file", p);
        }
    }
    check_mount(errs, "openbao.kv_mount", &bao.kv_mount);
    if bao.deadline_secs == 0 || bao.deadline_secs > 86_400 {
        errs.push(
            "openbao.deadline_secs",
            format!("{} must be between 1 and 86400", bao.deadline_secs),
        );
    }
    if bao.request_timeout_secs == 0 || bao.request_timeout_secs > 600 {
        errs.push(
            "openbao.request_timeout_secs",
            format!("{} must be between 1 and 600", bao.request_timeout_secs),
        );
    }
}

fn validate_secret(errs: &mut Problems, at: &str, spec: &SecretSpec) {
    if let Some(m) = &spec.mount {
        check_mount(errs, &format!("{at}.mount"), m);
    }
    if !is_kv_path(&spec.path) {
        errs.push(&format!("{at}.path"), format!(
            "{:?} must be a relative KV path like chainstead/bitcoind (no leading '/', no empty, '.' or '..' segments, no 'data/' prefix)",
            spec.path
        ));
    }
    errs.file_name(&format!("{at}.field"), &spec.field);
    // It lands in <runtime_dir>/<service>/.
    errs.file_name(&format!("{at}.file"), &spec.file);
    match parse_mode(&spec.mode) {
        Ok(mode) if mode & 0o007 != 0 => errs.push(&format!("{at}.mode"), format!(
            "{:?} gives access to other users; a secret file allows at most owner and group (e.g. \"0400\" or \"0440\")",
            spec.mode
        )),
        Ok(_) => {}
        Err(e) => errs.push(&format!("{at}.mode"), e),
    }
    if let Some(o) = &spec.owner {
        check_id(errs, &format!("{at}.owner"), o);
    }
    if let Some(g) = &spec.group {
        check_id(errs, &format!("{at}.group"), g);
    }
    match &spec.transform {
        Transform::Raw => {}
        Transform::Rpcauth { user } => {
            // bitcoind splits rpcauth at the first ':' and the user also
            // becomes part of a config line.
            if user.is_empty()
                || user
                    .chars()
                    .any(|c| c == ':' || c.is_whitespace() || c.is_control())
            {
                errs.push(
                    &format!("{at}.transform.rpcauth.user"),
                    format!("{user:?} must be non-empty without ':' or whitespace"),
                );
            }
        }
        Transform::Bcrypt { cost, prefix } => {
            // The bounds of the bcrypt algorithm (the crate refuses others).
            if !(4..=31).contains(cost) {
                errs.push(
                    &format!("{at}.transform.bcrypt.cost"),
                    format!("{cost} must be between 4 and 31 (12 is ThunderHub's)"),
                );
            }
            if prefix.chars().any(char::is_control) {
                errs.push(
                    &format!("{at}.transform.bcrypt.prefix"),
                    format!("{prefix:?} must not contain control characters"),
                );
            }
        }
    }
    if let Some(g) = &spec.generate {
        if !(8..=4096).contains(&g.length) {
            errs.push(
                &format!("{at}.generate.length"),
                format!("{} must be between 8 and 4096", g.length),
            );
        }
        // bcrypt only hashes the first 72 bytes; a longer password would
        // silently lose strength.
        if matches!(spec.transform, Transform::Bcrypt { .. }) && g.length > 72 {
            errs.push(
                &format!("{at}.generate.length"),
                format!("{} exceeds bcrypt's 72-byte limit", g.length),
            );
        }
    }
}

/// Parses an octal mode such as "0400" or "440".
pub fn parse_mode(text: &str) -> std::result::Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if !digits.is_empty() && m <= 0o777 => Ok(m),
        _ => Err(format!(
            "{text:?} is not an octal file mode between 0000 and 0777 (write it like \"0400\")"
        )),
    }
}

fn check_mount(errs: &mut Problems, at: &str, m: &str) {
    if !is_kv_path(m) {
        errs.push(
            at,
            format!("{m:?} must be a mount path like \"secret\" (no leading or trailing '/')"),
        );
    }
}

fn check_id(errs: &mut Problems, at: &str, id: &str) {
    let fine = !id.is_empty()
        && id.len() <= 32
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !id.starts_with('-');
    if !fine {
        errs.push(
            at,
            format!("{id:?} must be a user/group name or a numeric id"),
        );
    }
}

/// A KV field or a file name: the kit's plain file name.
pub(crate) use chainstead_common::manifest::is_file_name as is_plain_name;

pub(crate) fn is_kv_path(s: &str) -> bool {
    !s.is_empty()
        && s.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: serde_json::Value) -> std::result::Result<Manifest, String> {
        let m: Manifest = serde_json::from_value(v).map_err(|e| e.to_string())?;
        m.validate().map_err(|e| e.to_string())?;
        Ok(m)
    }

    fn good() -> serde_json::Value {
        serde_json::json!({
            "version": 1,
            "openbao": {
                "address": "https://bao.example.org:8200",
                "auth": {"approle": {"role_id_file": "/etc/bao/role-id", "secret_id_file": "/etc/bao/secret-id"}}
            },
            "services": {
                "bitcoind": {"owner": "bitcoind", "group": "bitcoind", "secrets": {
                    "rpc-lnd": {"path": "chainstead/bitcoind/rpc-lnd", "field": "password",
                                "file": "rpcauth-lnd.conf", "transform": {"rpcauth": {"user": "lnd"}},
                                "generate": {"length": 32, "alphabet": "alphanumeric"}}
                }},
                "thunderhub": {"owner": "thunderhub", "group": "thunderhub", "secrets": {
                    "master": {"path": "chainstead/thunderhub", "field": "master", "file": "master",
                               "transform": {"bcrypt": {"cost": 12, "prefix": "thunderhub-"}},
                               "generate": {}}
                }}
            }
        })
    }

    #[test]
    fn a_full_manifest_parses_with_defaults() {
        let m = parse(good()).unwrap();
        let bao = m.openbao.as_ref().unwrap();
        assert_eq!(bao.kv_mount, "secret");
        assert_eq!(bao.deadline_secs, 120);
        assert_eq!(m.runtime_dir, Path::new("/run/chainstead/secrets"));
        assert_eq!(m.state_dir, Path::new("/var/lib/chainstead/secrets"));
        let s = &m.services["bitcoind"].secrets["rpc-lnd"];
        assert_eq!(s.mode, "0400");
        assert_eq!(s.transform, Transform::Rpcauth { user: "lnd".into() });
        let t = &m.services["thunderhub"].secrets["master"];
        assert_eq!(
            t.generate,
            Some(Generate {
                length: 32,
                alphabet: Alphabet::Alphanumeric
            })
        );
        assert_eq!(
            m.kv_ref(s).to_string(),
            "secret/chainstead/bitcoind/rpc-lnd#password"
        );
    }

    #[test]
    fn a_manifest_without_services_serves_store_and_check() {
        // LND's seed store runs with the stack's manifest even when no
        // service declares a secret (a wallet password of the user's own).
        let mut v = good();
        v["services"] = serde_json::json!({});
        assert!(parse(v).unwrap().services.is_empty());
    }

    #[test]
    fn local_mode_and_token_auth_parse() {
        let mut v = good();
        v["openbao"] = serde_json::Value::Null;
        assert!(parse(v).unwrap().openbao.is_none());
        let mut v = good();
        v["openbao"]["auth"] = serde_json::json!({"token_file": "/run/keys/bao-token"});
        parse(v).unwrap();
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut v = good();
        v["openbao"]["adress"] = "typo".into();
        assert!(parse(v).unwrap_err().contains("adress"));
        let mut v = good();
        v["services"]["bitcoind"]["secrets"]["rpc-lnd"]["value"] = "hunter2".into();
        assert!(parse(v).unwrap_err().contains("unknown field"));
    }

    #[test]
    fn each_mistake_is_named() {
        let cases: Vec<(&str, serde_json::Value, &str)> = vec![
            ("/version", 2.into(), "version: 2"),
            ("/runtime_dir", "run/x".into(), "runtime_dir"),
            ("/openbao/address", "bao:8200".into(), "openbao.address"),
            ("/openbao/address", "ftp://bao".into(), "openbao.address"),
            (
                "/openbao/address",
                "https://bao:8200/v1".into(),
                "must not carry a path",
            ),
            ("/openbao/ca_file", "ca.pem".into(), "openbao.ca_file"),
            ("/openbao/deadline_secs", 0.into(), "deadline_secs"),
            ("/openbao/kv_mount", "/secret/".into(), "kv_mount"),
            (
                "/services/bitcoind/secrets/rpc-lnd/path",
                "/abs".into(),
                "rpc-lnd.path",
            ),
            (
                "/services/bitcoind/secrets/rpc-lnd/path",
                "a/../b".into(),
                "rpc-lnd.path",
            ),
            (
                "/services/bitcoind/secrets/rpc-lnd/file",
                "../x".into(),
                "rpc-lnd.file",
            ),
            (
                "/services/bitcoind/secrets/rpc-lnd/file",
                ".hidden".into(),
                "rpc-lnd.file",
            ),
            (
                "/services/bitcoind/secrets/rpc-lnd/mode",
                "0644".into(),
                "other users",
            ),
            (
                "/services/bitcoind/secrets/rpc-lnd/mode",
                "rw".into(),
                "octal",
            ),
            (
                "/services/bitcoind/secrets/rpc-lnd/mode",
                "01400".into(),
                "octal",
            ),
            (
                "/services/bitcoind/secrets/rpc-lnd/transform",
                serde_json::json!({"rpcauth": {"user": "a:b"}}),
                "rpcauth.user",
            ),
            (
                "/services/bitcoind/secrets/rpc-lnd/transform",
                serde_json::json!({"bcrypt": {"cost": 3}}),
                "bcrypt.cost",
            ),
            (
                "/services/bitcoind/secrets/rpc-lnd/generate",
                serde_json::json!({"length": 4}),
                "generate.length",
            ),
            ("/services/bitcoind/owner", "".into(), "bitcoind.owner"),
        ];
        for (ptr, value, expect) in cases {
            let mut v = good();
            let (parent, key) = ptr.rsplit_once('/').unwrap();
            v.pointer_mut(parent)
                .unwrap()
                .as_object_mut()
                .unwrap()
                .insert(key.to_owned(), value);
            let err = parse(v).unwrap_err();
            assert!(err.contains(expect), "{ptr}: {err}");
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut v = good();
        v["version"] = 2.into();
        v["runtime_dir"] = "run/x".into();
        v["openbao"]["address"] = "http://bao.example.org:8200".into();
        v["openbao"]["auth"] = serde_json::json!({"token_file": "/nix/store/abc-token"});
        v["services"]["bitcoind"]["secrets"]["rpc-lnd"]["mode"] = "0644".into();
        v["services"]["thunderhub"]["owner"] = "".into();
        let err = parse(v).unwrap_err();
        for expect in [
            "version: 2",
            "runtime_dir: ",
            "openbao.address: \"http://bao.example.org:8200\": plain http to a host other than loopback",
            "openbao.auth.token_file: /nix/store/abc-token is in the Nix store",
            "services.bitcoind.secrets.rpc-lnd.mode: ",
            "services.thunderhub.owner: ",
        ] {
            assert!(err.contains(&format!("  - {expect}")), "{expect}: {err}");
        }
        assert!(err.starts_with("invalid manifest, 6 problems:"), "{err}");
    }

    #[test]
    fn plain_http_only_on_loopback() {
        for ok in [
            "http://127.0.0.1:8200",
            "http://[::1]:8200",
            "http://localhost:8200",
        ] {
            let mut v = good();
            v["openbao"]["address"] = ok.into();
            parse(v).unwrap();
        }
    }

    #[test]
    fn an_unknown_field_names_its_path() {
        let mut v = good();
        v["services"]["bitcoind"]["secrets"]["rpc-lnd"]["bogus"] = 1.into();
        // The module writes the manifest on one line.
        let err = manifest::parse::<Manifest>(&v.to_string()).unwrap_err();
        assert!(
            err.to_string()
                .contains("services.bitcoind.secrets.rpc-lnd.bogus: unknown field `bogus`"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_files_and_conflicting_generators_are_refused() {
        let mut v = good();
        v["services"]["bitcoind"]["secrets"]["second"] = serde_json::json!(
            {"path": "chainstead/bitcoind/rpc-lnd", "field": "password", "file": "rpcauth-lnd.conf"});
        let err = parse(v).unwrap_err();
        assert!(err.contains("used by another secret"), "{err}");
        assert!(err.contains("differs from"), "{err}");
    }

    #[test]
    fn modes_parse() {
        assert_eq!(parse_mode("0400"), Ok(0o400));
        assert_eq!(parse_mode("440"), Ok(0o440));
        assert_eq!(parse_mode("0o600"), Ok(0o600));
        assert!(parse_mode("").is_err());
        assert!(parse_mode("0800").is_err());
    }
}
