//! Dataset fingerprints: an order-independent multiset hash (LtHash16, `lineage::lthash`) and an ordered Merkle
//! root over fixed-size row chunks.
//!
//! [`LineageState`] is mergeable: scan any contiguous row ranges (partitions) in any order, [`LineageState::merge`]
//! them, and [`LineageState::finish`] gives the same [`Fingerprint`] as one pass over the whole input.

use super::encode::RowDigest;
use crate::error::LineageError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Rows per Merkle leaf (fixed, independent of engine batch sizes).
pub const DEFAULT_CHUNK_ROWS: u64 = 1024;

/// A finished dataset fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Number of rows.
    pub rows: u64,
    /// LtHash16 of the rows' digests (blake3 checksum of the 2 KiB state, hex): independent of row order, and a
    /// multiset hash with a security argument (see `lineage::lthash`).
    pub lthash: String,
    /// Merkle root over chunks of `chunk_rows` rows in order, hex.
    pub merkle_root: String,
    /// Rows per Merkle leaf.
    pub chunk_rows: u64,
}

#[derive(Debug, Clone)]
enum Chunk {
    Complete([u8; 32]),
    Partial(BTreeMap<u64, RowDigest>),
}

/// Partial lineage state of a set of rows identified by their global row positions.
#[derive(Debug, Clone)]
pub struct LineageState {
    chunk_rows: u64,
    rows: u64,
    lthash: super::lthash::LtHash,
    chunks: BTreeMap<u64, Chunk>,
}

impl Default for LineageState {
    fn default() -> Self {
        Self::new(DEFAULT_CHUNK_ROWS)
    }
}

/// Hash of one Merkle leaf: domain byte 0, then the chunk's row digests in order.
fn leaf_hash(digests: &[RowDigest]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&[0u8]);
    h.update(digests.as_flattened());
    *h.finalize().as_bytes()
}

/// Leaf hash of a chunk whose rows were collected by position.
fn collected_leaf_hash(rows: &BTreeMap<u64, RowDigest>) -> [u8; 32] {
    let digests: Vec<RowDigest> = rows.values().copied().collect();
    leaf_hash(&digests)
}

/// Merkle root of leaves: parents are blake3(1 || left || right); an odd last node is promoted unchanged.
pub fn merkle_root(leaves: &[[u8; 32]]) -> [u8; 32] {
    if leaves.is_empty() {
        return *blake3::hash(&[]).as_bytes();
    }
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|p| {
                if p.len() == 1 {
                    p[0]
                } else {
                    let mut h = blake3::Hasher::new();
                    h.update(&[1u8]);
                    h.update(&p[0]);
                    h.update(&p[1]);
                    *h.finalize().as_bytes()
                }
            })
            .collect();
    }
    level[0]
}

impl LineageState {
    /// Empty state with `chunk_rows` rows per Merkle leaf.
    pub fn new(chunk_rows: u64) -> Self {
        LineageState {
            chunk_rows: chunk_rows.max(1),
            rows: 0,
            lthash: super::lthash::LtHash::new(),
            chunks: BTreeMap::new(),
        }
    }

    /// Rows added so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Checksum of the LtHash of the rows added so far (hex, as [`Fingerprint::lthash`]).
    pub fn lthash_hex(&self) -> String {
        self.lthash.checksum_hex()
    }

    /// Add the digests of rows `start .. start + digests.len()` (global positions).
    pub fn add(&mut self, start: u64, digests: &[RowDigest]) {
        self.lthash.add_all(digests);
        // Chunk by chunk: a chunk the slice covers whole is hashed straight from it; rows of a chunk that starts or
        // ends outside the slice wait in a partial map until the chunk is complete.
        let mut row = start;
        let mut rest = digests;
        while !rest.is_empty() {
            let c = row / self.chunk_rows;
            let in_chunk = ((c + 1) * self.chunk_rows - row).min(rest.len() as u64) as usize;
            let (part, tail) = rest.split_at(in_chunk);
            if in_chunk as u64 == self.chunk_rows && !self.chunks.contains_key(&c) {
                self.chunks.insert(c, Chunk::Complete(leaf_hash(part)));
            } else {
                let entry = self
                    .chunks
                    .entry(c)
                    .or_insert_with(|| Chunk::Partial(BTreeMap::new()));
                if let Chunk::Partial(m) = entry {
                    m.extend((row..).zip(part.iter().copied()));
                    if m.len() as u64 == self.chunk_rows {
                        *entry = Chunk::Complete(collected_leaf_hash(m));
                    }
                }
            }
            row += in_chunk as u64;
            rest = tail;
        }
        self.rows += digests.len() as u64;
    }

