//! The only unsafe code of the crate: SIMD compares that turn 64 bytes into bitmasks.
#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m128i, __m256i, _mm_clmulepi64_si128, _mm_cmpeq_epi8, _mm_cvtsi128_si64, _mm_loadu_si128,
    _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set_epi64x, _mm_set1_epi8,
    _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_max_epu8, _mm256_movemask_epi8, _mm256_or_si256,
    _mm256_set1_epi8,
};

/// One bit per byte of a 64-byte block (first byte lowest) for each class that matters.
pub(super) struct Masks {
    pub quote: u64,
    pub backslash: u64,
    /// `{` and `}`.
    pub brace: u64,
    /// What may follow a key's closing quote: `:` or a byte up to space (whitespace).
    pub follow: u64,
}

/// A way to compute [`Masks`]; a value of it proves the CPU has what it uses.
pub(super) trait Classify: Copy {
    /// The masks of one block.
    fn masks(self, b: &[u8; 64]) -> Masks;
    /// The bytes of one block equal to `c`.
    fn eq(self, b: &[u8; 64], c: u8) -> u64;
    /// Each bit XOR all lower bits: 1 from an opening quote up to its closing quote.
    fn prefix_xor(self, x: u64) -> u64;
}

/// Work generic over [`Classify`], which [`run`] compiles for each instruction set.
pub(super) trait Job {
    type Out;
    /// Does the work with `c`.
    fn run<C: Classify>(self, c: C) -> Self::Out;
}

/// Runs `job` with AVX2 if `avx2` and the CPU has it, else with SSE2.
pub(super) fn run<J: Job>(job: J, avx2: bool) -> J::Out {
    if avx2
        && std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("pclmulqdq")
    {
        // SAFETY: AVX2 and PCLMULQDQ were just detected.
        unsafe { run_avx2(job) }
    } else {
        job.run(Sse2(()))
    }
}

/// `job` compiled with AVX2 and carry-less multiplication enabled, so that the compares
/// inline into its loop.
#[target_feature(enable = "avx2,pclmulqdq")]
fn run_avx2<J: Job>(job: J) -> J::Out {
    job.run(Avx2(()))
}

/// SSE2, part of every x86_64 CPU.
#[derive(Clone, Copy)]
pub(super) struct Sse2(());

/// AVX2 and PCLMULQDQ; only [`run`] makes one, after detecting them.
#[derive(Clone, Copy)]
pub(super) struct Avx2(());

impl Classify for Sse2 {
    #[inline(always)]
    fn masks(self, b: &[u8; 64]) -> Masks {
        // SAFETY: SSE2 is part of every x86_64 target.
        unsafe { sse2_masks(b) }
    }

    #[inline(always)]
    fn eq(self, b: &[u8; 64], c: u8) -> u64 {
        // SAFETY: as above.
        unsafe { sse2_eq(b, c) }
    }

    #[inline(always)]
    fn prefix_xor(self, mut x: u64) -> u64 {
        for s in [1, 2, 4, 8, 16, 32] {
            x ^= x << s;
        }
        x
    }
}

impl Classify for Avx2 {
    #[inline(always)]
    fn masks(self, b: &[u8; 64]) -> Masks {
        // SAFETY: an `Avx2` exists only inside `run_avx2`, called once AVX2 was detected.
        unsafe { avx2_masks(b) }
    }

    #[inline(always)]
    fn eq(self, b: &[u8; 64], c: u8) -> u64 {
        // SAFETY: as above.
        unsafe { avx2_eq(b, c) }
    }

    #[inline(always)]
    fn prefix_xor(self, x: u64) -> u64 {
        // SAFETY: as above.
        unsafe { clmul_prefix_xor(x) }
    }
}

