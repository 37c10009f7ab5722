//! `chainstead status`: one look at every enabled service, from what the
//! operator may read (docs/status.md).

pub mod lnd;
pub mod manifest;
pub mod probe;
pub mod render;
pub mod report;
pub mod units;

use std::path::{Path, PathBuf};

use anyhow::Context;
use chainstead_common::exit::Exit;

pub use manifest::Manifest;
pub use report::Report;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The manifest the NixOS module renders.
    #[arg(long, default_value = manifest::DEFAULT_PATH)]
    pub manifest: PathBuf,
    /// Print the report as JSON (schema in docs/status.md).
    #[arg(long)]
    pub json: bool,
    /// Only validate the manifest offline. Exit 0 valid, 2 invalid.
    #[arg(long, conflicts_with = "json")]
    pub validate: bool,
}

/// The exit status of a report: 0 all fine, 1 something needs attention.
pub fn exit_of(r: &Report) -> Exit {
    if r.ok {
        Exit::Success
    } else {
        Exit::Failure
    }
}

/// Collects the report with the given unit source.
pub fn report(m: &Manifest, units: &dyn units::UnitSource) -> anyhow::Result<Report> {
    report_with(m, units, chainstead_backup::state::load)
}

/// [`report`] with the given reader of the backup pusher's `state.json`.
pub fn report_with(
    m: &Manifest,
    units: &dyn units::UnitSource,
    read_state: probe::StateReader,
) -> anyhow::Result<Report> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    Ok(rt.block_on(probe::collect_with(m, units, read_state)))
}

pub fn run(args: Args) -> anyhow::Result<Exit> {
    if args.validate {
        return validate(&args.manifest);
    }
    let m = Manifest::load(&args.manifest)?;
    let r = report(&m, &units::Systemctl::default())?;
    if args.json {
        let text =
            serde_json::to_string_pretty(&r).context("failed to render the report as JSON")?;
        println!("{text}");
    } else {
        print!("{}", render::text(&r, render::Style::detect()));
    }
    Ok(exit_of(&r))
}

pub fn validate(path: &Path) -> anyhow::Result<Exit> {
    let m = Manifest::load(path)?;
    println!(
        "manifest {} is valid: {} services, {} tiers",
        path.display(),
        m.services.len(),
        m.tiers.len()
    );
    Ok(Exit::Success)
}
