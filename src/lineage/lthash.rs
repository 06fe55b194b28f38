//! LtHash16: the order-independent (multiset) fingerprint of a dataset's rows.
//!
//! Each row digest is expanded with blake3's extendable output (keyed with a constant key for domain separation)
//! to 2,048 bytes, read as 1,024 little-endian `u16` values, and the dataset's state is the lane-wise sum of all rows'
//! expansions modulo 2^16 (Bellare and Micciancio's LtHash, in the parameters of Lewi, Kim, Maykov and Weis,
//! "Securing Update Propagation with Homomorphic Hashing", 2019). Adding rows in any order, or merging the states of
//! partitions in any order, gives the same state; removing a row subtracts its expansion. The fingerprint published
//! in reports and manifests is a blake3 checksum of the 2 KiB state.
//!
//! Why not the sum of digests: the sum of 256-bit digests modulo 2^256 (AdHash, what poisonscan used before) falls to
//! Wagner's generalized birthday attack (CRYPTO 2002) in about 2^(2 sqrt(256)) = 2^32 work: whoever can choose rows
//! can build another multiset with the same sum. Finding a collision of LtHash16 with 1,024 lanes is a short-vector
//! problem in a lattice of dimension 1,024 modulo 2^16; Lewi et al. estimate at least 200 bits of security for these
//! parameters (lthash16), far beyond the generalized birthday attack.
//!
//! Its one structural weakness: a row added 2^16 times wraps every lane back, so 65,536 extra copies of one row
//! leave the state unchanged. The scan reports exact copies (`duplicates.exact_copies`), so such a dataset does not
//! pass unnoticed, but the fingerprint alone does not tell it from the original.

use rayon::prelude::*;

use super::encode::RowDigest;

/// Lanes of the state.
pub const LANES: usize = 1024;
/// Bytes of one row's expansion (and of the state).
pub const STATE_BYTES: usize = 2 * LANES;
/// Key of the row expansion (domain separation from every other blake3 use in poisonscan).
const EXPAND_KEY: [u8; 32] = *b"poisonscan lthash16 row expand 1";
/// Key of the state's checksum.
const CHECKSUM_KEY: [u8; 32] = *b"poisonscan lthash16 checksum v1\0";
/// Rows per parallel work item.
const PAR_ROWS: usize = 2048;

/// A multiset's LtHash16 state.
#[derive(Clone, PartialEq, Eq)]
pub struct LtHash(Box<[u16; LANES]>);

impl std::fmt::Debug for LtHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LtHash({})", self.checksum_hex())
    }
}

impl Default for LtHash {
    fn default() -> Self {
        LtHash(Box::new([0u16; LANES]))
    }
}

fn expand(d: &RowDigest, out: &mut [u8; STATE_BYTES]) {
    let mut h = blake3::Hasher::new_keyed(&EXPAND_KEY);
    h.update(d);
    h.finalize_xof().fill(out);
}

impl LtHash {
    /// The empty multiset.
    pub fn new() -> LtHash {
        LtHash::default()
    }

    /// Add one row.
    pub fn add(&mut self, d: &RowDigest) {
        let mut buf = [0u8; STATE_BYTES];
        expand(d, &mut buf);
        for (lane, b) in self.0.iter_mut().zip(buf.chunks_exact(2)) {
            *lane = lane.wrapping_add(u16::from_le_bytes([b[0], b[1]]));
        }
    }

    /// Remove one row (the inverse of [`LtHash::add`]).
    pub fn remove(&mut self, d: &RowDigest) {
        let mut buf = [0u8; STATE_BYTES];
        expand(d, &mut buf);
        for (lane, b) in self.0.iter_mut().zip(buf.chunks_exact(2)) {
            *lane = lane.wrapping_sub(u16::from_le_bytes([b[0], b[1]]));
        }
    }

    /// Add many rows (in parallel for large slices).
    pub fn add_all(&mut self, digests: &[RowDigest]) {
        if digests.len() < 2 * PAR_ROWS {
            for d in digests {
                self.add(d);
            }
            return;
        }
        let part = digests
            .par_chunks(PAR_ROWS)
            .map(|c| {
                let mut h = LtHash::new();
                for d in c {
                    h.add(d);
                }
                h
            })
            .reduce(LtHash::new, |mut a, b| {
                a.merge(&b);
                a
            });
        self.merge(&part);
    }

