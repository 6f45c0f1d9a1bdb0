//! The command line: `kiln serve`, `kiln import`, `kiln train`, `kiln predict`.
//!
//! Each subcommand loads the one [`Config`] (file, environment, flags) and calls
//! into the library; errors at this level are `anyhow` with context, printed once.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

mod error;
mod offline;
mod progress;
mod store;
mod versions;

use error::{ListenError, TaskError};

use crate::config::{Config, Overrides};
use crate::model::{NetConfig, import};

/// kiln: an inference server with an embedded trainer.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve predictions over HTTP from the model store's active version.
    Serve(ServeArgs),
    /// Import PyTorch weights (`torch.save` .pth/.pt, or safetensors) as a new model
    /// version, for the network a model config describes.
    Import(ImportArgs),
    /// Train a model offline from a CSV file and write it as a new version.
    Train(TrainArgs),
    /// Print predictions (JSON lines) of a stored version for the rows of a CSV file.
    Predict(PredictArgs),
    /// Make a stored version the active one (a running server swaps to it).
    Promote(versions::PromoteArgs),
    /// Make the previous active version active again.
    Rollback(versions::RollbackArgs),
    /// Manage model stores: `kiln store migrate --from DIR --to s3://bucket/prefix`.
    Store(store::StoreArgs),
    /// Exit 0 if the local server answers `GET /health/live` (for container
    /// HEALTHCHECKs: the runtime image has no curl).
    Healthcheck(HealthcheckArgs),
    /// Run one training job for a server (started by the server itself).
    #[command(hide = true)]
    Worker(crate::training::jobs::process::WorkerArgs),
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    #[command(flatten)]
    pub common: Common,
    /// The address to ask; default: server.listen (0.0.0.0 becomes 127.0.0.1).
    #[arg(long)]
    pub addr: Option<SocketAddr>,
}

/// Options the server-side subcommands share.
#[derive(Debug, Args)]
pub struct Common {
    /// Configuration file (TOML); default: config/default.toml when present.
    #[arg(long, env = "KILN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Model store: a directory, or s3://, gs://, az:// URL (overrides store.dir).
    #[arg(long)]
    pub store: Option<PathBuf>,
}

/// Options of the offline subcommands (`--config` there is the recipe's alias).
#[derive(Debug, Args)]
pub struct Offline {
    /// kiln's configuration file (backend, directories); default: config/default.toml.
    #[arg(long, env = "KILN_CONFIG")]
    pub server_config: Option<PathBuf>,
    /// Model store: a directory, or s3://, gs://, az:// URL (overrides store.dir).
    #[arg(long)]
    pub store: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub offline: Offline,
    /// The training data: CSV with a header row.
    #[arg(long)]
    pub data: PathBuf,
    /// The training recipe (TOML), e.g. config/seed-train.toml; default: the
    /// defaults. The flags below override its fields.
    #[arg(long, visible_alias = "config")]
    pub recipe: Option<PathBuf>,
    /// The label column (default `target`).
    #[arg(long)]
    pub target: Option<String>,
    /// Epochs to train at most (early stopping may end sooner).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// `classification` or `regression`; default: inferred from the labels.
    #[arg(long, value_parser = parse_task)]
    pub task: Option<crate::model::Task>,
    /// Train this many trials (the recipe, then drawn learning rates, weight
    /// decays and widths) and keep the best on the validation rows.
    #[arg(long)]
    pub search: Option<usize>,
    /// `always`, `if_better` or `never`: whether the new version becomes active
    /// (overrides the recipe's `promote`; default `if_better`).
    #[arg(long, value_parser = parse_promote)]
    pub promote: Option<crate::training::spec::Promote>,
    /// The CSV delimiter: `,`, `;` or `tab`; default: sniffed from the header (a
    /// semicolon or tab file may write decimal commas).
    #[arg(long, value_parser = crate::training::data::delimiter::parse)]
    pub delimiter: Option<u8>,
    /// No progress bar or lines.
    #[arg(long)]
    pub quiet: bool,
}

/// `host:port` with an IP or a host name (`localhost:8080`: its first address).
fn parse_listen(text: &str) -> Result<SocketAddr, ListenError> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let mut addrs = text.to_socket_addrs().map_err(ListenError::Resolve)?;
    addrs
        .next()
        .ok_or_else(|| ListenError::NoAddress(text.to_string()))
}

fn parse_promote(text: &str) -> Result<crate::training::spec::Promote, String> {
    serde_json::from_value(serde_json::Value::String(text.into()))
        .map_err(|_| format!("{text:?}: expected always, if_better or never"))
}

