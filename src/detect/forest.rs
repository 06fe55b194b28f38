//! Class probabilities from extremely randomized trees (Geurts, Ernst & Wehenkel, "Extremely randomized trees",
//! Machine Learning 2006), the third voter of the label-flip detector beside the kNN neighbourhood and the linear
//! model.
//!
//! A kNN vote and a linear model both miss what real tables often hold: classes that are separated by thresholds on
//! a few columns, interactions, counts whose effect is not monotone. A tree ensemble pools every row of the base like
//! the linear model, but cuts the feature space where the labels change. On the real benchmark's 49 label-flip cases
//! (an offline replica without a reference, docs/detectors/label_flip.md) the kNN + linear blend ranked 0.522, the
//! three voters 0.543-0.548.
//!
//! Each tree is grown on all of its fold's training rows (no bootstrap, as the method's paper): at every node
//! `sqrt(d)` features that are not constant there are drawn, one threshold uniformly between each one's smallest and
//! largest value in the node, and the split with the lowest Gini impurity is kept; a node splits only when both
//! sides keep [`MIN_LEAF`] rows. A leaf votes its rows' class shares. Rows of the base get *out-of-fold* votes (the
//! same five class-stratified folds as the linear model: a row is voted on by the trees of the fold that left it
//! out), every other row by the same number of trees taken evenly from all folds, so that both are averages of as
//! many trees and equally confident. The trees see the same features as the linear model (tails beyond one robust
//! sigma log-compressed, [`squash`](super::linear::squash)), so uniform thresholds are not spent on a heavy tail.
//!
//! Neither linfa-trees (a decision tree that scans every row of the dataset at each node and keeps no class shares)
//! nor linfa-ensemble's random forest (hard votes, features drawn per tree) gives class probabilities, which a
//! ranking needs; this module grows its trees itself.

use ndarray::{Array2, ArrayView2, Axis};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use super::linear::{self, FOLDS};

/// Trees grown per fold; a row is voted on by this many trees.
pub const TREES_PER_FOLD: usize = 20;
/// Fewest training rows a leaf keeps: with fewer the trees memorize single rows and their votes stop being smooth
/// (offline, the real benchmark's flip cases: 1 row 0.45, 3 rows 0.55, 5 rows 0.55 for the trees alone).
pub const MIN_LEAF: usize = 5;
/// Marks a leaf in [`Node::feature`].
const LEAF: u32 = u32::MAX;

/// One node of a tree: a split (`x[feature] <= threshold` goes `left`), or a leaf whose class shares are the
/// tree's `shares[starts[left]..starts[left + 1]]`.
#[derive(Clone, Copy, Debug)]
struct Node {
    feature: u32,
    threshold: f32,
    left: u32,
    right: u32,
}

/// A grown tree.
#[derive(Debug)]
struct Tree {
    nodes: Vec<Node>,
    /// The classes a leaf's rows hold and their shares, leaf after leaf: a leaf of `m` rows has at most `m` entries,
    /// so a table of many classes does not cost `nc` values a leaf (1,000 classes x 2,000 leaves x 100 trees would
    /// be 800 MB).
    shares: Vec<(u32, f32)>,
    /// Where each leaf's entries start in `shares`, and one past the last leaf's end.
    starts: Vec<u32>,
}

impl Tree {
    /// The (class, share) entries of the leaf `row` falls in.
    fn leaf(&self, row: &[f32]) -> &[(u32, f32)] {
        let mut at = 0usize;
        loop {
            let n = self.nodes[at];
            if n.feature == LEAF {
                let l = n.left as usize;
                return &self.shares[self.starts[l] as usize..self.starts[l + 1] as usize];
            }
            at = if row[n.feature as usize] <= n.threshold {
                n.left as usize
            } else {
                n.right as usize
            };
        }
    }
}