/// The masks in four 16-byte compares per class.
#[target_feature(enable = "sse2")]
#[inline]
fn sse2_masks(b: &[u8; 64]) -> Masks {
    let v = sse2_load(b);
    let space = _mm_set1_epi8(0x20);
    let mut m = [0u64; 4];
    for (i, x) in v.into_iter().enumerate() {
        let eq = |c: u8| _mm_cmpeq_epi8(x, _mm_set1_epi8(c as i8));
        let brace = _mm_or_si128(eq(b'{'), eq(b'}'));
        let low = _mm_cmpeq_epi8(_mm_max_epu8(x, space), space);
        let follow = _mm_or_si128(eq(b':'), low);
        for (k, y) in [eq(b'"'), eq(b'\\'), brace, follow].into_iter().enumerate() {
            m[k] |= u64::from(_mm_movemask_epi8(y) as u16) << (16 * i);
        }
    }
    Masks {
        quote: m[0],
        backslash: m[1],
        brace: m[2],
        follow: m[3],
    }
}

/// The masks in two 32-byte compares per class.
#[target_feature(enable = "avx2")]
#[inline]
fn avx2_masks(b: &[u8; 64]) -> Masks {
    let v = avx2_load(b);
    let space = _mm256_set1_epi8(0x20);
    let mut m = [0u64; 4];
    for (i, x) in v.into_iter().enumerate() {
        let eq = |c: u8| _mm256_cmpeq_epi8(x, _mm256_set1_epi8(c as i8));
        let brace = _mm256_or_si256(eq(b'{'), eq(b'}'));
        let low = _mm256_cmpeq_epi8(_mm256_max_epu8(x, space), space);
        let follow = _mm256_or_si256(eq(b':'), low);
        for (k, y) in [eq(b'"'), eq(b'\\'), brace, follow].into_iter().enumerate() {
            m[k] |= u64::from(_mm256_movemask_epi8(y) as u32) << (32 * i);
        }
    }
    Masks {
        quote: m[0],
        backslash: m[1],
        brace: m[2],
        follow: m[3],
    }
}

/// `b` as four 16-byte vectors.
#[target_feature(enable = "sse2")]
#[inline]
fn sse2_load(b: &[u8; 64]) -> [__m128i; 4] {
    // SAFETY: each pointer is `b` plus 0, 16, 32 or 48, so the 16 bytes read lie inside
    // the 64-byte array, and `loadu` takes any alignment.
    [0, 16, 32, 48].map(|i| unsafe { _mm_loadu_si128(b.as_ptr().add(i).cast::<__m128i>()) })
}

/// `b` as two 32-byte vectors.
#[target_feature(enable = "avx2")]
#[inline]
fn avx2_load(b: &[u8; 64]) -> [__m256i; 2] {
    // SAFETY: each pointer is `b` plus 0 or 32, so the 32 bytes read lie inside the
    // 64-byte array, and `loadu` takes any alignment.
    [0, 32].map(|i| unsafe { _mm256_loadu_si256(b.as_ptr().add(i).cast::<__m256i>()) })
}

/// The bytes of `b` equal to `c`, 16 at a time.
#[target_feature(enable = "sse2")]
#[inline]
fn sse2_eq(b: &[u8; 64], c: u8) -> u64 {
    let c = _mm_set1_epi8(c as i8);
    sse2_load(b).iter().enumerate().fold(0, |m, (i, x)| {
        m | u64::from(_mm_movemask_epi8(_mm_cmpeq_epi8(*x, c)) as u16) << (16 * i)
    })
}

/// The bytes of `b` equal to `c`, 32 at a time.
#[target_feature(enable = "avx2")]
#[inline]
fn avx2_eq(b: &[u8; 64], c: u8) -> u64 {
    let c = _mm256_set1_epi8(c as i8);
    avx2_load(b).iter().enumerate().fold(0, |m, (i, x)| {
        m | u64::from(_mm256_movemask_epi8(_mm256_cmpeq_epi8(*x, c)) as u32) << (32 * i)
    })
}

/// The prefix XOR as one carry-less multiplication by all ones.
#[target_feature(enable = "pclmulqdq")]
#[inline]
fn clmul_prefix_xor(x: u64) -> u64 {
    let p = _mm_clmulepi64_si128(_mm_set_epi64x(0, x as i64), _mm_set1_epi8(-1), 0);
    _mm_cvtsi128_si64(p) as u64
}
