//! lndconnect URIs for mobile wallets (Zeus, Zap).
//!
//! The format (LN-Zap/lndconnect, lnd_connect_uri.md):
//! `lndconnect://<host>:<port>?cert=<cert>&macaroon=<macaroon>`, where
//! `cert` is the DER of LND's TLS certificate and `macaroon` the binary
//! macaroon, both base64url (RFC 4648 §5) without padding. `cert` may be
//! left out when the host's certificate is signed by a CA the phone trusts;
//! LND's is self-signed, so it is always given here.
//!
//! The URI carries the macaroon: it is a credential. It is returned as a
//! [`Secret`] so that nothing logs it by accident.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chainstead_common::Secret;

/// `host:port` for a URI authority, IPv6 addresses in brackets.
pub fn authority(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The lndconnect URI for `host:port` with the given certificate (DER) and
/// macaroon (binary).
pub fn encode(host: &str, port: u16, cert_der: Option<&[u8]>, macaroon: &[u8]) -> Secret {
    let mut uri = format!("lndconnect://{}?", authority(host, port));
    if let Some(der) = cert_der {
        uri.push_str("cert=");
        uri.push_str(&URL_SAFE_NO_PAD.encode(der));
        uri.push('&');
    }
    uri.push_str("macaroon=");
    uri.push_str(&URL_SAFE_NO_PAD.encode(macaroon));
    Secret::new(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits a URI the way the spec describes it, failing on anything else.
    fn parse(uri: &str) -> (String, Vec<(String, Vec<u8>)>) {
        let rest = uri.strip_prefix("lndconnect://").expect("scheme");
        let (authority, query) = rest.split_once('?').expect("a query");
        let params = query
            .split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').expect("key=value");
                // base64url without padding: no '+', '/', '=' anywhere.
                assert!(
                    !v.contains(['+', '/', '=']),
                    "{k} is not unpadded base64url: {v}"
                );
                (k.to_owned(), URL_SAFE_NO_PAD.decode(v).expect("base64url"))
            })
            .collect();
        (authority.to_owned(), params)
    }

    #[test]
    fn matches_the_spec_and_round_trips() {
        // Bytes chosen so that standard base64 would use '+', '/' and '='.
        let cert = [0xfb, 0xff, 0xfe, 0x00, 0x3e, 0x3f, 0x01];
        let macaroon = [0x02, 0x01, 0x03, 0xfa, 0xbf, 0xff, 0x7e, 0x00];
        let uri = encode("192.168.1.10", 8080, Some(&cert), &macaroon);
        let (auth, params) = parse(uri.expose());
        assert_eq!(auth, "192.168.1.10:8080");
        assert_eq!(
            params,
            vec![
                ("cert".to_owned(), cert.to_vec()),
                ("macaroon".to_owned(), macaroon.to_vec())
            ]
        );
        assert!(
            uri.expose().contains("cert=-__-AD4_AQ&"),
            "{}",
            uri.expose()
        );
    }

    #[test]
    fn ipv6_hosts_are_bracketed_and_cert_is_optional() {
        let uri = encode("fd00::10", 10009, None, b"mac");
        assert_eq!(uri.expose(), "lndconnect://[fd00::10]:10009?macaroon=bWFj");
        let onion = encode(
            "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion",
            8080,
            None,
            b"m",
        );
        assert!(onion.expose().starts_with(
            "lndconnect://pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion:8080?"
        ));
    }

    #[test]
    fn the_uri_is_redacted_in_debug_output() {
        let uri = encode("10.0.0.1", 8080, None, b"secret-macaroon");
        assert!(!format!("{uri:?}").contains("macaroon="));
    }
}
