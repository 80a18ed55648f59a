//! The first passes' exact integer sums: packed 4-bit codes against an 8-bit query, and an 8-bit query
//! summed under a row's sign bits; in AVX2 and AVX-512 registers, and portable, with the same integers
//! (property-tested). The register versions are `#[inline(always)]` bodies without target features of their
//! own: [`super::Rows`] inlines them into a scan compiled for the features [`Kernels::detect`] found.

/// Which instructions a scan uses, as this CPU allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// The sign pass ([`sign_block_avx512`], [`set_sum_avx512`]) and the 4-bit pass ([`nibble_avx2`]):
    /// AVX-512F/BW/DQ/VL, AVX2 and POPCNT.
    Avx512,
    /// The 4-bit pass in AVX2; no sign pass (summing under sign bits without AVX-512's byte masks costs
    /// more than reading the 4-bit codes).
    Avx2,
    /// Portable code; the sign pass only when asked (the tests run it on every CPU).
    Portable { signs: bool },
}

impl Kernels {
    /// The fastest this CPU has.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512dq")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("popcnt")
            {
                return Kernels::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Kernels::Avx2;
            }
        }
        Kernels::Portable { signs: false }
    }
}

/// How many `u8` a row of `dims` 4-bit codes takes: the row is padded to a multiple of 64 codes (two 32-byte
/// registers of codes per 32 bytes), two codes a byte.
pub fn nibble_row_bytes(dims: usize) -> usize {
    dims.div_ceil(64) * 32
}

/// Packs 4-bit codes in `[-7, 7]` into `out` (`nibble_row_bytes(codes.len())` bytes): code `j` of the padded
/// row of `2h` codes goes in the low half of byte `j` when `j < h`, in the high half of byte `j − h` otherwise,
/// as `code + 8` (padding codes are 0, stored as 8).
pub fn pack_nibbles(codes: &[i8], out: &mut Vec<u8>) {
    let half = nibble_row_bytes(codes.len());
    let nibble = |j: usize| (codes.get(j).copied().unwrap_or(0) + 8) as u8 & 0x0f;
    out.extend((0..half).map(|j| nibble(j) | (nibble(j + half) << 4)));
}

/// What to take from a 4-bit product (which multiplies the codes as stored, + 8) for the codes' own:
/// `8 · Σ query`.
pub fn nibble_offset(query: &[i8]) -> i64 {
    8 * query.iter().map(|q| i64::from(*q)).sum::<i64>()
}

/// How many `u64` words a row of `dims` sign bits takes.
pub fn sign_row_words(dims: usize) -> usize {
    dims.div_ceil(64)
}

/// Packs the signs of `vector` (bit set for `x ≥ 0`) into `out`, [`sign_row_words`] words; padding bits
/// are clear.
pub fn pack_signs(vector: &[f32], out: &mut Vec<u64>) {
    out.extend(
        vector.chunks(64).map(|chunk| {
            chunk.iter().enumerate().fold(0u64, |word, (i, x)| word | (u64::from(*x >= 0.0) << i))
        }),
    );
}

/// The exact `Σ (code_j + 8) · query_j` of a packed row (see [`pack_nibbles`]) and a query of
/// `2 · row.len()` codes laid out in code order (the padding is 0).
#[inline(always)]
pub fn nibble_lanes(row: &[u8], query: &[i8]) -> i64 {
    let half = row.len();
    let (low, high) = query.split_at(half.min(query.len()));
    let mut total = 0i64;
    for ((byte, lo), hi) in row.iter().zip(low).zip(high) {
        total += i64::from(byte & 0x0f) * i64::from(*lo) + i64::from(byte >> 4) * i64::from(*hi);
    }
    total
}

/// `Σ (query_j − 128)` over the set bits `j` of a row of sign bits (bit `j % 64` of word `j / 64`), the
/// query being `i8` codes + 128, at least 64 a word.
#[inline(always)]
pub fn set_sum_lanes(bits: &[u64], query: &[u8]) -> i64 {
    let mut total = 0i64;
    for (w, word) in bits.iter().enumerate() {
        let mut rest = *word;
        while rest != 0 {
            total += i64::from(query[64 * w + rest.trailing_zeros() as usize]) - 128;
            rest &= rest - 1;
        }
    }
    total
}

