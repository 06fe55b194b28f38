//! Inverted-file (IVF) index for k-nearest-neighbour search over all rows.
//!
//! A k-means coarse quantizer (Lloyd steps from evenly spaced rows, rayon) splits the base vectors into `nlist` lists;
//! a query scans only the `nprobe` lists whose centroids are nearest. With `nlist = 1` the search is exact brute force.
//! Exact all-points kNN is O(n^2); with `nlist ~ sqrt(n)` and a few probes it is O(n^1.5 d). Many queries at once
//! ([`IvfIndex::search_all`]) pick their lists with matrix products and scan them query by query, in parallel with
//! rayon.
//! Reference: Jégou, Douze, Schmid, "Product quantization for nearest neighbor search", TPAMI 2011 (IVF part).

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

/// Whether the CPU runs the AVX2 builds of the search loops (same arithmetic, one 8-wide register per 8 lanes, so
/// results are bit-identical to the baseline build).
#[inline]
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Squared Euclidean distance (8 lanes, so the compiler vectorizes it).
#[inline(always)]
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

/// The `k` smallest (distance, id) pairs seen, sorted ascending. Callers test [`TopK::accepts`] first: most candidates
/// are rejected by that one compare against the current k-th distance.
struct TopK {
    k: usize,
    best: Vec<Neighbour>,
    worst: f32,
}

impl TopK {
    fn new(k: usize) -> TopK {
        TopK {
            k,
            best: Vec::with_capacity(k + 1),
            worst: if k == 0 {
                f32::NEG_INFINITY
            } else {
                f32::INFINITY
            },
        }
    }

    /// Whether a candidate at distance `d` would be kept.
    #[inline(always)]
    fn accepts(&self, d: f32) -> bool {
        d < self.worst
    }

