//! LND's wallet at start: create it when there is none (seed into a
//! root-only file first), unlock it when asked to, or find it there. This
//! replaces the curl + jq loop of modules/lnd.nix (`lnd-wallet-init`).
//!
//! LND facts (lightningnetwork/lnd v0.19, lnrpc/stateservice.proto and
//! lnrpc/walletunlocker.proto with their REST mappings stateservice.yaml and
//! walletunlocker.yaml; bytes fields are base64 in REST JSON):
//! - `GET /v1/state` → `{"state": "<WalletState>"}`: NON_EXISTING, LOCKED,
//!   UNLOCKED, RPC_ACTIVE, SERVER_ACTIVE, or WAITING_TO_START (LND still
//!   starting; says nothing about the wallet). No macaroon needed.
//! - `GET /v1/genseed` → `{"cipher_seed_mnemonic": [24 words],
//!   "enciphered_seed": "<base64>"}` (GenSeedResponse).
//! - `POST /v1/initwallet` with `{"wallet_password": <base64>,
//!   "cipher_seed_mnemonic": [...], "recovery_window": n}` → `{"admin_macaroon":
//!   <base64>}` (InitWalletRequest/Response); the reply is discarded unread.
//! - `POST /v1/unlockwallet` with `{"wallet_password": <base64>}` → `{}`
//!   (UnlockWalletRequest/Response). A wrong password fails with btcwallet's
//!   "invalid passphrase for master public key" (waddrmgr ErrWrongPassphrase),
//!   which the REST proxy (grpc-gateway) sends as `{"code": 2, "message":
//!   ..., "details": []}` with an HTTP error status.
//!
//! Waiting is Ready/NotYet: every answer that may change by itself (no
//! connection, WAITING_TO_START, a 5xx, a connection dropped by a restarting
//! LND) is NotYet and polled again until the deadline; SIGTERM ends the
//! wait at once.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use base64::Engine as _;
use zeroize::Zeroizing;

use chainstead_common::fs::write_atomic;
use chainstead_common::shutdown::Shutdown;
use chainstead_common::Secret;

/// LND's answers are small; anything bigger is refused.
const MAX_BODY: usize = 64 << 10;
/// Words of an aezeed mnemonic (aezeed/cipherseed.go, `NumMnemonicWords`).
const SEED_WORDS: usize = 24;

/// What to do, from the module's options.
#[derive(Clone, Debug)]
pub struct Config {
    /// `https://127.0.0.1:8080`.
    pub rest_url: String,
    /// The wallet password (from the secret loader).
    pub password_file: PathBuf,
    /// Root-only file for the seed: written before the wallet is created;
    /// a seed already there is used (a restore, or a retry after a failed
    /// creation) with a recovery rescan.
    pub seed_file: PathBuf,
    /// Blocks to rescan when creating from an existing seed.
    pub recovery_window: u32,
    /// Unlock a LOCKED wallet with the password. Off when LND unlocks
    /// itself (`wallet-unlock-password-file`).
    pub unlock: bool,
    /// How long to wait for LND to say where its wallet stands.
    pub deadline: Duration,
    /// Pause between polls.
    pub poll: Duration,
    /// Upper bound of one request.
    pub request_timeout: Duration,
}

/// How it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The wallet was created; `from_existing_seed` when the seed file was
    /// there already (created with a recovery rescan).
    Created {
        from_existing_seed: bool,
    },
    Unlocked,
    /// Nothing to do: the wallet exists in this state.
    Exists(State),
}

/// LND's wallet states that say where the wallet stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    NonExisting,
    Locked,
    Unlocked,
    RpcActive,
    ServerActive,
}

