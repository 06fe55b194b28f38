//! Eight blake3 hashes of eight independent short inputs at once.
//!
//! A row's canonical encoding is usually a few hundred bytes: one blake3 chunk (at most 1024 bytes), so blake3 cannot
//! use its multi-chunk SIMD on it, and hashing rows one by one runs at a fraction of blake3's throughput. On x86-64
//! CPUs with AVX2 this module computes the *same* digests as `blake3::hash` / `blake3::keyed_hash` (tested against
//! them) for inputs of up to one chunk, eight inputs side by side: each 256-bit register holds one state word of eight
//! inputs, so one pass of the compression function advances eight rows. Inputs longer than a chunk, the last few
//! rows of a group and CPUs without AVX2 use the blake3 crate.
//!
//! The compression function follows the BLAKE3 specification (O'Connor, Aumasson, Neves, Wilcox-O'Hearn, 2020,
//! section 2.2): 16-word state, 7 rounds of the G mixing function, message permutation between rounds. This is the
//! same lane layout the blake3 crate uses internally for the chunks of one long input (its `hash_many`), which the
//! crate does not expose for independent inputs.

use super::encode::{HashMode, RowDigest};

const LANES: usize = 8;
const CHUNK_LEN: usize = 1024;

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::LANES;
    use crate::lineage::encode::RowDigest;
    use std::arch::x86_64::*;

    const BLOCK_LEN: usize = 64;
    pub(super) const IV: [u32; 8] = [
        0x6A09_E667,
        0xBB67_AE85,
        0x3C6E_F372,
        0xA54F_F53A,
        0x510E_527F,
        0x9B05_688C,
        0x1F83_D9AB,
        0x5BE0_CD19,
    ];
    const MSG_PERMUTATION: [usize; 16] = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
    const CHUNK_START: u32 = 1;
    const CHUNK_END: u32 = 2;
    const ROOT: u32 = 8;

    /// Message word order of each of the 7 rounds (the permutation applied 0..6 times).
    const SCHEDULE: [[usize; 16]; 7] = {
        let mut s = [[0usize; 16]; 7];
        let mut i = 0;
        while i < 16 {
            s[0][i] = i;
            i += 1;
        }
        let mut r = 1;
        while r < 7 {
            let mut i = 0;
            while i < 16 {
                s[r][i] = s[r - 1][MSG_PERMUTATION[i]];
                i += 1;
            }
            r += 1;
        }
        s
    };

    /// Byte-shuffle mask rotating every 32-bit word right by `bytes` whole bytes (byte i of a word takes byte
    /// i + bytes, wrapping within the word).
    const fn rotr_mask(bytes: usize) -> [u8; 32] {
        let mut m = [0u8; 32];
        let mut i = 0;
        while i < 32 {
            m[i] = ((i & !3) + ((i + bytes) & 3)) as u8;
            i += 1;
        }
        m
    }
    const ROTR16: [u8; 32] = rotr_mask(2);
    const ROTR8: [u8; 32] = rotr_mask(1);

    /// Rotate every 32-bit word right by a multiple of 8 bits with one byte shuffle.
    #[inline(always)]
    unsafe fn rotr_bytes(x: __m256i, mask: &[u8; 32]) -> __m256i {
        // SAFETY: `mask` is 32 readable bytes.
        _mm256_shuffle_epi8(x, _mm256_loadu_si256(mask.as_ptr() as *const __m256i))
    }

    #[inline(always)]
    unsafe fn rotr12(x: __m256i) -> __m256i {
        _mm256_or_si256(_mm256_srli_epi32::<12>(x), _mm256_slli_epi32::<20>(x))
    }

    #[inline(always)]
    unsafe fn rotr7(x: __m256i) -> __m256i {
        _mm256_or_si256(_mm256_srli_epi32::<7>(x), _mm256_slli_epi32::<25>(x))
    }

    /// The G mixing function on eight lanes.
    #[inline(always)]
    unsafe fn g(
        v: &mut [__m256i; 16],
        a: usize,
        b: usize,
        c: usize,
        d: usize,
        x: __m256i,
        y: __m256i,
    ) {
        v[a] = _mm256_add_epi32(_mm256_add_epi32(v[a], v[b]), x);
        v[d] = rotr_bytes(_mm256_xor_si256(v[d], v[a]), &ROTR16);
        v[c] = _mm256_add_epi32(v[c], v[d]);
        v[b] = rotr12(_mm256_xor_si256(v[b], v[c]));
        v[a] = _mm256_add_epi32(_mm256_add_epi32(v[a], v[b]), y);
        v[d] = rotr_bytes(_mm256_xor_si256(v[d], v[a]), &ROTR8);
        v[c] = _mm256_add_epi32(v[c], v[d]);
        v[b] = rotr7(_mm256_xor_si256(v[b], v[c]));
    }

    /// 8x8 transpose of 32-bit words: `out[w]` lane `l` = `rows[l]` lane `w`.
    #[inline(always)]
    unsafe fn transpose(r: [__m256i; 8]) -> [__m256i; 8] {
        let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
        let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
        let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
        let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
        let t4 = _mm256_unpacklo_epi32(r[4], r[5]);
        let t5 = _mm256_unpackhi_epi32(r[4], r[5]);
        let t6 = _mm256_unpacklo_epi32(r[6], r[7]);
        let t7 = _mm256_unpackhi_epi32(r[6], r[7]);
        let u0 = _mm256_unpacklo_epi64(t0, t2);
        let u1 = _mm256_unpackhi_epi64(t0, t2);
        let u2 = _mm256_unpacklo_epi64(t1, t3);
        let u3 = _mm256_unpackhi_epi64(t1, t3);
        let u4 = _mm256_unpacklo_epi64(t4, t6);
        let u5 = _mm256_unpackhi_epi64(t4, t6);
        let u6 = _mm256_unpacklo_epi64(t5, t7);
        let u7 = _mm256_unpackhi_epi64(t5, t7);
        [
            _mm256_permute2x128_si256::<0x20>(u0, u4),
            _mm256_permute2x128_si256::<0x20>(u1, u5),
            _mm256_permute2x128_si256::<0x20>(u2, u6),
            _mm256_permute2x128_si256::<0x20>(u3, u7),
            _mm256_permute2x128_si256::<0x31>(u0, u4),
            _mm256_permute2x128_si256::<0x31>(u1, u5),
            _mm256_permute2x128_si256::<0x31>(u2, u6),
            _mm256_permute2x128_si256::<0x31>(u3, u7),
        ]
    }

    #[inline(always)]
    unsafe fn lanes(x: [u32; LANES]) -> __m256i {
        _mm256_setr_epi32(
            x[0] as i32,
            x[1] as i32,
            x[2] as i32,
            x[3] as i32,
            x[4] as i32,
            x[5] as i32,
            x[6] as i32,
            x[7] as i32,
        )
    }

    /// Hash eight inputs of at most one chunk (1024 bytes) each, starting from chaining value `key` with the
    /// mode flag `mode_flag` (0, or KEYED_HASH).
    ///
    /// # Safety
    /// The CPU must support AVX2; every input must be at most 1024 bytes.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn hash8(
        inputs: &[&[u8]; LANES],
        key: &[u32; 8],
        mode_flag: u32,
    ) -> [RowDigest; LANES] {
        let mut cv = [_mm256_setzero_si256(); 8];
        for (w, c) in cv.iter_mut().enumerate() {
            *c = _mm256_set1_epi32(key[w] as i32);
        }
        // Blocks per input (an empty input is one empty block).
        let mut blocks = [0u32; LANES];
        for l in 0..LANES {
            blocks[l] = inputs[l].len().div_ceil(BLOCK_LEN).max(1) as u32;
        }
        let max_blocks = blocks.iter().copied().max().unwrap_or(1);
        // Blocks every lane fills completely (loaded straight from the inputs, no per-lane bookkeeping).
        let min_len = inputs.iter().map(|i| i.len()).min().unwrap_or(0);
        let blocks_v = lanes(blocks);
        let full_len = _mm256_set1_epi32(BLOCK_LEN as i32);
        let end_flags = _mm256_set1_epi32((CHUNK_END | ROOT) as i32);
        let mut padded = [[0u8; BLOCK_LEN]; LANES];
        for j in 0..max_blocks {
            let mut lo = [_mm256_setzero_si256(); 8];
            let mut hi = [_mm256_setzero_si256(); 8];
            let at = j as usize * BLOCK_LEN;
            let block_len = if at + BLOCK_LEN <= min_len {
                for l in 0..LANES {
                    // SAFETY: every input holds at least `at + 64` bytes.
                    let ptr = inputs[l].as_ptr().add(at);
                    lo[l] = _mm256_loadu_si256(ptr as *const __m256i);
                    hi[l] = _mm256_loadu_si256(ptr.add(32) as *const __m256i);
                }
                full_len
            } else {
                let mut block_len = [0u32; LANES];
                for l in 0..LANES {
                    let input = inputs[l];
                    let bytes = &input[at.min(input.len())..(at + BLOCK_LEN).min(input.len())];
                    let ptr = if bytes.len() == BLOCK_LEN {
                        bytes.as_ptr()
                    } else {
                        padded[l] = [0u8; BLOCK_LEN];
                        padded[l][..bytes.len()].copy_from_slice(bytes);
                        padded[l].as_ptr()
                    };
                    // SAFETY: `ptr` points at 64 readable bytes (a full block of the input or the padded copy).
                    lo[l] = _mm256_loadu_si256(ptr as *const __m256i);
                    hi[l] = _mm256_loadu_si256(ptr.add(32) as *const __m256i);
                    block_len[l] = bytes.len() as u32;
                }
                lanes(block_len)
            };
            // Flags: the mode, CHUNK_START on the first block, CHUNK_END | ROOT on each lane's last block.
            let first = if j == 0 { CHUNK_START } else { 0 };
            let last = _mm256_cmpeq_epi32(blocks_v, _mm256_set1_epi32(j as i32 + 1));
            let flags = _mm256_or_si256(
                _mm256_set1_epi32((mode_flag | first) as i32),
                _mm256_and_si256(last, end_flags),
            );
            let lo = transpose(lo);
            let hi = transpose(hi);
            let m = [
                lo[0], lo[1], lo[2], lo[3], lo[4], lo[5], lo[6], lo[7], hi[0], hi[1], hi[2], hi[3],
                hi[4], hi[5], hi[6], hi[7],
            ];
            let zero = _mm256_setzero_si256();
            let mut v = [
                cv[0],
                cv[1],
                cv[2],
                cv[3],
                cv[4],
                cv[5],
                cv[6],
                cv[7],
                _mm256_set1_epi32(IV[0] as i32),
                _mm256_set1_epi32(IV[1] as i32),
                _mm256_set1_epi32(IV[2] as i32),
                _mm256_set1_epi32(IV[3] as i32),
                zero, // counter low: every input is chunk 0
                zero, // counter high
                block_len,
                flags,
            ];
            // The seven rounds, unrolled so every message index is a constant.
            macro_rules! round {
                ($r:expr) => {
                    let s = &SCHEDULE[$r];
                    g(&mut v, 0, 4, 8, 12, m[s[0]], m[s[1]]);
                    g(&mut v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
                    g(&mut v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
                    g(&mut v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
                    g(&mut v, 0, 5, 10, 15, m[s[8]], m[s[9]]);
                    g(&mut v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
                    g(&mut v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
                    g(&mut v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
                };
            }
            round!(0);
            round!(1);
            round!(2);
            round!(3);
            round!(4);
            round!(5);
            round!(6);
            // Lanes whose input has already ended keep their chaining value.
            let active = _mm256_cmpgt_epi32(blocks_v, _mm256_set1_epi32(j as i32));
            for w in 0..8 {
                let next = _mm256_xor_si256(v[w], v[w + 8]);
                cv[w] = _mm256_blendv_epi8(cv[w], next, active);
            }
        }
        let rows = transpose(cv);
        let mut out = [[0u8; 32]; LANES];
        for (l, digest) in out.iter_mut().enumerate() {
            // SAFETY: `digest` is 32 writable bytes.
            _mm256_storeu_si256(digest.as_mut_ptr() as *mut __m256i, rows[l]);
        }
        out
    }
}

/// Key words and mode flag of a hash mode.
#[cfg(target_arch = "x86_64")]
fn key_words(mode: &HashMode) -> ([u32; 8], u32) {
    const KEYED_HASH: u32 = 16;
    match mode {
        HashMode::Plain => (avx2::IV, 0),
        HashMode::Keyed(k) => {
            let mut w = [0u32; 8];
            for (i, word) in k.chunks_exact(4).enumerate() {
                w[i] = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
            }
            (w, KEYED_HASH)
        }
    }
}

/// Digest of every input: `out[i]` = `mode.hash(inputs[i])`, identical to the blake3 crate's result.
pub fn hash_many(mode: &HashMode, inputs: &[&[u8]], out: &mut [RowDigest]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            let (key, flag) = key_words(mode);
            let mut group: [&[u8]; LANES] = [&[]; LANES];
            let mut slots = [0usize; LANES];
            let mut filled = 0;
            for (i, input) in inputs.iter().enumerate() {
                if input.len() > CHUNK_LEN {
                    out[i] = mode.hash(input);
                    continue;
                }
                group[filled] = input;
                slots[filled] = i;
                filled += 1;
                if filled == LANES {
                    // SAFETY: AVX2 is available (checked above) and every input in `group` is at most one chunk.
                    let d = unsafe { avx2::hash8(&group, &key, flag) };
                    for l in 0..LANES {
                        out[slots[l]] = d[l];
                    }
                    filled = 0;
                }
            }
            for l in 0..filled {
                out[slots[l]] = mode.hash(group[l]);
            }
            return;
        }
    }
    for (slot, input) in out.iter_mut().zip(inputs) {
        *slot = mode.hash(input);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(mode: HashMode, inputs: &[Vec<u8>]) {
        let refs: Vec<&[u8]> = inputs.iter().map(|v| v.as_slice()).collect();
        let mut out = vec![[0u8; 32]; refs.len()];
        hash_many(&mode, &refs, &mut out);
        for (input, got) in refs.iter().zip(&out) {
            assert_eq!(*got, mode.hash(input), "input of {} bytes", input.len());
        }
    }

    #[test]
    fn block_and_chunk_boundaries_match_blake3() {
        // Lengths around every block boundary and the chunk limit, mixed in one group of lanes.
        let lens = [
            0usize, 1, 63, 64, 65, 127, 128, 129, 255, 256, 306, 319, 320, 511, 512, 1023, 1024,
            1025, 2048, 3,
        ];
        let inputs: Vec<Vec<u8>> = lens
            .iter()
            .map(|&n| (0..n).map(|i| (i * 31 + n) as u8).collect())
            .collect();
        check(HashMode::Plain, &inputs);
        check(HashMode::Keyed([7u8; 32]), &inputs);
    }

    #[test]
    fn every_length_up_to_a_chunk_matches_blake3() {
        let inputs: Vec<Vec<u8>> = (0..=1024usize)
            .map(|n| (0..n).map(|i| (i * 131 + n * 7) as u8).collect())
            .collect();
        check(HashMode::Plain, &inputs);
        check(HashMode::Keyed([0xA5u8; 32]), &inputs);
    }

    proptest! {
        #[test]
        fn random_inputs_match_blake3(
            inputs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..1100), 0..40),
            key in proptest::array::uniform32(any::<u8>()),
        ) {
            check(HashMode::Plain, &inputs);
            check(HashMode::Keyed(key), &inputs);
        }
    }
}
