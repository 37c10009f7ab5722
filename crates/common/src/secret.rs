//! A secret value that cannot leak through formatting and is wiped on drop.

use std::fmt;

use zeroize::Zeroizing;

/// Holds secret text. `Debug` and `Display` print `<redacted>`, so a whole
/// configuration holding secrets can be logged; the memory is zeroized when
/// the value is dropped. The only way to the bytes is [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// Reads a secret from a file, trimming one trailing newline (editors and
    /// `echo` add one; credentials never end in a newline).
    pub fn from_file(path: &std::path::Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        let bytes = Zeroizing::new(
            std::fs::read(path)
                .with_context(|| format!("failed to read secret file {}", path.display()))?,
        );
        let text = std::str::from_utf8(&bytes).with_context(|| {
            format!(
                "failed to read secret file {}: it is not UTF-8",
                path.display()
            )
        })?;
        let text = text.strip_suffix('\n').unwrap_or(text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        Ok(Self::new(text.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_never_shows_the_value() {
        let s = Secret::new("hunter2-very-secret".into());
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Config {
            user: String,
            password: Secret,
        }
        let c = Config {
            user: "alice".into(),
            password: s.clone(),
        };
        let shown = format!("{c:?} {c:#?} {s} {s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"));
        assert_eq!(s.expose(), "hunter2-very-secret");
    }

    #[test]
    fn from_file_trims_one_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "pa ss\n").unwrap();
        assert_eq!(Secret::from_file(&p).unwrap().expose(), "pa ss");
        let err = Secret::from_file(&dir.path().join("missing")).unwrap_err();
        assert!(format!("{err:#}").contains("failed to read secret file"));
    }
}
