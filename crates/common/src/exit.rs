//! One exit-status policy for the chainstead tools, and the one place a run
//! ends: [`finish`] logs the final error and turns it into the status. The
//! table is in docs/exit-codes.md.

use std::fmt;
use std::process::ExitCode;

use crate::manifest::{Invalid, Unreadable};

/// How a command ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done, valid, ready.
    Success,
    /// 1: the command ran and the answer is no: a failure at run time (a
    /// target not reached, OpenBao refusing), a check that found something
    /// missing or stale, the sync gate's `check` finding "not yet".
    Failure,
    /// 2: the configuration is wrong, so running again cannot help: a
    /// missing, unreadable or invalid manifest, a misconfiguration found at
    /// run time ([`Misconfigured`]), a wrong command line (clap exits 2 the
    /// same way).
    Invalid,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Invalid => 2,
        }
    }

    /// The status an error ends a run with: [`Exit::Invalid`] when the
    /// manifest or the configuration is at fault, else [`Exit::Failure`].
    pub fn of(err: &anyhow::Error) -> Exit {
        let config = err
            .chain()
            .any(|c| c.is::<Invalid>() || c.is::<Unreadable>() || c.is::<Misconfigured>());
        if config {
            Exit::Invalid
        } else {
            Exit::Failure
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e.code())
    }
}

/// A configuration problem found only at run time (the backend is on another
/// chain, rejects the credentials): exits 2 like an invalid manifest.
#[derive(Debug)]
pub struct Misconfigured(pub anyhow::Error);

impl fmt::Display for Misconfigured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for Misconfigured {}

/// Ends a run: logs the error (once, with its whole chain) and maps the
/// result to the exit status. Every tool's `main` returns this.
pub fn finish(result: anyhow::Result<Exit>) -> ExitCode {
    let exit = match result {
        Ok(exit) => exit,
        Err(e) => {
            tracing::error!("{e:#}");
            Exit::of(&e)
        }
    };
    exit.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn configuration_errors_exit_2_everything_else_1() {
        let invalid = anyhow::Error::new(Invalid(vec!["a: b".into()])).context("failed to load");
        assert_eq!(Exit::of(&invalid), Exit::Invalid);
        let missing = anyhow::Error::new(Unreadable {
            path: "/x".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
        assert_eq!(Exit::of(&missing), Exit::Invalid);
        let wrong_chain: anyhow::Result<()> =
            Err(Misconfigured(anyhow::anyhow!("on chain test"))).context("gate stopped");
        assert_eq!(Exit::of(&wrong_chain.unwrap_err()), Exit::Invalid);
        let runtime = anyhow::anyhow!("connection refused").context("failed to push");
        assert_eq!(Exit::of(&runtime), Exit::Failure);
        assert_eq!(
            [Exit::Success, Exit::Failure, Exit::Invalid].map(Exit::code),
            [0, 1, 2]
        );
    }

    #[test]
    fn finish_maps_results() {
        assert_eq!(finish(Ok(Exit::Success)), ExitCode::SUCCESS);
        assert_eq!(finish(Ok(Exit::Failure)), ExitCode::from(1));
        assert_eq!(
            finish(Err(anyhow::Error::new(Invalid(vec![])))),
            ExitCode::from(2)
        );
        assert_eq!(finish(Err(anyhow::anyhow!("boom"))), ExitCode::from(1));
    }
}
