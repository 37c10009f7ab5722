//! The guard's refusals: each names both versions and where to read on,
//! because these are the lines an operator finds in `systemctl status`.

use std::path::PathBuf;

/// A refusal callers (and tests) branch on; everything else is a plain
/// `anyhow` error with its context.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error(
        "refusing to start {service} {package}: its data was last used by {service} {data}, \
         which is newer, and an older {service} must not open data a newer one may have \
         migrated. Switch back to a configuration with {service} {data} or newer; see {runbook} \
         (allowDowngrade only where upstream supports that downgrade)"
    )]
    Downgrade {
        service: &'static str,
        data: String,
        package: String,
        runbook: String,
    },

    #[error(
        "refusing to start {service} {package}: an earlier start of {service} {attempted} on \
         this data (upgrading from {data}) never completed, so the data may already be migrated. \
         Switch forward to {service} {attempted} again; see {runbook} for the way back"
    )]
    Interrupted {
        service: &'static str,
        package: String,
        attempted: String,
        data: String,
        runbook: String,
    },

    #[error(
        "refusing to start {service} {package} on data last used by {data}: the pre-upgrade \
         step has not completed; `systemctl status chainstead-upgrade-guard-{service}` says why \
         (for example no space for the copy). See {runbook}"
    )]
    NotPrepared {
        service: &'static str,
        package: String,
        data: String,
        runbook: String,
    },

    #[error(
        "failed to take the pre-upgrade copy in {}: it needs {} MiB free (data plus the reserve) \
         and {} MiB are; free space there or lower the copies kept, then start the service again. \
         Nothing was copied",
        dir.display(), mib(*needed), mib(*available)
    )]
    NoSpace {
        dir: PathBuf,
        needed: u64,
        available: u64,
    },

    #[error(
        "refusing to restore the pre-upgrade copy {copy}: LND has started {since} time(s) since it \
         was taken (before the upgrade from {from} to {to}), so channel states in it may be \
         revoked and broadcasting one costs that channel's funds. Recover through the static \
         channel backup instead; see {runbook}"
    )]
    RestoreAfterNewerRun {
        copy: String,
        from: String,
        to: String,
        since: u64,
        runbook: String,
    },

    #[error("refusing to restore: LND is running ({} is locked); stop lnd.service first", path.display())]
    LndRunning { path: PathBuf },
}

/// Bytes in MiB, rounded up, for messages.
fn mib(bytes: u64) -> u64 {
    bytes.div_ceil(1024 * 1024)
}

impl GuardError {
    /// Whether only a change of the configuration lifts the refusal: the
    /// package is older than the data, or an interrupted upgrade to another
    /// version must be finished first. Running again as it is cannot help,
    /// so the command line exits 2 (docs/exit-codes.md); the other refusals
    /// can pass once the machine changes (space freed, LND stopped) and
    /// exit 1.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            GuardError::Downgrade { .. } | GuardError::Interrupted { .. }
        )
    }
}
