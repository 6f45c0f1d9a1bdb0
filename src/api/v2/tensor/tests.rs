use super::*;

fn input(shape: Vec<i64>, datatype: &str, data: &str) -> InferInput {
    serde_json::from_str(&format!(
        r#"{{"name": "input", "shape": {}, "datatype": "{datatype}", "data": {data}}}"#,
        serde_json::to_string(&shape).unwrap()
    ))
    .unwrap()
}

#[test]
fn flat_and_nested_data_read_the_same() {
    let flat = rows(&input(vec![2, 2], "FP32", "[1, 2, 3, 4]"), &[2], None).unwrap();
    let nested = rows(&input(vec![2, 2], "FP32", "[[1, 2], [3, 4]]"), &[2], None).unwrap();
    assert_eq!(flat, nested);
    assert_eq!(
        flat,
        Rows {
            values: vec![1.0, 2.0, 3.0, 4.0],
            n: 2
        }
    );
    let ints = rows(&input(vec![1, 2], "INT64", "[[7, -8]]"), &[2], None).unwrap();
    assert_eq!(ints.values, [7.0, -8.0]);
}

#[test]
fn bad_tensors_are_refused_with_a_reason() {
    let err = |shape: Vec<i64>, dt: &str, data: &str| {
        rows(&input(shape, dt, data), &[2], None)
            .unwrap_err()
            .to_string()
    };
    assert!(err(vec![2, 2], "FP32", "[1, 2, 3]").contains("holds 4 elements"));
    assert!(err(vec![1, 2], "BYTES", "[1, 2]").contains("not supported"));
    assert!(err(vec![1, 2], "FP16", "[1, 2]").contains("not supported"));
    assert!(err(vec![0, 2], "FP32", "[]").contains("not positive"));
    assert!(err(vec![-1, 2], "FP32", "[1, 2]").contains("not positive"));
    assert!(err(vec![1, 3], "FP32", "[1, 2, 3]").contains("expects 2"));
    assert!(err(vec![1_000_000_000_000, 2], "FP32", "[1, 2]").contains("too large"));
    assert!(err(vec![1, 2], "INT32", "[1.5, 2]").contains("integers"));
    assert!(err(vec![1, 2, 3], "FP32", "[1, 2]").contains("must be"));
    assert!(
        serde_json::from_str::<InferInput>(
            r#"{"name":"input","shape":[1,2],"datatype":"FP32","data":["a","b"]}"#
        )
        .is_err()
    );
}

#[test]
fn instances_may_keep_their_shape() {
    let image = [1, 2, 2];
    let data = "[1, 2, 3, 4, 5, 6, 7, 8]";
    let a = rows(&input(vec![2, 1, 2, 2], "FP32", data), &image, None).unwrap();
    let b = rows(&input(vec![2, 4], "FP32", data), &image, None).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.n, 2);
    let one = rows(&input(vec![1, 2, 2], "FP32", "[1, 2, 3, 4]"), &image, None).unwrap();
    assert_eq!(one.n, 1);
    let err = rows(&input(vec![2, 2, 2], "FP32", data), &image, None).unwrap_err();
    assert!(
        matches!(&err, TensorError::InstanceShape { width: 4, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("[N, 1, 2, 2] or [N, 4]"), "{err}");
}

#[test]
fn binary_data_decodes_little_endian() {
    let mut i = input(vec![1, 2], "FP32", "null");
    i.data = None;
    let bytes: Vec<u8> = [1.5f32, -2.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_eq!(rows(&i, &[2], Some(&bytes)).unwrap().values, [1.5, -2.0]);
    assert_eq!(
        rows(&i, &[2], Some(&bytes[..4])).unwrap_err(),
        TensorError::BinaryLength {
            input: "input".into(),
            shape: vec![1, 2],
            datatype: "FP32".into(),
            needed: 8,
            got: 4
        }
    );
    assert_eq!(Datatype::Uint(2).decode(&[1, 1]), [257.0]);
}

#[test]
fn client_text_is_quoted_in_part() {
    let long = "Q".repeat(1000);
    let err = rows(&input(vec![1, 2], &long, "[1, 2]"), &[2], None).unwrap_err();
    assert_eq!(err, TensorError::Datatype(long));
    let text = err.to_string();
    assert!(
        text.len() < 200 && text.contains("(1000 bytes in all)"),
        "{text}"
    );
}