fn parse_task(text: &str) -> Result<crate::model::Task, TaskError> {
    match text {
        "classification" => Ok(crate::model::Task::Classification),
        "regression" => Ok(crate::model::Task::Regression),
        _ => Err(TaskError {
            given: text.to_string(),
        }),
    }
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    #[command(flatten)]
    pub offline: Offline,
    /// The rows: CSV with a header row (a `target` column, if any, is ignored).
    #[arg(long)]
    pub data: PathBuf,
    /// The version to use; default: the active one.
    #[arg(long)]
    pub version: Option<String>,
    /// The CSV delimiter: `,`, `;` or `tab`; default: sniffed from the header (a
    /// semicolon or tab file may write decimal commas).
    #[arg(long, value_parser = crate::training::data::delimiter::parse)]
    pub delimiter: Option<u8>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub common: Common,
    /// Address to listen on (overrides server.listen), e.g. 0.0.0.0:8080 or
    /// localhost:8080.
    #[arg(long, value_parser = parse_listen)]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub common: Common,
    /// The weights: a PyTorch state_dict saved by `torch.save` (.pth, .pt) or as
    /// safetensors, in PyTorch's names and layouts.
    #[arg(long)]
    pub weights: PathBuf,
    /// The network the weights belong to, e.g. config/models/seed-mlp.toml.
    #[arg(long)]
    pub model_config: PathBuf,
    /// Write the version without making it the active one.
    #[arg(long)]
    pub no_activate: bool,
}

impl Common {
    fn load(&self, listen: Option<SocketAddr>) -> anyhow::Result<Config> {
        let overrides = Overrides {
            listen,
            store: self.store.clone(),
        };
        Ok(Config::load(self.config.as_deref(), &overrides)?)
    }
}

impl Offline {
    fn load(&self) -> anyhow::Result<Config> {
        let overrides = Overrides {
            listen: None,
            store: self.store.clone(),
        };
        Ok(Config::load(self.server_config.as_deref(), &overrides)?)
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Import(args) => import(args),
        Command::Train(args) => offline::train(args),
        Command::Predict(args) => offline::predict(args),
        Command::Promote(args) => versions::promote(args),
        Command::Rollback(args) => versions::rollback(args),
        Command::Healthcheck(args) => healthcheck(args),
        Command::Store(args) => store::run(args),
        Command::Worker(args) => std::process::exit(crate::training::jobs::process::main(&args)),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.common.load(args.listen)?;
    config.check_exposure(config.server.listen)?;
    crate::telemetry::init(&config.telemetry);
    let file = match &args.common.config {
        Some(path) => path.display().to_string(),
        None if std::path::Path::new(crate::config::DEFAULT_CONFIG_FILE).exists() => {
            crate::config::DEFAULT_CONFIG_FILE.to_string()
        }
        None => "none (built-in defaults)".to_string(),
    };
    tracing::info!(
        config_file = file.as_str(),
        store = %config.store.dir.display(),
        data_dir = %config.training.data_dir.display(),
        version = env!("CARGO_PKG_VERSION"),
        "starting kiln"
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    crate::memory::limit_arenas(cores);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kiln-io")
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("binding {}", config.server.listen))?;
        crate::app::run(config, listener, crate::app::shutdown_signal()).await
    });
    // `run` has joined every thread and task kiln started; what may be left is a
    // blocking call of a request that `server.shutdown_timeout_ms` cut off.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    result
}

fn import(args: ImportArgs) -> anyhow::Result<()> {
    let config = args.common.load(None)?;
    crate::telemetry::init(&config.telemetry);
    let net_config = NetConfig::from_file(&args.model_config)?;
    let device = config.serving_device()?;
    let (manifest, net) = import::import(&args.weights, &net_config, "import", &device)?;
    let store = config.store.open()?;
    let version = store.create_version(&manifest, &net)?;
    if args.no_activate {
        println!(
            "imported {} as version {version} (not active)",
            args.weights.display()
        );
    } else {
        store.set_active(&version)?;
        println!(
            "imported {} as version {version} (now active)",
            args.weights.display()
        );
    }
    Ok(())
}

fn healthcheck(args: HealthcheckArgs) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let mut addr = match args.addr {
        Some(a) => a,
        None => args.common.load(None)?.server.listen,
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let timeout = std::time::Duration::from_secs(2);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(b"GET /health/live HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head)?;
    let status = String::from_utf8_lossy(&head[..n]);
    if status.starts_with("HTTP/1.0 200") || status.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        anyhow::bail!("{addr} answered {:?}", status.lines().next().unwrap_or(""))
    }
}
