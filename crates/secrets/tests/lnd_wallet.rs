//! Wallet creation and unlock against a replay of LND's REST API (LND
//! cannot run here). Shapes, from lightningnetwork/lnd lnrpc/stateservice.proto
//! and lnrpc/walletunlocker.proto with their REST mappings (stateservice.yaml,
//! walletunlocker.yaml): `GET /v1/state` → `{"state": "..."}`; `GET
//! /v1/genseed` → `{"cipher_seed_mnemonic": [24 words], "enciphered_seed":
//! ...}`; `POST /v1/initwallet` → `{"admin_macaroon": ...}`; `POST
//! /v1/unlockwallet` → `{}`; errors as grpc-gateway sends them, `{"code": 2,
//! "message": ..., "details": []}` (a wrong password: btcwallet's "invalid
//! passphrase for master public key").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chainstead_common::shutdown::Shutdown;
use chainstead_secrets::lnd_wallet::{run, Config, Error, Outcome, State};
use chainstead_testkit::{ReplayServer, Reply, Request, Response};
use serde_json::{json, Value};

const PASSWORD: &str = "wallet-pw-Hs4Tv8Xc1Bd6";
const MACAROON: &str = "AgEDbG5kAvgBAwoQ-admin-macaroon";

fn words() -> Vec<String> {
    (0..24).map(|i| format!("word{i}")).collect()
}

/// A scripted LND: the state it reports, what it does with each request.
struct FakeLnd {
    state: Mutex<&'static str>,
    /// Answers that replace the next normal ones, in order, per path.
    script: Mutex<Vec<(&'static str, Reply)>>,
    /// The unlock password LND accepts.
    password: &'static str,
}

impl FakeLnd {
    fn new(state: &'static str) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(state),
            script: Mutex::new(Vec::new()),
            password: PASSWORD,
        })
    }

    fn then(&self, path: &'static str, reply: Reply) {
        self.script.lock().unwrap().push((path, reply));
    }

    fn answer(&self, req: &Request) -> Reply {
        {
            let mut s = self.script.lock().unwrap();
            if let Some(i) = s.iter().position(|(p, _)| *p == req.path) {
                return s.remove(i).1;
            }
        }
        let pw = |b: &Value| {
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(b["wallet_password"].as_str().unwrap_or(""))
                    .unwrap(),
            )
            .unwrap()
        };
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/v1/state") => {
                Response::json(200, &json!({"state": *self.state.lock().unwrap()})).into()
            }
            ("GET", "/v1/genseed") => Response::json(
                200,
                &json!({"cipher_seed_mnemonic": words(), "enciphered_seed": "AAEC"}),
            )
            .into(),
            ("POST", "/v1/initwallet") => {
                *self.state.lock().unwrap() = "RPC_ACTIVE";
                Response::json(200, &json!({"admin_macaroon": MACAROON})).into()
            }
            ("POST", "/v1/unlockwallet") => {
                if pw(&req.json()) == self.password {
                    *self.state.lock().unwrap() = "UNLOCKED";
                    Response::json(200, &json!({})).into()
                } else {
                    Response::json(
                        500,
                        &json!({"code": 2, "message": "invalid passphrase for master public key", "details": []}),
                    )
                    .into()
                }
            }
            _ => Response::json(
                404,
                &json!({"code": 5, "message": "Not Found", "details": []}),
            )
            .into(),
        }
    }
}

fn start(lnd: &Arc<FakeLnd>) -> ReplayServer {
    let l = lnd.clone();
    ReplayServer::start(move |r| l.answer(r))
}

fn config(dir: &Path, url: &str) -> Config {
    std::fs::write(dir.join("wallet-password"), format!("{PASSWORD}\n")).unwrap();
    Config {
        rest_url: url.to_owned(),
        password_file: dir.join("wallet-password"),
        seed_file: dir.join("seed"),
        recovery_window: 2500,
        unlock: false,
        // Generous: a loaded 2-core machine must not turn a slow answer
        // into a failure; tests that need the deadline set their own.
        deadline: Duration::from_secs(60),
        poll: Duration::from_millis(20),
        request_timeout: Duration::from_secs(10),
    }
}

