use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Finds `name` on PATH or panics with what to install. Tests that call it
/// are `#[ignore]`d by default and run by `checks/offline`, which installs
/// nothing but reports missing servers before running them.
pub fn require_binary(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("this test needs `{name}` on PATH; .ci/run shows how to install it");
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills and reaps the child when dropped, so a failing test leaves no
/// server running.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl ChildGuard {
    pub fn new(child: Child) -> Self {
        Self(child)
    }

    /// Spawns `cmd` with its stdout and stderr discarded, guarded.
    pub fn spawn_quiet(cmd: &mut Command) -> Self {
        Self(
            cmd.stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }

    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Waits until the server this guard started accepts TCP connections
    /// on `addr`. Fails at once, with its exit status, if the server exits
    /// first (a port another process took meanwhile, say) instead of
    /// waiting out `timeout`.
    pub fn wait_for_tcp(&mut self, addr: SocketAddr, timeout: Duration) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.0.try_wait() {
                panic!(
                    "the server exited ({status}) before listening on {addr}; is the port taken?"
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nothing listened on {addr} within {timeout:?}");
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "exited")]
    fn a_server_that_exits_fails_the_wait_at_once() {
        let child = std::process::Command::new("sh")
            .args(["-c", "exit 3"])
            .spawn()
            .unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        // Far longer than the test takes: only the exit can end the wait.
        ChildGuard::new(child).wait_for_tcp(addr, Duration::from_secs(600));
    }
}
