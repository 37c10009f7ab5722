//! What one look at a backend yields: an [`Observation`] (ready or not yet,
//! with the numbers behind it) or a [`ProbeError`].
//!
//! "Not yet" is never an error: a daemon that is not running, still loading
//! its index or still syncing is an ordinary observation.

// The types live with the shared clients (the Electrum probe and the
// exporter use them too).
pub use chainstead_clients::probe::{percent, Observation, ProbeError, ProbeResult};
