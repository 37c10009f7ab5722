//! chainstead-openbao: the one OpenBao (or Vault) client of the chainstead
//! tools. The secret loader reads and generates credentials with it; the
//! backup pusher's OpenBao target stores `channel.backup` with it.
//!
//! - [`client`]: configuration, the HTTP client, one capped request, the
//!   classification of failures into transient and fatal, retry until a
//!   deadline.
//! - [`auth`]: AppRole login or a token file, and revoking our own token.
//! - [`kv`]: KV v1 and v2 reads, writes (v2 with check-and-set), version
//!   history and mount version detection.
//!
//! # Why our own client and not `vaultrs`
//!
//! Both existed: the loader talked to the HTTP API with reqwest, the backup
//! target used vaultrs 0.7. Every call either needs is one JSON request to
//! a documented endpoint, and vaultrs (checked in its 0.7.4 source, the
//! version in Cargo.lock; 0.8.0 is the same in these points) costs more
//! than it saves:
//! - its settings builder fills the address, token, CA and TLS verification
//!   from `VAULT_ADDR`, `VAULT_TOKEN`, `VAULT_CACERT` and `VAULT_SKIP_VERIFY`
//!   when they are not set (src/client.rs, `default_address`,
//!   `default_token`, `default_verify`), so the environment of a unit could
//!   silently redirect a tool or switch verification off; here the manifest
//!   is the only input;
//! - it reads whole response bodies without a limit (through rustify), so a
//!   misbehaving server or proxy could make a boot-time oneshot allocate
//!   without bound; here bodies are capped at [`client::MAX_BODY`] and held
//!   in zeroizing buffers;
//! - its address setter panics on a malformed URL, which the backup target
//!   had to guard against by parsing first;
//! - it requires envelope fields RustyVault omits (`request_id`), which
//!   made the backup target do KV v1 by hand anyway;
//! - it has no call for `sys/internal/ui/mounts`, which the `bao` CLI uses
//!   to tell KV v1 from v2;
//! - its errors are one enum with the body's text, where a boot-time loader
//!   must tell "sealed, wait" from "denied, stop" ([`client::Failure`]).
//!
//! Response shapes follow the OpenBao API docs (openbao.org/api-docs) and
//! source (openbao/openbao): errors are `{"errors": [...]}`
//! (sdk/logical/response_util.go); RustyVault answers `{"error": "..."}`,
//! which is read for the message only.

pub mod auth;
pub mod client;
pub mod kv;

pub use auth::Auth;
pub use client::{error_text, Client, Config, Failure, Retry, MAX_BODY};
pub use kv::{Field, KvData, Metadata, Read};
