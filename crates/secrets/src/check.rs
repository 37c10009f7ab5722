//! `check`: a table of every secret, where it comes from, where it goes and
//! whether it is there. Never a value.

use std::time::Instant;

use anyhow::Result;

use crate::load::{self, Problem};
use crate::manifest::Manifest;

/// Prints the table to stdout; returns whether every secret is available
/// (present, or absent with `generate` so `load` creates it).
pub async fn run(manifest: &Manifest, online: bool) -> Result<bool> {
    let started = Instant::now();
    let services = load::select(manifest, None)?;
    let wanted = load::wanted(manifest, &services);
    let values = if online || manifest.openbao.is_none() {
        Some(load::fetch(manifest, &wanted, started, false).await?)
    } else {
        None
    };
    let mut rows = vec![[
        "SERVICE".to_owned(),
        "SECRET".to_owned(),
        "SOURCE".to_owned(),
        "FILE".to_owned(),
        "MODE".to_owned(),
        "STATUS".to_owned(),
    ]];
    let mut all_ok = true;
    for (name, svc) in &services {
        let owners = load::plan(manifest, name, svc);
        if let Err(e) = &owners {
            all_ok = false;
            println!("{name}: {e:#}");
        }
        for (sname, spec) in &svc.secrets {
            let r = manifest.kv_ref(spec);
            let status = match values.as_ref().map(|v| v.get(&r)) {
                None => "not checked (use --online)".to_owned(),
                Some(Some(Ok(_))) => "present".to_owned(),
                Some(Some(Err(Problem::Missing(_)))) if spec.generate.is_some() => {
                    "absent: load generates it".to_owned()
                }
                Some(Some(Err(p))) => {
                    all_ok = false;
                    match p {
                        Problem::Missing(m) => format!("MISSING: {m}"),
                        Problem::Failed(m) => format!("ERROR: {m}"),
                    }
                }
                Some(None) => {
                    all_ok = false;
                    "ERROR: not fetched".to_owned()
                }
            };
            rows.push([
                (*name).to_owned(),
                sname.clone(),
                r.to_string(),
                manifest
                    .runtime_dir
                    .join(name)
                    .join(&spec.file)
                    .display()
                    .to_string(),
                spec.mode.clone(),
                status,
            ]);
        }
    }
    print_table(&rows);
    Ok(all_ok)
}

fn print_table(rows: &[[String; 6]]) {
    let mut widths = [0usize; 6];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        println!("{}", line.trim_end());
    }
}
