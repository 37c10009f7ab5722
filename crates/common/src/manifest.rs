//! The one way a chainstead tool reads its manifest: the JSON file the NixOS
//! module renders into the store.
//!
//! [`load`] reads at most [`MAX_BYTES`], parses with the path to the failing
//! field in every serde error (`services.lnd.secrets.x: unknown field
//! ...`, not only a line and column of a one-line file), then runs the
//! tool's [`Validate`] checks, which collect *every* problem into one
//! [`Invalid`]. The checkers on [`Problems`] are the shared rules for paths,
//! secret files, names and URLs; a tool adds only what is its own.
//!
//! Both error types map to exit status 2 (see [`crate::exit`]).

use std::fmt;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};

use serde::de::DeserializeOwned;
use url::Url;

/// Largest manifest accepted. A real one is a few kilobytes; the cap keeps a
/// wrong path (a device, a log file) from being read whole.
pub const MAX_BYTES: u64 = 1024 * 1024;

/// The manifest is not usable: every problem found, each naming the field
/// (`targets[1].endpoint: ...`) and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub Vec<String>);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [] => f.write_str("invalid manifest"),
            [one] => write!(f, "invalid manifest: {one}"),
            many => {
                write!(f, "invalid manifest, {} problems:", many.len())?;
                for p in many {
                    write!(f, "\n  - {p}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Invalid {}

/// The manifest file cannot be opened or read (missing, no permission).
/// Like [`Invalid`] it is a configuration error: exit status 2.
#[derive(Debug)]
pub struct Unreadable {
    pub path: PathBuf,
    pub source: std::io::Error,
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failed to open manifest {}", self.path.display())
    }
}

impl std::error::Error for Unreadable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// A tool's offline checks of its parsed manifest.
pub trait Validate {
    /// Records every problem in `p`; no network, no reads of the files
    /// named (they may not exist when the system is built).
    fn validate(&self, p: &mut Problems);

    /// All problems at once, or `Ok`.
    fn check(&self) -> Result<(), Invalid> {
        let mut p = Problems::new();
        self.validate(&mut p);
        p.into_result()
    }
}

/// Reads, parses and validates the manifest at `path`. The error is an
/// [`Unreadable`], or an [`Invalid`] under the context
/// `failed to load manifest <path>`.
pub fn load<T: DeserializeOwned + Validate>(path: &Path) -> anyhow::Result<T> {
    let text = read(path)?;
    parse(&text).map_err(|e| {
        anyhow::Error::new(e).context(format!("failed to load manifest {}", path.display()))
    })
}

/// Parses and validates manifest text.
pub fn parse<T: DeserializeOwned + Validate>(text: &str) -> Result<T, Invalid> {
    let value: T = from_json(text)?;
    value.check()?;
    Ok(value)
}

/// Parses JSON, naming the path to the failing field in the error.
pub fn from_json<T: DeserializeOwned>(text: &str) -> Result<T, Invalid> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let mut at = e.path().to_string();
        let inner = e.inner().to_string();
        // Inside an internally tagged enum (`"kind": ...`) serde buffers the
        // object, so the path stops at it; the unknown field's own name is
        // in the message.
        if let Some(field) = inner
            .strip_prefix("unknown field `")
            .and_then(|r| r.split_once('`'))
            .map(|(f, _)| f)
        {
            if at == "." || at == "?" {
                at = field.to_owned();
            } else if !at.ends_with(&format!(".{field}")) && at != field {
                at = format!("{at}.{field}");
            }
        }
        Invalid(vec![if at == "." || at == "?" {
            format!("failed to parse the JSON: {inner}")
        } else {
            format!("{at}: {inner}")
        }])
    })?;
    de.end()
        .map_err(|e| Invalid(vec![format!("failed to parse the JSON: {e}")]))?;
    Ok(value)
}

fn read(path: &Path) -> anyhow::Result<String> {
    let unreadable = |source| Unreadable {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    let invalid = |problem: String| {
        anyhow::Error::new(Invalid(vec![problem]))
            .context(format!("failed to load manifest {}", path.display()))
    };
    if bytes.len() as u64 > MAX_BYTES {
        return Err(invalid(format!(
            "the file is larger than {MAX_BYTES} bytes; a manifest is a few kilobytes, \
             so this is not one (check the --manifest path)"
        )));
    }
    String::from_utf8(bytes).map_err(|e| invalid(format!("the file is not UTF-8 text ({e})")))
}

/// Plain `http://` allowed where?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainHttp {
    /// Only `https://` (LND's REST listener always speaks TLS).
    Never,
    /// `http://` only to a loopback host ([`is_loopback`]): anything else
    /// would carry credentials in the clear.
    Loopback,
    /// `http://` anywhere: the daemon has no TLS (bitcoind's RPC) or the
    /// operator declared the network trusted (`allow_http`).
    Anywhere,
}

