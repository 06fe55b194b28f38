//! Inverted-file (IVF) index for k-nearest-neighbour search over all rows.
//!
//! A k-means coarse quantizer (linfa-clustering) splits the base vectors into `nlist` lists; a query scans only the
//! `nprobe` lists whose centroids are nearest. With `nlist = 1` the search is exact brute force. Exact all-points kNN
//! is O(n^2); with `nlist ~ sqrt(n)` and a few probes it is O(n^1.5 d). Queries run in parallel with rayon.
//! Reference: Jégou, Douze, Schmid, "Product quantization for nearest neighbor search", TPAMI 2011 (IVF part).

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

/// Squared Euclidean distance (8 lanes, so the compiler vectorizes it).
#[inline]
pub fn l2(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            let d = x[k] - y[k];
            acc[k] += d * d;
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += (x - y) * (x - y);
    }
    s
}

/// A neighbour: squared distance and base row id.
pub type Neighbour = (f32, u32);

/// Keep the `k` smallest (distance, id) pairs in `best`, sorted ascending.
#[inline]
fn push_best(best: &mut Vec<Neighbour>, k: usize, cand: Neighbour) {
    if best.len() == k {
        match best.last() {
            Some(last) if cand.0 < last.0 => {
                best.pop();
            }
            _ => return,
        }
    }
    let pos = best.partition_point(|b| b.0 <= cand.0);
    best.insert(pos, cand);
}

/// The index: base vectors stored list by list.
#[derive(Debug, Clone)]
pub struct IvfIndex {
    dim: usize,
    centroids: Array2<f32>,
    offsets: Vec<usize>,
    ids: Vec<u32>,
    vectors: Vec<f32>,
    /// Lists probed per query.
    pub nprobe: usize,
}

/// Pick a list count for `n` base rows: exact search below 4000 rows, else about 2 sqrt(n) (at most 4096).
pub fn default_nlist(n: usize) -> usize {
    if n < 4000 {
        1
    } else {
        ((2.0 * (n as f64).sqrt()) as usize).clamp(16, 4096)
    }
}

impl IvfIndex {
    /// Build on the rows of `base` (ids are row positions in `base`).
    pub fn build(base: ArrayView2<f32>, nlist: usize, nprobe: usize) -> IvfIndex {
        let n = base.nrows();
        let dim = base.ncols();
        let nlist = nlist.clamp(1, n.max(1));
        let centroids = if nlist == 1 {
            Array2::zeros((1, dim))
        } else {
            // Train the quantizer on about 8 points per list (every engine picks the same, strided rows).
            let stride = (n / (8 * nlist)).max(1);
            let train = base.select(
                ndarray::Axis(0),
                &(0..n).step_by(stride).collect::<Vec<_>>(),
            );
            // k-means from evenly spaced training rows: k-means++ (linfa) costs O(n k^2 d) for the hundreds of lists an
            // IVF index uses, and linfa's Lloyd steps were the slowest part of a 100k-row scan; a spread start and a
            // few rayon-parallel Lloyd steps make a quantizer as good for probing.
            let step = (train.nrows() / nlist).max(1);
            let init_rows: Vec<usize> = (0..nlist)
                .map(|j| (j * step).min(train.nrows() - 1))
                .collect();
            let init = train.select(ndarray::Axis(0), &init_rows);
            lloyd(&train, init, 8)
        };
        let k = centroids.nrows();
        let assign: Vec<usize> = (0..n)
            .into_par_iter()
            .map(|i| nearest(&centroids, base.row(i).as_slice().unwrap_or(&[]), 1)[0].1 as usize)
            .collect();
        let mut counts = vec![0usize; k + 1];
        for &a in &assign {
            counts[a + 1] += 1;
        }
        for j in 0..k {
            counts[j + 1] += counts[j];
        }
        let offsets = counts.clone();
        let mut fill = counts;
        let mut ids = vec![0u32; n];
        let mut vectors = vec![0f32; n * dim];
        for (i, &a) in assign.iter().enumerate() {
            let p = fill[a];
            fill[a] += 1;
            ids[p] = i as u32;
            if let Some(row) = base.row(i).as_slice() {
                vectors[p * dim..(p + 1) * dim].copy_from_slice(row);
            }
        }
        IvfIndex {
            dim,
            centroids,
            offsets,
            ids,
            vectors,
            nprobe: nprobe.clamp(1, k),
        }
    }

    /// Number of lists.
    pub fn nlist(&self) -> usize {
        self.centroids.nrows()
    }

