//! First passes over 1-bit and 4-bit copies of the index's vectors that skip a row only when it provably
//! cannot reach the threshold, so that the exact `f32` dot product runs on a handful of rows instead of all.
//!
//! Each stored unit vector `x` is kept twice more, each copy `x̃` with the length of what it loses,
//! `‖x − x̃‖`, rounded up: as its signs `σ` scaled by `a = mean|x|` (`x̃ = a·σ`, 48 bytes at MiniLM's 384
//! dimensions), and as 4-bit codes `q` in `[-7, 7]` with one scale `s = max|x| / 7` (`x̃ = s·q`, 192 bytes;
//! the `f32` row is 1,536). A query `y` is coded in `i8` (`ỹ = t·p`, `t = max|y| / 127`). A pass computes
//! `ỹ·x̃` from an exact integer sum ([`kernels`]), and
//!
//! ```text
//! |y·x − ỹ·x̃| = |y·(x − x̃) + (y − ỹ)·x̃| ≤ ‖y‖·‖x − x̃‖ + ‖y − ỹ‖·(‖x‖ + ‖x − x̃‖)
//! ```
//!
//! bounds how far the estimate can be from the true similarity; [`SLACK`] covers the `f32` rounding of both
//! the estimate and the exact dot product the rows are then rescored with. A row whose sign estimate plus
//! its bound (about 0.6 for a 384-wide vector) is below the threshold is skipped; a row that passes is
//! checked again on its 4-bit codes (a bound of about 0.13), and every row that passes both is rescored
//! exactly, so a search finds exactly the rows a full `f32` scan finds, with the same similarities (tested
//! against one). The sign pass runs only on CPUs with AVX-512 (F, BW, DQ, VL), where summing the query's
//! codes under a row's sign bits is a masked byte sum, 8 rows at a time; elsewhere the scan starts at the
//! 4-bit codes. From [`PARALLEL_ROWS`] rows on, the scan runs on two threads, each over half the rows.

mod kernels;

use std::ops::Range;

use kernels::{
    Kernels, nibble_lanes, nibble_offset, nibble_row_bytes, pack_nibbles, pack_signs, set_sum_lanes,
    sign_row_words,
};

/// Added to every row's bound: the `f32` rounding of the estimate and of the exact dot product (a few
/// units of 1e-5 for 384 dimensions), with a wide margin.
const SLACK: f32 = 1e-3;

/// From this many rows on, the scan runs in two halves on rayon's threads (below, waking a thread costs
/// more than it saves).
pub const PARALLEL_ROWS: usize = 32_768;

/// A row's terms at one level of coding.
#[derive(Clone, Copy, Debug)]
struct Terms {
    scale: f32,
    /// `‖x − x̃‖`, rounded up.
    error: f32,
    /// `‖x‖ + ‖x − x̃‖` (which bounds `‖x̃‖`), rounded up.
    reach: f32,
}

impl Terms {
    fn new(scale: f32, error: f32, length: f32) -> Self {
        Self { scale, error, reach: round_up(f64::from(length) + f64::from(error)) }
    }

    /// True when a row with these terms whose codes give `dot` against the query's may reach `threshold`.
    #[inline(always)]
    fn may_reach(&self, dot: i64, query: &QueryCodes, threshold: f32) -> bool {
        let estimate = dot as f32 * self.scale * query.scale;
        let bound = query.norm * self.error + query.error * self.reach + SLACK;
        // A NaN (which no finite row gives) passes the row rather than skipping it.
        (estimate + bound).partial_cmp(&threshold) != Some(std::cmp::Ordering::Less)
    }
}

/// Each row's sign bits and terms, the terms one array each (the AVX-512 pass reads them 8 rows at a time).
#[derive(Debug, Default)]
struct SignRows {
    /// [`sign_row_words`] words a row.
    bits: Vec<u64>,
    scales: Vec<f32>,
    /// `‖x − x̃‖`, rounded up.
    errors: Vec<f32>,
    /// `‖x‖ + ‖x − x̃‖`, rounded up.
    reaches: Vec<f32>,
    /// How many bits of the row are set.
    ones: Vec<u32>,
}

