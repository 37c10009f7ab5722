//! A regtest monerod for the real-server tests (Debian's `monero` package):
//! loopback only, no TLS, UPnP or ZMQ, quiet logs, data in the caller's dir.
//! Callers add what their test needs (`--offline`, `--add-exclusive-node`).

use std::path::Path;
use std::process::{Command, Stdio};

use crate::require_binary;

/// The command line every test's monerod shares, bound to `p2p` and `rpc`
/// on 127.0.0.1, with stdin closed.
pub fn regtest_command(data_dir: &Path, p2p: u16, rpc: u16) -> Command {
    let mut cmd = Command::new(require_binary("monerod"));
    cmd.args([
        "--regtest",
        "--fixed-difficulty",
        "1",
        "--rpc-ssl",
        "disabled",
        "--non-interactive",
        "--no-igd",
        "--no-zmq",
        "--log-level",
        "0",
        "--p2p-bind-ip",
        "127.0.0.1",
        "--rpc-bind-ip",
        "127.0.0.1",
    ])
    .arg("--data-dir")
    .arg(data_dir)
    .args(["--p2p-bind-port", &p2p.to_string()])
    .args(["--rpc-bind-port", &rpc.to_string()])
    .stdin(Stdio::null());
    cmd
}
