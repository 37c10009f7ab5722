//! Helpers for integration tests: finding server binaries, free ports,
//! children killed on drop, and a scripted HTTP server that replays
//! documented upstream responses where no real server can run here.
//!
//! Test-only code: panicking with a clear message is the right failure mode.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod monerod;
mod process;
mod replay;
pub mod tls;
pub mod vault;

pub use process::{free_port, require_binary, ChildGuard};
pub use replay::{ReplayServer, Reply, Request, Response};