/// [`nibble_lanes`] in AVX2 registers. Per 32 bytes of a row: the low and the high halves as two registers of
/// 32 codes in `[1, 15]` (the code + 8), multiplied by the query's 32 matching `i8` codes and added in pairs
/// into `i16` (`vpmaddubsw`: at most 2 · 15 · 128 = 3,840 a pair, no saturation), the two added (7,680),
/// widened into 8 `i32` lanes (`vpmaddwd` by 1). A lane gains at most 15,360 per 32 bytes, so rows under
/// 4 million codes cannot overflow it. Rows whose length is not a multiple of 32 bytes (never
/// [`nibble_row_bytes`]) fall back to [`nibble_lanes`].
///
/// # Safety
/// Only from a function compiled with AVX2 enabled (on a CPU that has it).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub unsafe fn nibble_avx2(row: &[u8], query: &[i8]) -> i64 {
    use std::arch::x86_64::*;
    let half = row.len();
    if !half.is_multiple_of(32) || query.len() < 2 * half || half >= (1 << 21) {
        return nibble_lanes(row, query);
    }
    // SAFETY (each intrinsic below): the caller runs with AVX2 enabled.
    let mask = unsafe { _mm256_set1_epi8(0x0f) };
    let ones = unsafe { _mm256_set1_epi16(1) };
    let mut acc = unsafe { _mm256_setzero_si256() };
    let mut at = 0;
    while at < half {
        // SAFETY: `at + 32 <= half = row.len()` and `half + at + 32 <= 2 · half <= query.len()`; unaligned
        // loads; AVX2 as above.
        unsafe {
            let bytes = _mm256_loadu_si256(row.as_ptr().add(at).cast());
            let lo_q = _mm256_loadu_si256(query.as_ptr().add(at).cast());
            let hi_q = _mm256_loadu_si256(query.as_ptr().add(half + at).cast());
            let lo = _mm256_and_si256(bytes, mask);
            let hi = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), mask);
            let pairs = _mm256_add_epi16(_mm256_maddubs_epi16(lo, lo_q), _mm256_maddubs_epi16(hi, hi_q));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, ones));
        }
        at += 32;
    }
    let mut lanes = [0i32; 8];
    // SAFETY: `lanes` is 32 bytes; unaligned store; AVX2 as above.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), acc) };
    lanes.iter().map(|l| i64::from(*l)).sum::<i64>()
}

/// Eight rows' terms for [`sign_block_avx512`] (each slice 8 long).
#[cfg(target_arch = "x86_64")]
pub struct SignBlock<'a> {
    /// Set bits of each row.
    pub ones: &'a [u32],
    pub scales: &'a [f32],
    pub errors: &'a [f32],
    pub reaches: &'a [f32],
}

/// The query's terms for [`sign_block_avx512`].
#[cfg(target_arch = "x86_64")]
pub struct SignQuery {
    /// `Σ codes`.
    pub sum: i64,
    pub scale: f32,
    pub norm: f32,
    pub error: f32,
    pub slack: f32,
    pub threshold: f32,
}

