//! A first pass over 8-bit copies of the index's vectors that can skip a row only when it provably cannot
//! reach the threshold, so that the exact `f32` dot product runs on a handful of rows instead of all.
//!
//! Each stored unit vector `x` is kept as `i8` codes `q` with one scale `s = max|x| / 127` (`x̃ = s·q`) and
//! the length of what that loses, `‖x − x̃‖`, rounded up. A query `y` is coded the same way in `i16`
//! (`ỹ = t·p`, `t = max|y| / 32767`). The first pass computes `ỹ·x̃ = s·t·(p·q)` with an exact integer dot
//! product, and
//!
//! ```text
//! |y·x − ỹ·x̃| = |y·(x − x̃) + (y − ỹ)·x̃| ≤ ‖y‖·‖x − x̃‖ + ‖y − ỹ‖·(‖x‖ + ‖x − x̃‖)
//! ```
//!
//! bounds how far the estimate can be from the true similarity; [`SLACK`] covers the `f32` rounding of both
//! the estimate and the exact dot product the rows are then rescored with. A row whose estimate plus its
//! bound is below the threshold is skipped; every other row is rescored exactly, so a search finds exactly
//! the rows a full `f32` scan finds, with the same similarities (tested against one).

/// Added to every row's bound: the `f32` rounding of the estimate and of the exact dot product (a few
/// units of 1e-5 for 384 dimensions), with a wide margin.
const SLACK: f32 = 1e-3;

/// Stored rows: codes, scales and error terms, one row per vector.
#[derive(Debug, Default)]
pub struct Rows {
    codes: Vec<i8>,
    scales: Vec<f32>,
    /// `‖x − x̃‖`, rounded up.
    errors: Vec<f32>,
    /// `‖x‖ + ‖x − x̃‖` (which bounds `‖x̃‖`), rounded up.
    reaches: Vec<f32>,
}

/// A query coded for [`Rows::may_reach`].
#[derive(Debug)]
pub struct QueryCodes {
    codes: Vec<i16>,
    scale: f32,
    /// `‖y‖`, rounded up.
    norm: f32,
    /// `‖y − ỹ‖`, rounded up.
    error: f32,
}

impl QueryCodes {
    /// `query` coded in `i16`.
    pub fn new(query: &[f32]) -> Self {
        let (codes, scale, error) = code(query, i16::MAX);
        let norm = norm(query.iter().map(|x| f64::from(*x)));
        Self { codes, scale, norm, error }
    }
}

impl Rows {
    /// Appends the codes of `vector`.
    pub fn push(&mut self, vector: &[f32]) {
        let (codes, scale, error) = code(vector, i8::MAX);
        self.codes.extend(codes);
        self.scales.push(scale);
        self.errors.push(error);
        self.reaches.push(norm(vector.iter().map(|x| f64::from(*x))) + error);
    }

    /// Moves the last row into row `at` and drops the last (as `Vec::swap_remove` does), `dims` wide.
    pub fn swap_remove(&mut self, at: usize, dims: usize) {
        let last = self.scales.len() - 1;
        if at != last {
            self.codes.copy_within(last * dims..(last + 1) * dims, at * dims);
        }
        self.codes.truncate(last * dims);
        self.scales.swap_remove(at);
        self.errors.swap_remove(at);
        self.reaches.swap_remove(at);
    }

    /// Calls `rescore(row)` for every row whose similarity to the query may reach `threshold` (a superset
    /// of the rows that do; see the module comment).
    pub fn may_reach(&self, query: &QueryCodes, threshold: f32, mut rescore: impl FnMut(usize)) {
        let dims = query.codes.len();
        if dims == 0 {
            return;
        }
        let dot = dot_fn();
        let terms = self.scales.iter().zip(&self.errors).zip(&self.reaches);
        for (row, (codes, ((scale, error), reach))) in self.codes.chunks_exact(dims).zip(terms).enumerate() {
            let estimate = dot(codes, &query.codes) as f32 * scale * query.scale;
            let bound = query.norm * error + query.error * reach + SLACK;
            // A NaN (which no finite row gives) rescores the row rather than skipping it.
            if (estimate + bound).partial_cmp(&threshold) != Some(std::cmp::Ordering::Less) {
                rescore(row);
            }
        }
    }
}

/// `x` as integer codes in `[-max, max]` with their scale, and `‖x − scale·codes‖` rounded up.
fn code<T: TryFrom<i32> + Copy + Into<i32>>(x: &[f32], max: T) -> (Vec<T>, f32, f32) {
    let max = max.into();
    let largest = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if largest == 0.0 || !largest.is_finite() {
        let zero = T::try_from(0).ok().expect("0 fits");
        // Codes of zero and the largest error there is: such a row is always rescored.
        return (vec![zero; x.len()], 0.0, f32::MAX);
    }
    let scale = largest / max as f32;
    let mut error = 0.0f64;
    let codes = x
        .iter()
        .map(|v| {
            let c = (v / scale).round().clamp(-max as f32, max as f32) as i32;
            let lost = f64::from(*v) - f64::from(scale) * f64::from(c);
            error += lost * lost;
            T::try_from(c).ok().expect("clamped into range")
        })
        .collect();
    (codes, scale, round_up(error.sqrt()))
}