/// The one loopback rule: `localhost`, any address in 127.0.0.0/8, or `::1`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// `[A-Za-z0-9_-]`, 1 to [`NAME_MAX`] characters, not starting with `-`:
/// safe as a label, a file name part and an argument.
pub fn is_plain_name(s: &str) -> bool {
    name_ok(s, false)
}

/// Like [`is_plain_name`] but dots are allowed, except first (no `.`, `..`
/// or hidden files): a file name inside a directory the tool owns.
pub fn is_file_name(s: &str) -> bool {
    name_ok(s, true)
}

/// Longest name either checker accepts.
pub const NAME_MAX: usize = 64;

fn name_ok(s: &str, dots: bool) -> bool {
    !s.is_empty()
        && s.len() <= NAME_MAX
        && !s.starts_with(['-', '.'])
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_') || (dots && c == '.'))
}

/// Every problem of one manifest, each `<field>: <what is wrong and what to
/// do>`. The checkers record a problem and return whether the value passed.
#[derive(Debug, Default)]
pub struct Problems(Vec<String>);

impl Problems {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `<at>: <msg>`.
    pub fn push(&mut self, at: &str, msg: impl fmt::Display) {
        self.0.push(format!("{at}: {msg}"));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_result(self) -> Result<(), Invalid> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Invalid(self.0))
        }
    }

    /// An absolute path without `..` (so a prefix check on it means what it
    /// says).
    pub fn absolute_path(&mut self, at: &str, p: &Path) -> bool {
        let ok = p.is_absolute() && !p.components().any(|c| c == Component::ParentDir);
        if !ok {
            self.push(
                at,
                format!(
                    "{:?} must be an absolute path without '..'",
                    p.display().to_string()
                ),
            );
        }
        ok
    }

    /// A file holding a credential: an absolute path outside the Nix store,
    /// which every user of the machine can read.
    pub fn secret_file(&mut self, at: &str, p: &Path) -> bool {
        if !self.absolute_path(at, p) {
            return false;
        }
        if p.starts_with("/nix/store") {
            self.push(
                at,
                format!(
                    "{} is in the Nix store, which every user can read; point it at a file \
                     outside the store (one the secrets loader writes under /run/chainstead/secrets/)",
                    p.display()
                ),
            );
            return false;
        }
        true
    }

    /// See [`is_plain_name`].
    pub fn plain_name(&mut self, at: &str, s: &str) -> bool {
        let ok = is_plain_name(s);
        if !ok {
            self.push(
                at,
                format!("{s:?} must be 1 to {NAME_MAX} letters, digits, '-' or '_', not starting with '-'"),
            );
        }
        ok
    }

    /// See [`is_file_name`].
    pub fn file_name(&mut self, at: &str, s: &str) -> bool {
        let ok = is_file_name(s);
        if !ok {
            self.push(
                at,
                format!(
                    "{s:?} must be a plain file name: 1 to {NAME_MAX} characters from [A-Za-z0-9._-], \
                     not starting with '.' or '-'"
                ),
            );
        }
        ok
    }

    /// An `http(s)://` URL with a host and no `user:password@`, plain http
    /// as `http` allows. The value is not repeated when it carries
    /// credentials: the message reaches logs.
    pub fn http_url(&mut self, at: &str, s: &str, http: PlainHttp) -> Option<Url> {
        let url = match Url::parse(s) {
            Ok(u) => u,
            Err(e) => {
                self.push(
                    at,
                    format!("{s:?} is not a URL ({e}); write it like https://host:port"),
                );
                return None;
            }
        };
        if !url.username().is_empty() || url.password().is_some() {
            self.push(
                at,
                "remove the user:password@ part; credentials belong in their own file \
                 (the *_file fields), never in the URL",
            );
            return None;
        }
        if url.host_str().is_none_or(str::is_empty) {
            self.push(at, format!("{s:?} has no host"));
            return None;
        }
        let ok = match (url.scheme(), http) {
            ("https", _) => true,
            ("http", PlainHttp::Anywhere) => true,
            ("http", PlainHttp::Loopback) if is_loopback(&url) => true,
            ("http", PlainHttp::Loopback) => {
                self.push(
                    at,
                    format!(
                        "{s:?}: plain http to a host other than loopback would expose credentials; use https"
                    ),
                );
                false
            }
            (_, PlainHttp::Never) => {
                self.push(at, format!("{s:?}: the scheme must be https"));
                false
            }
            _ => {
                self.push(at, format!("{s:?}: the scheme must be https or http"));
                false
            }
        };
        ok.then_some(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        name: String,
        #[serde(default)]
        items: std::collections::BTreeMap<String, Item>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Item {
        file: String,
    }

    impl Validate for Doc {
        fn validate(&self, p: &mut Problems) {
            p.plain_name("name", &self.name);
            for (k, i) in &self.items {
                p.file_name(&format!("items.{k}.file"), &i.file);
            }
        }
    }

    fn problems(f: impl FnOnce(&mut Problems)) -> Vec<String> {
        let mut p = Problems::new();
        f(&mut p);
        p.into_result().err().map(|e| e.0).unwrap_or_default()
    }

    #[test]
    fn serde_errors_name_the_path_to_the_field() {
        let e = parse::<Doc>(r#"{"name":"a","items":{"x":{"file":"f","bogus":1}}}"#).unwrap_err();
        assert_eq!(e.0.len(), 1);
        assert!(
            e.0[0].starts_with("items.x.bogus: unknown field `bogus`"),
            "{e}"
        );
        let e = parse::<Doc>(r#"{"name":"a","colour":1}"#).unwrap_err();
        assert!(e.0[0].starts_with("colour: unknown field `colour`"), "{e}");
        let e = parse::<Doc>(r#"{"name":1}"#).unwrap_err();
        assert!(e.0[0].starts_with("name: invalid type"), "{e}");
        let e = parse::<Doc>(r#"{"name":"a"} x"#).unwrap_err();
        assert!(e.0[0].contains("trailing characters"), "{e}");
        let e = parse::<Doc>("{").unwrap_err();
        assert!(e.0[0].starts_with("failed to parse the JSON"), "{e}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let e = parse::<Doc>(
            r#"{"name":"a.b","items":{"x":{"file":".hidden"},"y":{"file":"ok.conf"},"z":{"file":"../z"}}}"#,
        )
        .unwrap_err();
        assert_eq!(e.0.len(), 3, "{e}");
        assert!(e.0[0].starts_with("name: "), "{e}");
        assert!(e.0[1].starts_with("items.x.file: "), "{e}");
        assert!(e.0[2].starts_with("items.z.file: "), "{e}");
        let text = e.to_string();
        assert!(
            text.starts_with("invalid manifest, 3 problems:\n  - name: "),
            "{text}"
        );
        assert_eq!(
            Invalid(vec!["a: b".into()]).to_string(),
            "invalid manifest: a: b"
        );
    }

    #[test]
    fn load_caps_the_size_and_names_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.json");
        let e = load::<Doc>(&missing).unwrap_err();
        let u = e.downcast_ref::<Unreadable>().unwrap();
        assert_eq!(u.path, missing);
        assert!(format!("{e:#}").contains("No such file"), "{e:#}");

        let big = dir.path().join("big.json");
        std::fs::write(&big, vec![b' '; MAX_BYTES as usize + 1]).unwrap();
        let e = load::<Doc>(&big).unwrap_err();
        assert!(e.downcast_ref::<Invalid>().is_some(), "{e:#}");
        assert!(format!("{e:#}").contains("larger than"), "{e:#}");

        let good = dir.path().join("good.json");
        std::fs::write(&good, r#"{"name":"a"}"#).unwrap();
        assert_eq!(load::<Doc>(&good).unwrap().name, "a");
        std::fs::write(&good, r#"{"name":"-a"}"#).unwrap();
        let e = load::<Doc>(&good).unwrap_err();
        assert!(format!("{e:#}").starts_with(&format!(
            "failed to load manifest {}: invalid manifest: name: ",
            good.display()
        )));
    }

    #[test]
    fn absolute_path_refuses_relative_and_dotdot() {
        assert!(problems(|p| {
            p.absolute_path("a", Path::new("/var/lib/x"));
        })
        .is_empty());
        for bad in ["var/lib", "", "/var/../etc/shadow", "./x"] {
            let e = problems(|p| {
                p.absolute_path("a", Path::new(bad));
            });
            assert_eq!(e.len(), 1, "{bad}");
            assert!(e[0].starts_with("a: "), "{e:?}");
        }
    }

    #[test]
    fn secret_file_stays_out_of_the_store() {
        assert!(problems(|p| {
            p.secret_file("s", Path::new("/run/chainstead/secrets/backup/key"));
        })
        .is_empty());
        let e = problems(|p| {
            p.secret_file("s", Path::new("/nix/store/abc-key"));
        });
        assert!(e[0].contains("Nix store"), "{e:?}");
        let e = problems(|p| {
            p.secret_file("s", Path::new("/nix//store/abc-key"));
        });
        assert!(e[0].contains("Nix store"), "{e:?}");
        // No way around the prefix check with '..'.
        let e = problems(|p| {
            p.secret_file("s", Path::new("/run/../nix/store/abc-key"));
        });
        assert_eq!(e.len(), 1);
        let e = problems(|p| {
            p.secret_file("s", Path::new("key"));
        });
        assert!(e[0].contains("absolute"), "{e:?}");
        // A path that only starts with the same letters is fine.
        assert!(problems(|p| {
            p.secret_file("s", Path::new("/nix/storehouse/key"));
        })
        .is_empty());
    }

    #[test]
    fn names() {
        for ok in ["lnd", "usb-1", "node_1", "A9"] {
            assert!(is_plain_name(ok) && is_file_name(ok), "{ok}");
        }
        for ok in ["rpcauth-lnd.conf", "a.b.c"] {
            assert!(is_file_name(ok) && !is_plain_name(ok), "{ok}");
        }
        let long = "a".repeat(NAME_MAX + 1);
        for bad in ["", ".", "..", ".hidden", "-rf", "a/b", "a b", "ä", &long] {
            assert!(!is_plain_name(bad) && !is_file_name(bad), "{bad:?}");
        }
        assert!(is_file_name(&"a".repeat(NAME_MAX)));
        let e = problems(|p| {
            p.plain_name("n", "a.b");
            p.file_name("f", ".x");
        });
        assert_eq!(e.len(), 2);
    }

    #[test]
    fn loopback_is_one_rule() {
        for lo in [
            "http://127.0.0.1:1",
            "http://127.8.9.10/",
            "http://localhost:8200",
            "http://LOCALHOST",
            "http://[::1]:8080",
        ] {
            assert!(is_loopback(&Url::parse(lo).unwrap()), "{lo}");
        }
        for remote in [
            "http://10.0.0.1",
            "http://localhost.example.org",
            "http://[::2]",
            "http://128.0.0.1",
        ] {
            assert!(!is_loopback(&Url::parse(remote).unwrap()), "{remote}");
        }
    }

    #[test]
    fn http_url_rules() {
        let check = |s: &str, h: PlainHttp| {
            let mut p = Problems::new();
            let url = p.http_url("u", s, h);
            (
                url.is_some(),
                p.into_result().err().map(|e| e.0).unwrap_or_default(),
            )
        };
        assert!(check("https://bao.example:8200", PlainHttp::Never).0);
        assert!(check("http://[::1]:8200", PlainHttp::Loopback).0);
        assert!(check("http://10.0.0.1:8332", PlainHttp::Anywhere).0);
        let (ok, e) = check("http://10.0.0.1:8200", PlainHttp::Loopback);
        assert!(!ok && e[0].contains("loopback"), "{e:?}");
        let (ok, e) = check("http://127.0.0.1:8080", PlainHttp::Never);
        assert!(!ok && e[0].contains("must be https"), "{e:?}");
        let (ok, e) = check("ftp://host", PlainHttp::Anywhere);
        assert!(!ok && e[0].contains("https or http"), "{e:?}");
        let (ok, e) = check("127.0.0.1:8332", PlainHttp::Anywhere);
        assert!(!ok && e[0].starts_with("u: "), "{e:?}");
        let (ok, e) = check("https://key:s3cr3t@s3.example", PlainHttp::Anywhere);
        assert!(!ok && e[0].contains("user:password@"), "{e:?}");
        assert!(!e[0].contains("s3cr3t"), "{e:?}");
        let (ok, e) = check("https://user@s3.example", PlainHttp::Anywhere);
        assert!(!ok && e[0].contains("user:password@"), "{e:?}");
        let (ok, _) = check("unix:/run/x", PlainHttp::Anywhere);
        assert!(!ok);
    }
}
