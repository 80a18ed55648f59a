use proptest::prelude::*;

use super::*;

fn unit(v: &[f32]) -> Vec<f32> {
    let mut v = v.to_vec();
    assert!(normalize(&mut v));
    v
}

fn group(n: u8) -> GroupId {
    [n; 32]
}

#[test]
fn search_stays_in_its_group_and_ranks_by_similarity() {
    let mut index = Index::new(3, 10);
    index.insert(group(1), "a", "first", &unit(&[1.0, 0.0, 0.0])).unwrap();
    index.insert(group(1), "b", "second", &unit(&[1.0, 0.2, 0.0])).unwrap();
    index.insert(group(2), "c", "other scope", &unit(&[1.0, 0.0, 0.0])).unwrap();
    let found = index.search(&group(1), &unit(&[1.0, 0.1, 0.0]), 0.9);
    let keys: Vec<&str> = found.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys.len(), 2);
    assert!(found[0].similarity >= found[1].similarity);
    assert!(!keys.contains(&"c"), "another group is never searched");
    assert!(index.search(&group(3), &unit(&[1.0, 0.0, 0.0]), 0.0).is_empty());
    assert!(index.search(&group(1), &unit(&[0.0, 1.0, 0.0]), 0.9).is_empty());
    assert_eq!(index.insert(group(1), "bad", "", &[1.0, 0.0]), None, "a vector of another width");
}

#[test]
fn the_oldest_go_first_and_replacing_renews() {
    let mut index = Index::new(2, 2);
    let v = unit(&[1.0, 1.0]);
    assert_eq!(index.insert(group(1), "a", "", &v), Some(vec![]));
    assert_eq!(index.insert(group(1), "b", "", &v), Some(vec![]));
    assert_eq!(index.insert(group(1), "a", "", &v), Some(vec![]), "replacing a key adds nothing");
    assert_eq!(index.insert(group(2), "c", "", &v), Some(vec!["b".to_string()]));
    assert!(index.contains("a") && index.contains("c") && !index.contains("b"));
    assert_eq!(index.len(), 2);
    assert!(index.remove("a") && !index.remove("a"));
    assert_eq!((index.group_len(&group(1)), index.group_len(&group(2))), (0, 1));
}

#[test]
fn normalize_refuses_zero_and_non_finite() {
    assert!(!normalize(&mut [0.0, 0.0]));
    assert!(!normalize(&mut [f32::NAN, 1.0]));
    let mut v = [3.0, 4.0];
    assert!(normalize(&mut v));
    assert!((dot(&v, &v) - 1.0).abs() < 1e-6);
    let long: Vec<f32> = (0..19).map(|i| i as f32).collect();
    let expected: f32 = long.iter().map(|x| x * x).sum();
    assert!((dot(&long, &long) - expected).abs() < 1e-3);
}

#[derive(Clone, Debug)]
enum Op {
    Insert { key: u8, group: u8, vector: [i8; 3] },
    Remove { key: u8 },
    Search { group: u8, vector: [i8; 3], threshold: i8 },
}

fn small_vector() -> impl Strategy<Value = [i8; 3]> {
    prop::array::uniform3(-3i8..=3).prop_filter("not zero", |v| v.iter().any(|x| *x != 0))
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..12, 0u8..3, small_vector()).prop_map(|(key, group, vector)| Op::Insert { key, group, vector }),
        (0u8..12).prop_map(|key| Op::Remove { key }),
        (0u8..3, small_vector(), -10i8..=10).prop_map(|(group, vector, threshold)| Op::Search {
            group,
            vector,
            threshold
        }),
    ]
}

fn as_unit(v: [i8; 3]) -> Vec<f32> {
    unit(&v.map(f32::from))
}

