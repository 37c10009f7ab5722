//! Prometheus text exposition for node_exporter's textfile collector.
//! The file is replaced atomically, so the collector never reads half of it.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

/// Collects metric families and renders them in the text format.
#[derive(Default, Debug)]
pub struct Textfile {
    out: String,
}

impl Textfile {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a metric family with its HELP and TYPE lines.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        self
    }

    /// Adds one sample; `labels` are name/value pairs, values escaped.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.out, "{k}=\"{v}\"");
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", format_value(value));
        self
    }

    /// A family with a single unlabelled sample.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) -> &mut Self {
        self.family(name, "gauge", help).sample(name, &[], value)
    }

    pub fn render(&self) -> &str {
        &self.out
    }

    /// Writes the rendered text to `path` atomically, world-readable (0644),
    /// as node_exporter runs as its own user.
    pub fn write(&self, path: &Path) -> Result<()> {
        crate::fs::write_atomic(path, self.out.as_bytes(), 0o644)
    }
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_exposition_format() {
        let mut t = Textfile::new();
        t.gauge("x_ready", "Whether it is ready.", 1.0);
        t.family("x_height", "gauge", "Height.").sample(
            "x_height",
            &[("backend", "bit\"coind")],
            812345.0,
        );
        let text = t.render();
        assert!(text.contains("# TYPE x_ready gauge\nx_ready 1\n"), "{text}");
        assert!(
            text.contains("x_height{backend=\"bit\\\"coind\"} 812345\n"),
            "{text}"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.prom");
        t.write(&p).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), text);
    }
}
