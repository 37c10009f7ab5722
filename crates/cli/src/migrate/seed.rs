//! nix-bitcoin's seed file, in either of the two forms it wrote, read into
//! the one form chainstead's wallet-init reads (`chainstead-secrets
//! lnd-wallet`: the words separated by single spaces, one newline).
//!
//! - From v0.0.69 (commit a4a5c72, 2022-03): `lndinit gen-seed >
//!   lnd-seed-mnemonic`, whose raw output is the words joined by single
//!   spaces with no newline (lndinit cmd_gen_seed.go).
//! - Before: `curl …/v1/genseed | jq -c '.cipher_seed_mnemonic'`, a JSON
//!   array of strings on one line. A node set up then kept that file
//!   through later upgrades: the seed is made only when the file is absent.

use anyhow::{bail, Context, Result};
use zeroize::Zeroizing;

/// Words of an aezeed mnemonic (lnd aezeed/cipherseed.go, `NumMnemonicWords`).
pub const WORDS: usize = 24;

/// The seed as chainstead stores it, from the text of nix-bitcoin's file.
/// The error never contains the words.
pub fn normalise(text: &str) -> Result<Zeroizing<String>> {
    let trimmed = text.trim();
    let words: Vec<String> = if trimmed.starts_with('[') {
        serde_json::from_str::<Vec<String>>(trimmed)
            .ok()
            .context("the seed file starts with `[` but is not a JSON array of words")?
    } else {
        trimmed.split_whitespace().map(str::to_owned).collect()
    };
    let words = Zeroizing::new(words);
    if words.len() != WORDS {
        bail!(
            "the seed file holds {} words, not {WORDS}: check it by eye (`wc -w`) before going on",
            words.len()
        );
    }
    if let Some(i) = words
        .iter()
        .position(|w| w.is_empty() || !w.chars().all(|c| c.is_ascii_lowercase()))
    {
        bail!(
            "word {} of the seed file is not a lower-case word: check the file by eye",
            i + 1
        );
    }
    let mut out = Zeroizing::new(words.join(" "));
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words() -> Vec<String> {
        (0..WORDS)
            .map(|i| format!("word{}", "abcdefghijklmnopqrstuvwxyz".as_bytes()[i] as char))
            .collect()
    }

    #[test]
    fn lndinit_raw_output_is_kept_with_a_newline() {
        let raw = words().join(" ");
        assert_eq!(*normalise(&raw).unwrap(), format!("{raw}\n"));
    }

    #[test]
    fn the_older_json_array_gives_the_same_text() {
        let json = serde_json::to_string(&words()).unwrap();
        assert_eq!(
            *normalise(&json).unwrap(),
            format!("{}\n", words().join(" "))
        );
    }

    #[test]
    fn extra_whitespace_is_collapsed() {
        let spaced = format!("  {}\n\n", words().join("  \n "));
        assert_eq!(
            *normalise(&spaced).unwrap(),
            format!("{}\n", words().join(" "))
        );
    }

    #[test]
    fn a_short_seed_is_refused_without_echoing_it() {
        let short = words()[..12].join(" ");
        let err = normalise(&short).unwrap_err().to_string();
        assert!(err.contains("12 words"), "{err}");
        assert!(
            !err.contains("worda"),
            "the error must not echo the seed: {err}"
        );
    }

    #[test]
    fn a_broken_array_or_odd_word_is_refused() {
        assert!(normalise("[\"a\", ").is_err());
        let mut w = words();
        w[3] = "W0rd".into();
        let err = normalise(&w.join(" ")).unwrap_err().to_string();
        assert!(err.contains("word 4"), "{err}");
        assert!(!err.contains("W0rd"), "{err}");
    }
}