/// Why it failed, for callers that branch (exit codes).
#[derive(Debug)]
pub enum Error {
    /// LND refused the password: the password file does not belong to this
    /// wallet.
    WrongPassword(String),
    /// SIGTERM (or SIGINT) while waiting.
    Interrupted,
    /// Anything else, with the reason.
    Failed(anyhow::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::WrongPassword(s) => f.write_str(s),
            Error::Interrupted => f.write_str("stopped by a signal while waiting for LND"),
            Error::Failed(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Self {
        Error::Failed(e)
    }
}

/// One poll: ready with a value, or not yet (with why, for the log and the
/// final message).
enum Poll<T> {
    Ready(T),
    NotYet(String),
}

/// A client for LND's REST API that trusts exactly the certificate in
/// `cert_file` (the shared clients' pinned verifier: LND's tls.cert is marked as
/// a CA, which webpki refuses as a server's own certificate). LND writes the
/// file on its first start, so its absence is NotYet until `deadline`.
pub async fn pinned_client(
    cert_file: &Path,
    cfg: &Config,
    deadline: Instant,
    shutdown: &mut Shutdown,
) -> Result<reqwest::Client, Error> {
    use chainstead_clients::tls::{pinned_config, read_certs};
    let certs = loop {
        if let Some(c) = read_certs(cert_file)? {
            break c;
        }
        if Instant::now() >= deadline {
            return Err(Error::Failed(anyhow!(
                "failed to read LND's certificate {}: it did not appear within {}s",
                cert_file.display(),
                cfg.deadline.as_secs()
            )));
        }
        if !shutdown.sleep(cfg.poll).await {
            return Err(Error::Interrupted);
        }
    };
    let tls = pinned_config(certs, Arc::new(AtomicBool::new(false)))?;
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        // Only LND on loopback: no proxy from the environment, no redirects.
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(cfg.request_timeout.min(Duration::from_secs(5)))
        .build()
        .context("failed to build the HTTP client for LND")
        .map_err(Error::Failed)
}

/// Brings the wallet to where `cfg` wants it, with `http` (which must trust
/// LND's certificate) and stopping early when `shutdown` fires.
pub async fn run(
    cfg: &Config,
    http: &reqwest::Client,
    shutdown: &mut Shutdown,
) -> Result<Outcome, Error> {
    run_until(cfg, http, shutdown, Instant::now() + cfg.deadline).await
}

/// [`run`] with the deadline given (shared with [`pinned_client`]'s wait).
pub async fn run_until(
    cfg: &Config,
    http: &reqwest::Client,
    shutdown: &mut Shutdown,
    deadline: Instant,
) -> Result<Outcome, Error> {
    let lnd = Lnd { cfg, http };
    loop {
        let state = wait_for_state(&lnd, deadline, shutdown).await?;
        let step = match state {
            State::NonExisting => create(&lnd).await?,
            State::Locked if cfg.unlock => unlock(&lnd).await?,
            s => Poll::Ready(Outcome::Exists(s)),
        };
        match step {
            Poll::Ready(o) => return Ok(o),
            // LND went away mid-step (a restart): ask for the state again.
            Poll::NotYet(why) => {
                tracing::info!("LND at {} {why}; waiting for it again", cfg.rest_url);
                if !shutdown.sleep(cfg.poll).await {
                    return Err(Error::Interrupted);
                }
            }
        }
    }
}

/// Polls `/v1/state` until it says where the wallet stands, the deadline
/// passes or a signal comes.
async fn wait_for_state(
    lnd: &Lnd<'_>,
    deadline: Instant,
    shutdown: &mut Shutdown,
) -> Result<State, Error> {
    let mut last = String::new();
    loop {
        if shutdown.requested() {
            return Err(Error::Interrupted);
        }
        match lnd.state().await? {
            Poll::Ready(v) => return Ok(v),
            Poll::NotYet(why) => {
                if why != last {
                    tracing::info!(
                        "waiting for LND at {} to report its wallet state: {why}",
                        lnd.cfg.rest_url
                    );
                    last = why;
                }
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::Failed(anyhow!(
                "failed to get LND at {} to report its wallet state within {}s: {last}",
                lnd.cfg.rest_url,
                lnd.cfg.deadline.as_secs()
            )));
        }
        if !shutdown.sleep(lnd.cfg.poll.min(deadline - now)).await {
            return Err(Error::Interrupted);
        }
    }
}

/// Creates the wallet: the seed from the seed file, or a new one from
/// `/v1/genseed` written there first.
async fn create(lnd: &Lnd<'_>) -> Result<Poll<Outcome>, Error> {
    let cfg = lnd.cfg;
    let existing = match std::fs::metadata(&cfg.seed_file) {
        Ok(m) => m.len() > 0,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            return Err(Error::Failed(anyhow::Error::new(e).context(format!(
                "failed to inspect the seed file {}",
                cfg.seed_file.display()
            ))))
        }
    };
    if !existing {
        tracing::info!("generating the seed into {}", cfg.seed_file.display());
        let words = match lnd.genseed().await? {
            Poll::Ready(w) => w,
            Poll::NotYet(why) => return Ok(Poll::NotYet(why)),
        };
        let mut text = Zeroizing::new(words.join(" "));
        text.push('\n');
        write_atomic(&cfg.seed_file, text.as_bytes(), 0o400).with_context(|| {
            format!("failed to write the seed file {}", cfg.seed_file.display())
        })?;
    } else {
        tracing::info!(
            "creating the wallet from the seed already in {}, with a recovery rescan",
            cfg.seed_file.display()
        );
    }
    let seed = Secret::from_file(&cfg.seed_file)?;
    let words: Vec<&str> = seed
        .expose()
        .trim_end_matches(['\r', '\n'])
        .split(' ')
        .collect();
    if words.len() != SEED_WORDS || words.iter().any(|w| w.is_empty()) {
        return Err(Error::Failed(anyhow!(
            "failed to read the seed in {}: it must hold {SEED_WORDS} words separated by single spaces",
            cfg.seed_file.display()
        )));
    }
    let password = read_password(cfg)?;
    let mut body = serde_json::json!({
        "wallet_password": base64::engine::general_purpose::STANDARD.encode(password.expose()),
        "cipher_seed_mnemonic": words,
    });
    if existing && cfg.recovery_window > 0 {
        body["recovery_window"] = cfg.recovery_window.into();
    }
    let body = Zeroizing::new(serde_json::to_vec(&body).context("failed to encode initwallet")?);
    tracing::info!("creating the wallet");
    Ok(match lnd.post("/v1/initwallet", &body).await? {
        Answer::Ok(_) => {
            tracing::info!("wallet created; LND unlocks it from the password file from now on");
            Poll::Ready(Outcome::Created {
                from_existing_seed: existing,
            })
        }
        Answer::NotYet(why) => Poll::NotYet(why),
        Answer::Refused(text) => {
            return Err(Error::Failed(anyhow!(
                "failed to create the wallet: LND at {} refused /v1/initwallet: {text}",
                cfg.rest_url
            )))
        }
    })
}

async fn unlock(lnd: &Lnd<'_>) -> Result<Poll<Outcome>, Error> {
    let cfg = lnd.cfg;
    let password = read_password(cfg)?;
    let body = Zeroizing::new(
        serde_json::to_vec(&serde_json::json!({
            "wallet_password": base64::engine::general_purpose::STANDARD.encode(password.expose()),
        }))
        .context("failed to encode unlockwallet")?,
    );
    Ok(match lnd.post("/v1/unlockwallet", &body).await? {
        Answer::Ok(_) => Poll::Ready(Outcome::Unlocked),
        Answer::NotYet(why) => Poll::NotYet(why),
        Answer::Refused(text) if text.contains("invalid passphrase") => {
            return Err(Error::WrongPassword(format!(
                "failed to unlock the wallet: LND at {} says the password in {} is wrong ({text}); \
                 restore the wallet's own password there (docs/secrets.md)",
                cfg.rest_url,
                cfg.password_file.display()
            )))
        }
        Answer::Refused(text) => {
            return Err(Error::Failed(anyhow!(
                "failed to unlock the wallet: LND at {} refused /v1/unlockwallet: {text}",
                cfg.rest_url
            )))
        }
    })
}

fn read_password(cfg: &Config) -> Result<Secret, Error> {
    let p = Secret::from_file(&cfg.password_file)?;
    let trimmed = p.expose().trim_end_matches(['\r', '\n']);
    // LND refuses shorter ones (walletunlocker/service.go, `minPasswordLength`).
    if trimmed.len() < 8 {
        return Err(Error::Failed(anyhow!(
            "failed to use the wallet password in {}: LND needs at least 8 characters",
            cfg.password_file.display()
        )));
    }
    Ok(Secret::new(trimmed.to_owned()))
}

struct Lnd<'a> {
    cfg: &'a Config,
    http: &'a reqwest::Client,
}

