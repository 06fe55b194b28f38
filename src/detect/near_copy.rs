//! Near copies of another class's rows: the signature of a backdoor cluster without a reference.
//!
//! ## What it decides
//! A backdoor injection is a set of copies of class-a rows with a trigger on a few columns, relabelled b. A natural
//! sub-population of class b (the 3s that look like 8s) resembles class a too, but its rows are not copies of any
//! particular a row. This module tells the two apart: for rows of a suspicious sub-cluster of class b, it finds the
//! nearest row of any other class under a *trimmed* distance that ignores the `t` coordinates that differ most
//! (`t = min(3, ceil(d / 3))`: room for the trigger), and compares it with how close rows of that other class are to each
//! other under the same distance.
//!
//! ## How
//! `near_copy_share` returns the share of the cluster's rows (at most 256, in order) whose trimmed distance to some
//! other-class row is below a quarter of that class's median trimmed nearest-neighbour distance (measured on at most
//! 128 of its rows, once per scan for all sub-clusters). Copies sit at distance ~0 from their source; natural modes
//! sit at about the class's own typical spacing. A class whose own rows are exact duplicates of each other (median
//! spacing 0) gives no evidence. The members are searched 32 at a time, and the search stops once the share can no
//! longer reach the share asked for (a half, for the backdoor detector). With 2,048 candidates or more, an exact
//! filter (`block_filter`: the columns in `t + 1` blocks, one of which a near copy must match on its own; a k-d tree
//! per block) leaves each member only the candidates its nearest copy can be among; the spacings are plain passes.
//!
//! ## When it is wrong
//! Copies with noise on every column, or data whose classes share many exact duplicates, blur the line. With more
//! than 50,000 rows of other classes, candidates are sampled by digest and a copy's source may be left out.
//!
//! ## Reference
//! Chen et al., "Detecting Backdoor Attacks on Deep Neural Networks by Activation Clustering", AAAI SafeAI 2019
//! (exclusionary reclassification: poison clusters belong to another class); Gu, Dolan-Gavitt, Garg, "BadNets", 2017
//! (triggers are a few modified inputs on otherwise clean copies).

use super::DetectContext;
use super::LaneL2;
use crate::features::sample_by_digest;
use linfa_nn::{KdTree, NearestNeighbour};
use ndarray::Array1;
use rayon::prelude::*;
use std::sync::OnceLock;

const MAX_MEMBERS: usize = 256;
const MAX_SPACING_ROWS: usize = 128;
const MAX_CANDIDATES: usize = 50_000;
/// A member counts as a copy when nearer than this share of the source class's typical spacing.
const COPY_RATIO: f64 = 0.25;

/// Columns a trigger may occupy, ignored by the trimmed distance.
pub fn trimmed_columns(d: usize) -> usize {
    d.div_ceil(3).min(3)
}

/// Squared distance without the `t` largest per-coordinate squared differences.
#[cfg(test)]
fn trimmed(a: ndarray::ArrayView1<f32>, b: ndarray::ArrayView1<f32>, t: usize) -> f64 {
    let (a, b) = (a.to_vec(), b.to_vec());
    trimmed_below(&a, &b, t, f64::INFINITY)
}

/// The squared distance without the `t` largest per-coordinate squared differences, giving up (returning infinity)
/// as soon as it exceeds `bound`: adding a coordinate never lowers the trimmed distance (the new difference either joins the sum or displaces a smaller one from the
/// trimmed set), so the partial value is a lower bound of the final one. `t` is at most 3.
fn trimmed_below(a: &[f32], b: &[f32], t: usize, bound: f64) -> f64 {
    let t = t.min(3);
    // The t largest squared differences so far, in descending order, and the sum of all the others: a trigger's
    // squared difference (up to 1e8 after clipping) never enters the sum, so the small ones left are not swamped.
    let mut top = [0f32; 3];
    let mut rest = 0f64;
    for (ca, cb) in a.chunks(8).zip(b.chunks(8)) {
        // Eight squared differences at a time (vectorized).
        let mut sq = [0f32; 8];
        for ((s, x), y) in sq.iter_mut().zip(ca).zip(cb) {
            *s = (x - y) * (x - y);
        }
        let floor = if t > 0 { top[t - 1] } else { f32::INFINITY };
        if sq.iter().fold(0f32, |m, &v| m.max(v)) <= floor {
            // None of them displaces a kept one (most chunks once a few coordinates are in).
            rest += f64::from(sq.iter().sum::<f32>());
        } else {
            // Each difference goes down the kept ones (without branches): the larger of it and a kept one stays,
            // the smaller moves on, and what leaves the last joins the sum.
            let mut dropped = 0f32;
            for &v in &sq[..ca.len()] {
                let mut v = v;
                for k in top.iter_mut().take(t) {
                    let hi = k.max(v);
                    v = k.min(v);
                    *k = hi;
                }
                dropped += v;
            }
            rest += f64::from(dropped);
        }
        if rest > bound {
            return f64::INFINITY;
        }
    }
    rest
}