impl SignRows {
    /// [`Terms::may_reach`] for row `row`, whose bits give `dot` against the query's codes.
    #[inline(always)]
    fn may_reach(&self, row: usize, dot: i64, query: &QueryCodes, threshold: f32) -> bool {
        let terms = Terms { scale: self.scales[row], error: self.errors[row], reach: self.reaches[row] };
        terms.may_reach(dot, query, threshold)
    }
}

/// Stored rows: each vector's sign bits and 4-bit codes with their terms, one row per vector.
#[derive(Debug)]
pub struct Rows {
    dims: usize,
    signs: SignRows,
    /// [`nibble_row_bytes`] bytes a row.
    nibbles: Vec<u8>,
    nibble_terms: Vec<Terms>,
}

/// A query coded for [`Rows::candidates`].
#[derive(Debug)]
pub struct QueryCodes {
    /// `i8` codes, padded with zeros to the packed rows' width.
    codes: Vec<i8>,
    /// The codes + 128, for the sign pass.
    biased: Vec<u8>,
    /// `Σ codes`.
    sum: i64,
    /// [`nibble_offset`] of `codes`.
    offset: i64,
    scale: f32,
    /// `‖y‖`, rounded up.
    norm: f32,
    /// `‖y − ỹ‖`, rounded up.
    error: f32,
}

impl QueryCodes {
    /// `query` coded in `i8`.
    pub fn new(query: &[f32]) -> Self {
        let norm = norm(query.iter().map(|x| f64::from(*x)));
        let (mut codes, scale, error) = code(query, i8::MAX);
        codes.resize(2 * nibble_row_bytes(query.len()), 0);
        let biased = codes.iter().map(|c| (i16::from(*c) + 128) as u8).collect();
        let sum = codes.iter().map(|c| i64::from(*c)).sum();
        let offset = nibble_offset(&codes);
        Self { codes, biased, sum, offset, scale, norm, error }
    }
}

impl Rows {
    /// No rows, of `dims`-wide vectors.
    pub fn new(dims: usize) -> Self {
        Self { dims, signs: SignRows::default(), nibbles: Vec::new(), nibble_terms: Vec::new() }
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.nibble_terms.len()
    }

    /// True when no rows are held.
    pub fn is_empty(&self) -> bool {
        self.nibble_terms.is_empty()
    }

    /// Appends the codes of `vector` (`dims` wide).
    pub fn push(&mut self, vector: &[f32]) {
        debug_assert_eq!(vector.len(), self.dims);
        let length = norm(vector.iter().map(|x| f64::from(*x)));
        let words = self.signs.bits.len();
        pack_signs(vector, &mut self.signs.bits);
        self.signs.ones.push(self.signs.bits[words..].iter().map(|w| w.count_ones()).sum());
        let (scale, error) = sign_code(vector);
        let terms = Terms::new(scale, error, length);
        self.signs.scales.push(terms.scale);
        self.signs.errors.push(terms.error);
        self.signs.reaches.push(terms.reach);
        let (codes, scale, error) = code(vector, 7i8);
        pack_nibbles(&codes, &mut self.nibbles);
        self.nibble_terms.push(Terms::new(scale, error, length));
    }

    /// Moves the last row into row `at` and drops the last (as `Vec::swap_remove` does).
    pub fn swap_remove(&mut self, at: usize) {
        let last = self.len() - 1;
        let (words, bytes) = (sign_row_words(self.dims), nibble_row_bytes(self.dims));
        if at != last {
            self.signs.bits.copy_within(last * words..(last + 1) * words, at * words);
            self.nibbles.copy_within(last * bytes..(last + 1) * bytes, at * bytes);
        }
        self.signs.bits.truncate(last * words);
        self.nibbles.truncate(last * bytes);
        self.signs.scales.swap_remove(at);
        self.signs.errors.swap_remove(at);
        self.signs.reaches.swap_remove(at);
        self.signs.ones.swap_remove(at);
        self.nibble_terms.swap_remove(at);
    }

