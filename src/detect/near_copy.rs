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
//! 128 of its rows). Copies sit at distance ~0 from their source; natural modes sit at about the class's own typical
//! spacing. A class whose own rows are exact duplicates of each other (median spacing 0) gives no evidence.
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
use ndarray::ArrayView1;

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
fn trimmed(a: ArrayView1<f32>, b: ArrayView1<f32>, t: usize, top: &mut Vec<f64>) -> f64 {
    top.clear();
    let mut sum = 0.0;
    for (x, y) in a.iter().zip(b.iter()) {
        let d = (*x as f64 - *y as f64).powi(2);
        sum += d;
        if t > 0 {
            if top.len() < t {
                top.push(d);
            } else if let Some((k, &m)) = top.iter().enumerate().min_by(|p, q| p.1.total_cmp(q.1)) {
                if d > m {
                    top[k] = d;
                }
            }
        }
    }
    (sum - top.iter().sum::<f64>()).max(0.0)
}

/// Nearest candidate (index, trimmed squared distance) to row `i`, skipping `i` itself.
fn nearest(ctx: &DetectContext, i: usize, candidates: &[usize], t: usize) -> Option<(usize, f64)> {
    let mut top = Vec::with_capacity(t);
    candidates
        .iter()
        .filter(|&&j| j != i)
        .map(|&j| (j, trimmed(ctx.x.row(i), ctx.x.row(j), t, &mut top)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// Share of `members` (input rows of class `c`) that are near copies of some other class's rows, and the class
/// most of those copies come from.
pub fn near_copy_share(ctx: &DetectContext, c: u32, members: &[usize]) -> (f64, Option<u32>) {
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
    // Typical trimmed spacing of each other class (median nearest-neighbour distance within it).
    let mut spacing = vec![None; nc];
    let mut spacing_of = |o: u32| -> Option<f64> {
        *spacing[o as usize].get_or_insert_with(|| {
            let rows: Vec<usize> = candidates
                .iter()
                .copied()
                .filter(|&j| ctx.labels[j] == Some(o))
                .collect();
            let mut d: Vec<f64> = rows
                .iter()
                .take(MAX_SPACING_ROWS)
                .filter_map(|&i| nearest(ctx, i, &rows, t).map(|(_, d)| d))
                .collect();
            d.sort_by(f64::total_cmp);
            d.get(d.len() / 2).copied().filter(|&m| m > 0.0)
        })
    };
    let mut from = vec![0usize; nc];
    let mut copies = 0usize;
    let used = &members[..members.len().min(MAX_MEMBERS)];
    for &i in used {
        if let Some((j, d)) = nearest(ctx, i, &candidates, t) {
            let Some(o) = ctx.labels[j] else { continue };
            if let Some(s) = spacing_of(o) {
                if d < COPY_RATIO * COPY_RATIO * s {
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
    (copies as f64 / used.len() as f64, source)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::arr1;

    #[test]
    fn trimmed_distance_ignores_the_largest_differences() {
        let a = arr1(&[0.0f32, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        let b = arr1(&[9.0f32, 0.0, 5.0, 0.0, 0.1, 0.0, 0.0, 7.0]);
        let mut top = Vec::new();
        assert!((trimmed(a.view(), b.view(), 3, &mut top) - 0.01).abs() < 1e-6);
        assert!(
            (trimmed(a.view(), b.view(), 0, &mut top) - (81.0 + 25.0 + 0.01 + 49.0)).abs() < 1e-4
        );
        assert_eq!(trimmed_columns(64), 3);
        assert_eq!(trimmed_columns(4), 2);
        assert_eq!(trimmed_columns(2), 1);
    }
}