/// The sign pass on 8 rows (`bits`: 8 rows of sign words) in AVX-512 registers: bit `r` of the result is set
/// when row `r` may reach the threshold. Per row, the masked byte sums of [`set_sum_avx512`]; the 8 rows'
/// lanes are added across in a tree into one register of 8 sums, `Σ p·σ = 2 · (sum − 128 · ones) − Σ p`
/// (exact in `i64`, then in `f32` below 2^24), and the test of `Terms::may_reach` runs on the 8 at once with
/// the same `f32` operations in the same order (so the same outcome; a NaN passes).
///
/// # Safety
/// Only from a function compiled with AVX-512F, AVX-512BW, AVX-512DQ and AVX-512VL enabled (on a CPU that
/// has them).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub unsafe fn sign_block_avx512(bits: &[u64], query: &[u8], rows: SignBlock<'_>, terms: SignQuery) -> u8 {
    use std::arch::x86_64::*;
    let words = bits.len() / 8;
    assert!(bits.len() == 8 * words && query.len() >= 64 * words, "8 rows, 64 query codes a word");
    assert!(
        rows.ones.len() == 8 && rows.scales.len() == 8 && rows.errors.len() == 8 && rows.reaches.len() == 8
    );
    // SAFETY (each intrinsic below): the caller runs with AVX-512F/BW/DQ/VL enabled; every load is of 8
    // elements of a slice asserted 8 long, or of 64 query bytes within `query` (asserted above).
    unsafe {
        let zero = _mm512_setzero_si512();
        let mut sums = [zero; 8];
        for (row, sum) in sums.iter_mut().enumerate() {
            for w in 0..words {
                let codes = _mm512_loadu_si512(query.as_ptr().add(64 * w).cast());
                let masked = _mm512_maskz_mov_epi8(bits[row * words + w], codes);
                *sum = _mm512_add_epi64(*sum, _mm512_sad_epu8(masked, zero));
            }
        }
        // Add across: pairs of rows within 128-bit lanes, then 128-bit lanes across registers.
        let pair = |a: __m512i, b: __m512i| {
            _mm512_add_epi64(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b))
        };
        let (s01, s23, s45, s67) =
            (pair(sums[0], sums[1]), pair(sums[2], sums[3]), pair(sums[4], sums[5]), pair(sums[6], sums[7]));
        let quad = |a: __m512i, b: __m512i| {
            _mm512_add_epi64(
                _mm512_shuffle_i64x2::<0b10_00_10_00>(a, b),
                _mm512_shuffle_i64x2::<0b11_01_11_01>(a, b),
            )
        };
        let (s0123, s4567) = (quad(s01, s23), quad(s45, s67));
        let totals = quad(s0123, s4567);
        let ones = _mm512_cvtepu32_epi64(_mm256_loadu_si256(rows.ones.as_ptr().cast()));
        let set = _mm512_sub_epi64(totals, _mm512_slli_epi64::<7>(ones));
        let dots = _mm512_sub_epi64(_mm512_slli_epi64::<1>(set), _mm512_set1_epi64(terms.sum));
        let estimate = _mm256_mul_ps(
            _mm256_mul_ps(_mm512_cvtepi64_ps(dots), _mm256_loadu_ps(rows.scales.as_ptr())),
            _mm256_set1_ps(terms.scale),
        );
        let bound = _mm256_add_ps(
            _mm256_add_ps(
                _mm256_mul_ps(_mm256_set1_ps(terms.norm), _mm256_loadu_ps(rows.errors.as_ptr())),
                _mm256_mul_ps(_mm256_set1_ps(terms.error), _mm256_loadu_ps(rows.reaches.as_ptr())),
            ),
            _mm256_set1_ps(terms.slack),
        );
        _mm256_cmp_ps_mask::<_CMP_NLT_UQ>(_mm256_add_ps(estimate, bound), _mm256_set1_ps(terms.threshold))
    }
}

