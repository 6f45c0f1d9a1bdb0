use super::*;

fn seq(task: Task, toml_layers: &str, input_shape: &str) -> Result<NetConfig, NetConfigError> {
    let text = format!(
        "task = \"{}\"\n[architecture]\nkind = \"sequential\"\ninput_shape = {input_shape}\n{toml_layers}",
        match task {
            Task::Regression => "regression",
            Task::Classification => "classification",
        }
    );
    NetConfig::parse(&text, false)
}

#[test]
fn seed_config_parses() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/models/seed-mlp.toml");
    let cfg = NetConfig::from_file(&path).unwrap();
    assert_eq!(cfg.task, Task::Regression);
    assert_eq!(
        cfg.architecture,
        Architecture::Mlp(MlpConfig {
            input: 1000,
            hidden: vec![500, 100],
            output: 1,
            activation: ActivationKind::Relu
        })
    );
}

#[test]
fn mlp_forward_shapes() {
    let cfg = NetConfig {
        task: Task::Classification,
        architecture: Architecture::Mlp(MlpConfig {
            input: 4,
            hidden: vec![8],
            output: 3,
            activation: ActivationKind::Tanh,
        }),
        preprocess: None,
    };
    let device = Device::flex();
    let net = cfg.init_default(&device);
    let out = net.forward(Tensor::zeros([5, 4], &device));
    assert_eq!(out.dims(), [5, 3]);
}

#[test]
fn rejects_degenerate_mlps() {
    let mut cfg = NetConfig {
        task: Task::Classification,
        architecture: Architecture::Mlp(MlpConfig {
            input: 4,
            hidden: vec![0],
            output: 3,
            activation: ActivationKind::Relu,
        }),
        preprocess: None,
    };
    assert!(cfg.validate().is_err());
    cfg.architecture = Architecture::Mlp(MlpConfig {
        input: 65_536,
        hidden: vec![65_536],
        output: 3,
        activation: ActivationKind::Relu,
    });
    assert!(cfg.validate().unwrap_err().0.contains("parameters"));
}

/// Every layer family builds and runs with the shapes the plan predicts.
#[test]
fn every_layer_kind_runs_with_the_planned_shapes() {
    let cases = [
        (
            "[1, 8, 8]",
            r#"layers = [
                {type = "conv2d", in_channels = 1, out_channels = 4, kernel_size = 3, padding = 1},
                {type = "batch_norm2d", num_features = 4},
                {type = "relu"},
                {type = "max_pool2d", kernel_size = 2},
                {type = "avg_pool2d", kernel_size = [2, 1], stride = 1},
                {type = "adaptive_avg_pool2d", output_size = [2, 2]},
                {type = "dropout", p = 0.25},
                {type = "flatten"},
                {type = "linear", in_features = 16, out_features = 3},
                {type = "log_softmax", dim = 1},
            ]"#,
            Task::Classification,
            3,
        ),
        (
            "[2, 10]",
            r#"layers = [
                {type = "conv1d", in_channels = 2, out_channels = 3, kernel_size = 4, padding = "same", dilation = 1},
                {type = "batch_norm1d", num_features = 3},
                {type = "max_pool1d", kernel_size = 3, stride = 2, padding = 1, ceil_mode = true},
                {type = "avg_pool1d", kernel_size = 2},
                {type = "adaptive_avg_pool1d", output_size = 2},
                {type = "gelu"},
                {type = "flatten", start_dim = 1, end_dim = -1},
                {type = "linear", in_features = 6, out_features = 1},
                {type = "sigmoid"},
            ]"#,
            Task::Regression,
            1,
        ),
        (
            "[6, 3]",
            r#"layers = [
                {type = "lstm", input_size = 3, hidden_size = 4, num_layers = 2, bidirectional = true, dropout = 0.1},
                {type = "gru", input_size = 8, hidden_size = 5},
                {type = "layer_norm", normalized_shape = 5},
                {type = "select", index = -1},
                {type = "tanh"},
                {type = "linear", in_features = 5, out_features = 2},
                {type = "softmax"},
            ]"#,
            Task::Classification,
            2,
        ),
        (
            "[5]",
            r#"layers = [
                {type = "embedding", num_embeddings = 7, embedding_dim = 8},
                {type = "positional_encoding"},
                {type = "transformer_encoder_layer", d_model = 8, nhead = 2, dim_feedforward = 16, norm_first = true, activation = "gelu"},
                {type = "leaky_relu", negative_slope = 0.2},
                {type = "flatten"},
            ]"#,
            Task::Regression,
            40,
        ),
        (
            "[5, 3]",
            r#"layers = [
                {type = "transpose", dim0 = 1, dim1 = 2},
                {type = "conv1d", in_channels = 3, out_channels = 4, kernel_size = 3, padding = "same"},
                {type = "transpose", dim0 = -1, dim1 = -2},
                {type = "select", index = 0},
                {type = "linear", in_features = 4, out_features = 1},
            ]"#,
            Task::Regression,
            1,
        ),
    ];
    let device = Device::flex();
    for (shape, layers, task, out) in cases {
        let cfg = seq(task, layers, shape).unwrap_or_else(|e| panic!("{shape}: {e}"));
        assert_eq!(cfg.output_width(), out, "{shape}");
        let net = cfg.init(&Initializer::XavierUniform { gain: 1.0 }, &device);
        let x = Tensor::<2>::ones([3, cfg.input_width()], &device);
        let y = net.forward(x.clone());
        assert_eq!(y.dims(), [3, out], "{shape}");
        // The same on an autodiff device (training mode).
        let ad = device.clone().autodiff();
        let net = cfg.init(&Initializer::XavierUniform { gain: 1.0 }, &ad);
        let y = net.forward(x.to_device(&ad));
        assert_eq!(y.dims(), [3, out], "{shape}");
    }
}