/// A scripted LND in `state` serving on loopback, and a config in `dir`
/// that points at it (script more answers with `then` before running).
fn serve(dir: &Path, state: &'static str) -> (Arc<FakeLnd>, ReplayServer, Config) {
    let lnd = FakeLnd::new(state);
    let srv = start(&lnd);
    let cfg = config(dir, &srv.url());
    (lnd, srv, cfg)
}

fn created(from_existing_seed: bool) -> Outcome {
    Outcome::Created { from_existing_seed }
}

async fn go(cfg: &Config) -> Result<Outcome, Error> {
    let (_tx, mut sd) = Shutdown::manual();
    run(cfg, &reqwest::Client::new(), &mut sd).await
}

fn posts(srv: &ReplayServer, path: &str) -> Vec<Value> {
    srv.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == path)
        .map(Request::json)
        .collect()
}

#[tokio::test]
async fn wallet_absent_the_seed_is_written_first_then_the_wallet_created() {
    let d = tempfile::tempdir().unwrap();
    let (_lnd, srv, cfg) = serve(d.path(), "NON_EXISTING");
    assert_eq!(go(&cfg).await.unwrap(), created(false));
    // The shell wrote `jq -r 'join(" ")'`: the words and a newline, 0400.
    let seed = std::fs::read_to_string(d.path().join("seed")).unwrap();
    assert_eq!(seed, format!("{}\n", words().join(" ")));
    let mode = std::fs::metadata(d.path().join("seed"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o400);
    let init = posts(&srv, "/v1/initwallet");
    assert_eq!(init.len(), 1);
    assert_eq!(
        init[0],
        json!({
            "wallet_password": base64::engine::general_purpose::STANDARD.encode(PASSWORD),
            "cipher_seed_mnemonic": words(),
        }),
        "no recovery_window for a fresh seed"
    );
}

#[tokio::test]
async fn wallet_absent_with_a_seed_in_place_is_created_from_it_with_a_rescan() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("seed"), format!("{}\n", words().join(" "))).unwrap();
    let (_lnd, srv, cfg) = serve(d.path(), "NON_EXISTING");
    assert_eq!(go(&cfg).await.unwrap(), created(true));
    assert!(srv.requests().iter().all(|r| r.path != "/v1/genseed"));
    let init = posts(&srv, "/v1/initwallet");
    assert_eq!(init[0]["recovery_window"], 2500);
    assert_eq!(init[0]["cipher_seed_mnemonic"], json!(words()));
}

#[tokio::test]
async fn locked_is_left_to_lnd_or_unlocked_when_asked() {
    let d = tempfile::tempdir().unwrap();
    let (_lnd, srv, mut cfg) = serve(d.path(), "LOCKED");
    assert_eq!(go(&cfg).await.unwrap(), Outcome::Exists(State::Locked));
    assert!(posts(&srv, "/v1/unlockwallet").is_empty());
    cfg.unlock = true;
    assert_eq!(go(&cfg).await.unwrap(), Outcome::Unlocked);
    let unlock = posts(&srv, "/v1/unlockwallet");
    assert_eq!(
        unlock,
        [json!({"wallet_password": base64::engine::general_purpose::STANDARD.encode(PASSWORD)})]
    );
    assert!(!d.path().join("seed").exists());
}

#[tokio::test]
async fn unlocked_or_active_needs_nothing() {
    for (state, want) in [
        ("UNLOCKED", State::Unlocked),
        ("RPC_ACTIVE", State::RpcActive),
        ("SERVER_ACTIVE", State::ServerActive),
    ] {
        let d = tempfile::tempdir().unwrap();
        let (_lnd, srv, mut cfg) = serve(d.path(), state);
        cfg.unlock = true;
        assert_eq!(go(&cfg).await.unwrap(), Outcome::Exists(want));
        assert!(srv.requests().iter().all(|r| r.method == "GET"), "{state}");
    }
}

