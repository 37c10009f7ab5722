//! chainstead-backup: pushes LND's channel.backup (and snapshots of a few
//! small files) to every configured target within a second of a change.

pub mod channel;
pub mod cli;
pub mod commands;
pub mod crypt;
pub mod manifest;
pub mod pusher;
pub mod snapshot;
pub mod state;
pub mod targets;
pub mod version;

pub use cli::{run, Cli};
pub use manifest::Invalid;