    /// Keep `cand` (after `accepts` said yes).
    #[inline(always)]
    fn push(&mut self, cand: Neighbour) {
        if self.best.len() < self.k {
            self.best.push(cand);
        } else if let Some(last) = self.best.last_mut() {
            *last = cand;
        }
        // Insertion from the end: after equal distances (first seen first), no call to memmove for a few elements.
        let mut i = self.best.len() - 1;
        while i > 0 && self.best[i - 1].0 > cand.0 {
            self.best[i] = self.best[i - 1];
            i -= 1;
        }
        self.best[i] = cand;
        if self.best.len() == self.k {
            self.worst = self.best[self.k - 1].0;
        }
    }
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
        let assign: Vec<usize> = nearest_many(&centroids, base, 1)
            .into_iter()
            .map(|p| p.first().map_or(0, |x| x.1 as usize))
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
        self.scan(q, &probes, k, exclude, &mut Vec::new())
    }

    /// kNN of every query row, in parallel. `self_ids[i]` is the base id of query `i` when the query is also a base
    /// row (leave-one-out), else `None`.
    ///
    /// The lists each query probes are picked for all queries at once with matrix products ([`nearest_many`]); then
    /// each query (rayon over queries) scans its lists nearest first with exact distances, one top-k carried across
    /// them, so the k-th distance found in the nearest list rejects most rows of the others with one compare. Same
    /// neighbours as one [`IvfIndex::search`] per query up to near-ties in the choice of lists. (A list-by-list
    /// search with one matrix product per list, as in faiss, spent its time keeping a fresh top-k per list and
    /// merging them: 2.5 s against 0.9 s for 250,000 queries on 100,000 rows x 32 here.)
    pub fn search_all(
        &self,
        queries: ArrayView2<f32>,
        k: usize,
        self_ids: &[Option<u32>],
    ) -> Vec<Vec<Neighbour>> {
        // Blocks of queries bound the probe lists and results held at once.
        const BLOCK: usize = 65_536;
        let n = queries.nrows();
        let mut out = Vec::with_capacity(n);
        for start in (0..n).step_by(BLOCK) {
            let end = (start + BLOCK).min(n);
            let block = queries.slice(ndarray::s![start..end, ..]);
            let ids = self_ids.get(start..end.min(self_ids.len())).unwrap_or(&[]);
            out.extend(self.search_block(block, k, ids));
        }
        out
    }

    fn search_block(
        &self,
        queries: ArrayView2<f32>,
        k: usize,
        self_ids: &[Option<u32>],
    ) -> Vec<Vec<Neighbour>> {
        let probes = nearest_many(&self.centroids, queries, self.nprobe);
        probes
            .par_iter()
            .enumerate()
            .map_init(Vec::new, |dists, (i, p)| {
                let row = queries.row(i);
                let owned;
                let q = match row.as_slice() {
                    Some(q) => q,
                    None => {
                        owned = row.to_vec();
                        &owned
                    }
                };
                self.scan(q, p, k, self_ids.get(i).copied().flatten(), dists)
            })
            .collect()
    }

    /// [`IvfIndex::scan_into`], in its AVX2 build when the CPU has it.
    fn scan(
        &self,
        q: &[f32],
        probes: &[Neighbour],
        k: usize,
        exclude: Option<u32>,
        dists: &mut Vec<f32>,
    ) -> Vec<Neighbour> {
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // SAFETY: the CPU supports AVX2, the only requirement of `scan_avx2`.
            return unsafe { self.scan_avx2(q, probes, k, exclude, dists) };
        }
        self.scan_into(q, probes, k, exclude, dists)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn scan_avx2(
        &self,
        q: &[f32],
        probes: &[Neighbour],
        k: usize,
        exclude: Option<u32>,
        dists: &mut Vec<f32>,
    ) -> Vec<Neighbour> {
        self.scan_into(q, probes, k, exclude, dists)
    }

    /// Scan the probed lists (nearest first) for the `k` nearest base rows of `q`, one top-k carried across them,
    /// with a reused distance buffer; the result sorted by (distance, id).
    #[inline(always)]
    fn scan_into(
        &self,
        q: &[f32],
        probes: &[Neighbour],
        k: usize,
        exclude: Option<u32>,
        dists: &mut Vec<f32>,
    ) -> Vec<Neighbour> {
        let mut top = TopK::new(k);
        for &(_, list) in probes {
            let l = list as usize;
            let (from, to) = (self.offsets[l], self.offsets[l + 1]);
            distances(
                q,
                &self.vectors[from * self.dim..to * self.dim],
                self.dim,
                dists,
            );
            for (p, &d) in (from..to).zip(dists.iter()) {
                if top.accepts(d) {
                    let id = self.ids[p];
                    if Some(id) != exclude {
                        top.push((d, id));
                    }
                }
            }
        }
        let mut nb = top.best;
        nb.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        nb
    }
}