/// An answer to a step.
enum Answer {
    Ok(Zeroizing<Vec<u8>>),
    /// May heal: no connection, dropped, 5xx without a message (a proxy),
    /// 503.
    NotYet(String),
    /// LND said no, with its message.
    Refused(String),
}

impl Lnd<'_> {
    async fn state(&self) -> Result<Poll<State>, Error> {
        let body = match self.get("/v1/state").await? {
            Answer::Ok(b) => b,
            Answer::NotYet(why) => return Ok(Poll::NotYet(why)),
            Answer::Refused(t) => return Ok(Poll::NotYet(format!("/v1/state answered {t}"))),
        };
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            anyhow!(
                "failed to read the answer of LND at {} to /v1/state: not JSON ({e})",
                self.cfg.rest_url
            )
        })?;
        // The zero value may be left out (protobuf JSON); LND sends it.
        Ok(
            match v
                .get("state")
                .and_then(|s| s.as_str())
                .unwrap_or("NON_EXISTING")
            {
                "NON_EXISTING" => Poll::Ready(State::NonExisting),
                "LOCKED" => Poll::Ready(State::Locked),
                "UNLOCKED" => Poll::Ready(State::Unlocked),
                "RPC_ACTIVE" => Poll::Ready(State::RpcActive),
                "SERVER_ACTIVE" => Poll::Ready(State::ServerActive),
                "WAITING_TO_START" => Poll::NotYet("state WAITING_TO_START".to_owned()),
                other => Poll::NotYet(format!("unknown state {other:?}")),
            },
        )
    }

    async fn genseed(&self) -> Result<Poll<Vec<String>>, Error> {
        let body = match self.get("/v1/genseed").await? {
            Answer::Ok(b) => b,
            Answer::NotYet(why) => return Ok(Poll::NotYet(why)),
            Answer::Refused(t) => {
                return Err(Error::Failed(anyhow!(
                    "failed to generate a seed: LND at {} refused /v1/genseed: {t}",
                    self.cfg.rest_url
                )))
            }
        };
        #[derive(serde::Deserialize)]
        struct GenSeed {
            cipher_seed_mnemonic: Vec<String>,
        }
        let g: GenSeed = serde_json::from_slice(&body).map_err(|e| {
            anyhow!(
                "failed to read the seed from LND at {}: the /v1/genseed answer has no cipher_seed_mnemonic list ({e})",
                self.cfg.rest_url
            )
        })?;
        if g.cipher_seed_mnemonic.len() != SEED_WORDS
            || g.cipher_seed_mnemonic
                .iter()
                .any(|w| w.is_empty() || w.contains(char::is_whitespace))
        {
            return Err(Error::Failed(anyhow!(
                "failed to read the seed from LND at {}: /v1/genseed gave {} words, not {SEED_WORDS} single words",
                self.cfg.rest_url,
                g.cipher_seed_mnemonic.len()
            )));
        }
        Ok(Poll::Ready(g.cipher_seed_mnemonic))
    }

    async fn get(&self, path: &str) -> Result<Answer, Error> {
        self.send(self.http.get(self.url(path))).await
    }

    async fn post(&self, path: &str, body: &[u8]) -> Result<Answer, Error> {
        self.send(
            self.http
                .post(self.url(path))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec()),
        )
        .await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.rest_url.trim_end_matches('/'))
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Answer, Error> {
        let mut resp = match req.timeout(self.cfg.request_timeout).send().await {
            Ok(r) => r,
            Err(e) => return transport(&e, &self.cfg.rest_url).map(Answer::NotYet),
        };
        let status = resp.status().as_u16();
        let mut body = Zeroizing::new(Vec::new());
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    if body.len() + c.len() > MAX_BODY {
                        return Err(Error::Failed(anyhow!(
                            "failed to read the answer of LND at {}: larger than {MAX_BODY} bytes",
                            self.cfg.rest_url
                        )));
                    }
                    body.extend_from_slice(&c);
                }
                Ok(None) => break,
                Err(e) => return transport(&e, &self.cfg.rest_url).map(Answer::NotYet),
            }
        }
        Ok(match status {
            200..=299 => Answer::Ok(body),
            _ => {
                let message = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned));
                match message {
                    Some(m) => Answer::Refused(format!("{status}: {}", short(&m))),
                    None if status >= 500 => Answer::NotYet(format!("HTTP {status}")),
                    None => Answer::Refused(format!("HTTP {status}")),
                }
            }
        })
    }
}

/// A transport failure: NotYet (why), or a certificate that is not LND's,
/// which waiting does not heal.
fn transport(e: &reqwest::Error, url: &str) -> Result<String, Error> {
    let mut chain = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(s) = cur {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        cur = s.source();
    }
    if chain.contains("certificate") || chain.contains("InvalidCertificate") {
        return Err(Error::Failed(anyhow!(
            "failed to connect to LND at {url}: its certificate is not the one in the certificate file ({chain})"
        )));
    }
    Ok(if e.is_timeout() {
        "no answer in time".to_owned()
    } else if e.is_connect() {
        "not accepting connections".to_owned()
    } else {
        "connection dropped".to_owned()
    })
}

fn short(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(300).collect()
}