/// Grow one tree on rows `rows` of the `n`-row matrix whose columns are the consecutive `n`-value slices of `cols`,
/// with class indices `y` (indexed like the rows).
fn grow(cols: &[f32], n: usize, y: &[u32], mut rows: Vec<u32>, nc: usize, seed: u64) -> Tree {
    let d = cols.len() / n.max(1);
    let tries = ((d as f64).sqrt() as usize).clamp(1, d.max(1));
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut nodes = vec![Node {
        feature: LEAF,
        threshold: 0.0,
        left: 0,
        right: 0,
    }];
    let (mut shares, mut starts) = (Vec::new(), vec![0u32]);
    let mut order: Vec<u32> = (0..d as u32).collect();
    let (mut left, mut counts) = (vec![0u32; nc], vec![0u32; nc]);
    // A node's values of one feature and its rows' classes, gathered once.
    let (mut vals, mut classes) = (
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
    );
    let mut stack = vec![(0usize, 0usize, rows.len())];
    while let Some((slot, lo, hi)) = stack.pop() {
        let part = &mut rows[lo..hi];
        counts.fill(0);
        classes.clear();
        for &i in part.iter() {
            let c = y[i as usize] as usize;
            counts[c] += 1;
            classes.push(c);
        }
        let m = part.len();
        let pure = counts.iter().any(|&c| c as usize == m);
        let mut best: Option<(f64, u32, f32)> = None;
        if m >= 2 * MIN_LEAF && !pure {
            // Features in random order; the first `tries` that vary in the node are split at random.
            let mut drawn = 0;
            for j in 0..d {
                if drawn == tries {
                    break;
                }
                let pick = rng.gen_range(j..d);
                order.swap(j, pick);
                let f = order[j] as usize;
                let col = &cols[f * n..(f + 1) * n];
                vals.clear();
                let (mut lo_v, mut hi_v) = (f32::INFINITY, f32::NEG_INFINITY);
                for &i in part.iter() {
                    let v = col[i as usize];
                    vals.push(v);
                    lo_v = lo_v.min(v);
                    hi_v = hi_v.max(v);
                }
                // Constant in the node (or not finite): not a candidate.
                let spread = hi_v - lo_v;
                if !spread.is_finite() || spread <= 0.0 {
                    continue;
                }
                drawn += 1;
                let mut t = lo_v + rng.gen::<f32>() * spread;
                if t >= hi_v {
                    t = lo_v;
                }
                left.fill(0);
                for (&v, &c) in vals.iter().zip(&classes) {
                    left[c] += u32::from(v <= t);
                }
                let nl: u32 = left.iter().sum();
                let nr = m as u32 - nl;
                if (nl as usize) < MIN_LEAF || (nr as usize) < MIN_LEAF {
                    continue;
                }
                // Lower weighted Gini impurity is higher sum of squared class counts over each side's rows.
                let (mut sl, mut sr) = (0f64, 0f64);
                for (&l, &c) in left.iter().zip(counts.iter()) {
                    sl += f64::from(l) * f64::from(l);
                    let r = f64::from(c - l);
                    sr += r * r;
                }
                let gain = sl / f64::from(nl) + sr / f64::from(nr);
                if best.is_none_or(|(g, _, _)| gain > g) {
                    best = Some((gain, f as u32, t));
                }
            }
        }
        match best {
            Some((_, f, t)) => {
                // Partition the node's rows: those going left first.
                let col = &cols[f as usize * n..(f as usize + 1) * n];
                let mut mid = 0;
                for k in 0..m {
                    if col[part[k] as usize] <= t {
                        part.swap(k, mid);
                        mid += 1;
                    }
                }
                let (l, r) = (nodes.len(), nodes.len() + 1);
                for _ in 0..2 {
                    nodes.push(Node {
                        feature: LEAF,
                        threshold: 0.0,
                        left: 0,
                        right: 0,
                    });
                }
                nodes[slot] = Node {
                    feature: f,
                    threshold: t,
                    left: l as u32,
                    right: r as u32,
                };
                stack.push((l, lo, lo + mid));
                stack.push((r, lo + mid, hi));
            }
            None => {
                let leaf = starts.len() - 1;
                shares.extend(
                    (0..nc as u32)
                        .zip(&counts)
                        .filter(|&(_, &c)| c > 0)
                        .map(|(k, &c)| (k, c as f32 / m.max(1) as f32)),
                );
                starts.push(shares.len() as u32);
                nodes[slot].left = leaf as u32;
            }
        }
    }
    Tree {
        nodes,
        shares,
        starts,
    }
}