/// Candidate rows gathered into one contiguous block (their values row after row), so a search streams through
/// them instead of jumping across the whole matrix to a digest sample's scattered rows (about 0.06 s of the 1.9 s
/// backdoor stage of the scale script's 100k-row scan without a reference).
struct Gathered {
    ids: Vec<usize>,
    xs: Vec<f32>,
    d: usize,
}

impl Gathered {
    fn new(xs: &[f32], d: usize, ids: Vec<usize>) -> Gathered {
        let mut out = Vec::with_capacity(ids.len() * d);
        for &j in &ids {
            out.extend_from_slice(&xs[j * d..(j + 1) * d]);
        }
        Gathered { ids, xs: out, d }
    }

    /// Nearest candidate (index, trimmed squared distance) to `row` nearer than `within`, skipping the candidate
    /// that is input row `skip` itself: the first of equally near candidates, as a plain minimum would keep. A
    /// candidate is given up as soon as its partial distance passes the best so far (or `within`), so a tight
    /// `within` leaves most candidates after a few coordinates.
    fn nearest(&self, row: &[f32], skip: usize, t: usize, within: f64) -> Option<(usize, f64)> {
        self.nearest_among(row, skip, t, within, 0..self.ids.len())
    }

    /// As [`Gathered::nearest`], over the candidates at `positions` (ascending) only.
    fn nearest_among(
        &self,
        row: &[f32],
        skip: usize,
        t: usize,
        within: f64,
        positions: impl Iterator<Item = usize>,
    ) -> Option<(usize, f64)> {
        let mut best: Option<(usize, f64)> = None;
        for p in positions {
            let j = self.ids[p];
            if j == skip {
                continue;
            }
            let bound = best.map_or(within, |b| b.1);
            let dist = trimmed_below(row, &self.xs[p * self.d..(p + 1) * self.d], t, bound);
            if dist < bound {
                best = Some((j, dist));
            }
        }
        best
    }

    /// The candidates' values, one row per candidate.
    fn matrix(&self) -> Option<ndarray::ArrayView2<'_, f32>> {
        ndarray::ArrayView2::from_shape((self.ids.len(), self.d), &self.xs).ok()
    }
}

/// Fewest candidates searched through [`block_filter`] (below that a plain pass is about as fast).
const BLOCK_INDEX_MIN: usize = 2_048;
/// Points per leaf of a block's k-d tree: its incremental build is most of a filtered search's time, and larger
/// leaves build faster at little cost to queries (256: 47-68 ms a sub-cluster search of 45,000 candidates on the
/// scale script's 100k rows, 16: 88-117 ms).
const BLOCK_LEAF: usize = 256;
/// Smallest bound the filter takes (see [`block_filter`]).
const BLOCK_WITHIN_MIN: f64 = 1e-20;
/// Relative room a block range query leaves for rounding (block distances are summed in another order than the
/// trimmed distance).
const BLOCK_SLACK: f64 = 1e-3;

