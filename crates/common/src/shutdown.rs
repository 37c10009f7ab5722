//! SIGTERM/SIGINT handling for waiting loops: every sleep can be cut short.

use std::time::Duration;

use tokio::sync::watch;

/// A cloneable handle that flips once SIGTERM or SIGINT arrives.
#[derive(Clone, Debug)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// Installs the signal handlers. Must be called inside a tokio runtime.
    pub fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            let _ = tx.send(true);
        });
        Ok(Self { rx })
    }

    /// A handle that is triggered by the returned sender instead of a signal,
    /// for tests and for tools that stop on their own.
    pub fn manual() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Self { rx })
    }

    pub fn requested(&self) -> bool {
        *self.rx.borrow()
    }

    /// Sleeps for `d`; returns `false` if shutdown was requested meanwhile.
    pub async fn sleep(&mut self, d: Duration) -> bool {
        if self.requested() {
            return false;
        }
        let mut rx = self.rx.clone();
        tokio::select! {
            _ = tokio::time::sleep(d) => !self.requested(),
            _ = rx.wait_for(|stop| *stop) => false,
        }
    }

    /// Resolves once shutdown is requested.
    pub async fn wait(&mut self) {
        let _ = self.rx.wait_for(|stop| *stop).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sleep_is_cut_short() {
        let (tx, mut sd) = Shutdown::manual();
        let start = std::time::Instant::now();
        let task = tokio::spawn(async move { sd.sleep(Duration::from_secs(30)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        tx.send(true).unwrap();
        assert!(!task.await.unwrap());
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
