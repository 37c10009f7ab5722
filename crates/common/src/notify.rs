//! `sd_notify` helpers. Outside systemd (`NOTIFY_SOCKET` unset) every call is
//! a no-op, so the tools behave the same under a test harness.

use sd_notify::NotifyState;

fn send(states: &[NotifyState]) {
    // A failed notification must never take a service down: systemd would
    // notice a missing READY by itself, and STATUS is informational.
    if let Err(err) = sd_notify::notify(false, states) {
        tracing::debug!("sd_notify failed: {err}");
    }
}

/// Tells systemd the service finished starting (`Type=notify`).
pub fn ready() {
    send(&[NotifyState::Ready]);
}

/// Sets the one-line status shown by `systemctl status`.
pub fn status(text: &str) {
    // A newline would end the STATUS= assignment early.
    let line = text.replace('\n', " ");
    send(&[NotifyState::Status(&line)]);
}

/// Tells systemd the service is shutting down.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// Returns true when running under systemd with a notification socket.
pub fn under_systemd() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}