/// An exact filter for the member search (pigeonhole). The columns are split into `t + 1` blocks; the `t` columns a
/// trimmed distance leaves out lie in at most `t` of them, so one block is counted whole, and a candidate whose
/// trimmed distance to a row is below `within` is within `within` of it on that block alone. A k-d tree per block
/// (linfa-nn; one at a time, so that only one is in memory) finds those candidates for every row. Returns, for each
/// of `rows`, the positions (ascending) of the candidates within `within` on some block: the trimmed distance is then
/// taken on these only, in candidate order, so the search returns exactly what a pass over every candidate returns.
/// Columns are dealt to the blocks in order of their spread, so that each block holds some of the columns that tell
/// rows apart. `None` for every row when a block would have fewer than two columns, there are too few candidates, a
/// candidate's value is not finite (the trees need finite values) or a tree fails; `None` for a row that is not
/// finite.
fn block_filter(g: &Gathered, t: usize, rows: &[&[f32]], within: f64) -> Vec<Option<Vec<usize>>> {
    let m = t + 1;
    let n = g.ids.len();
    let none = || vec![None; rows.len()];
    // A bound too small for f32 to hold its square root's square (the trees compare in f32) is left to the plain
    // pass, as are infinite ones.
    if g.d < 2 * m
        || n < BLOCK_INDEX_MIN
        || !(BLOCK_WITHIN_MIN..f64::INFINITY).contains(&within)
        || !g.xs.iter().all(|v| v.is_finite())
    {
        return none();
    }
    let Some(all) = g.matrix() else {
        return none();
    };
    let mut spread: Vec<(f32, usize)> = all
        .columns()
        .into_iter()
        .enumerate()
        .map(|(c, col)| (col.var(0.0), c))
        .collect();
    spread.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut blocks = vec![Vec::new(); m];
    for (k, &(_, c)) in spread.iter().enumerate() {
        blocks[k % m].push(c);
    }
    let radius = (within * (1.0 + BLOCK_SLACK)).sqrt() as f32;
    let mut out: Vec<Option<Vec<usize>>> = rows
        .iter()
        .map(|r| r.iter().all(|v| v.is_finite()).then(Vec::new))
        .collect();
    for cols in &blocks {
        // Built row by row (standard layout): linfa-nn's k-d tree needs each point contiguous, which a column
        // `select` does not give.
        let data = ndarray::Array2::from_shape_fn((n, cols.len()), |(i, k)| all[[i, cols[k]]]);
        let Ok(tree) = KdTree.from_batch_with_leaf_size(&data, BLOCK_LEAF, LaneL2) else {
            return none();
        };
        let found: Vec<Option<Vec<usize>>> = rows
            .par_iter()
            .zip(&out)
            .map(|(row, o)| {
                o.as_ref()?;
                let point: Array1<f32> = cols.iter().map(|&c| row[c]).collect();
                let hits = tree.within_range(point.view(), radius).ok()?;
                Some(hits.into_iter().map(|(_, p)| p).collect())
            })
            .collect();
        for (o, f) in out.iter_mut().zip(found) {
            match (o.as_mut(), f) {
                (Some(o), Some(f)) => o.extend(f),
                _ => *o = None,
            }
        }
    }
    for o in out.iter_mut().flatten() {
        o.sort_unstable();
        o.dedup();
    }
    out
}

/// Each class's typical trimmed spacing (median nearest-neighbour distance within it), measured once per scan and
/// shared by the searches of every suspicious sub-cluster: on the class's rows among a digest sample of all labelled
/// rows (at most [`MAX_CANDIDATES`]), the first [`MAX_SPACING_ROWS`] of them against the rest. With at most that many
/// rows outside the searched class this is the class's rows among the search's own candidates.
pub struct Spacings {
    pool: OnceLock<Vec<usize>>,
    of: Vec<OnceLock<Option<f64>>>,
}

impl Spacings {
    /// An empty cache for `classes` classes.
    pub fn new(classes: usize) -> Spacings {
        Spacings {
            pool: OnceLock::new(),
            of: (0..classes).map(|_| OnceLock::new()).collect(),
        }
    }