    /// The `k` nearest base rows of `q`, skipping base id `exclude` (the query itself in leave-one-out search).
    pub fn search(&self, q: &[f32], k: usize, exclude: Option<u32>) -> Vec<Neighbour> {
        let probes = nearest(&self.centroids, q, self.nprobe);
        let mut best: Vec<Neighbour> = Vec::with_capacity(k + 1);
        for (_, list) in probes {
            let l = list as usize;
            for p in self.offsets[l]..self.offsets[l + 1] {
                let id = self.ids[p];
                if Some(id) == exclude {
                    continue;
                }
                let d = l2(q, &self.vectors[p * self.dim..(p + 1) * self.dim]);
                push_best(&mut best, k, (d, id));
            }
        }
        best
    }

    /// kNN of every query row, in parallel. `self_ids[i]` is the base id of query `i` when the query is also a base
    /// row (leave-one-out), else `None`.
    pub fn search_all(
        &self,
        queries: ArrayView2<f32>,
        k: usize,
        self_ids: &[Option<u32>],
    ) -> Vec<Vec<Neighbour>> {
        (0..queries.nrows())
            .into_par_iter()
            .map(|i| {
                let row = queries.row(i);
                let q = row
                    .as_slice()
                    .map(|s| s.to_vec())
                    .unwrap_or_else(|| row.to_vec());
                self.search(&q, k, self_ids.get(i).copied().flatten())
            })
            .collect()
    }
}

/// Plain Lloyd iterations for the coarse quantizer (rayon over rows; an empty list keeps its centroid).
fn lloyd(x: &Array2<f32>, mut c: Array2<f32>, iters: usize) -> Array2<f32> {
    let (k, d) = (c.nrows(), c.ncols());
    for _ in 0..iters {
        let assign: Vec<usize> = (0..x.nrows())
            .into_par_iter()
            .map(|i| {
                let row = x.row(i);
                let q = row
                    .as_slice()
                    .map(|s| s.to_vec())
                    .unwrap_or_else(|| row.to_vec());
                nearest(&c, &q, 1)[0].1 as usize
            })
            .collect();
        let mut sums = Array2::<f64>::zeros((k, d));
        let mut counts = vec![0usize; k];
        for (i, &a) in assign.iter().enumerate() {
            counts[a] += 1;
            let mut srow = sums.row_mut(a);
            srow.zip_mut_with(&x.row(i), |s, &v| *s += v as f64);
        }
        for j in 0..k {
            if counts[j] > 0 {
                for t in 0..d {
                    c[[j, t]] = (sums[[j, t]] / counts[j] as f64) as f32;
                }
            }
        }
    }
    c
}

/// The `m` nearest centroids of `q`: (squared distance, centroid index), ascending.
pub fn nearest(centroids: &Array2<f32>, q: &[f32], m: usize) -> Vec<Neighbour> {
    let mut best = Vec::with_capacity(m + 1);
    for (j, c) in centroids.rows().into_iter().enumerate() {
        let d = match c.as_slice() {
            Some(s) => l2(q, s),
            None => l2(q, &c.to_vec()),
        };
        push_best(&mut best, m, (d, j as u32));
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random(n: usize, d: usize, seed: u64) -> Array2<f32> {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
        Array2::from_shape_fn((n, d), |_| rng.gen_range(-1.0..1.0))
    }

    fn brute(base: &Array2<f32>, q: &[f32], k: usize, exclude: Option<u32>) -> Vec<u32> {
        let mut all: Vec<Neighbour> = (0..base.nrows())
            .filter(|&i| Some(i as u32) != exclude)
            .map(|i| (l2(q, base.row(i).as_slice().unwrap()), i as u32))
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0));
        all.into_iter().take(k).map(|x| x.1).collect()
    }

    #[test]
    fn single_list_is_exact() {
        let base = random(500, 7, 1);
        let idx = IvfIndex::build(base.view(), 1, 1);
        for i in [0usize, 17, 499] {
            let q = base.row(i).to_vec();
            let got: Vec<u32> = idx
                .search(&q, 10, Some(i as u32))
                .into_iter()
                .map(|x| x.1)
                .collect();
            assert_eq!(got, brute(&base, &q, 10, Some(i as u32)));
        }
    }

    #[test]
    fn probing_every_list_is_exact_and_few_probes_recall_well() {
        let base = random(6000, 8, 2);
        let all = IvfIndex::build(base.view(), 40, 40);
        let few = IvfIndex::build(base.view(), 40, 8);
        let mut hits = 0;
        for i in (0..6000).step_by(97) {
            let q = base.row(i).to_vec();
            let truth = brute(&base, &q, 10, Some(i as u32));
            let got: Vec<u32> = all
                .search(&q, 10, Some(i as u32))
                .into_iter()
                .map(|x| x.1)
                .collect();
            assert_eq!(got, truth);
            let approx: Vec<u32> = few
                .search(&q, 10, Some(i as u32))
                .into_iter()
                .map(|x| x.1)
                .collect();
            hits += approx.iter().filter(|x| truth.contains(x)).count();
        }
        let recall = hits as f64 / (62.0 * 10.0);
        assert!(recall > 0.8, "recall {recall}");
    }
}
