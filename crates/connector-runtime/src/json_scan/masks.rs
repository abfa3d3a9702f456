//! The only unsafe code of the crate: SIMD compares that turn 64 bytes into bitmasks.
#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m128i, __m256i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8,
    _mm_or_si128, _mm_set1_epi8, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_max_epu8,
    _mm256_movemask_epi8, _mm256_or_si256, _mm256_set1_epi8,
};

/// One bit per byte of a 64-byte block (first byte lowest) for each class that matters.
pub(super) struct Masks {
    pub quote: u64,
    pub backslash: u64,
    /// `{` and `}`.
    pub brace: u64,
    /// What may follow a key's closing quote: `:` or a byte up to space (whitespace).
    pub follow: u64,
    /// `u` (escaped, it starts a `\u` escape).
    pub u: u64,
}

impl Masks {
    /// The masks of `b`, with AVX2 when `avx2` (which the caller has detected).
    #[inline]
    pub fn of(b: &[u8; 64], avx2: bool) -> Masks {
        if avx2 {
            // SAFETY: the caller passes `avx2` from `is_x86_feature_detected!("avx2")`.
            unsafe { avx2_masks(b) }
        } else {
            // SAFETY: SSE2 is part of every x86_64 target.
            unsafe { sse2_masks(b) }
        }
    }
}

/// [`Masks::of`] in four 16-byte compares per class.
#[target_feature(enable = "sse2")]
fn sse2_masks(b: &[u8; 64]) -> Masks {
    // SAFETY: each pointer is `b` plus 0, 16, 32 or 48, so the 16 bytes read lie inside
    // the 64-byte array, and `loadu` takes any alignment.
    let v =
        [0, 16, 32, 48].map(|i| unsafe { _mm_loadu_si128(b.as_ptr().add(i).cast::<__m128i>()) });
    let space = _mm_set1_epi8(0x20);
    let mut m = [0u64; 5];
    for (i, x) in v.into_iter().enumerate() {
        let eq = |c: u8| _mm_cmpeq_epi8(x, _mm_set1_epi8(c as i8));
        let brace = _mm_or_si128(eq(b'{'), eq(b'}'));
        let low = _mm_cmpeq_epi8(_mm_max_epu8(x, space), space);
        let follow = _mm_or_si128(eq(b':'), low);
        for (k, y) in [eq(b'"'), eq(b'\\'), brace, follow, eq(b'u')]
            .into_iter()
            .enumerate()
        {
            m[k] |= u64::from(_mm_movemask_epi8(y) as u16) << (16 * i);
        }
    }
    Masks {
        quote: m[0],
        backslash: m[1],
        brace: m[2],
        follow: m[3],
        u: m[4],
    }
}

/// [`Masks::of`] in two 32-byte compares per class.
#[target_feature(enable = "avx2")]
fn avx2_masks(b: &[u8; 64]) -> Masks {
    // SAFETY: each pointer is `b` plus 0 or 32, so the 32 bytes read lie inside the
    // 64-byte array, and `loadu` takes any alignment.
    let v = [0, 32].map(|i| unsafe { _mm256_loadu_si256(b.as_ptr().add(i).cast::<__m256i>()) });
    let space = _mm256_set1_epi8(0x20);
    let mut m = [0u64; 5];
    for (i, x) in v.into_iter().enumerate() {
        let eq = |c: u8| _mm256_cmpeq_epi8(x, _mm256_set1_epi8(c as i8));
        let brace = _mm256_or_si256(eq(b'{'), eq(b'}'));
        let low = _mm256_cmpeq_epi8(_mm256_max_epu8(x, space), space);
        let follow = _mm256_or_si256(eq(b':'), low);
        for (k, y) in [eq(b'"'), eq(b'\\'), brace, follow, eq(b'u')]
            .into_iter()
            .enumerate()
        {
            m[k] |= u64::from(_mm256_movemask_epi8(y) as u32) << (32 * i);
        }
    }
    Masks {
        quote: m[0],
        backslash: m[1],
        brace: m[2],
        follow: m[3],
        u: m[4],
    }
}