    /// Spacing of class `o` (`None` when its rows are exact duplicates of each other or it has fewer than two).
    fn get(&self, ctx: &DetectContext, xs: &[f32], t: usize, o: u32) -> Option<f64> {
        let d = ctx.x.ncols();
        *self.of.get(o as usize)?.get_or_init(|| {
            let pool = self.pool.get_or_init(|| {
                let labelled: Vec<bool> = (0..ctx.x.nrows())
                    .map(|i| ctx.valid[i] && ctx.labels[i].is_some())
                    .collect();
                sample_by_digest(ctx.digests, &labelled, MAX_CANDIDATES)
            });
            let rows: Vec<usize> = pool
                .iter()
                .copied()
                .filter(|&j| ctx.labels[j] == Some(o))
                .collect();
            let rows = Gathered::new(xs, d, rows);
            let mut near: Vec<f64> = rows
                .ids
                .iter()
                .take(MAX_SPACING_ROWS)
                .filter_map(|&i| {
                    rows.nearest(&xs[i * d..(i + 1) * d], i, t, f64::INFINITY)
                        .map(|(_, d)| d)
                })
                .collect();
            near.sort_by(f64::total_cmp);
            near.get(near.len() / 2).copied().filter(|&m| m > 0.0)
        })
    }
}

/// Members searched at a time: after each such batch the search stops once the share can no longer reach `need`.
const MEMBER_BATCH: usize = 32;

