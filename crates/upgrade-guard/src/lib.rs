//! chainstead-upgrade-guard: keeps a service's data safe across package
//! upgrades and rollbacks. Before the service starts it compares the
//! package's version with the version recorded on the data: an upgrade takes
//! a pre-upgrade copy (or snapshot) first, a downgrade is refused; after a
//! successful start the new version is recorded. See docs/operations.md.

pub mod cli;
pub mod copy;
pub mod error;
pub mod guard;
pub mod manifest;
pub mod snapshot;
pub mod state;
pub mod version;

pub use error::GuardError;
pub use manifest::Manifest;
