//! Unit state from systemd: the text of
//! `systemctl show -p ActiveState,SubState,ActiveEnterTimestamp,Result
//! --timestamp=unix <unit>` (one `Key=value` per line; the timestamp as
//! `@<unix seconds>`, empty when the unit never entered the active state:
//! systemctl(1), `--timestamp=` since systemd 248). Read through
//! [`UnitSource`] so tests feed the same text without a running systemd.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Serialize;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where `systemctl show` output comes from.
pub trait UnitSource: Send + Sync {
    /// The `systemctl show` text for `unit`.
    fn show<'a>(&'a self, unit: &'a str, timeout: Duration) -> BoxFuture<'a, Result<String>>;
}

/// The real thing: runs `systemctl` (found on PATH, or the given program).
pub struct Systemctl {
    pub program: PathBuf,
}

impl Default for Systemctl {
    fn default() -> Self {
        Self {
            program: PathBuf::from("systemctl"),
        }
    }
}

impl UnitSource for Systemctl {
    fn show<'a>(&'a self, unit: &'a str, timeout: Duration) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let child = tokio::process::Command::new(&self.program)
                .args([
                    "show",
                    "--timestamp=unix",
                    "-p",
                    "ActiveState,SubState,ActiveEnterTimestamp,Result",
                    "--",
                    unit,
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("failed to run {}", self.program.display()))?;
            let out = tokio::time::timeout(timeout, child.wait_with_output())
                .await
                .with_context(|| format!("systemctl show {unit} timed out after {timeout:?}"))?
                .with_context(|| format!("failed to run systemctl show {unit}"))?;
            if !out.status.success() {
                bail!(
                    "systemctl show {unit} failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                        .trim()
                        .replace('\n', "; ")
                );
            }
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        })
    }
}

/// One unit's state, as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct UnitState {
    pub name: String,
    /// ActiveState: active, reloading, inactive, failed, activating,
    /// deactivating.
    pub active_state: String,
    /// SubState: running, exited, dead, auto-restart, start-pre...
    pub sub_state: String,
    /// Result: success, exit-code, signal, timeout, ...
    pub result: String,
    /// When it last entered the active state (unix seconds).
    pub since: Option<i64>,
}

impl UnitState {
    /// Active or on its way there (activating includes a Type=notify gate
    /// that has not sent READY yet).
    pub fn healthy(&self) -> bool {
        matches!(
            self.active_state.as_str(),
            "active" | "reloading" | "activating"
        )
    }
}

/// Parses `systemctl show` text.
pub fn parse(unit: &str, text: &str) -> Result<UnitState> {
    let mut st = UnitState {
        name: unit.to_string(),
        active_state: String::new(),
        sub_state: String::new(),
        result: String::new(),
        since: None,
    };
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k {
            "ActiveState" => st.active_state = v.to_string(),
            "SubState" => st.sub_state = v.to_string(),
            "Result" => st.result = v.to_string(),
            "ActiveEnterTimestamp" => {
                st.since = v.strip_prefix('@').and_then(|n| n.trim().parse().ok());
            }
            _ => {}
        }
    }
    if st.active_state.is_empty() {
        bail!(
            "systemctl show {unit} printed no ActiveState: {:?}",
            text.trim()
        );
    }
    Ok(st)
}

/// A fixed answer per unit, for tests and dry runs: the text `systemctl
/// show` would print. Units it does not know fail like a missing systemd.
#[derive(Default)]
pub struct Fixed(pub std::collections::BTreeMap<String, String>);

impl Fixed {
    /// `systemctl show` text for a unit in `active_state`/`sub_state`.
    pub fn text(active_state: &str, sub_state: &str, result: &str, since: i64) -> String {
        format!(
            "ActiveState={active_state}\nSubState={sub_state}\nActiveEnterTimestamp=@{since}\nResult={result}\n"
        )
    }
}

impl UnitSource for Fixed {
    fn show<'a>(&'a self, unit: &'a str, _timeout: Duration) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            self.0
                .get(unit)
                .cloned()
                .with_context(|| format!("failed to connect to systemd for {unit}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_systemctl_show() {
        // As systemd 252 prints it for a failed unit with --timestamp=unix.
        let st = parse(
            "lnd.service",
            "ActiveState=failed\nSubState=failed\nResult=exit-code\nActiveEnterTimestamp=@1764621000\n",
        )
        .unwrap();
        assert_eq!(st.active_state, "failed");
        assert_eq!(st.result, "exit-code");
        assert_eq!(st.since, Some(1_764_621_000));
        assert!(!st.healthy());
        // Never started: empty timestamp.
        let st = parse(
            "x.service",
            "ActiveState=inactive\nSubState=dead\nResult=success\nActiveEnterTimestamp=\n",
        )
        .unwrap();
        assert_eq!(st.since, None);
        assert!(parse("x", "garbage").is_err());
    }

    #[tokio::test]
    async fn a_missing_systemctl_is_an_error_not_a_hang() {
        let s = Systemctl {
            program: PathBuf::from("/nonexistent/systemctl"),
        };
        let e = s
            .show("a.service", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(format!("{e:#}").contains("failed to run"), "{e:#}");
    }
}