/// LND restarting: refused and dropped connections, WAITING_TO_START, a 502
/// from a proxy, then a connection dropped in the middle of initwallet; the
/// seed is generated once and the retry uses it (with the rescan, as the
/// shell did).
#[tokio::test]
async fn lnd_restarting_is_waited_out_and_the_seed_generated_once() {
    let d = tempfile::tempdir().unwrap();
    let (lnd, srv, cfg) = serve(d.path(), "NON_EXISTING");
    lnd.then("/v1/state", Reply::Close);
    lnd.then(
        "/v1/state",
        Response::json(200, &json!({"state": "WAITING_TO_START"})).into(),
    );
    lnd.then("/v1/state", Response::new(502, "bad gateway").into());
    lnd.then("/v1/initwallet", Reply::Close);
    assert_eq!(go(&cfg).await.unwrap(), created(true));
    let genseeds = srv
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/genseed")
        .count();
    assert_eq!(genseeds, 1);
    let init = posts(&srv, "/v1/initwallet");
    assert_eq!(init.len(), 2);
    assert_eq!(
        init[0]["cipher_seed_mnemonic"],
        init[1]["cipher_seed_mnemonic"]
    );
}

#[tokio::test]
async fn a_wrong_password_is_its_own_error_without_the_password() {
    let d = tempfile::tempdir().unwrap();
    let (_lnd, _srv, mut cfg) = serve(d.path(), "LOCKED");
    std::fs::write(&cfg.password_file, "not-the-password\n").unwrap();
    cfg.unlock = true;
    let e = go(&cfg).await.unwrap_err();
    let Error::WrongPassword(text) = &e else {
        panic!("not WrongPassword: {e}");
    };
    assert!(
        text.contains("invalid passphrase for master public key"),
        "{text}"
    );
    assert!(
        text.contains(&cfg.password_file.display().to_string()),
        "{text}"
    );
    assert!(!text.contains("not-the-password"), "{text}");
}