/// The tree voter: its trees (fold by fold) and the out-of-fold probabilities of the rows it was fitted on.
#[derive(Debug)]
pub struct ForestVotes {
    /// `TREES_PER_FOLD` trees per fold, fold 0's first.
    trees: Vec<Tree>,
    /// Out-of-fold class probabilities of each base row.
    pub base: Array2<f32>,
    nc: usize,
}

impl ForestVotes {
    /// Grow the trees on base rows `x` with class indices `y` (< `nc`). None when fewer than two classes, a class
    /// has fewer rows than there are folds, or the out-of-fold probabilities of the rows' own labels are no higher
    /// than the class frequencies (the trees then do not vote). A base larger than [`linear::FIT_ROWS`] is sampled
    /// as the linear model's is, and its other rows are voted on like data rows.
    ///
    /// `near[b]`, when given, lists the base rows that are near copies of base row `b`: they are kept in one fold
    /// ([`linear::grouped_folds`]), so that no row's out-of-fold vote comes from trees grown on its own copies. A
    /// tree's leaf holds [`MIN_LEAF`] rows or more: three near clones of a row relabelled b share leaves and vote
    /// for b, which the kNN vote avoids by leaving out much nearer rows (the real benchmark's Default near clones
    /// without a reference went 0.47 -> 0.00 with the trees on plain folds). `voted`: the base rows whose votes
    /// are read, when not all ([`linear::on_sample`]).
    pub fn fit(
        x: ArrayView2<f32>,
        y: &[u32],
        nc: usize,
        near: Option<&[Vec<u32>]>,
        voted: Option<&[usize]>,
    ) -> Option<ForestVotes> {
        linear::on_sample(
            x,
            y,
            nc,
            voted,
            |x, y, nc, picked| {
                let fold = match near {
                    None => linear::stratified_folds(y, nc)?,
                    Some(near) => match picked {
                        None => linear::grouped_folds(y, nc, &|i| near[i].as_slice())?,
                        Some(picked) => {
                            // Near rows among the picked ones, as positions in the sample.
                            let mut at = vec![u32::MAX; near.len()];
                            for (s, &b) in picked.iter().enumerate() {
                                at[b] = s as u32;
                            }
                            let local: Vec<Vec<u32>> = picked
                                .iter()
                                .map(|&b| {
                                    near[b]
                                        .iter()
                                        .map(|&j| at[j as usize])
                                        .filter(|&s| s != u32::MAX)
                                        .collect()
                                })
                                .collect();
                            linear::grouped_folds(y, nc, &|i| local[i].as_slice())?
                        }
                    },
                };
                Self::folds(x, y, nc, &fold)
            },
            |v: &ForestVotes, rows| v.predict(rows),
        )
    }

    /// The trees of every fold (`fold[i]` the fold of row `i`) and the out-of-fold probabilities of `x`.
    fn folds(x: ArrayView2<f32>, y: &[u32], nc: usize, fold: &[usize]) -> Option<ForestVotes> {
        let x = linear::squashed(x);
        let x = x.view();
        // Column by column, so a node reads one feature's values from one slice.
        let cols: Vec<f32> = x.t().iter().copied().collect();
        let trees: Vec<Tree> = (0..FOLDS * TREES_PER_FOLD)
            .into_par_iter()
            .map(|t| {
                let f = t / TREES_PER_FOLD;
                let train: Vec<u32> = (0..y.len() as u32)
                    .filter(|&i| fold[i as usize] != f)
                    .collect();
                grow(&cols, y.len(), y, train, nc, t as u64)
            })
            .collect();
        let mut base = Array2::<f32>::zeros((y.len(), nc));
        base.axis_iter_mut(Axis(0))
            .into_par_iter()
            .enumerate()
            .for_each(|(i, mut out)| {
                let row = x.row(i);
                let row = row.as_slice().unwrap_or(&[]);
                let f = fold[i];
                for tree in &trees[f * TREES_PER_FOLD..(f + 1) * TREES_PER_FOLD] {
                    for &(c, s) in tree.leaf(row) {
                        out[c as usize] += s;
                    }
                }
                out.mapv_inplace(|v| v / TREES_PER_FOLD as f32);
            });
        Some(ForestVotes { trees, base, nc })
    }