    /// The rows whose similarity to the query may reach `threshold` (a superset of the rows that do; see the
    /// module comment), in row order.
    pub fn candidates(&self, query: &QueryCodes, threshold: f32) -> Vec<usize> {
        let parts = if self.len() >= PARALLEL_ROWS { 2 } else { 1 };
        self.candidates_with(query, threshold, parts, Kernels::detect())
    }

    /// [`candidates`](Self::candidates) with the rows cut into `parts` (1 or 2) scanned at once with
    /// `kernels`.
    fn candidates_with(
        &self,
        query: &QueryCodes,
        threshold: f32,
        parts: usize,
        kernels: Kernels,
    ) -> Vec<usize> {
        let rows = self.len();
        if self.dims == 0 || query.codes.len() != 2 * nibble_row_bytes(self.dims) {
            return Vec::new();
        }
        if parts < 2 {
            return self.scan(query, threshold, 0..rows, kernels);
        }
        let middle = rows / 2;
        let (mut first, second) = rayon::join(
            || self.scan(query, threshold, 0..middle, kernels),
            || self.scan(query, threshold, middle..rows, kernels),
        );
        first.extend(second);
        first
    }

    /// [`scan_with`](Self::scan_with) `rows` compiled for `kernels`.
    fn scan(&self, query: &QueryCodes, threshold: f32, rows: Range<usize>, kernels: Kernels) -> Vec<usize> {
        match kernels {
            // SAFETY: `Kernels::detect` found AVX-512F/BW/DQ/VL, AVX2 and POPCNT on this CPU.
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx512 => unsafe { self.scan_avx512(query, threshold, rows) },
            // SAFETY: `Kernels::detect` found AVX2 on this CPU.
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx2 => unsafe { self.scan_avx2(query, threshold, rows) },
            #[cfg(not(target_arch = "x86_64"))]
            Kernels::Avx512 | Kernels::Avx2 => {
                self.scan(query, threshold, rows, Kernels::Portable { signs: false })
            }
            Kernels::Portable { signs } => self.scan_with(
                query,
                threshold,
                rows,
                signs,
                |bits| set_sum_lanes(bits, &query.biased),
                |codes| nibble_lanes(codes, &query.codes),
            ),
        }
    }

    /// [`scan_with`](Self::scan_with) in AVX-512 and AVX2, the sign pass 8 rows at a time
    /// ([`kernels::sign_block_avx512`]: the same arithmetic, in registers).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512dq,avx512vl,popcnt")]
    unsafe fn scan_avx512(&self, query: &QueryCodes, threshold: f32, rows: Range<usize>) -> Vec<usize> {
        let bytes = nibble_row_bytes(self.dims);
        // SAFETY: this function is compiled with AVX2.
        let nibble_dot = |codes: &[u8]| unsafe { kernels::nibble_avx2(codes, &query.codes) };
        let blocks = rows.start..rows.end - rows.len() % 8;
        let mut found = Vec::new();
        for first in blocks.clone().step_by(8) {
            // SAFETY: this function is compiled with AVX-512F/BW/DQ/VL; `first + 8 <= rows.end <= self.len()`.
            let mut passed = unsafe { self.sign_block(first, query, threshold) };
            while passed != 0 {
                let row = first + passed.trailing_zeros() as usize;
                passed &= passed - 1;
                let dot = nibble_dot(&self.nibbles[row * bytes..(row + 1) * bytes]) - query.offset;
                if self.nibble_terms[row].may_reach(dot, query, threshold) {
                    found.push(row);
                }
            }
        }
        found.extend(self.scan_with(
            query,
            threshold,
            blocks.end..rows.end,
            true,
            // SAFETY: this function is compiled with AVX-512F, AVX-512BW and POPCNT.
            |bits| unsafe { kernels::set_sum_avx512(bits, &query.biased) },
            nibble_dot,
        ));
        found
    }