/// [`set_sum_lanes`] in AVX-512 registers: per word, the 64 query bytes at its set bits (`vmovdqu8` under
/// the word as a mask), summed as unsigned bytes into 8 `u64` lanes (`vpsadbw`); then `128 ·` the set bits
/// taken back out. Exact: a lane gains at most 8 · 255 a word.
///
/// # Safety
/// Only from a function compiled with AVX-512F and AVX-512BW enabled (on a CPU that has them); with POPCNT
/// too, or the set bits are counted in plain instructions.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub unsafe fn set_sum_avx512(bits: &[u64], query: &[u8]) -> i64 {
    use std::arch::x86_64::*;
    assert!(query.len() >= 64 * bits.len(), "64 query codes a word");
    // SAFETY (each intrinsic below): the caller runs with AVX-512F and AVX-512BW enabled.
    let zero = unsafe { _mm512_setzero_si512() };
    let mut acc = zero;
    let mut ones = 0i64;
    for (w, word) in bits.iter().enumerate() {
        // SAFETY: `64 · (w + 1) <= query.len()` (asserted above); unaligned load; AVX-512 as above.
        unsafe {
            let codes = _mm512_loadu_si512(query.as_ptr().add(64 * w).cast());
            acc = _mm512_add_epi64(acc, _mm512_sad_epu8(_mm512_maskz_mov_epi8(*word, codes), zero));
        }
        ones += i64::from(word.count_ones());
    }
    // SAFETY: AVX-512F as above.
    unsafe { _mm512_reduce_add_epi64(acc) - 128 * ones }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// [`nibble_avx2`] where the CPU has AVX2, else [`nibble_lanes`].
    fn nibble_dispatched(row: &[u8], query: &[i8]) -> i64 {
        #[cfg(target_arch = "x86_64")]
        if Kernels::detect() != (Kernels::Portable { signs: false }) {
            #[target_feature(enable = "avx2")]
            unsafe fn avx2(row: &[u8], query: &[i8]) -> i64 {
                // SAFETY: compiled with AVX2, called where the CPU has it.
                unsafe { nibble_avx2(row, query) }
            }
            // SAFETY: the CPU has AVX2 (detected).
            return unsafe { avx2(row, query) };
        }
        nibble_lanes(row, query)
    }

    /// [`set_sum_avx512`] where the CPU has AVX-512BW.
    fn set_sum_dispatched(bits: &[u64], query: &[u8]) -> Option<i64> {
        #[cfg(target_arch = "x86_64")]
        if Kernels::detect() == Kernels::Avx512 {
            #[target_feature(enable = "avx512f,avx512bw,popcnt")]
            unsafe fn avx512(bits: &[u64], query: &[u8]) -> i64 {
                // SAFETY: compiled with AVX-512F and AVX-512BW, called where the CPU has them.
                unsafe { set_sum_avx512(bits, query) }
            }
            // SAFETY: the CPU has AVX-512BW (detected).
            return Some(unsafe { avx512(bits, query) });
        }
        None
    }

    #[test]
    fn the_nibble_dot_product_is_exact_at_the_extremes() {
        for (code, q) in [(7i8, i8::MIN), (-7, i8::MIN), (7, i8::MAX), (-7, i8::MAX)] {
            let mut row = Vec::new();
            pack_nibbles(&vec![code; 384], &mut row);
            assert_eq!(row.len(), 192);
            let query = vec![q; 384];
            let exact = 384 * i64::from(code) * i64::from(q);
            assert_eq!(nibble_lanes(&row, &query) - nibble_offset(&query), exact);
            assert_eq!(nibble_dispatched(&row, &query) - nibble_offset(&query), exact);
        }
    }

    proptest! {
        /// The sum over the set sign bits (AVX-512 where the CPU has it, and the portable one) is the exact
        /// one, at every width.
        #[test]
        fn the_set_bit_sum_is_exact(
            pairs in proptest::collection::vec((-1.0f32..1.0, proptest::num::i8::ANY), 0..700)
        ) {
            let (vector, query): (Vec<f32>, Vec<i8>) = pairs.into_iter().unzip();
            let mut bits = Vec::new();
            pack_signs(&vector, &mut bits);
            prop_assert_eq!(bits.len(), sign_row_words(vector.len()));
            let mut biased: Vec<u8> = query.iter().map(|q| (i16::from(*q) + 128) as u8).collect();
            biased.resize(64 * bits.len(), 128);
            let exact: i64 =
                vector.iter().zip(&query).filter(|(x, _)| **x >= 0.0).map(|(_, q)| i64::from(*q)).sum();
            prop_assert_eq!(set_sum_lanes(&bits, &biased), exact);
            if let Some(sum) = set_sum_dispatched(&bits, &biased) {
                prop_assert_eq!(sum, exact);
            }
        }

        /// Packing keeps every code, and the dispatched product of packed codes is the exact one, at every
        /// width (padded rows included).
        #[test]
        fn the_dispatched_nibble_dot_product_is_exact(
            pairs in proptest::collection::vec((-7i8..=7, proptest::num::i8::ANY), 0..700)
        ) {
            let (codes, query): (Vec<i8>, Vec<i8>) = pairs.into_iter().unzip();
            let mut row = Vec::new();
            pack_nibbles(&codes, &mut row);
            prop_assert_eq!(row.len(), nibble_row_bytes(codes.len()));
            let mut padded = query.clone();
            padded.resize(2 * row.len(), 0);
            let exact: i64 = codes.iter().zip(&query).map(|(x, y)| i64::from(*x) * i64::from(*y)).sum();
            prop_assert_eq!(nibble_lanes(&row, &padded) - nibble_offset(&padded), exact);
            prop_assert_eq!(nibble_dispatched(&row, &padded) - nibble_offset(&padded), exact);
        }
    }
}