#[tokio::test]
async fn sigterm_while_waiting_ends_the_wait_at_once() {
    let d = tempfile::tempdir().unwrap();
    let (_lnd, srv, mut cfg) = serve(d.path(), "WAITING_TO_START");
    cfg.poll = Duration::from_secs(30);
    let (tx, mut sd) = Shutdown::manual();
    let started = Instant::now();
    let task = tokio::spawn(async move { run(&cfg, &reqwest::Client::new(), &mut sd).await });
    // Wait until it is in its pause (it has asked once).
    while srv.requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tx.send(true).unwrap();
    let r = task.await.unwrap();
    assert!(matches!(r, Err(Error::Interrupted)), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(!d.path().join("seed").exists());
}

#[tokio::test]
async fn no_answer_until_the_deadline_names_the_url_and_the_last_reason() {
    let d = tempfile::tempdir().unwrap();
    let (_lnd, srv, mut cfg) = serve(d.path(), "WAITING_TO_START");
    cfg.deadline = Duration::from_millis(300);
    let e = go(&cfg).await.unwrap_err().to_string();
    assert!(e.contains(&srv.url()), "{e}");
    assert!(e.contains("state WAITING_TO_START"), "{e}");
}

#[tokio::test]
async fn a_refused_initwallet_and_a_short_password_are_named() {
    let d = tempfile::tempdir().unwrap();
    let (lnd, _srv, cfg) = serve(d.path(), "NON_EXISTING");
    lnd.then(
        "/v1/initwallet",
        Response::json(
            500,
            &json!({"code": 2, "message": "wallet already exists", "details": []}),
        )
        .into(),
    );
    let e = go(&cfg).await.unwrap_err().to_string();
    assert!(
        e.contains("refused /v1/initwallet: 500: wallet already exists"),
        "{e}"
    );
    std::fs::write(&cfg.password_file, "short\n").unwrap();
    let e = go(&cfg).await.unwrap_err().to_string();
    assert!(e.contains("at least 8 characters"), "{e}");
}

/// The subcommand, the real binary, over TLS with LND's kind of
/// certificate (self-signed, marked as a CA) behind a TLS front.
mod binary {
    use super::*;
    use std::process::{Command, Stdio};

    struct Tls {
        _srv: ReplayServer,
        url: String,
        cert_pem: String,
    }

    fn start_tls(lnd: &Arc<FakeLnd>) -> Tls {
        let srv = start(lnd);
        let (pem, der, key) = chainstead_testkit::tls::lnd_like_cert();
        let addr = chainstead_testkit::tls::tls_front(der, key, srv.addr());
        Tls {
            _srv: srv,
            url: format!("https://127.0.0.1:{}", addr.port()),
            cert_pem: pem,
        }
    }

    fn command(dir: &Path, url: &str, cert_pem: &str) -> Command {
        std::fs::write(dir.join("tls.cert"), cert_pem).unwrap();
        std::fs::write(dir.join("wallet-password"), format!("{PASSWORD}\n")).unwrap();
        let mut c = Command::new(env!("CARGO_BIN_EXE_chainstead-secrets"));
        c.args(["lnd-wallet", "--rest-url", url, "--tls-cert-file"])
            .arg(dir.join("tls.cert"))
            .arg("--password-file")
            .arg(dir.join("wallet-password"))
            .arg("--seed-file")
            .arg(dir.join("seed"))
            .args(["--deadline-secs", "60"])
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    #[test]
    fn creates_the_wallet_over_pinned_tls_without_leaking() {
        let d = tempfile::tempdir().unwrap();
        let lnd = FakeLnd::new("NON_EXISTING");
        let t = start_tls(&lnd);
        let o = command(d.path(), &t.url, &t.cert_pem).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.status.success(), "{text}");
        assert_eq!(
            std::fs::read_to_string(d.path().join("seed")).unwrap(),
            format!("{}\n", words().join(" "))
        );
        for secret in [PASSWORD, MACAROON, "word7 word8"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }

    #[test]
    fn another_certificate_is_refused_at_once() {
        let d = tempfile::tempdir().unwrap();
        let lnd = FakeLnd::new("NON_EXISTING");
        let t = start_tls(&lnd);
        let (other, _, _) = chainstead_testkit::tls::lnd_like_cert();
        let started = Instant::now();
        let o = command(d.path(), &t.url, &other).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains("not the one in the certificate file"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{:?}",
            started.elapsed()
        );
        assert!(!d.path().join("seed").exists());
    }

    #[test]
    fn sigterm_while_lnd_starts_stops_it() {
        let d = tempfile::tempdir().unwrap();
        let lnd = FakeLnd::new("WAITING_TO_START");
        let t = start_tls(&lnd);
        let mut child = command(d.path(), &t.url, &t.cert_pem).spawn().unwrap();
        // Until it has asked LND at least once.
        let asked = Instant::now();
        while t._srv.requests().is_empty() {
            assert!(asked.elapsed() < Duration::from_secs(30), "it never asked");
            std::thread::sleep(Duration::from_millis(20));
        }
        let stopped = Instant::now();
        assert!(Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success());
        let status = child.wait().unwrap();
        assert!(!status.success());
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "{:?}",
            stopped.elapsed()
        );
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert!(err.contains("stopped by a signal"), "{err}");
    }

    /// A password LND refuses is a misconfiguration: exit 2
    /// (docs/exit-codes.md), the password never in the output.
    #[test]
    fn a_refused_unlock_password_exits_2() {
        let d = tempfile::tempdir().unwrap();
        let lnd = FakeLnd::new("LOCKED");
        let t = start_tls(&lnd);
        let mut c = command(d.path(), &t.url, &t.cert_pem);
        std::fs::write(d.path().join("wallet-password"), "wrong-password-x9\n").unwrap();
        let o = c.arg("--unlock").output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains("invalid passphrase"), "{err}");
        assert!(!err.contains("wrong-password-x9"), "{err}");
    }
}