proptest! {
    /// Against a list kept in insertion order: same contents, same evictions, same search results.
    #[test]
    fn behaves_like_a_list_in_insertion_order(ops in prop::collection::vec(op(), 1..80), max in 1usize..8) {
        let mut index = Index::new(3, max);
        let mut oracle: Vec<(String, u8, Vec<f32>)> = Vec::new();
        for op in ops {
            match op {
                Op::Insert { key, group: g, vector } => {
                    let key = format!("k{key}");
                    let v = as_unit(vector);
                    oracle.retain(|(k, _, _)| *k != key);
                    oracle.push((key.clone(), g, v.clone()));
                    let mut expected = Vec::new();
                    while oracle.len() > max {
                        expected.push(oracle.remove(0).0);
                    }
                    prop_assert_eq!(index.insert(group(g), &key, &key, &v), Some(expected));
                }
                Op::Remove { key } => {
                    let key = format!("k{key}");
                    let had = oracle.iter().any(|(k, _, _)| *k == key);
                    oracle.retain(|(k, _, _)| *k != key);
                    prop_assert_eq!(index.remove(&key), had);
                }
                Op::Search { group: g, vector, threshold } => {
                    let q = as_unit(vector);
                    let threshold = f32::from(threshold) / 10.0;
                    let mut expected: Vec<(String, f32)> = oracle
                        .iter()
                        .filter(|(_, og, _)| *og == g)
                        .map(|(k, _, v)| (k.clone(), dot(v, &q)))
                        .filter(|(_, s)| *s >= threshold)
                        .collect();
                    let found = index.search(&group(g), &q, threshold);
                    for pair in found.windows(2) {
                        prop_assert!(pair[0].similarity >= pair[1].similarity);
                    }
                    let mut got: Vec<(String, f32)> =
                        found.into_iter().map(|c| (c.key, c.similarity)).collect();
                    expected.sort_by(|a, b| a.0.cmp(&b.0));
                    got.sort_by(|a, b| a.0.cmp(&b.0));
                    prop_assert_eq!(got.len(), expected.len());
                    for (g, e) in got.iter().zip(&expected) {
                        prop_assert_eq!(&g.0, &e.0);
                        prop_assert!((g.1 - e.1).abs() < 1e-5);
                    }
                }
            }
            prop_assert_eq!(index.len(), oracle.len());
        }
    }
}

proptest! {
    /// The dot product this CPU gets (AVX2 where it has it) is the portable one to the bit, at every length.
    #[test]
    fn the_dispatched_dot_product_is_the_portable_one(
        pairs in proptest::collection::vec((-1.0f32..1.0, -1.0f32..1.0), 0..400)
    ) {
        let (a, b): (Vec<f32>, Vec<f32>) = pairs.into_iter().unzip();
        prop_assert_eq!(dot(&a, &b).to_bits(), dot_lanes(&a, &b).to_bits());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// The first passes never lose a row: at MiniLM's width, with thresholds set exactly at (and a hair
    /// either side of) a stored row's similarity, a search finds what a full `f32` scan finds, to the bit.
    #[test]
    fn the_quantized_first_pass_finds_what_a_full_scan_finds(
        seeds in prop::collection::vec(prop::collection::vec(-1.0f32..1.0, 384), 2..40),
        noise in prop::collection::vec(-1.0f32..1.0, 384),
        noise_scale in 0.0f32..0.5,
        pick in any::<prop::sample::Index>(),
        nudge in prop_oneof![Just(0.0f32), Just(1e-6), Just(-1e-6), -0.05f32..0.05],
    ) {
        let mut index = Index::new(384, 1000);
        let vectors: Vec<Vec<f32>> = seeds.iter().map(|v| unit(v)).collect();
        for (i, v) in vectors.iter().enumerate() {
            index.insert(group(1), &format!("k{i}"), "", v).unwrap();
        }
        let near = pick.get(&vectors);
        let query = unit(&near.iter().zip(&noise).map(|(x, n)| x + n * noise_scale).collect::<Vec<f32>>());
        let threshold = dot(near, &query) + nudge;
        let mut expected: Vec<(String, u32)> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("k{i}"), dot(v, &query)))
            .filter(|(_, s)| *s >= threshold)
            .map(|(k, s)| (k, s.to_bits()))
            .collect();
        let mut got: Vec<(String, u32)> =
            index.search(&group(1), &query, threshold).into_iter().map(|c| (c.key, c.similarity.to_bits())).collect();
        expected.sort();
        got.sort();
        prop_assert_eq!(got, expected);
    }
}
