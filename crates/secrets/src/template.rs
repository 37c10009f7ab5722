//! Templates: a config file rendered at start from a template (in the Nix
//! store, no secret in it) and secret files, the way sops-nix's templates
//! do it (a placeholder string in the template's text stands for a secret
//! and is replaced when the file is written). The result is written
//! atomically (a temporary file beside it, fsynced, renamed) with the given
//! owner and mode, so a reader sees the old file or the whole new one.
//!
//! This replaces the shell that did it in the modules: Fulcrum's and LND's
//! config plus `rpcuser`/`rpcpassword` lines (`cat` + `printf` with the
//! password read by `tr -d '\r\n'`), and ThunderHub's account file (`jq`
//! adding `masterPassword` after checking the hash's form).

use std::path::PathBuf;

use anyhow::{Context, Result};
use zeroize::Zeroizing;

use chainstead_common::fs::{write_atomic_owned, Owner};
use chainstead_common::Secret;

/// One file to render.
#[derive(Clone, Debug)]
pub struct Template {
    /// The template's text.
    pub template: PathBuf,
    pub substitutions: Vec<Substitution>,
    pub out: PathBuf,
    pub mode: u32,
    pub owner: Owner,
}

/// A placeholder and the secret file that replaces it.
#[derive(Clone, Debug)]
pub struct Substitution {
    /// Literal text in the template, e.g. `@bitcoind-rpc-password@`. Every
    /// occurrence is replaced; the template must hold at least one.
    pub placeholder: String,
    /// The secret; trailing CR/LF are dropped (files from editors and
    /// `echo` end in one).
    pub file: PathBuf,
    pub encoding: Encoding,
    pub check: Check,
}

/// How the value is written into the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// As is, for `key=value` configs: a value holding a line break, which
    /// would add a line of its own to the config, is refused.
    Line,
    /// As the inside of a JSON string (the placeholder sits between quotes
    /// in the template): quotes, backslashes and control characters escaped.
    JsonString,
}

/// What the value must look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    Any,
    /// ThunderHub's stored master password form,
    /// `thunderhub-$2[aby]$NN$<53 of [./A-Za-z0-9]>` (the form
    /// modules/thunderhub.nix checked with jq, and the bcrypt transform
    /// here writes): anything else ThunderHub would take as a plaintext
    /// password and rewrite.
    ThunderHubBcrypt,
}

/// A substitution from the command line: `PLACEHOLDER=SOURCE`, where SOURCE
/// is an absolute path or `credential:NAME`, a file systemd passed with
/// `LoadCredential=` (`$CREDENTIALS_DIRECTORY/NAME`, given here as
/// `credentials_dir`).
pub fn parse_substitution(
    spec: &str,
    encoding: Encoding,
    check: Check,
    credentials_dir: Option<&std::path::Path>,
) -> Result<Substitution> {
    let Some((placeholder, source)) = spec.split_once('=') else {
        anyhow::bail!(
            "failed to parse {spec:?}: expected PLACEHOLDER=/path or PLACEHOLDER=credential:NAME"
        );
    };
    if placeholder.is_empty() {
        anyhow::bail!("failed to parse {spec:?}: the placeholder is empty");
    }
    let file = match source.strip_prefix("credential:") {
        Some(name) => {
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                anyhow::bail!("failed to parse {spec:?}: {name:?} is not a credential name");
            }
            let dir = credentials_dir.ok_or_else(|| {
                anyhow::anyhow!(
                    "failed to find credential {name}: $CREDENTIALS_DIRECTORY is not set \
                     (run under a unit with LoadCredential={name}:...)"
                )
            })?;
            dir.join(name)
        }
        None => {
            let p = PathBuf::from(source);
            if !p.is_absolute() {
                anyhow::bail!("failed to parse {spec:?}: {source} is not an absolute path");
            }
            p
        }
    };
    Ok(Substitution {
        placeholder: placeholder.to_owned(),
        file,
        encoding,
        check,
    })
}

/// Renders `t` and installs the file.
pub fn render(t: &Template) -> Result<()> {
    let text = Zeroizing::new(
        std::fs::read(&t.template)
            .with_context(|| format!("failed to read template {}", t.template.display()))?,
    );
    let text = std::str::from_utf8(&text).with_context(|| {
        format!(
            "failed to read template {}: it is not UTF-8",
            t.template.display()
        )
    })?;
    let mut values = Vec::with_capacity(t.substitutions.len());
    for s in &t.substitutions {
        if s.placeholder.is_empty() {
            anyhow::bail!(
                "failed to render {}: an empty placeholder (for {})",
                t.out.display(),
                s.file.display()
            );
        }
        if !text.contains(&s.placeholder) {
            anyhow::bail!(
                "failed to render {}: template {} does not contain the placeholder {} (for {})",
                t.out.display(),
                t.template.display(),
                s.placeholder,
                s.file.display()
            );
        }
        values.push(encoded(s)?);
    }
    let out = substitute(text, &t.substitutions, &values);
    write_atomic_owned(&t.out, &out, t.mode, t.owner)
        .with_context(|| format!("failed to write {}", t.out.display()))
}

