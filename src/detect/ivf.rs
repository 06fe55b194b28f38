//! Inverted-file (IVF) index for k-nearest-neighbour search over all rows.
//!
//! A k-means coarse quantizer (Lloyd steps from evenly spaced rows, rayon) splits the base vectors into `nlist` lists;
//! a query scans only the `nprobe` lists whose centroids are nearest. With `nlist = 1` the search is exact brute force.
//! Exact all-points kNN is O(n^2); with `nlist ~ sqrt(n)` and a few probes it is O(n^1.5 d). Many queries at once
//! ([`IvfIndex::search_all`]) pick their lists with matrix products, then scan them probe by probe with the queries
//! grouped by list (rayon over lists), eight base rows at a time in the AVX2 build.
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

/// [`l2`] from `q` to each of the eight `dim`-long rows of `rows`, eight rows at a time: the same lane sums in the
/// same order (lane `k` of a row sums its values `k, k + 8, ...`; the eight lanes are then added first to last, then
/// the remainder), so every distance is bit-identical to [`l2`]. The lanes of eight rows are transposed so that their
/// final sums run side by side instead of one scalar chain per row. (Skipping the second half of the columns when
/// the first half's sums already reach the k-th distance was tried: in the lists a query probes it rarely can, and
/// the check cost more than it saved.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn l2_eight_avx2(q: &[f32], rows: &[f32], dim: usize) -> [f32; 8] {
    use std::arch::x86_64::*;
    let full = dim / 8;
    let mut acc = [_mm256_setzero_ps(); 8];
    // Checked once here, so the loads below need no bounds checks.
    assert!(q.len() >= dim && rows.len() >= 8 * dim);
    let (qp, rp) = (q.as_ptr(), rows.as_ptr());
    for c in 0..full {
        // SAFETY: 8 * c + 8 <= dim <= q.len(), and j * dim + 8 * c + 8 <= 8 * dim <= rows.len() (asserted above).
        let qv = _mm256_loadu_ps(qp.add(8 * c));
        for (j, a) in acc.iter_mut().enumerate() {
            let d = _mm256_sub_ps(qv, _mm256_loadu_ps(rp.add(j * dim + 8 * c)));
            *a = _mm256_add_ps(*a, _mm256_mul_ps(d, d));
        }
    }
    let mut out = [0f32; 8];
    _mm256_storeu_ps(out.as_mut_ptr(), lane_sums_avx2(&acc));
    for c in 8 * full..dim {
        for (j, o) in out.iter_mut().enumerate() {
            let d = q[c] - rows[j * dim + c];
            *o += d * d;
        }
    }
    out
}

/// Lane `j` of the result: the eight lanes of `acc[j]` added first to last (from -0.0, as `iter().sum()` of f32),
/// for all eight `j` at once through an 8 x 8 transpose.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn lane_sums_avx2(acc: &[std::arch::x86_64::__m256; 8]) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let [a0, a1, a2, a3, a4, a5, a6, a7] = *acc;
    let (u0, u1) = (_mm256_unpacklo_ps(a0, a1), _mm256_unpackhi_ps(a0, a1));
    let (u2, u3) = (_mm256_unpacklo_ps(a2, a3), _mm256_unpackhi_ps(a2, a3));
    let (u4, u5) = (_mm256_unpacklo_ps(a4, a5), _mm256_unpackhi_ps(a4, a5));
    let (u6, u7) = (_mm256_unpacklo_ps(a6, a7), _mm256_unpackhi_ps(a6, a7));
    let s0 = _mm256_shuffle_ps::<0x44>(u0, u2);
    let s1 = _mm256_shuffle_ps::<0xEE>(u0, u2);
    let s2 = _mm256_shuffle_ps::<0x44>(u1, u3);
    let s3 = _mm256_shuffle_ps::<0xEE>(u1, u3);
    let s4 = _mm256_shuffle_ps::<0x44>(u4, u6);
    let s5 = _mm256_shuffle_ps::<0xEE>(u4, u6);
    let s6 = _mm256_shuffle_ps::<0x44>(u5, u7);
    let s7 = _mm256_shuffle_ps::<0xEE>(u5, u7);
    // t[k] holds lane k of every row.
    let t = [
        _mm256_permute2f128_ps::<0x20>(s0, s4),
        _mm256_permute2f128_ps::<0x20>(s1, s5),
        _mm256_permute2f128_ps::<0x20>(s2, s6),
        _mm256_permute2f128_ps::<0x20>(s3, s7),
        _mm256_permute2f128_ps::<0x31>(s0, s4),
        _mm256_permute2f128_ps::<0x31>(s1, s5),
        _mm256_permute2f128_ps::<0x31>(s2, s6),
        _mm256_permute2f128_ps::<0x31>(s3, s7),
    ];
    let mut sum = _mm256_set1_ps(-0.0);
    for tk in t {
        sum = _mm256_add_ps(sum, tk);
    }
    sum
}

