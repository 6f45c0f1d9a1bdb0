//! The instance parser: shapes, first-element decisions, and refusals.

use super::*;

fn parse(json: &str) -> Result<Instances, String> {
    serde_json::from_str(json).map_err(|e| e.to_string())
}

#[test]
fn flat_and_nested_instances_parse_row_major() {
    let i = parse("[[1, 2.5, -3], [4, 5, 6e0]]").unwrap();
    assert_eq!(i.values, [1.0, 2.5, -3.0, 4.0, 5.0, 6.0]);
    assert_eq!((i.rows, i.width), (2, 3));
    assert_eq!(i.shape, [3]);
    let i = parse("[[[1, 2], [3, 4], [5, 6]]]").unwrap();
    assert_eq!(i.values, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!((i.rows, i.width), (1, 6));
    assert_eq!(i.shape, [3, 2]);
    let i = parse("[[[[1, 2]], [[3, 4]]], [[[5, 6]], [[7, 8]]]]").unwrap();
    assert_eq!(i.values, (1..=8).map(|v| v as f32).collect::<Vec<_>>());
    assert_eq!(i.shape, [2, 1, 2]);
    assert_eq!(i.width, 4);
    let i = parse("[[[[[1]]]]]").unwrap();
    assert_eq!(i.shape, [1, 1, 1, 1]);
    let i = parse("[]").unwrap();
    assert_eq!(i.rows, 0);
    let i = parse("[[]]").unwrap();
    assert_eq!((i.rows, i.width, i.shape.as_slice()), (1, 0, &[0][..]));
}

#[test]
fn the_values_are_what_serde_json_reads_as_f32() {
    let text = "[[0.1, 1e-50, 3.4028235e38, -0.0, 123456789012, 18446744073709551615, -7, 0.30000000000000004], [9007199254740993, 1, 2, 3, 4, 5, 6, 7]]";
    let ours = parse(text).unwrap().values;
    let theirs: Vec<Vec<f32>> = serde_json::from_str(text).unwrap();
    assert_eq!(ours, theirs.concat());
}

#[test]
fn ragged_deep_and_wrong_instances_are_named() {
    for (json, says) in [
        (
            "[[1, 2], [1]]",
            "instance 1 has shape [1], instance 0 has [2]",
        ),
        ("[[[1, 2], [3]]]", "element 1 has 1 elements"),
        (
            "[[[1, 2], [3, 4, 5]]]",
            "element 1 has more than 2 elements",
        ),
        ("[[[1, 2], 3]]", "element 1 is ragged"),
        ("[[1, [2]]]", "a ragged instance"),
        ("[[[[1], [2]], [[1], 2]]]", "element 1 is ragged"),
        ("[1, 2]", "instance 0 is a number"),
        ("[[[[[[1]]]]]]", "nested more than 4 levels deep"),
        ("[[\"a\"]]", "a number, or an array of numbers"),
        ("[[1, null]]", "invalid type: null"),
        ("[[1, 1e39]]", ""),
        ("{}", "an array of instances"),
    ] {
        match parse(json) {
            Err(e) => assert!(e.contains(says), "{json}: {e}"),
            // 1e39 overflows f32 to infinity: refused later by the input check.
            Ok(i) => assert!(json.contains("1e39") && i.values[1].is_infinite()),
        }
    }
}