/// Plain Lloyd iterations for the coarse quantizer (rayon over rows; an empty list keeps its centroid).
fn lloyd(x: &Array2<f32>, mut c: Array2<f32>, iters: usize) -> Array2<f32> {
    let (k, d) = (c.nrows(), c.ncols());
    for _ in 0..iters {
        let assign: Vec<usize> = nearest_many(&c, x.view(), 1)
            .into_iter()
            .map(|p| p.first().map_or(0, |x| x.1 as usize))
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

/// Queries per block of [`nearest_many`].
const QUERY_BLOCK: usize = 512;

/// The `m` nearest centroids of every row of `queries` (as [`nearest`] gives for one row).
///
/// Distances come from one matrix product per block of queries (`|q|^2 + |c|^2 - 2 q.c`, ndarray's
/// matrixmultiply sgemm, rayon over blocks) instead of one distance loop per (query, centroid) pair: picking lists
/// to probe or assigning rows to centroids needs the order, not exact distances, and the product is several times
/// faster. Distances are clamped at 0.
pub fn nearest_many(
    centroids: &Array2<f32>,
    queries: ArrayView2<f32>,
    m: usize,
) -> Vec<Vec<Neighbour>> {
    let n = queries.nrows();
    let c_norm: Vec<f32> = centroids.rows().into_iter().map(|c| c.dot(&c)).collect();
    let ct = centroids.t();
    let blocks: Vec<Vec<Vec<Neighbour>>> = (0..n.div_ceil(QUERY_BLOCK))
        .into_par_iter()
        .map(|b| {
            let rows = queries.slice(ndarray::s![
                b * QUERY_BLOCK..((b + 1) * QUERY_BLOCK).min(n),
                ..
            ]);
            let dots = rows.dot(&ct);
            rows.rows()
                .into_iter()
                .zip(dots.rows())
                .map(|(q, dq)| {
                    let qn = q.dot(&q);
                    let mut top = TopK::new(m);
                    for (j, (&d, &cn)) in dq.iter().zip(&c_norm).enumerate() {
                        let d2 = (qn + cn - 2.0 * d).max(0.0);
                        if top.accepts(d2) {
                            top.push((d2, j as u32));
                        }
                    }
                    top.best
                })
                .collect()
        })
        .collect();
    blocks.into_iter().flatten().collect()
}

/// The `m` nearest centroids of `q`: (squared distance, centroid index), ascending.
pub fn nearest(centroids: &Array2<f32>, q: &[f32], m: usize) -> Vec<Neighbour> {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2, the only requirement of `nearest_avx2`.
        return unsafe { nearest_avx2(centroids, q, m) };
    }
    nearest_generic(centroids, q, m)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn nearest_avx2(centroids: &Array2<f32>, q: &[f32], m: usize) -> Vec<Neighbour> {
    nearest_generic(centroids, q, m)
}

#[inline(always)]
fn nearest_generic(centroids: &Array2<f32>, q: &[f32], m: usize) -> Vec<Neighbour> {
    let mut dists = Vec::with_capacity(centroids.nrows());
    match centroids.as_slice() {
        Some(all) => distances(q, all, centroids.ncols(), &mut dists),
        None => dists.extend(centroids.rows().into_iter().map(|c| l2(q, &c.to_vec()))),
    }
    let mut top = TopK::new(m);
    for (j, &d) in dists.iter().enumerate() {
        if top.accepts(d) {
            top.push((d, j as u32));
        }
    }
    top.best
}

/// Squared distances from `q` to each `dim`-long row of `rows`, into `out` (cleared first).
#[inline(always)]
fn distances(q: &[f32], rows: &[f32], dim: usize, out: &mut Vec<f32>) {
    out.clear();
    if dim == 0 {
        return;
    }
    out.extend(rows.chunks_exact(dim).map(|r| l2(q, r)));
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
    fn search_all_finds_what_one_search_per_query_finds() {
        let base = random(6000, 8, 3);
        let idx = IvfIndex::build(base.view(), 40, 6);
        let self_ids: Vec<Option<u32>> = (0..6000u32).map(Some).collect();
        let all = idx.search_all(base.view(), 10, &self_ids);
        // Also as queries that are not base rows (no exclusion), from a second block.
        let other = random(300, 8, 4);
        let all_other = idx.search_all(other.view(), 10, &[]);
        let mut differ = 0;
        for (i, found) in all.iter().enumerate() {
            let one = idx.search(&base.row(i).to_vec(), 10, Some(i as u32));
            assert!(
                found.iter().all(|&(_, id)| id != i as u32),
                "query {i} found itself"
            );
            if *found != one {
                differ += 1;
            }
        }
        for (i, found) in all_other.iter().enumerate() {
            assert_eq!(*found, idx.search(&other.row(i).to_vec(), 10, None));
        }
        // Lists are picked by |q|^2 + |c|^2 - 2 q.c (a matrix product), then scanned exactly: only near-ties may differ.
        assert!(differ <= 6, "{differ} of 6000 neighbour lists differ");
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
