//! chainstead-cli: the `chainstead` operator command.
//!
//! One module per subcommand ([`connect`], [`cert`]), dispatched from
//! [`cli`]; the pieces they share ([`manifest`], [`onion`], [`lndconnect`],
//! [`fingerprint`]) beside them. A new subcommand (`chainstead status`) is a
//! new module and one more variant of [`cli::Command`].

pub mod cert;
pub mod cli;
pub mod connect;
pub mod fingerprint;
pub mod lndconnect;
pub mod manifest;
pub mod onion;

pub use manifest::Manifest;
