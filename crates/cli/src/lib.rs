//! chainstead-cli: the `chainstead` operator command.
//!
//! One module per subcommand ([`connect`], [`cert`], [`status`],
//! [`migrate`]),
//! dispatched from [`cli`]; the pieces they share ([`manifest`], [`onion`],
//! [`lndconnect`], [`fingerprint`]) beside them.

pub mod cert;
pub mod cli;
pub mod connect;
pub mod fingerprint;
pub mod lndconnect;
pub mod manifest;
pub mod migrate;
pub mod onion;
pub mod status;

pub use manifest::Manifest;