    /// Add another multiset's state (any order, any partition).
    pub fn merge(&mut self, other: &LtHash) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a = a.wrapping_add(*b);
        }
    }

    /// The state as 2,048 little-endian bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// blake3 checksum of the state: the published fingerprint.
    pub fn checksum(&self) -> [u8; 32] {
        *blake3::keyed_hash(&CHECKSUM_KEY, &self.to_bytes()).as_bytes()
    }

    /// [`LtHash::checksum`] in hex.
    pub fn checksum_hex(&self) -> String {
        hex::encode(self.checksum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(i: u64) -> RowDigest {
        *blake3::hash(&i.to_le_bytes()).as_bytes()
    }

    #[test]
    fn order_partitions_and_removal_do_not_matter() {
        let rows: Vec<RowDigest> = (0..10_000).map(digest).collect();
        let mut whole = LtHash::new();
        whole.add_all(&rows);
        let mut rev = LtHash::new();
        for d in rows.iter().rev() {
            rev.add(d);
        }
        assert_eq!(whole, rev);
        let (a, b) = rows.split_at(3_333);
        let (mut ha, mut hb) = (LtHash::new(), LtHash::new());
        ha.add_all(a);
        hb.add_all(b);
        hb.merge(&ha);
        assert_eq!(hb, whole);
        let mut less = whole.clone();
        less.remove(&rows[17]);
        assert_ne!(less, whole);
        less.add(&rows[17]);
        assert_eq!(less, whole);
        // A multiset, not a set: a row twice differs from once.
        let mut twice = whole.clone();
        twice.add(&rows[0]);
        assert_ne!(twice.checksum(), whole.checksum());
    }

    /// The attack on the old fingerprint at small scale: with the digest sum truncated to 16 bits, a birthday search
    /// finds two different rows (multisets {a} and {b}) with the same sum in a few hundred tries. The same two
    /// multisets differ under LtHash16.
    #[test]
    fn a_collision_of_the_truncated_lthash_is_no_collision_of_lthash() {
        let mut seen = std::collections::HashMap::new();
        let mut found = None;
        for i in 0..100_000u64 {
            let d = digest(i);
            let low16 = u16::from_le_bytes([d[0], d[1]]);
            if let Some(&j) = seen.get(&low16) {
                found = Some((j, i));
                break;
            }
            seen.insert(low16, i);
        }
        let (j, i) = found.expect("a 16-bit birthday collision within 100,000 rows");
        let (a, b) = (digest(j), digest(i));
        assert_ne!(a, b);
        assert_eq!(a[..2], b[..2], "the truncated sums collide");
        let (mut ha, mut hb) = (LtHash::new(), LtHash::new());
        ha.add(&a);
        hb.add(&b);
        assert_ne!(ha.checksum(), hb.checksum());
        // A two-row collision of the truncated sum ({a, b'} vs {a', b} with equal totals) fares no better.
        let mut pairs = std::collections::HashMap::new();
        let mut pair = None;
        for i in 0..2000u64 {
            for j in (i + 1)..2000u64 {
                let (x, y) = (digest(i), digest(j));
                let s =
                    u16::from_le_bytes([x[0], x[1]]).wrapping_add(u16::from_le_bytes([y[0], y[1]]));
                if let Some(&(p, q)) = pairs.get(&s) {
                    if p != i && p != j && q != i && q != j {
                        pair = Some(((p, q), (i, j)));
                        break;
                    }
                } else {
                    pairs.insert(s, (i, j));
                }
            }
            if pair.is_some() {
                break;
            }
        }
        let ((p, q), (i, j)) = pair.expect("a two-row collision");
        let (mut h1, mut h2) = (LtHash::new(), LtHash::new());
        h1.add_all(&[digest(p), digest(q)]);
        h2.add_all(&[digest(i), digest(j)]);
        assert_ne!(h1, h2);
    }
}
