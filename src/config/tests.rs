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
