//! The first passes against exact scans, and their codes' bounds.

use super::*;

fn spread(n: usize, seed: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 37 + seed * 11) % 101) as f32 / 700.0 - 50.0 / 700.0).collect()
}

#[test]
fn the_error_bound_holds_for_each_coded_vector() {
    let x = spread(384, 0);
    for (max, within) in [(7i8, 0.3f32), (i8::MAX, 0.02)] {
        let (codes, scale, error) = code(&x, max);
        let lost: f64 = x
            .iter()
            .zip(&codes)
            .map(|(v, c)| (f64::from(*v) - f64::from(scale) * f64::from(*c)).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(f64::from(error) >= lost && f64::from(error) < lost * 1.0001 + 1e-12);
        let length = norm(x.iter().map(|v| f64::from(*v)));
        assert!(error < within * length, "{error}: codes of ±{max} keep a 384-wide vector within {within}");
    }
}

#[test]
fn the_sign_code_bound_holds() {
    let x = spread(384, 3);
    let (scale, error) = sign_code(&x);
    let lost = x
        .iter()
        .map(|v| (f64::from(*v) - f64::from(scale) * if *v >= 0.0 { 1.0 } else { -1.0 }).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!(f64::from(error) >= lost && f64::from(error) < lost * 1.0001 + 1e-12);
    assert_eq!(sign_code(&[0.0; 8]), (0.0, f32::MAX), "no length: always passed");
}

fn unit(v: &[f32]) -> Vec<f32> {
    let mut v = v.to_vec();
    crate::cache::semantic::index::normalize(&mut v);
    v
}

/// Every way of scanning (one part or two, with the sign pass or without) keeps every row that reaches
/// the threshold.
fn scans_agree(vectors: &[Vec<f32>], removed: usize, query: &[f32], threshold: f32) {
    let dims = query.len();
    let mut rows = Rows::new(dims);
    vectors.iter().for_each(|v| rows.push(v));
    let mut kept = vectors.to_vec();
    kept.swap_remove(removed);
    rows.swap_remove(removed);
    let reach: Vec<usize> = (0..kept.len())
        .filter(|&r| crate::cache::semantic::index::dot(&kept[r], query) >= threshold)
        .collect();
    let coded = QueryCodes::new(query);
    for parts in [1, 2] {
        let all = [Kernels::Portable { signs: false }, Kernels::Portable { signs: true }, Kernels::detect()];
        for kernels in all {
            let found = rows.candidates_with(&coded, threshold, parts, kernels);
            assert!(found.windows(2).all(|w| w[0] < w[1]), "in row order");
            let kept_rows: Vec<usize> = found
                .into_iter()
                .filter(|&r| crate::cache::semantic::index::dot(&kept[r], query) >= threshold)
                .collect();
            assert_eq!(kept_rows, reach, "{parts} part(s), {kernels:?}");
        }
    }
}

#[test]
fn every_scan_keeps_what_reaches_the_threshold() {
    let vectors: Vec<Vec<f32>> = (0..301).map(|i| unit(&spread(100, i))).collect();
    for pick in [0, 150, 299] {
        for threshold in [-1.0, 0.0, 0.5, 0.99] {
            scans_agree(&vectors, 7, &vectors[pick], threshold);
        }
    }
}

/// The AVX-512 block of 8 rows decides each row as the one-row test does (where the CPU has AVX-512).
#[cfg(target_arch = "x86_64")]
#[test]
fn the_sign_block_decides_as_each_row_does() {
    if Kernels::detect() != Kernels::Avx512 {
        return;
    }
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
    unsafe fn block(rows: &Rows, first: usize, query: &QueryCodes, threshold: f32) -> u8 {
        // SAFETY: compiled with AVX-512F/BW/DQ/VL; `first + 8 <= rows.len()` below.
        unsafe { rows.sign_block(first, query, threshold) }
    }
    let mut rows = Rows::new(130);
    let vectors: Vec<Vec<f32>> = (0..64).map(|i| unit(&spread(130, i * 7 + 1))).collect();
    vectors.iter().for_each(|v| rows.push(v));
    let words = sign_row_words(130);
    let (mut passed, mut skipped) = (0, 0);
    for pick in [0, 9, 33] {
        let query = QueryCodes::new(&vectors[pick]);
        for threshold in [-1.0, 0.0, 0.2, 0.4, 0.6, 0.8, 1.0, f32::NAN] {
            for first in (0..64).step_by(8) {
                // SAFETY: the CPU has AVX-512F/BW/DQ/VL (detected above).
                let mask = unsafe { block(&rows, first, &query, threshold) };
                for r in 0..8 {
                    let row = first + r;
                    let sum = set_sum_lanes(&rows.signs.bits[row * words..(row + 1) * words], &query.biased);
                    let one = rows.signs.may_reach(row, 2 * sum - query.sum, &query, threshold);
                    assert_eq!(mask >> r & 1 == 1, one, "row {row}, threshold {threshold}");
                    if one { passed += 1 } else { skipped += 1 }
                }
            }
        }
    }
    assert!(passed > 0 && skipped > 0, "both outcomes tested: {passed} passed, {skipped} skipped");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
    /// At MiniLM's width, with thresholds exactly at (and a hair either side of) a stored row's
    /// similarity, no scan loses a row that reaches it.
    #[test]
    fn no_scan_loses_a_row(
        seeds in proptest::collection::vec(proptest::collection::vec(-1.0f32..1.0, 384), 2..30),
        noise in proptest::collection::vec(-1.0f32..1.0, 384),
        noise_scale in 0.0f32..0.5,
        pick in proptest::prelude::any::<proptest::sample::Index>(),
        removed in proptest::prelude::any::<proptest::sample::Index>(),
        nudge in proptest::prop_oneof![
            proptest::strategy::Just(0.0f32),
            proptest::strategy::Just(1e-6),
            proptest::strategy::Just(-1e-6),
            -0.05f32..0.05
        ],
    ) {
        let vectors: Vec<Vec<f32>> = seeds.iter().map(|v| unit(v)).collect();
        let near = pick.get(&vectors);
        let query = unit(&near.iter().zip(&noise).map(|(x, n)| x + n * noise_scale).collect::<Vec<f32>>());
        let threshold = crate::cache::semantic::index::dot(near, &query) + nudge;
        scans_agree(&vectors, removed.index(vectors.len()), &query, threshold);
    }

    /// The same at a few dimensions, where a coding error can line up with the query and come close to
    /// its bound (a bound 30% too tight fails here).
    #[test]
    fn no_scan_loses_a_row_at_a_few_dimensions(
        dims in 1usize..6,
        seeds in proptest::collection::vec(proptest::collection::vec(-1.0f32..1.0, 6), 2..60),
        pick in proptest::prelude::any::<proptest::sample::Index>(),
        other in proptest::prelude::any::<proptest::sample::Index>(),
        removed in proptest::prelude::any::<proptest::sample::Index>(),
        nudge in proptest::prop_oneof![proptest::strategy::Just(0.0f32), -0.01f32..0.01],
    ) {
        let vectors: Vec<Vec<f32>> = seeds.iter().map(|v| unit(&v[..dims])).collect();
        let query = &vectors[pick.index(vectors.len())];
        let threshold = crate::cache::semantic::index::dot(&vectors[other.index(vectors.len())], query) + nudge;
        scans_agree(&vectors, removed.index(vectors.len()), query, threshold);
    }
}
