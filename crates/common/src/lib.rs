//! Pieces every chainstead tool shares: journald-friendly logging, `sd_notify`,
//! durable atomic writes, retry with backoff, Prometheus textfile output,
//! users and groups by name, a redacting [`Secret`] type, SIGTERM-aware waiting, the manifest kit
//! (load, collect every problem, shared checkers) and the exit-status policy.
//!
//! Kept small on purpose: anything only one tool needs lives in that tool.

pub mod accounts;
pub mod exit;
pub mod fs;
pub mod logging;
pub mod manifest;
pub mod metrics;
pub mod notify;
pub mod retry;
pub mod secret;
pub mod shutdown;

pub use secret::Secret;
