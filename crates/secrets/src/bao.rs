//! The loader's OpenBao client is the shared [`chainstead_openbao`] crate
//! (why it is our own client and not vaultrs is written there); this module
//! turns the manifest's `openbao` section into its configuration.

use std::time::{Duration, Instant};

use anyhow::Result;

pub use chainstead_openbao::{error_text, Client, Failure, Field, KvData, Read, MAX_BODY};

use crate::manifest::{Auth, OpenBao};

/// A client for `cfg` that waits out a sealed, standby or unreachable
/// OpenBao until `openbao.deadline_secs` after `started`.
pub fn connect(cfg: &OpenBao, started: Instant) -> Result<Client> {
    Client::new(&chainstead_openbao::Config {
        address: cfg.address.clone(),
        ca_file: cfg.ca_file.clone(),
        tls_server_name: cfg.tls_server_name.clone(),
        request_timeout: Duration::from_secs(cfg.request_timeout_secs),
        retry: chainstead_openbao::Retry::Until {
            deadline: started + Duration::from_secs(cfg.deadline_secs),
            secs: cfg.deadline_secs,
            setting: "openbao.deadline_secs".to_owned(),
        },
        user_agent: concat!("chainstead-secrets/", env!("CARGO_PKG_VERSION")).to_owned(),
    })
}

/// The manifest's `openbao.auth` as the client's.
pub fn auth(a: &Auth) -> chainstead_openbao::Auth {
    match a {
        Auth::AppRole(r) => chainstead_openbao::Auth::AppRole {
            mount: r.mount.clone(),
            role_id_file: r.role_id_file.clone(),
            secret_id_file: r.secret_id_file.clone(),
        },
        Auth::TokenFile(p) => chainstead_openbao::Auth::TokenFile(p.clone()),
    }
}