    /// [`kernels::sign_block_avx512`] on rows `first..first + 8`: bit `r` set when row `first + r` may reach
    /// `threshold` by its sign bits.
    ///
    /// # Safety
    /// Only from a function compiled with AVX-512F, AVX-512BW, AVX-512DQ and AVX-512VL enabled.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn sign_block(&self, first: usize, query: &QueryCodes, threshold: f32) -> u8 {
        let (words, block, signs) = (sign_row_words(self.dims), first..first + 8, &self.signs);
        let rows = kernels::SignBlock {
            ones: &signs.ones[block.clone()],
            scales: &signs.scales[block.clone()],
            errors: &signs.errors[block.clone()],
            reaches: &signs.reaches[block],
        };
        let terms = kernels::SignQuery {
            sum: query.sum,
            scale: query.scale,
            norm: query.norm,
            error: query.error,
            slack: SLACK,
            threshold,
        };
        // SAFETY: the caller runs with AVX-512F/BW/DQ/VL; the slices are 8 rows long.
        unsafe {
            kernels::sign_block_avx512(
                &signs.bits[first * words..(first + 8) * words],
                &query.biased,
                rows,
                terms,
            )
        }
    }

    /// [`scan_with`](Self::scan_with) in AVX2, without the sign pass.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn scan_avx2(&self, query: &QueryCodes, threshold: f32, rows: Range<usize>) -> Vec<usize> {
        self.scan_with(
            query,
            threshold,
            rows,
            false,
            |bits| set_sum_lanes(bits, &query.biased),
            // SAFETY: this function is compiled with AVX2.
            |codes| unsafe { kernels::nibble_avx2(codes, &query.codes) },
        )
    }

    /// The sign pass (when `signs`; `set_sum` sums the query's codes under a row's set sign bits) and the
    /// 4-bit pass (`nibble_dot`, the product with the codes as stored) over `rows`.
    #[inline(always)]
    fn scan_with(
        &self,
        query: &QueryCodes,
        threshold: f32,
        rows: Range<usize>,
        signs: bool,
        set_sum: impl Fn(&[u64]) -> i64,
        nibble_dot: impl Fn(&[u8]) -> i64,
    ) -> Vec<usize> {
        let (words, bytes) = (sign_row_words(self.dims), nibble_row_bytes(self.dims));
        let mut found = Vec::new();
        for row in rows {
            if signs {
                // Σ p·σ = Σ p under the set bits − Σ p under the clear ones.
                let dot = 2 * set_sum(&self.signs.bits[row * words..(row + 1) * words]) - query.sum;
                if !self.signs.may_reach(row, dot, query, threshold) {
                    continue;
                }
            }
            let dot = nibble_dot(&self.nibbles[row * bytes..(row + 1) * bytes]) - query.offset;
            if self.nibble_terms[row].may_reach(dot, query, threshold) {
                found.push(row);
            }
        }
        found
    }
}

/// The scale `a = mean|x|` of `x`'s sign code (`x̃ = a·σ`, `σ = ±1`, `+1` for `x ≥ 0`) and `‖x − x̃‖`
/// rounded up. A vector of no length or not finite gets the largest error there is (always passed).
fn sign_code(x: &[f32]) -> (f32, f32) {
    let total: f64 = x.iter().map(|v| f64::from(v.abs())).sum();
    if total == 0.0 || !total.is_finite() {
        return (0.0, f32::MAX);
    }
    let scale = (total / x.len() as f64) as f32;
    let lost = x
        .iter()
        .map(|v| {
            let sign = if *v >= 0.0 { 1.0 } else { -1.0 };
            (f64::from(*v) - f64::from(scale) * sign).powi(2)
        })
        .sum::<f64>();
    (scale, round_up(lost.sqrt()))
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

#[cfg(test)]
mod tests;