#[test]
fn bad_stacks_are_errors_naming_the_layer_and_shapes() {
    let bad = |layers: &str, shape: &str| seq(Task::Regression, layers, shape).unwrap_err().0;
    let e = bad(
        r#"layers = [{type = "conv3d", in_channels = 1}]"#,
        "[1, 4, 4]",
    );
    assert!(e.contains("unknown variant `conv3d`"), "{e}");
    let e = bad(
        r#"layers = [{type = "linear", in_features = 4, out_feature = 2}]"#,
        "[4]",
    );
    assert!(
        e.contains("layers[0] (linear)") && e.contains("out_feature"),
        "{e}"
    );
    let e = bad(
        r#"layers = [{type = "flatten"}, {type = "linear", in_features = 10, out_features = 2}]"#,
        "[1, 3, 3]",
    );
    assert!(
        e.contains("layer 1 (linear)") && e.contains("in_features = 10") && e.contains("[9]"),
        "{e}"
    );
    let e = bad(
        r#"layers = [{type = "conv2d", in_channels = 3, out_channels = 4, kernel_size = 3, groups = 2}]"#,
        "[3, 8, 8]",
    );
    assert!(e.contains("divisible by groups"), "{e}");
    let e = bad(
        r#"layers = [{type = "batch_norm2d", num_features = 0}]"#,
        "[3, 8, 8]",
    );
    assert!(e.contains("num_features"), "{e}");
    let e = bad(
        r#"layers = [{type = "conv2d", in_channels = 1, out_channels = 2, kernel_size = 5}]"#,
        "[1, 3, 3]",
    );
    assert!(e.contains("does not fit"), "{e}");
    let e = bad(
        r#"layers = [{type = "linear", in_features = 4, out_features = 65536}, {type = "linear", in_features = 65536, out_features = 65536}]"#,
        "[4]",
    );
    assert!(e.contains("more than"), "{e}");
    let e = bad(
        r#"layers = [{type = "relu"}, {type = "embedding", num_embeddings = 3, embedding_dim = 2}]"#,
        "[4]",
    );
    assert!(e.contains("first layer"), "{e}");
    let e = bad(
        r#"layers = [{type = "linear", name = "fc", in_features = 4, out_features = 4}, {type = "linear", name = "fc", in_features = 4, out_features = 1}]"#,
        "[4]",
    );
    assert!(e.contains("also named"), "{e}");
    let e = bad(
        r#"layers = [{type = "layer_norm", normalized_shape = 4, eps = 1e-50}]"#,
        "[4]",
    );
    assert!(e.contains("eps must be between 1e-12 and 1"), "{e}");
    let e = bad(
        r#"layers = [{type = "conv1d", in_channels = 1, out_channels = 1, kernel_size = 2, stride = 0}]"#,
        "[1, 4]",
    );
    assert!(e.contains("stride must be between 1"), "{e}");
    let e = bad(r#"layers = [{type = "dropout", p = 1.5}]"#, "[4]");
    assert!(e.contains("[0, 1)"), "{e}");
    let e = bad(r#"layers = [{type = "relu"}]"#, "[0, 4]");
    assert!(e.contains("input_shape"), "{e}");
    let e = seq(
        Task::Classification,
        r#"layers = [{type = "conv1d", in_channels = 1, out_channels = 2, kernel_size = 1}]"#,
        "[1, 4]",
    )
    .unwrap_err()
    .0;
    assert!(e.contains("one vector of class scores"), "{e}");
}

#[test]
fn ids_must_be_integers_in_range() {
    let cfg = seq(
        Task::Regression,
        r#"layers = [{type = "embedding", num_embeddings = 5, embedding_dim = 2}, {type = "flatten"}]"#,
        "[3]",
    )
    .unwrap();
    assert!(cfg.check_values(&[0.0, 4.0, 2.0]).is_ok());
    assert_eq!(cfg.check_values(&[0.0, 5.0, 2.0]).unwrap_err().index, 1);
    assert_eq!(cfg.check_values(&[0.0, 1.0, 0.5]).unwrap_err().index, 2);
    assert_eq!(cfg.check_values(&[-1.0, 1.0, 0.0]).unwrap_err().index, 0);
}

#[test]
fn preprocess_must_fit_the_inputs() {
    let base = r#"layers = [{type = "linear", in_features = 3, out_features = 2}]"#;
    let ok = seq(
        Task::Classification,
        &format!("{base}\n[preprocess]\nmean = 0.5\nstd = [1, 2, 3]\nlabels = [\"a\", \"b\"]"),
        "[3]",
    )
    .unwrap();
    let stats = ok
        .preprocess_stats(ok.preprocess.as_ref().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(stats.std, [1.0, 2.0, 3.0]);
    assert_eq!(stats.mean, [0.5; 3]);
    let e = seq(
        Task::Classification,
        &format!("{base}\n[preprocess]\nstd = [1, 2]"),
        "[3]",
    )
    .unwrap_err()
    .0;
    assert!(e.contains("preprocess.std has 2 values"), "{e}");
    let e = seq(
        Task::Classification,
        &format!("{base}\n[preprocess]\nlabels = [\"a\"]"),
        "[3]",
    )
    .unwrap_err()
    .0;
    assert!(e.contains("1 names for 2 classes"), "{e}");
}

#[test]
fn duplicate_labels_are_refused_by_name() {
    let base = r#"layers = [{type = "linear", in_features = 3, out_features = 3}]"#;
    let e = seq(
        Task::Classification,
        &format!("{base}\n[preprocess]\nlabels = [\"a\", \"a\", \"b\"]"),
        "[3]",
    )
    .unwrap_err()
    .0;
    assert!(e.contains(r#"preprocess.labels gives "a" twice"#), "{e}");
    // A stored manifest with them does not validate either (it never loads).
    let mut cfg = seq(Task::Classification, base, "[3]").unwrap();
    cfg.preprocess = None;
    let mut manifest = crate::model::Manifest::new(cfg, "test");
    manifest.labels = Some(vec!["x".into(), "y".into(), "x".into()]);
    let e = manifest.validate().unwrap_err().0;
    assert!(e.contains(r#"label "x" is given twice"#), "{e}");
}

#[test]
fn layer_entries_round_trip_through_json() {
    let cfg = seq(
        Task::Regression,
        r#"layers = [{type = "linear", name = "fc1", in_features = 3, out_features = 2}, {type = "relu"}]"#,
        "[3]",
    )
    .unwrap();
    let json = serde_json::to_string(&cfg).unwrap();
    assert!(json.contains(r#""name":"fc1""#), "{json}");
    let back: NetConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, cfg);
}

#[test]
fn wide_layers_bound_the_rows_of_one_pass() {
    // Attention scores: 8 heads x 2048 x 2048 values per instance is too many.
    let e = seq(
        Task::Regression,
        r#"layers = [{type = "transformer_encoder_layer", d_model = 8, nhead = 8, dim_feedforward = 8}]"#,
        "[2048, 8]",
    )
    .unwrap_err()
    .0;
    assert!(e.contains("values per instance"), "{e}");
    // A conv whose output holds 2^22 values per instance: 16 rows per pass.
    let cfg = seq(
        Task::Regression,
        r#"layers = [{type = "conv2d", in_channels = 1, out_channels = 64, kernel_size = 1}, {type = "flatten"}]"#,
        "[1, 256, 256]",
    )
    .unwrap();
    assert_eq!(cfg.widest(), 1 << 22);
    assert_eq!(cfg.max_pass_rows(), 16);
}