    /// Probabilities of rows outside the base (or outside the rows the trees were grown on): the average of
    /// `TREES_PER_FOLD` trees taken evenly from the folds (as many as vote on a base row, so both are as
    /// confident), in parallel chunks of rows.
    pub fn predict(&self, x: ArrayView2<f32>) -> Array2<f32> {
        const CHUNK: usize = 4_096;
        let nc = self.nc;
        let voting: Vec<&Tree> = (0..TREES_PER_FOLD)
            .filter_map(|j| self.trees.get((j % FOLDS) * TREES_PER_FOLD + j / FOLDS))
            .collect();
        let k = voting.len().max(1) as f32;
        let mut out = Array2::<f32>::zeros((x.nrows(), nc));
        out.axis_chunks_iter_mut(Axis(0), CHUNK)
            .into_par_iter()
            .enumerate()
            .for_each(|(c, mut block)| {
                let start = c * CHUNK;
                let rows = linear::squashed(x.slice(ndarray::s![start..start + block.nrows(), ..]));
                for (mut o, row) in block.axis_iter_mut(Axis(0)).zip(rows.axis_iter(Axis(0))) {
                    let row = row.as_slice().unwrap_or(&[]);
                    for tree in &voting {
                        for &(c, s) in tree.leaf(row) {
                            o[c as usize] += s;
                        }
                    }
                    o.mapv_inplace(|v| v / k);
                }
            });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::Rng;

    /// Two classes split by a threshold on one column in a table of noise columns, with `flipped` rows relabelled.
    fn threshold_world(n: usize, flipped: &[usize]) -> (Array2<f32>, Vec<u32>) {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(7);
        let x = Array2::from_shape_fn((n, 6), |_| rng.gen_range(-2.0f32..2.0));
        let mut y: Vec<u32> = (0..n).map(|i| u32::from(x[[i, 2]] > 0.3)).collect();
        for &i in flipped {
            y[i] = 1 - y[i];
        }
        (x, y)
    }

    #[test]
    fn a_tree_sends_every_row_to_a_leaf_of_its_own_rows_shares() {
        let (x, y) = threshold_world(400, &[]);
        let cols: Vec<f32> = x.t().iter().copied().collect();
        let tree = grow(&cols, 400, &y, (0..400).collect(), 2, 1);
        // Rows by the leaf they land in (a leaf's entries are one slice of the tree's `shares`).
        let mut leaf_rows = std::collections::HashMap::<usize, (f32, Vec<usize>)>::new();
        for i in 0..400 {
            let leaf = tree.leaf(x.row(i).as_slice().unwrap());
            assert!((leaf.iter().map(|e| e.1).sum::<f32>() - 1.0).abs() < 1e-5);
            assert!(
                leaf.iter().all(|e| e.1 > 0.0),
                "only classes the leaf holds"
            );
            let class_1 = leaf.iter().find(|e| e.0 == 1).map_or(0.0, |e| e.1);
            let at = leaf.as_ptr() as usize;
            leaf_rows
                .entry(at)
                .or_insert((class_1, Vec::new()))
                .1
                .push(i);
        }
        assert!(leaf_rows.len() > 2, "the tree split");
        for (stored, rows) in leaf_rows.values() {
            assert!(rows.len() >= MIN_LEAF, "a leaf holds {} rows", rows.len());
            let share = rows.iter().filter(|&&i| y[i] == 1).count() as f32 / rows.len() as f32;
            assert!(
                (share - stored).abs() < 1e-5,
                "leaf share {stored}, its rows' {share}"
            );
        }
    }

    #[test]
    fn out_of_fold_votes_name_the_relabelled_rows_of_a_threshold_world() {
        let flipped: Vec<usize> = (0..600).step_by(40).collect();
        let (x, y) = threshold_world(600, &flipped);
        let v = ForestVotes::fit(x.view(), &y, 2, None, None).expect("two classes, enough rows");
        // Every flipped row's own label gets a lower out-of-fold probability than the median clean row's.
        let mut clean: Vec<f32> = (0..600)
            .filter(|i| !flipped.contains(i))
            .map(|i| v.base[[i, y[i] as usize]])
            .collect();
        clean.sort_by(f32::total_cmp);
        let median = clean[clean.len() / 2];
        let caught = flipped
            .iter()
            .filter(|&&i| v.base[[i, y[i] as usize]] < 0.5)
            .count();
        assert!(median > 0.8, "clean rows' own-label probability {median}");
        assert!(
            caught >= flipped.len() - 2,
            "{caught} of {} flips",
            flipped.len()
        );
        // Rows outside the base: the trees follow the threshold, not the noise columns.
        let probe =
            Array2::from_shape_fn((2, 6), |(r, j)| if j == 2 { [-1.5, 1.5][r] } else { 0.0 });
        let p = v.predict(probe.view());
        assert!(p[[0, 0]] > 0.8 && p[[1, 1]] > 0.8, "{p:?}");
    }

    #[test]
    fn near_copies_kept_in_one_fold_do_not_vote_for_each_other() {
        // Three near copies of each of four rows of class 0, relabelled 1: on plain folds each copy's trees saw its
        // sibling copies (a leaf of them votes 1); on folds that keep each copy group together, they did not.
        let (mut x, mut y) = threshold_world(600, &[]);
        let sources: Vec<usize> = (0..600)
            .filter(|&i| y[i] == 0)
            .step_by(37)
            .take(4)
            .collect();
        let mut near: Vec<Vec<u32>> = vec![Vec::new(); 600];
        for &s in &sources {
            let first = y.len() as u32;
            for c in 0..3u32 {
                let mut row = x.row(s).to_owned();
                row[0] += 1e-3 * (c + 1) as f32;
                x.push_row(row.view()).unwrap();
                y.push(1);
                near.push((first..first + 3).filter(|&j| j != first + c).collect());
            }
        }
        let copies: Vec<usize> = (600..y.len()).collect();
        let own_label = |v: &ForestVotes| -> f32 {
            copies.iter().map(|&i| v.base[[i, 1]]).sum::<f32>() / copies.len() as f32
        };
        let plain = ForestVotes::fit(x.view(), &y, 2, None, None).unwrap();
        let grouped = ForestVotes::fit(x.view(), &y, 2, Some(&near), None).unwrap();
        let folds = linear::grouped_folds(&y, 2, &|i| near[i].as_slice()).unwrap();
        for g in copies.chunks(3) {
            assert!(
                g.iter().all(|&i| folds[i] == folds[g[0]]),
                "a copy group split over folds"
            );
        }
        assert!(
            own_label(&grouped) < 0.5 * own_label(&plain),
            "grouped {} plain {}",
            own_label(&grouped),
            own_label(&plain)
        );
    }

    #[test]
    fn a_table_of_many_classes_stores_no_more_leaf_entries_than_rows() {
        // 1,000 classes of 6 rows each along one column: every leaf keeps only the classes its rows hold.
        let n = 6_000;
        let cols: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let y: Vec<u32> = (0..n as u32).map(|i| i / 6).collect();
        let tree = grow(&cols, n, &y, (0..n as u32).collect(), 1_000, 2);
        assert!(tree.shares.len() <= n, "{} entries", tree.shares.len());
        assert_eq!(*tree.starts.last().unwrap() as usize, tree.shares.len());
        // A row's leaf gives its own class a share.
        let leaf = tree.leaf(&[600.0]);
        assert!(leaf.iter().any(|&(c, s)| c == 100 && s > 0.0), "{leaf:?}");
    }

    #[test]
    fn labels_unrelated_to_the_features_get_no_vote() {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(3);
        let x = Array2::from_shape_fn((500, 4), |_| rng.gen_range(-1.0f32..1.0));
        let y: Vec<u32> = (0..500).map(|_| rng.gen_range(0..2)).collect();
        assert!(ForestVotes::fit(x.view(), &y, 2, None, None).is_none());
    }

    #[test]
    fn the_same_rows_grow_the_same_trees() {
        let (x, y) = threshold_world(300, &[5, 50]);
        let a = ForestVotes::fit(x.view(), &y, 2, None, None).unwrap();
        let b = ForestVotes::fit(x.view(), &y, 2, None, None).unwrap();
        assert_eq!(a.base, b.base);
    }
}