    /// Merge another partition's state (any order).
    pub fn merge(&mut self, other: LineageState) -> Result<(), LineageError> {
        if other.chunk_rows != self.chunk_rows {
            return Err(LineageError::Incomplete(format!(
                "cannot merge states with chunk sizes {} and {}",
                self.chunk_rows, other.chunk_rows
            )));
        }
        self.rows += other.rows;
        self.lthash.merge(&other.lthash);
        for (c, chunk) in other.chunks {
            match (self.chunks.remove(&c), chunk) {
                (None, ch) => {
                    self.chunks.insert(c, ch);
                }
                (Some(Chunk::Partial(mut a)), Chunk::Partial(b)) => {
                    a.extend(b);
                    let ch = if a.len() as u64 == self.chunk_rows {
                        Chunk::Complete(collected_leaf_hash(&a))
                    } else {
                        Chunk::Partial(a)
                    };
                    self.chunks.insert(c, ch);
                }
                _ => {
                    return Err(LineageError::Incomplete(format!(
                        "chunk {c} was scanned by two partitions (overlapping row ranges)"
                    )))
                }
            }
        }
        Ok(())
    }

    /// Finish: every row position `0 .. rows` must be present exactly once.
    pub fn finish(&self) -> Result<Fingerprint, LineageError> {
        let n_chunks = self.rows.div_ceil(self.chunk_rows);
        let mut leaves = Vec::with_capacity(n_chunks as usize);
        for c in 0..n_chunks {
            let expected = if c + 1 == n_chunks {
                self.rows - c * self.chunk_rows
            } else {
                self.chunk_rows
            };
            match self.chunks.get(&c) {
                Some(Chunk::Complete(h)) => leaves.push(*h),
                Some(Chunk::Partial(m)) if m.len() as u64 == expected => {
                    leaves.push(collected_leaf_hash(m))
                }
                _ => {
                    return Err(LineageError::Incomplete(format!(
                        "rows of chunk {c} (rows {}..) are missing",
                        c * self.chunk_rows
                    )))
                }
            }
        }
        if self.chunks.len() as u64 != n_chunks {
            return Err(LineageError::Incomplete(
                "row positions beyond the row count".into(),
            ));
        }
        Ok(Fingerprint {
            rows: self.rows,
            lthash: self.lthash.checksum_hex(),
            merkle_root: hex::encode(merkle_root(&leaves)),
            chunk_rows: self.chunk_rows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digests(n: usize) -> Vec<RowDigest> {
        (0..n)
            .map(|i| *blake3::hash(&(i as u64).to_le_bytes()).as_bytes())
            .collect()
    }

    #[test]
    fn partitions_merge_to_the_whole_in_any_order() {
        let d = digests(5000);
        let mut whole = LineageState::new(64);
        whole.add(0, &d);
        let whole = whole.finish().unwrap();
        for parts in [1usize, 3, 7] {
            let size = d.len().div_ceil(parts);
            let mut states: Vec<LineageState> = d
                .chunks(size)
                .enumerate()
                .map(|(i, c)| {
                    let mut s = LineageState::new(64);
                    s.add((i * size) as u64, c);
                    s
                })
                .collect();
            states.reverse();
            let mut acc = LineageState::new(64);
            for s in states {
                acc.merge(s).unwrap();
            }
            assert_eq!(acc.finish().unwrap(), whole, "{parts} partitions");
        }
    }

    #[test]
    fn lthash_ignores_order_merkle_does_not() {
        let d = digests(300);
        let mut a = LineageState::new(16);
        a.add(0, &d);
        let mut r = d.clone();
        r.swap(0, 299);
        let mut b = LineageState::new(16);
        b.add(0, &r);
        let (fa, fb) = (a.finish().unwrap(), b.finish().unwrap());
        assert_eq!(fa.lthash, fb.lthash);
        assert_ne!(fa.merkle_root, fb.merkle_root);
    }

    #[test]
    fn missing_partition_is_an_error() {
        let d = digests(100);
        let mut s = LineageState::new(16);
        s.add(0, &d[..40]);
        s.add(60, &d[60..]);
        // rows counts 80 but positions 40..60 missing and 80..100 beyond count
        assert!(s.finish().is_err());
    }
}
