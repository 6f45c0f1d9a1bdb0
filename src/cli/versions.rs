//! `kiln promote VERSION` and `kiln rollback`: the active version of a store, set
//! from the command line as `POST /models/{version}/promote` and
//! `POST /models/rollback` set it. A running server (every replica) picks the new
//! record up from the store and swaps to it.

use anyhow::{Context, bail};
use clap::Args;

#[derive(Debug, Args)]
pub struct PromoteArgs {
    #[command(flatten)]
    pub offline: super::Offline,
    /// The version to serve, e.g. `v2`.
    pub version: String,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub offline: super::Offline,
}

/// Makes `args.version` active once it loads.
pub fn promote(args: PromoteArgs) -> anyhow::Result<()> {
    let config = args.offline.load()?;
    crate::telemetry::init(&config.telemetry);
    let store = config.store.open()?;
    let active = store.active()?.map(|r| r.version);
    if active.as_deref() == Some(args.version.as_str()) {
        println!("{} is already the active version", args.version);
        return Ok(());
    }
    store
        .load(&args.version, &config.serving_device()?)
        .with_context(|| format!("version {} cannot be served", args.version))?;
    let record = store.set_active(&args.version)?;
    println!(
        "{} is now the active version{}",
        record.version,
        match &record.previous {
            Some(p) => format!(" (was {p}; kiln rollback returns to it)"),
            None => String::new(),
        }
    );
    Ok(())
}

/// Makes the previous active version active again.
pub fn rollback(args: RollbackArgs) -> anyhow::Result<()> {
    let config = args.offline.load()?;
    crate::telemetry::init(&config.telemetry);
    let store = config.store.open()?;
    let Some(record) = store.active()? else {
        bail!("the store has no active version to roll back from");
    };
    let Some(previous) = record.previous else {
        bail!(
            "{} has no previous version to roll back to (kiln promote VERSION picks any)",
            record.version
        );
    };
    store
        .load(&previous, &config.serving_device()?)
        .with_context(|| format!("the previous version {previous} cannot be served"))?;
    store.set_active(&previous)?;
    println!(
        "{previous} is now the active version (was {})",
        record.version
    );
    Ok(())
}