/// The value of `s`, read, checked and encoded.
fn encoded(s: &Substitution) -> Result<Secret> {
    let raw = Secret::from_file(&s.file)?;
    let value = raw.expose().trim_end_matches(['\r', '\n']);
    if value.is_empty() {
        anyhow::bail!(
            "failed to use secret file {}: it is empty",
            s.file.display()
        );
    }
    match s.check {
        Check::Any => {}
        Check::ThunderHubBcrypt => {
            if !is_thunderhub_bcrypt(value) {
                anyhow::bail!(
                    "failed to use {}: it does not hold a thunderhub-$2b$ bcrypt hash",
                    s.file.display()
                );
            }
        }
    }
    Ok(Secret::new(match s.encoding {
        Encoding::Line => {
            if value.contains(['\r', '\n']) {
                anyhow::bail!(
                    "failed to use secret file {}: its value holds a line break, which would end the config line",
                    s.file.display()
                );
            }
            value.to_owned()
        }
        Encoding::JsonString => {
            let quoted = serde_json::to_string(value)
                .with_context(|| format!("failed to encode {}", s.file.display()))?;
            quoted[1..quoted.len() - 1].to_owned()
        }
    }))
}

/// One pass over `text`: each placeholder is replaced where it stands in the
/// template, never inside a value already put in (a value that happens to
/// contain another placeholder stays as it is).
fn substitute(text: &str, subs: &[Substitution], values: &[Secret]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() + 64));
    let mut rest = text;
    loop {
        let next = subs
            .iter()
            .enumerate()
            .filter_map(|(i, s)| rest.find(&s.placeholder).map(|at| (at, i)))
            // Earliest first; at the same place, the longest placeholder.
            .min_by_key(|&(at, i)| (at, std::cmp::Reverse(subs[i].placeholder.len())));
        match next {
            None => {
                out.extend_from_slice(rest.as_bytes());
                return out;
            }
            Some((at, i)) => {
                out.extend_from_slice(&rest.as_bytes()[..at]);
                out.extend_from_slice(values[i].expose().as_bytes());
                rest = &rest[at + subs[i].placeholder.len()..];
            }
        }
    }
}