/// A neighbour: squared distance and base row id.
pub type Neighbour = (f32, u32);

/// The `k` smallest (distance, id) pairs seen, sorted ascending. Callers test [`TopK::accepts`] first: most candidates
/// are rejected by that one compare against the current k-th distance. The default keeps nothing (and allocates
/// nothing).
#[derive(Default)]
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

    /// The kept pairs sorted by (distance, id).
    fn sorted(self) -> Vec<Neighbour> {
        let mut nb = self.best;
        nb.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        nb
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
    /// the queries scan them probe by probe, grouped by list ([`IvfIndex::search_block`]), each with exact distances
    /// and one top-k carried across its lists nearest first, so the k-th distance found in the nearest list rejects
    /// most rows of the others with one compare. Same neighbours as one [`IvfIndex::search`] per query up to
    /// near-ties in the choice of lists. (A list-by-list search with one matrix product per list, as in faiss, spent
    /// its time keeping a fresh top-k per list and merging them: 2.5 s against 0.9 s for 250,000 queries on 100,000
    /// rows x 32 here.)
    pub fn search_all(
        &self,
        queries: ArrayView2<f32>,
        k: usize,
        self_ids: &[Option<u32>],
    ) -> Vec<Vec<Neighbour>> {
        self.search_all_scaled(queries, None, k, self_ids)
    }

    /// [`IvfIndex::search_all`] with every query column multiplied by `scale` first (when given; the base is
    /// expected in that scale already), a block at a time, so no scaled copy of all queries is held.
    pub fn search_all_scaled(
        &self,
        queries: ArrayView2<f32>,
        scale: Option<&ndarray::Array1<f32>>,
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
            match scale {
                Some(w) => out.extend(self.search_block((&block * w).view(), k, ids)),
                None => out.extend(self.search_block(block, k, ids)),
            }
        }
        out
    }

    /// One block of queries, probe by probe: at probe `r` every query scans its `r`-th nearest list, the queries
    /// grouped by list (rayon over lists), so a list is read once per group and scanned from cache by all its
    /// queries. (With the 4-wide loop of session 14 this alone measured no gain; with the eight-row kernel it did:
    /// 1.22-1.24 s against 1.32-1.42 s query by query, 250k queries on 100k x 32.) Each query's top-k is carried
    /// across its probes in order, so the candidates it sees and their order are those of [`IvfIndex::search`]: the
    /// same neighbours, bit for bit.
    fn search_block(
        &self,
        queries: ArrayView2<f32>,
        k: usize,
        self_ids: &[Option<u32>],
    ) -> Vec<Vec<Neighbour>> {
        let n = queries.nrows();
        let probes = nearest_many(&self.centroids, queries, self.nprobe);
        let rows = queries.as_standard_layout();
        let flat = rows.as_slice().unwrap_or(&[]);
        let dim = self.dim;
        let mut tops: Vec<TopK> = (0..n).map(|_| TopK::new(k)).collect();
        let rounds = probes.iter().map(Vec::len).max().unwrap_or(0);
        for r in 0..rounds {
            let mut by_list: Vec<(u32, u32)> = probes
                .iter()
                .enumerate()
                .filter_map(|(i, p)| p.get(r).map(|&(_, l)| (l, i as u32)))
                .collect();
            by_list.sort_unstable();
            // The top-k of each query, moved out in list order so that each group of a list owns its queries' ones.
            let mut moved: Vec<TopK> = by_list
                .iter()
                .map(|&(_, i)| std::mem::take(&mut tops[i as usize]))
                .collect();
            let mut groups = Vec::new();
            let mut rest = moved.as_mut_slice();
            for g in by_list.chunk_by(|a, b| a.0 == b.0) {
                let (mine, after) = rest.split_at_mut(g.len());
                groups.push((g, mine));
                rest = after;
            }
            groups
                .into_par_iter()
                .for_each_init(Vec::new, |dists, (g, mine)| {
                    let list = g[0].0 as usize;
                    for (&(_, i), top) in g.iter().zip(mine.iter_mut()) {
                        let i = i as usize;
                        let q = flat.get(i * dim..(i + 1) * dim).unwrap_or(&[]);
                        let exclude = self_ids.get(i).copied().flatten();
                        self.scan_list_dispatch(q, list, top, exclude, dists);
                    }
                });
            for (&(_, i), top) in by_list.iter().zip(moved) {
                tops[i as usize] = top;
            }
        }
        tops.into_iter().map(TopK::sorted).collect()
    }

    /// [`IvfIndex::scan_list`], in its AVX2 build when the CPU has it.
    #[inline(always)]
    fn scan_list_dispatch(
        &self,
        q: &[f32],
        list: usize,
        top: &mut TopK,
        exclude: Option<u32>,
        dists: &mut Vec<f32>,
    ) {
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // SAFETY: the CPU supports AVX2, the only requirement of `scan_list_avx2`.
            return unsafe { self.scan_list_avx2(q, list, top, exclude) };
        }
        self.scan_list(q, list, top, exclude, dists)
    }

    /// [`IvfIndex::scan_list`] with the eight-rows-at-a-time AVX2 kernel ([`l2_eight_avx2`], the same sums).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn scan_list_avx2(&self, q: &[f32], list: usize, top: &mut TopK, exclude: Option<u32>) {
        let (from, to) = (self.offsets[list], self.offsets[list + 1]);
        let dim = self.dim;
        let rows = &self.vectors[from * dim..to * dim];
        let mut p = from;
        let mut blocks = rows.chunks_exact(8 * dim.max(1));
        for block in blocks.by_ref() {
            // SAFETY: AVX2 is enabled here; the block holds eight rows of `dim` values.
            let d = unsafe { l2_eight_avx2(q, block, dim) };
            // Whether any of the eight enters, as an OR of eight compares (which vectorizes; a min does not).
            if d.iter().fold(false, |any, &x| any | top.accepts(x)) {
                for (j, &x) in d.iter().enumerate() {
                    self.offer(top, x, p + j, exclude);
                }
            }
            p += 8;
        }
        for r in blocks.remainder().chunks_exact(dim.max(1)) {
            self.offer(top, l2(q, r), p, exclude);
            p += 1;
        }
    }

    /// Scan the probed lists (nearest first) for the `k` nearest base rows of `q`, one top-k carried across them,
    /// with a reused distance buffer; the result sorted by (distance, id).
    fn scan(
        &self,
        q: &[f32],
        probes: &[Neighbour],
        k: usize,
        exclude: Option<u32>,
        dists: &mut Vec<f32>,
    ) -> Vec<Neighbour> {
        let mut top = TopK::new(k);
        for &(_, list) in probes {
            self.scan_list_dispatch(q, list as usize, &mut top, exclude, dists);
        }
        top.sorted()
    }

    /// Offer every row of list `list` to `top` (exact distances, the list's order), skipping base id `exclude`.
    #[inline(always)]
    fn scan_list(
        &self,
        q: &[f32],
        list: usize,
        top: &mut TopK,
        exclude: Option<u32>,
        dists: &mut Vec<f32>,
    ) {
        let (from, to) = (self.offsets[list], self.offsets[list + 1]);
        distances(
            q,
            &self.vectors[from * self.dim..to * self.dim],
            self.dim,
            dists,
        );
        for (p, &d) in (from..to).zip(dists.iter()) {
            self.offer(top, d, p, exclude);
        }
    }

    /// Offer the row at position `p` of the lists, at distance `d`, to `top`, unless it is base id `exclude`.
    #[inline(always)]
    fn offer(&self, top: &mut TopK, d: f32, p: usize, exclude: Option<u32>) {
        if top.accepts(d) {
            let id = self.ids[p];
            if Some(id) != exclude {
                top.push((d, id));
            }
        }
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
            let mut d2 = vec![0f32; c_norm.len()];
            let mut found = Vec::with_capacity(rows.nrows());
            for (q, dq) in rows.rows().into_iter().zip(dots.rows()) {
                let qn = q.dot(&q);
                let owned;
                let dq = match dq.as_slice() {
                    Some(dq) => dq,
                    None => {
                        owned = dq.to_vec();
                        &owned
                    }
                };
                found.push(nearest_of_dots(dq, qn, &c_norm, m, &mut d2));
            }
            found
        })
        .collect();
    blocks.into_iter().flatten().collect()
}

