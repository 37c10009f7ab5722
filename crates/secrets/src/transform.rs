//! What a value becomes in its file, and how a missing value is generated.

use anyhow::{Context, Result};
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use zeroize::Zeroizing;

use chainstead_common::Secret;

use crate::manifest::{Alphabet, Generate, Transform};

/// Renders the file content for `value`.
pub fn apply(transform: &Transform, value: &Secret) -> Result<Zeroizing<Vec<u8>>> {
    match transform {
        Transform::Raw => Ok(Zeroizing::new(value.expose().as_bytes().to_vec())),
        Transform::Rpcauth { user } => {
            let salt = hex::encode(rand::random::<[u8; 16]>());
            rpcauth_line(user, &salt, value)
        }
        Transform::Bcrypt { cost, prefix } => {
            // The crate refuses passwords over 72 bytes instead of
            // truncating them silently, which is what we want.
            let hash = bcrypt::hash_with_result(value.expose(), *cost)
                .context("failed to compute a bcrypt hash")?
                .format_for_version(bcrypt::Version::TwoB);
            let mut out = Zeroizing::new(Vec::with_capacity(prefix.len() + hash.len()));
            out.extend_from_slice(prefix.as_bytes());
            out.extend_from_slice(hash.as_bytes());
            Ok(out)
        }
    }
}

/// bitcoind's `rpcauth=` line, as Bitcoin Core's share/rpcauth/rpcauth.py
/// builds it (bitcoin/bitcoin, commit 021daedfa100): the salt is 16 random
/// bytes written as 32 lowercase hex characters, and the hash is
/// HMAC-SHA256 keyed with the salt *string* (its UTF-8 bytes, not the raw
/// bytes) over the password, in lowercase hex:
/// `rpcauth=<user>:<salt>$<hmac>`. bitcoind checks it the same way
/// (src/httprpc.cpp, `CheckUserAuthorized`).
pub fn rpcauth_line(user: &str, salt: &str, password: &Secret) -> Result<Zeroizing<Vec<u8>>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(salt.as_bytes())
        .context("failed to key HMAC-SHA256 with the rpcauth salt")?;
    mac.update(password.expose().as_bytes());
    let digest = hex::encode(mac.finalize().into_bytes());
    Ok(Zeroizing::new(
        format!("rpcauth={user}:{salt}${digest}\n").into_bytes(),
    ))
}

/// A fresh random secret from the thread-local CSPRNG (ChaCha, seeded and
/// reseeded from the OS), each character drawn uniformly from the alphabet.
pub fn generate(spec: &Generate) -> Secret {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const HEX: &[u8] = b"0123456789abcdef";
    const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let alphabet = match spec.alphabet {
        Alphabet::Alphanumeric => ALNUM,
        Alphabet::Hex => HEX,
        Alphabet::Base64url => B64URL,
    };
    let mut rng = rand::rng();
    let mut out = String::with_capacity(spec.length);
    for _ in 0..spec.length {
        let i = rng.random_range(0..alphabet.len());
        out.push(char::from(alphabet[i]));
    }
    Secret::new(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vector computed with python3 from rpcauth.py's `password_to_hmac`:
    /// `hmac.new(bytearray(salt,'utf-8'), bytearray(pw,'utf-8'),'SHA256').hexdigest()`
    /// with salt 000102030405060708090a0b0c0d0e0f and the password
    /// "correct horse battery staple".
    #[test]
    fn rpcauth_matches_bitcoin_cores_script() {
        let line = rpcauth_line(
            "lnd",
            "000102030405060708090a0b0c0d0e0f",
            &Secret::new("correct horse battery staple".into()),
        )
        .unwrap();
        assert_eq!(
            std::str::from_utf8(&line).unwrap(),
            "rpcauth=lnd:000102030405060708090a0b0c0d0e0f$b1b889fd39234cecae0a9cf3bdbdff934e4bab2ad0d738ac2449ed60cb7f98b0\n"
        );
    }

    #[test]
    fn rpcauth_salt_is_fresh_and_well_formed() {
        let pw = Secret::new("pw".into());
        let t = Transform::Rpcauth { user: "u".into() };
        let a = String::from_utf8(apply(&t, &pw).unwrap().to_vec()).unwrap();
        let b = String::from_utf8(apply(&t, &pw).unwrap().to_vec()).unwrap();
        assert_ne!(a, b);
        let rest = a.strip_prefix("rpcauth=u:").unwrap().trim_end();
        let (salt, mac) = rest.split_once('$').unwrap();
        assert_eq!(salt.len(), 32);
        assert_eq!(mac.len(), 64);
        assert!(salt
            .chars()
            .chain(mac.chars())
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        // Recomputing with the salt it chose gives the same line.
        let again = rpcauth_line("u", salt, &pw).unwrap();
        assert_eq!(again.as_slice(), a.as_bytes());
    }

    #[test]
    fn bcrypt_has_thunderhubs_shape_and_verifies() {
        let pw = Secret::new("hunter2-master".into());
        let t = Transform::Bcrypt {
            cost: 4,
            prefix: "thunderhub-".into(),
        };
        let out = String::from_utf8(apply(&t, &pw).unwrap().to_vec()).unwrap();
        let hash = out
            .strip_prefix("thunderhub-$2b$04$")
            .map(|_| &out["thunderhub-".len()..])
            .unwrap();
        assert_eq!(hash.len(), 60);
        assert!(bcrypt::verify("hunter2-master", hash).unwrap());
        assert!(!bcrypt::verify("wrong", hash).unwrap());
    }

    #[test]
    fn default_bcrypt_cost_is_12() {
        let pw = Secret::new("x".repeat(10));
        let t: Transform =
            serde_json::from_str(r#"{"bcrypt": {"prefix": "thunderhub-"}}"#).unwrap();
        let out = String::from_utf8(apply(&t, &pw).unwrap().to_vec()).unwrap();
        assert!(out.starts_with("thunderhub-$2b$12$"), "{out}");
    }

    #[test]
    fn raw_is_the_value() {
        let pw = Secret::new("a b\nc".into());
        assert_eq!(apply(&Transform::Raw, &pw).unwrap().as_slice(), b"a b\nc");
    }

    #[test]
    fn generated_values_follow_the_alphabet() {
        for (alphabet, ok) in [
            (
                Alphabet::Alphanumeric,
                &(|c: char| c.is_ascii_alphanumeric()) as &dyn Fn(char) -> bool,
            ),
            (Alphabet::Hex, &|c: char| {
                c.is_ascii_hexdigit() && !c.is_ascii_uppercase()
            }),
            (Alphabet::Base64url, &|c: char| {
                c.is_ascii_alphanumeric() || c == '-' || c == '_'
            }),
        ] {
            let g = Generate {
                length: 40,
                alphabet,
            };
            let a = generate(&g);
            assert_eq!(a.expose().len(), 40);
            assert!(a.expose().chars().all(ok), "{alphabet:?}");
            assert_ne!(a, generate(&g));
        }
    }
}
