//! `kiln store migrate`: copies a model store (a directory or a bucket) into
//! another, keeping version ids, job records, kept datasets, the prediction log
//! and feedback, and the active record.
//!
//! Versions go first, each whole (its manifest last), then the records, then the
//! active record, so the destination starts serving only once everything it names
//! is there. Versions already present are skipped: an interrupted migration is
//! finished by running it again.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::config::StoreConfig;

#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    pub command: StoreCommand,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy a store into another, e.g. a directory into s3://bucket/prefix.
    Migrate(MigrateArgs),
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub common: super::Common,
    /// The store to copy: a directory or a URL.
    #[arg(long)]
    pub from: PathBuf,
    /// The store to copy into: a directory or a URL (s3://, gs://, az://).
    #[arg(long)]
    pub to: PathBuf,
}

/// Record folders a store holds besides versions (the active record is copied
/// last, on its own).
const FOLDERS: &[&str] = &[
    "jobs",
    "datasets",
    crate::monitoring::log::FOLDER,
    crate::monitoring::feedback::FOLDER,
];

pub fn run(args: StoreArgs) -> anyhow::Result<()> {
    match args.command {
        StoreCommand::Migrate(args) => migrate(&args),
    }
}

fn migrate(args: &MigrateArgs) -> anyhow::Result<()> {
    let config = args.common.load(None)?;
    crate::telemetry::init(&config.telemetry);
    let open = |dir: &PathBuf| {
        // A one-off copy: no weight cache.
        let store_config = StoreConfig {
            dir: dir.clone(),
            cache_max_mb: 0,
            ..config.store.clone()
        };
        store_config
            .open()
            .with_context(|| format!("opening the model store {}", dir.display()))
    };
    let (from, to) = (open(&args.from)?, open(&args.to)?);
    let (mut copied, mut present, mut records) = (0, 0, 0);
    for version in from.list()? {
        let files = from
            .version_files(&version)
            .with_context(|| format!("reading version {version}"))?;
        if to
            .put_version(&version, &files)
            .with_context(|| format!("writing version {version}"))?
        {
            copied += 1;
            println!("copied {version}");
        } else {
            present += 1;
        }
    }
    for folder in FOLDERS {
        for name in from.list_records(folder)? {
            if let Some(bytes) = from.read_record(&name)? {
                to.write_record(&name, &bytes)
                    .with_context(|| format!("writing {name}"))?;
                records += 1;
            }
        }
    }
    if let Some(bytes) = from.read_record("active")? {
        to.write_record("active", &bytes)
            .context("writing the active record")?;
    }
    let active = to.active()?.map_or("none".into(), |r| r.version);
    println!(
        "migrated {} to {}: {copied} versions copied, {present} already there, {records} records; active version: {active}",
        from.describe(),
        to.describe()
    );
    Ok(())
}
