use super::*;

#[test]
fn names_and_objects_both_parse() {
    let s: TrainSpec = serde_json::from_str(
        r#"{"optimizer": "sgd", "init": {"kind": "normal", "std": 0.5}, "model": {"hidden": [8, 4]}}"#,
    )
    .unwrap();
    assert_eq!(s.optimizer, OptimizerSpec::Sgd { lr: 0.01 });
    assert_eq!(
        s.init,
        InitSpec::Normal {
            mean: 0.0,
            std: 0.5
        }
    );
    assert_eq!(
        s.model,
        ModelChoice::Mlp(MlpShape {
            hidden: vec![8, 4],
            ..Default::default()
        })
    );
    let s: TrainSpec =
        serde_json::from_str(r#"{"model": "seed-mlp", "optimizer": {"kind": "adamw", "lr": 0.1}}"#)
            .unwrap();
    assert_eq!(s.model, ModelChoice::File("seed-mlp".into()));
    assert_eq!(s.optimizer.lr(), 0.1);
}

#[test]
fn unknown_fields_and_bad_values_are_errors() {
    assert!(serde_json::from_str::<TrainSpec>(r#"{"epoch": 3}"#).is_err());
    assert!(serde_json::from_str::<TrainSpec>(r#"{"optimizer": "lbfgs"}"#).is_err());
    assert!(
        serde_json::from_str::<TrainSpec>(r#"{"optimizer": {"kind": "adam", "lrr": 1}}"#).is_err()
    );
    let bad = |json: &str| {
        serde_json::from_str::<TrainSpec>(json)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string()
    };
    assert!(bad(r#"{"epochs": 0}"#).contains("epochs"));
    assert!(bad(r#"{"batch_size": 100000000}"#).contains("batch_size"));
    assert!(bad(r#"{"validation_split": 1.0}"#).contains("validation_split"));
    assert!(bad(r#"{"model": "../../etc/passwd"}"#).contains("model"));
    assert!(bad(r#"{"task": "regression", "loss": "bce"}"#).contains("loss"));
}

#[test]
fn the_seed_recipe_parses() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/seed-train.toml");
    let s: TrainSpec = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    s.validate().unwrap();
    assert_eq!(s.model, ModelChoice::File("seed-mlp".into()));
    assert_eq!(
        s.init,
        InitSpec::Normal {
            mean: 0.0,
            std: 0.1
        }
    );
    assert_eq!(s.epochs, Some(100));
    assert_eq!(s.loss, Some(LossKind::Mse));
}

#[test]
fn an_inline_layer_stack_parses_and_round_trips() {
    let s: TrainSpec = serde_json::from_str(
        r#"{"model": {"kind": "sequential", "input_shape": [4], "layers": [
            {"type": "linear", "in_features": 4, "out_features": 3}]}}"#,
    )
    .unwrap();
    s.validate().unwrap();
    let ModelChoice::Sequential(cfg) = &s.model else {
        panic!("{:?}", s.model)
    };
    assert_eq!(cfg.input_shape, [4]);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["model"]["kind"], "sequential");
    let back: TrainSpec = serde_json::from_value(json).unwrap();
    assert_eq!(back, s);
    let bad: TrainSpec = serde_json::from_str(
        r#"{"model": {"kind": "sequential", "input_shape": [4], "layers": [
            {"type": "linear", "in_features": 5, "out_features": 3}]}}"#,
    )
    .unwrap();
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("in_features = 5")
    );
}