/// The Euclidean norm of `values`, rounded up to `f32`.
fn norm(values: impl Iterator<Item = f64>) -> f32 {
    round_up(values.map(|v| v * v).sum::<f64>().sqrt())
}

/// `v` as the next `f32` at or above it.
fn round_up(v: f64) -> f32 {
    let f = v as f32;
    if f64::from(f) < v { f.next_up() } else { f }
}

/// [`dot_lanes`] for this CPU: with AVX2 where the CPU has it (the same integer sums either way).
fn dot_fn() -> fn(&[i8], &[i16]) -> i64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        return |a, b| {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { dot_avx2(a, b) }
        };
    }
    dot_lanes
}

/// [`dot_lanes`] in AVX2 registers: 16 codes widened to `i16`, multiplied by 16 query codes and added in
/// pairs into 8 `i32` lanes (`vpmaddwd`), blocks of 256 elements summed in `i64` (a lane adds at most 32
/// products of at most 127 × 32767 in a block, under 2^28); the same integer result.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_avx2(a: &[i8], b: &[i16]) -> i64 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let whole = n - n % 16;
    let mut total = 0i64;
    let mut at = 0;
    while at < whole {
        let end = (at + 256).min(whole);
        let mut acc = _mm256_setzero_si256();
        while at < end {
            // SAFETY: `at + 16 <= whole <= a.len(), b.len()`: 16 bytes of `a` and 32 of `b` are in bounds;
            // unaligned loads.
            let (x, y) = unsafe {
                (_mm_loadu_si128(a.as_ptr().add(at).cast()), _mm256_loadu_si256(b.as_ptr().add(at).cast()))
            };
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_cvtepi8_epi16(x), y));
            at += 16;
        }
        let mut lanes = [0i32; 8];
        // SAFETY: `lanes` is 32 bytes; unaligned store.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), acc) };
        total += lanes.iter().map(|l| i64::from(*l)).sum::<i64>();
    }
    total + dot_lanes(&a[whole..n], &b[whole..n])
}

/// The exact integer dot product of `a` and `b` (over the shorter), in 16 `i32` lanes per block of 256
/// elements (a lane adds at most 16 products of at most 127 × 32767, under 2^27), blocks added in `i64`.
#[inline(always)]
fn dot_lanes(a: &[i8], b: &[i16]) -> i64 {
    let mut total = 0i64;
    for (a, b) in a.chunks(256).zip(b.chunks(256)) {
        let mut lanes = [0i32; 16];
        let (a16, b16) = (a.chunks_exact(16), b.chunks_exact(16));
        let tail: i32 =
            a16.remainder().iter().zip(b16.remainder()).map(|(x, y)| i32::from(*x) * i32::from(*y)).sum();
        for (x, y) in a16.zip(b16) {
            for ((lane, x), y) in lanes.iter_mut().zip(x).zip(y) {
                *lane += i32::from(*x) * i32::from(*y);
            }
        }
        total += i64::from(lanes.iter().sum::<i32>()) + i64::from(tail);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_integer_dot_product_is_exact_at_the_extremes() {
        let a = vec![i8::MAX; 1000];
        let b = vec![i16::MAX; 1000];
        assert_eq!(dot_lanes(&a, &b), 1000 * 127 * 32767, "past i32::MAX, still exact");
        assert_eq!(dot_fn()(&a, &b), dot_lanes(&a, &b));
        let a: Vec<i8> = (0..385).map(|i| (i % 255 - 127) as i8).collect();
        let b: Vec<i16> = (0..385).map(|i| (i * 97 % 65535 - 32767) as i16).collect();
        let plain: i64 = a.iter().zip(&b).map(|(x, y)| i64::from(*x) * i64::from(*y)).sum();
        assert_eq!(dot_fn()(&a, &b), plain);
    }

    #[test]
    fn the_error_bound_holds_for_each_coded_vector() {
        let x: Vec<f32> = (0..384).map(|i| ((i * 37 % 101) as f32 - 50.0) / 700.0).collect();
        let (codes, scale, error) = code(&x, i8::MAX);
        let lost: f64 = x
            .iter()
            .zip(&codes)
            .map(|(v, c)| (f64::from(*v) - f64::from(scale) * f64::from(*c)).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(f64::from(error) >= lost && f64::from(error) < lost * 1.0001 + 1e-12);
        assert!(error < 0.02, "{error}: 8 bits keep a 384-wide unit-ish vector within 2%");
    }

    proptest::proptest! {
        /// The dispatched product (AVX2 where the CPU has it) is the exact one, at every length.
        #[test]
        fn the_dispatched_integer_dot_product_is_exact(
            pairs in proptest::collection::vec((proptest::num::i8::ANY, proptest::num::i16::ANY), 0..800)
        ) {
            let (a, b): (Vec<i8>, Vec<i16>) = pairs.into_iter().unzip();
            let a: Vec<i8> = a.into_iter().map(|x| x.max(-i8::MAX)).collect();
            let exact: i64 = a.iter().zip(&b).map(|(x, y)| i64::from(*x) * i64::from(*y)).sum();
            proptest::prop_assert_eq!(dot_fn()(&a, &b), exact);
        }
    }
}
