//! `chainstead-secrets render`, the real binary, as a unit's ExecStartPre
//! runs it: the password from `$CREDENTIALS_DIRECTORY`, the file written
//! with its mode, nothing of the value in the output.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

const PW: &str = "rpc-pw-Qw7Zk3Lm9Np2";

#[test]
fn renders_the_fulcrum_config_from_a_credential() {
    let d = tempfile::tempdir().unwrap();
    let creds = d.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("bitcoind-rpc-password"), format!("{PW}\n")).unwrap();
    let tpl = d.path().join("fulcrum.conf.template");
    std::fs::write(
        &tpl,
        "bitcoind = 127.0.0.1:8332\nrpcuser=fulcrum\nrpcpassword=@bitcoind-rpc-password@\n",
    )
    .unwrap();
    let out = d.path().join("fulcrum.conf");
    let run = |creds_dir: Option<&std::path::Path>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_chainstead-secrets"));
        c.args(["render", "--template"])
            .arg(&tpl)
            .arg("--out")
            .arg(&out)
            .args([
                "--mode",
                "0600",
                "--secret",
                "@bitcoind-rpc-password@=credential:bitcoind-rpc-password",
            ])
            .env("RUST_LOG", "debug")
            .env_remove("CREDENTIALS_DIRECTORY");
        if let Some(dir) = creds_dir {
            c.env("CREDENTIALS_DIRECTORY", dir);
        }
        c.output().unwrap()
    };
    let o = run(Some(&creds));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{text}");
    assert!(!text.contains(PW), "{text}");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        format!("bitcoind = 127.0.0.1:8332\nrpcuser=fulcrum\nrpcpassword={PW}\n")
    );
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // A unit without the credential is misconfigured: exit 2
    // (docs/exit-codes.md).
    let o = run(None);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("$CREDENTIALS_DIRECTORY is not set"));
}
