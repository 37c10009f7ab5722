//! Pieces every chainstead tool shares: journald-friendly logging, `sd_notify`,
//! durable atomic writes, retry with backoff, Prometheus textfile output,
//! a redacting [`Secret`] type and SIGTERM-aware waiting.
//!
//! Kept small on purpose: anything only one tool needs lives in that tool.

pub mod fs;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod retry;
pub mod secret;
pub mod shutdown;

pub use secret::Secret;