/// Share of `members` (input rows of class `c`) that are near copies of some other class's rows, and the class
/// most of those copies come from; class spacings come from (and go into) `spacings`. The search stops as soon as
/// the share cannot reach `need`; the share returned is then the most it could have been (below `need`), so a
/// comparison with `need` decides as a full search would.
pub fn near_copy_share(
    ctx: &DetectContext,
    c: u32,
    members: &[usize],
    spacings: &Spacings,
    need: f64,
) -> (f64, Option<u32>) {
    let n = ctx.x.nrows();
    let t = trimmed_columns(ctx.x.ncols());
    let others: Vec<bool> = (0..n)
        .map(|i| ctx.valid[i] && ctx.labels[i].is_some_and(|l| l != c))
        .collect();
    let candidates = sample_by_digest(ctx.digests, &others, MAX_CANDIDATES);
    if candidates.is_empty() || members.is_empty() {
        return (0.0, None);
    }
    let nc = ctx.classes.len();
    let d = ctx.x.ncols();
    // Row-major values (the matrix is in standard layout; a copy otherwise).
    let owned: Vec<f32>;
    let xs: &[f32] = match ctx.x.as_slice() {
        Some(s) => s,
        None => {
            owned = ctx.x.iter().copied().collect();
            &owned
        }
    };
    let used = &members[..members.len().min(MAX_MEMBERS)];
    // Typical trimmed spacing of each other class (median nearest-neighbour distance within it), first: a member is
    // a copy only when its nearest other-class row is nearer than a share of that row's class spacing, so the search
    // for it can give up beyond the largest such distance. The decisions are those of an unbounded search (when the
    // nearest row is farther, it is no copy either way).
    let mut classes: Vec<u32> = candidates.iter().filter_map(|&j| ctx.labels[j]).collect();
    classes.sort_unstable();
    classes.dedup();
    let spacing: Vec<(u32, Option<f64>)> = classes
        .par_iter()
        .map(|&o| (o, spacings.get(ctx, xs, t, o)))
        .collect();
    let spacing_of = |o: u32| spacing.iter().find(|(c, _)| *c == o).and_then(|(_, s)| *s);
    let copy_within = |s: f64| COPY_RATIO * COPY_RATIO * s;
    let within = spacing
        .iter()
        .filter_map(|&(_, s)| s.map(copy_within))
        .fold(0.0, f64::max);
    if within <= 0.0 {
        return (0.0, None);
    }
    let gathered = Gathered::new(xs, d, candidates);
    let rows: Vec<&[f32]> = used.iter().map(|&i| &xs[i * d..(i + 1) * d]).collect();
    let filtered = block_filter(&gathered, t, &rows, within);
    // Copies needed for the share to reach `need`.
    let needed = (need * used.len() as f64 - 1e-9).ceil().max(0.0) as usize;
    let mut from = vec![0usize; nc];
    let (mut copies, mut searched) = (0usize, 0usize);
    for (batch, pos) in used.chunks(MEMBER_BATCH).zip(filtered.chunks(MEMBER_BATCH)) {
        if copies + (used.len() - searched) < needed {
            break;
        }
        let found: Vec<Option<(usize, f64)>> = batch
            .par_iter()
            .zip(pos)
            .map(|(&i, pos)| {
                let row = &xs[i * d..(i + 1) * d];
                match pos {
                    Some(pos) => gathered.nearest_among(row, i, t, within, pos.iter().copied()),
                    None => gathered.nearest(row, i, t, within),
                }
            })
            .collect();
        searched += batch.len();
        for (j, d) in found.into_iter().flatten() {
            let Some(o) = ctx.labels[j] else { continue };
            if let Some(s) = spacing_of(o) {
                if d < copy_within(s) {
                    copies += 1;
                    from[o as usize] += 1;
                }
            }
        }
    }
    let source = (0..nc)
        .max_by_key(|&o| from[o])
        .filter(|&o| from[o] > 0)
        .map(|o| o as u32);
    let at_most = copies + (used.len() - searched);
    (at_most as f64 / used.len() as f64, source)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::arr1;

    /// The trimmed distance by its definition: every squared difference, sorted, all but the `t` largest summed.
    fn trimmed_by_definition(a: &[f32], b: &[f32], t: usize) -> f64 {
        let mut sq: Vec<f64> = a
            .iter()
            .zip(b)
            .map(|(x, y)| f64::from((x - y) * (x - y)))
            .collect();
        sq.sort_by(|x, y| y.total_cmp(x));
        sq.iter().skip(t.min(3)).sum()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// Whatever the values, length and `t`, the lane-wise trimmed distance is the definition's (up to the order
        /// of the additions), and a bound gives up only on distances beyond it.
        #[test]
        fn the_trimmed_distance_is_its_definition(
            pairs in proptest::collection::vec((-50.0f32..50.0, -50.0f32..50.0, 0u8..4), 1..40),
            t in 0usize..4,
            bound_share in 0.0f64..1.5,
        ) {
            // Some coordinates equal (ties at 0) and some far apart (a trigger), as copies have.
            let a: Vec<f32> = pairs.iter().map(|p| p.0).collect();
            let b: Vec<f32> = pairs
                .iter()
                .map(|p| match p.2 { 0 => p.0, 1 => p.0 + 1e3, _ => p.1 })
                .collect();
            let want = trimmed_by_definition(&a, &b, t);
            let got = trimmed_below(&a, &b, t, f64::INFINITY);
            proptest::prop_assert!((got - want).abs() <= 1e-5 * want.max(1.0), "{got} against {want}");
            let bound = want * bound_share;
            let cut = trimmed_below(&a, &b, t, bound);
            if want <= bound * (1.0 - 1e-5) {
                proptest::prop_assert_eq!(cut, got);
            } else if want > bound * (1.0 + 1e-5) {
                proptest::prop_assert!(cut == f64::INFINITY, "{cut} under the bound {bound} of {want}");
            }
        }
    }

    #[test]
    fn trimmed_distance_ignores_the_largest_differences() {
        let a = arr1(&[0.0f32, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        let b = arr1(&[9.0f32, 0.0, 5.0, 0.0, 0.1, 0.0, 0.0, 7.0]);
        assert!((trimmed(a.view(), b.view(), 3) - 0.01).abs() < 1e-6);
        assert!((trimmed(a.view(), b.view(), 0) - (81.0 + 25.0 + 0.01 + 49.0)).abs() < 1e-4);
        assert!((trimmed(a.view(), b.view(), 1) - (25.0 + 0.01 + 49.0)).abs() < 1e-4);
        // Giving up past a bound never changes a distance below it.
        for bound in [0.0, 0.005, 0.01, 0.02, 100.0, 1000.0] {
            let full = trimmed(a.view(), b.view(), 2);
            let cut = trimmed_below(&a.to_vec(), &b.to_vec(), 2, bound);
            assert!(
                if full <= bound {
                    cut == full
                } else {
                    cut >= bound
                },
                "{bound}: {full} {cut}"
            );
        }
        assert_eq!(trimmed_columns(64), 3);
        assert_eq!(trimmed_columns(4), 2);
        assert_eq!(trimmed_columns(2), 1);
    }

    #[test]
    fn stopping_once_the_share_cannot_reach_the_need_decides_as_a_full_search() {
        use rand::SeedableRng;
        use rand_distr::{Distribution, Normal};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(5);
        let normal = Normal::new(0.0f32, 1.0).unwrap();
        let d = 6;
        // Classes 0 and 1: 300 rows each around 0 and 4; class 2: 100 rows, the first `copied` of them copies of class
        // 0 rows with a trigger on column 0, the rest drawn around 8.
        for copied in [0usize, 30, 49, 50, 51, 70, 100] {
            let mut rows: Vec<Vec<f32>> = Vec::new();
            let mut labels = Vec::new();
            for (c, centre) in [(0u32, 0.0f32), (1, 4.0)] {
                for _ in 0..300 {
                    rows.push((0..d).map(|_| centre + normal.sample(&mut rng)).collect());
                    labels.push(Some(c));
                }
            }
            for k in 0..100 {
                let row = if k < copied {
                    let mut r = rows[k * 3].clone();
                    r[0] = 20.0;
                    r
                } else {
                    (0..d).map(|_| 8.0 + normal.sample(&mut rng)).collect()
                };
                rows.push(row);
                labels.push(Some(2));
            }
            let n = rows.len();
            let x = ndarray::Array2::from_shape_vec((n, d), rows.concat()).unwrap();
            let digests: Vec<[u8; 32]> = (0..n as u64)
                .map(|i| *blake3::hash(&i.to_le_bytes()).as_bytes())
                .collect();
            let valid = vec![true; n];
            let classes: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
            let config = crate::detect::DetectConfig::default();
            let ctx = DetectContext {
                x: &x,
                valid: &valid,
                labels: &labels,
                classes: &classes,
                digests: &digests,
                reference: None,
                config: &config,
                pred_probs: None,
                label_clean_rate: None,
            };
            let members: Vec<usize> = (600..700).collect();
            let full = near_copy_share(&ctx, 2, &members, &Spacings::new(3), 0.0);
            let cut = near_copy_share(&ctx, 2, &members, &Spacings::new(3), 0.5);
            assert!(
                (full.0 - copied as f64 / 100.0).abs() < 1e-9,
                "{copied}: full share {}",
                full.0
            );
            assert_eq!(full.0 >= 0.5, cut.0 >= 0.5, "{copied}: {full:?} {cut:?}");
            if full.0 >= 0.5 {
                assert_eq!(full, cut);
            } else {
                assert!(cut.0 >= full.0 && cut.0 < 0.5, "{copied}: {full:?} {cut:?}");
            }
        }
    }

    #[test]
    fn block_filtered_searches_find_what_a_pass_over_every_candidate_finds() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(11);
        let (n, d, t) = (3000, 12, 3);
        // Rows on a coarse grid (ties), one constant column, and every 10th row a copy of an earlier row with three
        // columns moved (a trigger) and a little noise on the others.
        let mut xs: Vec<f32> = Vec::with_capacity(n * d);
        for i in 0..n {
            let row: Vec<f32> = if i % 10 == 9 {
                let src = rng.gen_range(0..i);
                let mut r = xs[src * d..(src + 1) * d].to_vec();
                for v in r.iter_mut() {
                    *v += rng.gen_range(-0.05f32..0.05);
                }
                for _ in 0..3 {
                    r[rng.gen_range(0..d)] = 30.0;
                }
                r
            } else {
                (0..d)
                    .map(|c| {
                        if c == 4 {
                            1.0
                        } else {
                            rng.gen_range(0..5) as f32
                        }
                    })
                    .collect()
            };
            xs.extend(row);
        }
        let g = Gathered::new(&xs, d, (0..n).collect());
        let queries: Vec<usize> = (0..n).step_by(3).collect();
        let rows: Vec<&[f32]> = queries.iter().map(|&i| &xs[i * d..(i + 1) * d]).collect();
        let plain: Vec<f64> = queries
            .iter()
            .zip(&rows)
            .map(|(&i, row)| g.nearest(row, i, t, f64::INFINITY).unwrap().1)
            .collect();
        let (mut found, mut filtered) = (0, 0);
        let mut check = |k: usize, w: f64, pos: Option<Vec<usize>>| {
            // Bounds of 0 (rows whose nearest candidate is a copy on all but t columns) are left to the plain pass.
            if w < BLOCK_WITHIN_MIN {
                assert!(pos.is_none(), "row {}, within {w}", queries[k]);
                return;
            }
            let pos = pos.unwrap();
            filtered += n - pos.len();
            let got = g.nearest_among(rows[k], queries[k], t, w, pos.into_iter());
            assert_eq!(
                got,
                g.nearest(rows[k], queries[k], t, w),
                "row {}, within {w}",
                queries[k]
            );
            found += got.is_some() as usize;
        };
        // Fixed bounds for every row at once, and for some rows their own nearest distance and just above it (a
        // bound the nearest candidate sits on, and one it is just inside).
        for w in [0.0, 0.01, 0.2, 0.5, 3.0, 50.0] {
            for (k, pos) in block_filter(&g, t, &rows, w).into_iter().enumerate() {
                check(k, w, pos);
            }
        }
        for k in (0..queries.len()).step_by(10) {
            for w in [plain[k], plain[k] * (1.0 + 1e-6)] {
                check(
                    k,
                    w,
                    block_filter(&g, t, &rows[k..k + 1], w).pop().flatten(),
                );
            }
        }
        // The filter leaves most candidates out, and the searches find rows (copies and grid ties).
        assert!(filtered > queries.len() * n * 6 / 2, "{filtered}");
        assert!(found > 1000, "{found}");
        // No filter when a block would have fewer than two columns, there are too few candidates, the bound is
        // infinite or below what f32 resolves, or a value is not finite; a row that is not finite is searched in
        // full.
        let g7 = Gathered::new(&xs[..n * 7], 7, (0..n).collect());
        assert!(block_filter(&g7, 3, &[&xs[..7]], 1.0)[0].is_none());
        let small = Gathered::new(&xs, d, (0..100).collect());
        assert!(block_filter(&small, t, &rows[..1], 1.0)[0].is_none());
        assert!(block_filter(&g, t, &rows[..1], f64::INFINITY)[0].is_none());
        assert!(block_filter(&g, t, &rows[..1], 1e-30)[0].is_none());
        let mut bad = xs.clone();
        bad[5] = f32::NAN;
        let gb = Gathered::new(&bad, d, (0..n).collect());
        assert!(block_filter(&gb, t, &rows[..1], 1.0)[0].is_none());
        let both = block_filter(&g, t, &[&bad[..d], rows[1]], 1.0);
        assert!(both[0].is_none() && both[1].is_some());
    }

    #[test]
    fn bounded_searches_find_what_a_plain_minimum_finds() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(3);
        let (n, d) = (700, 12);
        // Rows on a coarse grid, so that equally near candidates (ties) occur.
        let xs: Vec<f32> = (0..n * d).map(|_| rng.gen_range(0..4) as f32).collect();
        let candidates = Gathered::new(&xs, d, (0..n).collect());
        let row = |i: usize| arr1(&xs[i * d..(i + 1) * d]);
        for i in (0..n).step_by(7) {
            // The first candidate at the smallest full trimmed distance.
            let mut plain: Option<(usize, f64)> = None;
            for j in (0..n).filter(|&j| j != i) {
                let dist = trimmed(row(i).view(), row(j).view(), 2);
                if plain.is_none_or(|(_, b)| dist < b) {
                    plain = Some((j, dist));
                }
            }
            let plain = plain.unwrap();
            assert_eq!(
                candidates.nearest(&xs[i * d..(i + 1) * d], i, 2, f64::INFINITY),
                Some(plain),
                "row {i}"
            );
            for within in [0.5, plain.1, plain.1 + 0.5, 100.0] {
                let bounded = candidates.nearest(&xs[i * d..(i + 1) * d], i, 2, within);
                if plain.1 < within {
                    assert_eq!(bounded, Some(plain), "row {i}, within {within}");
                } else {
                    assert_eq!(bounded, None, "row {i}, within {within}");
                }
            }
        }
    }
}
