use super::*;

#[test]
fn shipped_default_file_matches_built_in_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG_FILE);
    let from_file: Config = Figment::from(Toml::file(&path)).extract().unwrap();
    assert_eq!(from_file, Config::default());
}

#[test]
fn validation_names_the_key() {
    let mut c = Config::default();
    c.batching.max_batch_size = 0;
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("batching.max_batch_size"), "{err}");

    let mut c = Config::default();
    c.batching.queue_capacity = 10;
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("batching.queue_capacity"), "{err}");
}

/// Each model's row bound: unset, half the shared queue and never below one
/// request's most rows; set, it must lie between the two.
#[test]
fn the_model_queue_bound_defaults_within_the_shared_one() {
    let c = Config::default();
    assert_eq!(c.batching.model_queue_rows(), 1024);
    let mut c = Config::default();
    c.batching.queue_capacity = 4;
    c.batching.max_request_rows = 4;
    c.validate().unwrap();
    assert_eq!(c.batching.model_queue_rows(), 4);
    for bad in [0, 1023, 2049, usize::MAX] {
        let mut c = Config::default();
        c.batching.model_queue_capacity = Some(bad);
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("batching.model_queue_capacity"), "{err}");
    }
    let mut c = Config::default();
    c.batching.model_queue_capacity = Some(1500);
    c.validate().unwrap();
    assert_eq!(c.batching.model_queue_rows(), 1500);
}

/// `[models.<name>]`: its batching keys and any monitoring keys replace the
/// process's for that model alone; a bad name, an unknown key or a value out of
/// range is a start error naming `models.<name>.<key>`.
#[test]
fn a_models_section_overrides_its_own_keys_and_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let load = |text: &str| {
        let path = dir.path().join("kiln.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(Some(&path), &Default::default())
    };
    let config = load(
        "[monitoring]\nsample_rate = 0.5\n\
         [models.fraud.batching]\nmax_request_rows = 8\nmodel_queue_capacity = 64\ndefault_timeout_ms = 250\n\
         max_batch_size = 16\nmax_queue_delay_ms = 0.5\n\
         [models.fraud.monitoring]\ndrift_threshold = 0.4\n\
         [models.kiln.monitoring]\nsample_rate = 0.0\n\
         [models.fraud.retrain]\nenabled = true\nmin_labelled = 40\n",
    )
    .unwrap();
    let fraud = config.for_model("fraud").unwrap();
    assert_eq!(fraud.batching.max_request_rows, 8);
    assert_eq!(fraud.batching.model_queue_rows(), 64);
    assert_eq!(fraud.batching.default_timeout_ms, 250);
    assert_eq!(fraud.batching.max_batch_size, 16);
    assert_eq!(fraud.batching.max_queue_delay_ms, 0.5);
    assert_eq!(fraud.monitoring.drift_threshold, 0.4);
    assert_eq!(
        fraud.monitoring.sample_rate, 0.5,
        "the process's, unchanged"
    );
    assert!(fraud.models.is_empty());
    assert!(fraud.retrain.enabled && !config.retrain.enabled);
    assert_eq!(fraud.retrain.min_labelled, 40);
    assert_eq!(
        config.for_model("kiln").unwrap().monitoring.sample_rate,
        0.0
    );
    let other = config.for_model("churn").unwrap();
    assert_eq!(other.batching, config.batching);
    assert_eq!(other.monitoring, config.monitoring);

    for (text, named) in [
        (
            "[models.v12.batching]\nmax_request_rows = 8\n",
            "models.v12",
        ),
        (
            "[models.fraud.monitoring]\nsampel_rate = 0.1\n",
            "models.fraud.monitoring",
        ),
        (
            "[models.fraud.batching]\nmax_batch_size = 65\n",
            "models.fraud.batching.max_batch_size: must be at most batching.max_batch_size (64)",
        ),
        (
            "[models.fraud.batching]\nmax_queue_delay_ms = -1\n",
            "models.fraud.batching.max_queue_delay_ms",
        ),
        (
            "[models.fraud.batching]\nmax_batch_sise = 8\n",
            "max_batch_sise",
        ),
        (
            "[models.fraud.batching]\nmax_queue_delay_ms = nan\n",
            "models.fraud.batching.max_queue_delay_ms",
        ),
        (
            "[models.fraud.batching]\nmax_request_rows = 1e39\n",
            "max_request_rows",
        ),
        (
            "[models.fraud.batching]\ndefault_timeout_ms = -1\n",
            "default_timeout_ms",
        ),
        (
            "[models.fraud.batching]\ndefault_timeout_ms = 0\n",
            "models.fraud.batching.default_timeout_ms",
        ),
        (
            "[models.fraud.retrain]\nmin_accuracy = 1e39\n",
            "models.fraud.retrain.min_accuracy",
        ),
        (
            "[models.fraud.batching]\nmodel_queue_capacity = 0\n",
            "models.fraud.batching.model_queue_capacity",
        ),
        (
            "[models.fraud.monitoring]\nsample_rate = 1e39\n",
            "models.fraud.monitoring.sample_rate",
        ),
    ] {
        let err = load(text).unwrap_err().to_string();
        assert!(err.contains(named), "{text}: {err}");
    }
}