/// The `m` nearest centroids of a query from its dot products `dq` with them (`qn` its squared norm, `c_norm` theirs),
/// in the AVX2 build when the CPU has it; `d2` is a reused buffer.
fn nearest_of_dots(
    dq: &[f32],
    qn: f32,
    c_norm: &[f32],
    m: usize,
    d2: &mut [f32],
) -> Vec<Neighbour> {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2, the only requirement of `nearest_of_dots_avx2`.
        return unsafe { nearest_of_dots_avx2(dq, qn, c_norm, m, d2) };
    }
    nearest_of_dots_generic(dq, qn, c_norm, m, d2)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn nearest_of_dots_avx2(
    dq: &[f32],
    qn: f32,
    c_norm: &[f32],
    m: usize,
    d2: &mut [f32],
) -> Vec<Neighbour> {
    nearest_of_dots_generic(dq, qn, c_norm, m, d2)
}

#[inline(always)]
fn nearest_of_dots_generic(
    dq: &[f32],
    qn: f32,
    c_norm: &[f32],
    m: usize,
    d2: &mut [f32],
) -> Vec<Neighbour> {
    // All distances first (a loop the compiler vectorizes), then the few that enter the top-m.
    for ((o, &d), &cn) in d2.iter_mut().zip(dq).zip(c_norm) {
        *o = (qn + cn - 2.0 * d).max(0.0);
    }
    smallest(d2, m)
}