fn is_thunderhub_bcrypt(v: &str) -> bool {
    let Some(rest) = v.strip_prefix("thunderhub-$2") else {
        return false;
    };
    let b = rest.as_bytes();
    b.len() == 1 + 1 + 2 + 1 + 53
        && matches!(b[0], b'a' | b'b' | b'y')
        && b[1] == b'$'
        && b[2].is_ascii_digit()
        && b[3].is_ascii_digit()
        && b[4] == b'$'
        && b[5..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    fn sub(placeholder: &str, file: PathBuf, encoding: Encoding, check: Check) -> Substitution {
        Substitution {
            placeholder: placeholder.into(),
            file,
            encoding,
            check,
        }
    }

    /// What modules/fulcrum.nix's ExecStartPre wrote: the config from the
    /// store, then `rpcuser=<user>` and `rpcpassword=<password>` lines, the
    /// password without its newline; mode 0600 (umask 077).
    #[test]
    fn fulcrum_config_plus_password_is_what_the_shell_wrote() {
        let d = tempfile::tempdir().unwrap();
        let store_conf = "# Generated by chainstead (services.chainstead.fulcrum.settings).\nbitcoind = 127.0.0.1:8332\ntcp = 127.0.0.1:50001\n";
        std::fs::write(
            d.path().join("tpl"),
            format!("{store_conf}rpcuser=fulcrum\nrpcpassword=@bitcoind-rpc-password@\n"),
        )
        .unwrap();
        std::fs::write(d.path().join("pw"), "s3cr$t'\"pw\n").unwrap();
        let t = Template {
            template: d.path().join("tpl"),
            substitutions: vec![sub(
                "@bitcoind-rpc-password@",
                d.path().join("pw"),
                Encoding::Line,
                Check::Any,
            )],
            out: d.path().join("fulcrum.conf"),
            mode: 0o600,
            owner: Owner::default(),
        };
        render(&t).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("fulcrum.conf")).unwrap(),
            format!("{store_conf}rpcuser=fulcrum\nrpcpassword=s3cr$t'\"pw\n")
        );
        let mode = std::fs::metadata(d.path().join("fulcrum.conf"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // A second start replaces it whole, leaving no temporary file.
        std::fs::write(d.path().join("pw"), "other\r\n").unwrap();
        render(&t).unwrap();
        assert!(std::fs::read_to_string(d.path().join("fulcrum.conf"))
            .unwrap()
            .ends_with("rpcpassword=other\n"));
        let mut names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["fulcrum.conf", "pw", "tpl"]);
    }

    /// What modules/thunderhub.nix's jq produced: the template's fields and
    /// `masterPassword` with the hash, checked for ThunderHub's form.
    #[test]
    fn thunderhub_account_file_gets_the_checked_hash() {
        let d = tempfile::tempdir().unwrap();
        let tpl = r#"{"accounts":[{"name":"node"}],"hashed":true,"masterPassword":"@master-password-hash@"}"#;
        std::fs::write(d.path().join("tpl"), tpl).unwrap();
        let hash = format!(
            "thunderhub-$2b$12${}",
            "a".repeat(24) + &"B/.9".repeat(7) + "Z"
        );
        assert_eq!(hash.len(), "thunderhub-$2b$12$".len() + 53);
        std::fs::write(d.path().join("hash"), format!("{hash}\n")).unwrap();
        let t = Template {
            template: d.path().join("tpl"),
            substitutions: vec![sub(
                "@master-password-hash@",
                d.path().join("hash"),
                Encoding::JsonString,
                Check::ThunderHubBcrypt,
            )],
            out: d.path().join("accounts.yaml"),
            mode: 0o400,
            owner: Owner::default(),
        };
        render(&t).unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.path().join("accounts.yaml")).unwrap())
                .unwrap();
        assert_eq!(v["masterPassword"], hash.as_str());
        assert_eq!(v["accounts"][0]["name"], "node");
        // A plaintext password is refused, and the previous file stays.
        std::fs::write(d.path().join("hash"), "plain-password\n").unwrap();
        let e = format!("{:#}", render(&t).unwrap_err());
        assert!(
            e.contains("does not hold a thunderhub-$2b$ bcrypt hash"),
            "{e}"
        );
        assert!(!e.contains("plain-password"), "{e}");
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.path().join("accounts.yaml")).unwrap())
                .unwrap();
        assert_eq!(v["masterPassword"], hash.as_str());
    }

    /// The account file modules/thunderhub.nix renders in hashed mode: its
    /// template is `builtins.toJSON` of the account set plus
    /// `masterPassword` as the placeholder (compact, keys sorted). The
    /// result is what the jq script it replaced wrote (`{ masterPassword:
    /// $hash } + template`, the hash without its newline), byte for byte
    /// the template with the placeholder swapped, mode 0400, and a start
    /// after the last one replaces the read-only file.
    #[test]
    fn thunderhub_account_file_as_the_module_renders_it() {
        let d = tempfile::tempdir().unwrap();
        let account = serde_json::json!({
            "accounts": [{
                "certificatePath": "/srv/fast/lnd/tls.cert",
                "macaroonPath": "/srv/fast/lnd/macaroons/admin.macaroon",
                "name": "LND (mainnet)",
                "network": "mainnet",
                "serverUrl": "127.0.0.1:10009"
            }],
            "backupsEnabled": false,
            "channelPushEnabled": false,
            "defaultNetwork": "mainnet",
            "hashed": true,
            "healthCheckPingEnabled": false,
            "onchainPushEnabled": false,
            "privateChannelPushEnabled": false
        });
        let tpl = concat!(
            r#"{"accounts":[{"certificatePath":"/srv/fast/lnd/tls.cert","#,
            r#""macaroonPath":"/srv/fast/lnd/macaroons/admin.macaroon","#,
            r#""name":"LND (mainnet)","network":"mainnet","serverUrl":"127.0.0.1:10009"}],"#,
            r#""backupsEnabled":false,"channelPushEnabled":false,"defaultNetwork":"mainnet","#,
            r#""hashed":true,"healthCheckPingEnabled":false,"#,
            r#""masterPassword":"@master-password-hash@","onchainPushEnabled":false,"#,
            r#""privateChannelPushEnabled":false}"#
        );
        std::fs::write(d.path().join("tpl"), tpl).unwrap();
        // The bcrypt alphabet includes `.` and `/`, which JSON leaves as is.
        let hash = format!("thunderhub-$2b$12${}", "./Az09".repeat(8) + "abcde");
        std::fs::write(d.path().join("hash"), format!("{hash}\n")).unwrap();
        let out = d.path().join("accounts.yaml");
        let t = Template {
            template: d.path().join("tpl"),
            substitutions: vec![parse_substitution(
                &format!("@master-password-hash@={}", d.path().join("hash").display()),
                Encoding::JsonString,
                Check::ThunderHubBcrypt,
                None,
            )
            .unwrap()],
            out: out.clone(),
            mode: 0o400,
            owner: Owner::default(),
        };
        render(&t).unwrap();
        let written = std::fs::read_to_string(&out).unwrap();
        assert_eq!(written, tpl.replace("@master-password-hash@", &hash));
        let mut expected = serde_json::Map::new();
        expected.insert("masterPassword".into(), hash.clone().into());
        expected.extend(account.as_object().unwrap().clone());
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&written).unwrap(),
            serde_json::Value::Object(expected)
        );
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o400);
        // The next start: a new hash replaces the read-only file whole.
        let hash2 = format!("thunderhub-$2y$10${}", "Zz".repeat(26) + "9");
        std::fs::write(d.path().join("hash"), &hash2).unwrap();
        render(&t).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        assert_eq!(v["masterPassword"], hash2.as_str());
        assert_eq!(v["accounts"], account["accounts"]);
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o400);
    }

    #[test]
    fn json_values_are_escaped_and_line_values_cannot_add_lines() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("tpl"), "{\"p\":\"@p@\"}").unwrap();
        std::fs::write(d.path().join("v"), "a\"b\\c\td").unwrap();
        let mut t = Template {
            template: d.path().join("tpl"),
            substitutions: vec![sub(
                "@p@",
                d.path().join("v"),
                Encoding::JsonString,
                Check::Any,
            )],
            out: d.path().join("out"),
            mode: 0o400,
            owner: Owner::default(),
        };
        render(&t).unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.path().join("out")).unwrap()).unwrap();
        assert_eq!(v["p"], "a\"b\\c\td");
        std::fs::write(d.path().join("v"), "pw\nrpcbind=0.0.0.0\n").unwrap();
        t.substitutions[0].encoding = Encoding::Line;
        let e = format!("{:#}", render(&t).unwrap_err());
        assert!(e.contains("holds a line break"), "{e}");
    }

    #[test]
    fn a_missing_placeholder_or_secret_is_named() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("tpl"), "rpcpassword=@pw@\n").unwrap();
        std::fs::write(d.path().join("v"), "x").unwrap();
        let mut t = Template {
            template: d.path().join("tpl"),
            substitutions: vec![sub(
                "@typo@",
                d.path().join("v"),
                Encoding::Line,
                Check::Any,
            )],
            out: d.path().join("out"),
            mode: 0o400,
            owner: Owner::default(),
        };
        let e = format!("{:#}", render(&t).unwrap_err());
        assert!(e.contains("does not contain the placeholder @typo@"), "{e}");
        t.substitutions[0].placeholder = "@pw@".into();
        t.substitutions[0].file = d.path().join("absent");
        let e = format!("{:#}", render(&t).unwrap_err());
        assert!(e.contains("failed to read secret file"), "{e}");
        std::fs::write(d.path().join("absent"), "\n").unwrap();
        let e = format!("{:#}", render(&t).unwrap_err());
        assert!(e.contains("it is empty"), "{e}");
        assert!(!d.path().join("out").exists());
    }

    #[test]
    fn command_line_substitutions_parse() {
        let creds = Path::new("/run/credentials/fulcrum.service");
        let s = parse_substitution(
            "@pw@=credential:bitcoind-rpc-password",
            Encoding::Line,
            Check::Any,
            Some(creds),
        )
        .unwrap();
        assert_eq!(s.placeholder, "@pw@");
        assert_eq!(s.file, creds.join("bitcoind-rpc-password"));
        let s = parse_substitution("@h@=/run/x/h", Encoding::JsonString, Check::Any, None).unwrap();
        assert_eq!(s.file, Path::new("/run/x/h"));
        for (bad, needle) in [
            ("nothing", "expected PLACEHOLDER="),
            ("=/x", "the placeholder is empty"),
            ("@p@=relative", "not an absolute path"),
            ("@p@=credential:../x", "not a credential name"),
        ] {
            let e = parse_substitution(bad, Encoding::Line, Check::Any, Some(creds))
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
        let e = parse_substitution("@p@=credential:pw", Encoding::Line, Check::Any, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("$CREDENTIALS_DIRECTORY is not set"), "{e}");
    }

    /// A value holding another placeholder is not substituted again.
    #[test]
    fn substitution_is_one_pass() {
        let subs = vec![
            sub("@a@", PathBuf::new(), Encoding::Line, Check::Any),
            sub("@b@", PathBuf::new(), Encoding::Line, Check::Any),
        ];
        let values = vec![Secret::new("<@b@>".into()), Secret::new("B".into())];
        let out = substitute("x=@a@ y=@b@ z=@a@", &subs, &values);
        assert_eq!(&out[..], b"x=<@b@> y=B z=<@b@>");
    }
}
