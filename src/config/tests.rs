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
