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
//! longer reach the share asked for (a half, for the backdoor detector).
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
use crate::features::sample_by_digest;
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

/// As [`trimmed`], but gives up (returning infinity) as soon as the distance exceeds `bound`: adding a coordinate
/// never lowers the trimmed distance (the new difference either joins the sum or displaces a smaller one from the
/// trimmed set), so the partial value is a lower bound of the final one. `t` is at most 3.
fn trimmed_below(a: &[f32], b: &[f32], t: usize, bound: f64) -> f64 {
    let t = t.min(3);
    // The t largest squared differences so far, in descending order, and the sum of all the others: a trigger's
    // squared difference (up to 1e8 after clipping) never enters the sum, so the small ones left are not swamped.
    let mut top = [0f32; 3];
    let mut rest = 0f64;
    let mut first = true;
    for (ca, cb) in a.chunks(8).zip(b.chunks(8)) {
        // Eight squared differences at a time (vectorized).
        let mut sq = [0f32; 8];
        for ((s, x), y) in sq.iter_mut().zip(ca).zip(cb) {
            *s = (x - y) * (x - y);
        }
        let floor = if t > 0 { top[t - 1] } else { f32::INFINITY };
        if first && ca.len() == 8 {
            // The first eight: the largest t are kept, the others summed.
            first = false;
            let mut sorted = sq;
            sorted.sort_unstable_by(|x, y| y.total_cmp(x));
            top[..t].copy_from_slice(&sorted[..t]);
            rest += f64::from(sorted[t..].iter().sum::<f32>());
        } else if sq.iter().fold(0f32, |m, &v| m.max(v)) <= floor {
            // None of them displaces a kept one (most chunks once a few coordinates are in).
            rest += f64::from(sq.iter().sum::<f32>());
        } else {
            for &d in &sq[..ca.len()] {
                if d > top[t - 1] {
                    rest += f64::from(top[t - 1]);
                    let mut p = t - 1;
                    while p > 0 && top[p - 1] < d {
                        top[p] = top[p - 1];
                        p -= 1;
                    }
                    top[p] = d;
                } else {
                    rest += f64::from(d);
                }
            }
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
        let mut best: Option<(usize, f64)> = None;
        for (&j, cand) in self.ids.iter().zip(self.xs.chunks_exact(self.d)) {
            if j == skip {
                continue;
            }
            let bound = best.map_or(within, |b| b.1);
            let dist = trimmed_below(row, cand, t, bound);
            if dist < bound {
                best = Some((j, dist));
            }
        }
        best
    }
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
    // Copies needed for the share to reach `need`.
    let needed = (need * used.len() as f64 - 1e-9).ceil().max(0.0) as usize;
    let mut from = vec![0usize; nc];
    let (mut copies, mut searched) = (0usize, 0usize);
    for batch in used.chunks(MEMBER_BATCH) {
        if copies + (used.len() - searched) < needed {
            break;
        }
        let found: Vec<Option<(usize, f64)>> = batch
            .par_iter()
            .map(|&i| gathered.nearest(&xs[i * d..(i + 1) * d], i, t, within))
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
