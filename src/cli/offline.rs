//! `kiln train` and `kiln predict`: the trainer and a stored version, without a
//! server. Same pipeline, same store, same promotion rules as `POST /train`.

use std::io::Write;

use super::progress::Progress;
use super::{PredictArgs, TrainArgs};
use crate::model::NetConfig;
use crate::training::budget::Budget;
use crate::training::data::delimiter;
use crate::training::input::{DataSource, JobInput};
use crate::training::spec::{ModelChoice, TrainSpec};
use crate::training::{evaluate, run};
use anyhow::{Context, bail};

pub fn train(args: TrainArgs) -> anyhow::Result<()> {
    let config = args.offline.load()?;
    crate::telemetry::init(&config.telemetry);
    let mut spec: TrainSpec = match &args.recipe {
        Some(path) => read_recipe(path)?,
        None => TrainSpec::default(),
    };
    if let Some(target) = &args.target {
        spec.target = target.clone();
    }
    if let Some(epochs) = args.epochs {
        spec.epochs = Some(epochs);
    }
    if let Some(task) = args.task {
        spec.task = Some(task);
    }
    if let Some(promote) = args.promote {
        spec.promote = promote;
    }
    if let Some(trials) = args.search {
        spec.search = Some(crate::training::spec::SearchSpec { trials });
    }
    spec.validate().map_err(anyhow::Error::msg)?;
    let model_file = match &spec.model {
        ModelChoice::File(name) => Some(NetConfig::named(&config.training.config_dir, name)?),
        ModelChoice::Mlp(_) | ModelChoice::Sequential(_) => None,
    };
    let input = JobInput {
        spec,
        data: DataSource::File(args.data.clone()),
        model_file,
        windows: Vec::new(),
        newest: None,
        delimiter: args.delimiter,
    };
    let budget = Budget::from(&config.training);
    // Checked once before the device is made, so a bad recipe fails at once.
    let prepared = input.prepare(&budget)?;
    let rows = &prepared.rows;
    let metric = evaluate::metric_name(prepared.data.task);
    eprintln!(
        "{} rows ({} dropped for missing or non-finite values): {} train, {} validation; task {} ({})",
        rows.input,
        rows.dropped,
        rows.train,
        rows.validation,
        prepared.data.task.name(),
        prepared.data.task_reason
    );
    let sized = prepared.spec.clone();
    drop(prepared);

    let device = config.training_device()?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.training.threads)
        .build()?;
    let store = config.store.open()?;
    let source = format!(
        "kiln train: {}",
        args.data
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    );
    let mut progress = Progress::new(sized.epochs(), metric, args.quiet);
    let started = std::time::Instant::now();
    // The same job code the server's worker processes run.
    let result = pool.install(|| {
        run::run(
            &input,
            "cli",
            source,
            &store,
            &device,
            &budget,
            &mut progress,
        )
    });
    progress.finish();
    let done = match result {
        Ok(done) => done,
        Err(crate::training::error::TrainError::Cancelled) if progress.interrupted() => {
            let at = progress.last.as_ref().map_or(0, |r| r.epoch);
            eprintln!(
                "interrupted (Ctrl-C) after epoch {at} of {} and {:.1} s; no version was written",
                sized.epochs(),
                started.elapsed().as_secs_f64()
            );
            std::process::exit(130);
        }
        Err(e) => return Err(e.into()),
    };
    if done.promote {
        store.set_active(&done.version)?;
    }
    let stopped = if done.stopped_early {
        format!(
            "stopped early: no better validation loss for {} epochs",
            input.spec.early_stopping_patience
        )
    } else {
        "ran every epoch".into()
    };
    println!(
        "version {} written to {} ({})",
        done.version,
        store.version_path(&done.version),
        if done.promote {
            "now active"
        } else {
            "not promoted"
        },
    );
    println!(
        "  {} epochs of {} in {:.1} s, {stopped}; best epoch {}: validation {metric} {:.4}; {:.0} training rows/s",
        done.epochs_run,
        sized.epochs(),
        started.elapsed().as_secs_f64(),
        done.best.epoch,
        done.best.val_metric,
        done.samples_per_second,
    );
    for t in &done.trials {
        println!(
            "  trial {}{}: lr {:.2e}, weight decay {:.1e}, width x{}: {}",
            t.trial,
            if t.chosen { " (kept)" } else { "" },
            t.lr,
            t.weight_decay,
            t.width,
            match (&t.val_metric, &t.error) {
                (Some(m), _) => format!("validation {metric} {m:.4} after {} epochs", t.epochs_run),
                (None, Some(e)) => format!("failed: {e}"),
                (None, None) => "not run".into(),
            }
        );
    }
    for d in &done.defaults {
        println!("  chose {} = {}: {}", d.field, d.value, d.reason);
    }
    println!("  promotion: {}", done.promotion);
    Ok(())
}