/// The `m` smallest of `d` as (distance, index), ascending; one vectorized test per eight values skips those that
/// cannot enter.
#[inline(always)]
fn smallest(d: &[f32], m: usize) -> Vec<Neighbour> {
    let mut top = TopK::new(m);
    for (c, chunk) in d.chunks(8).enumerate() {
        if !chunk.iter().fold(false, |any, &x| any | top.accepts(x)) {
            continue;
        }
        for (j, &x) in chunk.iter().enumerate() {
            if top.accepts(x) {
                top.push((x, (8 * c + j) as u32));
            }
        }
    }
    top.best
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
    smallest(&dists, m)
}

/// Squared distances from `q` to each `dim`-long row of `rows`, into `out` (cleared first).
#[inline(always)]
fn distances(q: &[f32], rows: &[f32], dim: usize, out: &mut Vec<f32>) {
    out.clear();
    if dim == 0 {
        return;
    }
    // A plain loop, not `extend(map(..))`: the iterator's fold is a function of its own that is not inlined into
    // the AVX2 builds of the callers, and it then runs 4-wide (measured: 48% of a search's time).
    out.reserve(rows.len() / dim);
    for r in rows.chunks_exact(dim) {
        out.push(l2(q, r));
    }
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

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn eight_row_kernel_gives_l2_bit_for_bit() {
        if !has_avx2() {
            return;
        }
        for dim in [1usize, 5, 8, 13, 32, 37] {
            let rows = random(8, dim, dim as u64);
            let q = random(1, dim, 100 + dim as u64);
            let q = q.as_slice().unwrap();
            // SAFETY: the CPU has AVX2 (checked above).
            let got = unsafe { l2_eight_avx2(q, rows.as_slice().unwrap(), dim) };
            for (j, d) in got.iter().enumerate() {
                let want = l2(q, rows.row(j).as_slice().unwrap());
                assert_eq!(d.to_bits(), want.to_bits(), "dim {dim}, row {j}");
            }
        }
    }

    #[test]
    fn grouped_search_with_a_ragged_width_matches_brute_force() {
        // 37 columns: four 8-wide chunks and a remainder; every list probed, so the search is exact.
        let base = random(3001, 37, 8);
        let idx = IvfIndex::build(base.view(), 12, 12);
        let picked: Vec<usize> = (0..3001).step_by(7).collect();
        let queries = base.select(ndarray::Axis(0), &picked);
        let self_ids: Vec<Option<u32>> = picked.iter().map(|&i| Some(i as u32)).collect();
        let all = idx.search_all(queries.view(), 10, &self_ids);
        for (r, &i) in picked.iter().enumerate() {
            let q = base.row(i).to_vec();
            let ids: Vec<u32> = all[r].iter().map(|n| n.1).collect();
            assert_eq!(ids, brute(&base, &q, 10, Some(i as u32)), "query {i}");
            assert_eq!(all[r], idx.search(&q, 10, Some(i as u32)));
            let generic = {
                let mut top = TopK::new(10);
                for l in 0..idx.nlist() {
                    idx.scan_list(&q, l, &mut top, Some(i as u32), &mut Vec::new());
                }
                top.sorted()
            };
            assert_eq!(
                all[r], generic,
                "query {i}: the AVX2 and plain builds differ"
            );
        }
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
