//! Logging in: AppRole (`POST /v1/auth/<mount>/login`) or a token read from
//! a file; and revoking a token we made ourselves.

use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use reqwest::Method;
use zeroize::Zeroizing;

use chainstead_common::Secret;

use crate::client::{error_text, redact, Client, Failure};

/// How to get a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// AppRole login; both files are placed on the host out of band.
    AppRole {
        /// Where the AppRole auth method is mounted (`approle` by default).
        mount: String,
        role_id_file: PathBuf,
        secret_id_file: PathBuf,
    },
    /// A file holding a token (for operators and tests); never revoked by us.
    TokenFile(PathBuf),
}

impl Client {
    /// Logs in. AppRole: `POST /v1/auth/<mount>/login`
    /// with `role_id` and `secret_id`, the token is `auth.client_token`
    /// (openbao.org/api-docs/auth/approle, "Login with AppRole").
    pub async fn login(&mut self, auth: &Auth) -> Result<()> {
        match auth {
            Auth::TokenFile(path) => {
                let token = Secret::from_file(path)?;
                if token.is_empty() {
                    anyhow::bail!(
                        "failed to read OpenBao token file {}: it is empty",
                        path.display()
                    );
                }
                self.token = Some(token);
                self.owns_token = false;
            }
            Auth::AppRole {
                mount,
                role_id_file,
                secret_id_file,
            } => {
                let role_id = Secret::from_file(role_id_file)?;
                let secret_id = Secret::from_file(secret_id_file)?;
                let body = Zeroizing::new(serde_json::to_vec(&serde_json::json!({
                    "role_id": role_id.expose(),
                    "secret_id": secret_id.expose(),
                }))?);
                let path = format!("auth/{mount}/login");
                let what = format!(
                    "log in to OpenBao at {} with AppRole ({path})",
                    self.address
                );
                let token = self
                    .retry(&what, || async {
                        let r = self.request(Method::POST, &path, Some(&body)).await?;
                        match r.status {
                            200 => parse_login(&r.body).map_err(Failure::Fatal),
                            // OpenBao's AppRole answers "invalid role or secret ID"
                            // (400, ErrInvalidCredentials), and in one branch
                            // `invalid secret_id "<the secret_id>"`
                            // (builtin/credential/approle/path_login.go): the
                            // text is shown with both credentials blanked out.
                            400 | 401 | 403 => Err(Failure::Fatal(anyhow!(
                                "OpenBao refused the AppRole login ({}: {}): the role_id in {} or the secret_id in {} is wrong, \
                                 or the secret_id expired, was used up (secret_id_num_uses) or is bound to other CIDRs; \
                                 issue a new one with `bao write -f auth/{}/role/<role>/secret-id`",
                                r.status,
                                redact(
                                    &error_text(redact(&String::from_utf8_lossy(&r.body), &[&role_id, &secret_id]).as_bytes()),
                                    &[&role_id, &secret_id]
                                ),
                                role_id_file.display(),
                                secret_id_file.display(),
                                mount
                            ))),
                            // Any other answer is classified like every other
                            // request, but its body may echo the credentials too.
                            s => {
                                let body = redact(&String::from_utf8_lossy(&r.body), &[&role_id, &secret_id]);
                                Err(self.classify(s, body.as_bytes(), &path))
                            }
                        }
                    })
                    .await?;
                self.token = Some(token);
                self.owns_token = true;
            }
        }
        Ok(())
    }

    /// Revokes the token we logged in with (`POST /v1/auth/token/revoke-self`,
    /// 204). A token from a token file belongs to the operator and is kept.
    /// Failing to revoke is logged, not fatal: the token expires by its TTL.
    pub async fn revoke(&mut self) {
        if !self.owns_token || self.token.is_none() {
            return;
        }
        // One attempt, bounded: revocation must not hold up the boot.
        match self
            .request(Method::POST, "auth/token/revoke-self", None)
            .await
        {
            Ok(r) if r.status == 204 || r.status == 200 => {
                tracing::debug!("revoked the login token");
            }
            Ok(r) => tracing::warn!(
                "failed to revoke the login token at {} ({}: {}); it expires by its TTL",
                self.address,
                r.status,
                error_text(&r.body)
            ),
            Err(Failure::Transient(s)) => tracing::warn!(
                "failed to revoke the login token: OpenBao at {} is {s}; it expires by its TTL",
                self.address
            ),
            Err(Failure::Fatal(e)) => tracing::warn!(
                "failed to revoke the login token at {}: {e:#}; it expires by its TTL",
                self.address
            ),
        }
        self.token = None;
    }
}

fn parse_login(body: &[u8]) -> Result<Secret> {
    #[derive(serde::Deserialize)]
    struct Login {
        auth: Option<LoginAuth>,
    }
    #[derive(serde::Deserialize)]
    struct LoginAuth {
        client_token: Secret,
    }
    let login: Login = serde_json::from_slice(body)
        .context("failed to parse the AppRole login answer: not the JSON OpenBao sends")?;
    match login.auth {
        Some(a) if !a.client_token.is_empty() => Ok(a.client_token),
        _ => anyhow::bail!("failed to read auth.client_token from the AppRole login answer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_answer_gives_the_token() {
        let t = parse_login(br#"{"auth":{"client_token":"s.abc","policies":["p"]}}"#).unwrap();
        assert_eq!(t.expose(), "s.abc");
        for bad in [
            &br#"{"auth":null}"#[..],
            br#"{"auth":{"client_token":""}}"#,
            b"{",
        ] {
            assert!(parse_login(bad).is_err());
        }
    }

    #[tokio::test]
    async fn an_empty_token_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, "\n").unwrap();
        let mut c = Client::new(&crate::client::tests::config("http://127.0.0.1:1")).unwrap();
        let e = c.login(&Auth::TokenFile(f)).await.unwrap_err().to_string();
        assert!(e.contains("it is empty"), "{e}");
    }
}