/// A training recipe file; a server config passed by mistake says so.
fn read_recipe(path: &std::path::Path) -> anyhow::Result<TrainSpec> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let server_sections = ["[server]", "[batching]", "[store]", "[model]", "[training]"];
    if server_sections
        .iter()
        .any(|s| text.lines().any(|l| l.trim() == *s))
    {
        bail!(
            "{} is a server configuration, not a training recipe: pass it as --server-config, and the recipe (e.g. config/seed-train.toml) as --recipe",
            path.display()
        );
    }
    toml::from_str(&text)
        .with_context(|| format!("{} is not a valid training recipe", path.display()))
}

pub fn predict(args: PredictArgs) -> anyhow::Result<()> {
    // `kiln predict ... | head`: a reader that stops early is not an error.
    match write_predictions(args) {
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        other => other,
    }
}

fn write_predictions(args: PredictArgs) -> anyhow::Result<()> {
    let config = args.offline.load()?;
    crate::telemetry::init(&config.telemetry);
    let store = config.store.open()?;
    let version = match args.version {
        Some(v) => v,
        None => match store.active()? {
            Some(r) => r.version,
            None => bail!(
                "the store {} has no active version",
                config.store.dir.display()
            ),
        },
    };
    let model = store.load(&version, &config.serving_device()?)?;
    let text = std::fs::read_to_string(&args.data)
        .with_context(|| format!("reading {}", args.data.display()))?;
    let delimiter = args.delimiter.unwrap_or_else(|| delimiter::sniff(&text));
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers()?.iter().map(str::to_owned).collect();
    // Columns by the names the model was trained on, else every column but `target`.
    let columns: Vec<usize> = match &model.manifest().feature_names {
        Some(names) => names
            .iter()
            .map(|n| {
                header.iter().position(|h| h == n).with_context(|| {
                    format!(
                        "the data has no column {n:?}, which version {version} needs; its columns are {header:?}{}",
                        crate::training::data::delimiter_hint(&header)
                    )
                })
            })
            .collect::<anyhow::Result<_>>()?,
        None => (0..header.len())
            .filter(|&i| header[i] != "target")
            .collect(),
    };
    if columns.len() != model.input_width() {
        bail!(
            "version {version} takes {} features; the data has {} usable columns",
            model.input_width(),
            columns.len()
        );
    }
    let mut out = std::io::stdout().lock();
    let mut rows = Vec::new();
    let mut n = 0;
    let flush = |rows: &mut Vec<f32>, n: &mut usize, out: &mut dyn Write| -> anyhow::Result<()> {
        if *n > 0 {
            let values = model.forward(std::mem::take(rows), *n);
            for row in values.chunks_exact(model.output_width()) {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string(&model.interpret(row, None))?
                )?;
            }
            *n = 0;
        }
        Ok(())
    };
    for (i, record) in reader.records().enumerate() {
        let record = record?;
        for &c in &columns {
            let cell = record.get(c).unwrap_or("");
            let v: f32 = delimiter::number(cell, delimiter)
                .filter(|v: &f32| v.is_finite())
                .with_context(|| {
                    format!(
                        "row {}: column {:?}: {cell:?} is not a finite number",
                        i + 1,
                        header[c]
                    )
                })?;
            rows.push(v);
        }
        n += 1;
        if n == 1024 {
            flush(&mut rows, &mut n, &mut out)?;
        }
    }
    flush(&mut rows, &mut n, &mut out)?;
    Ok(())
}
