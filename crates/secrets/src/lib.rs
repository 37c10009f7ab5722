//! chainstead-secrets: loads every credential of the stack from OpenBao (or
//! generates it locally once) into per-service directories on tmpfs,
//! `<runtime_dir>/<service>/<file>`, each set replaced in one step.
//!
//! Values are held in [`chainstead_common::Secret`] (zeroized, redacted) and
//! never logged; errors name paths, fields, addresses and policies only.

pub mod bao;
pub mod check;
pub mod cli;
pub mod install;
pub mod lnd_wallet;
pub mod load;
pub mod local;
pub mod manifest;
pub mod store;
pub mod template;
pub mod transform;
