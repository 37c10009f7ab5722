//! chainstead-cli: the operator's command `chainstead`. `status` reports
//! on every enabled service (docs/status.md).

pub mod cli;
pub mod status;
