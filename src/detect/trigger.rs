//! # Trigger patches on copies (part of `score_backdoor`)
//!
//! ## What it detects
//! The commonest tabular backdoor: rows of class a copied, a few columns set to fixed trigger values, and the copies
//! relabelled b. Each poisoned row is then an exact copy of another class's row except in those few columns, and all
//! of them carry the *same* values there. A trigger inside the columns' ranges passes the contract, and a small or
//! in-range injection barely moves the class statistics that the 2-means split of [`super::backdoor`] looks at; this
//! rule looks at the copies themselves.
//!
//! ## How
//! 1. *Copy pairs.* Two rows of different classes that agree exactly on all but `1..=t` feature columns
//!    (`t = min(3, d / 2)`, so at least half of the columns, and at least two, agree) are found by the pigeonhole
//!    principle: the columns are dealt into `t + 2` blocks (most distinct values first, round robin), so such a pair
//!    agrees on at least two whole blocks, and rows are bucketed by the values of every two blocks' columns. Buckets
//!    of more than [`MAX_BUCKET`] rows (low-cardinality columns) are not searched, and the search stops after about
//!    one pair per row (each key gets its share; reported as `search_stopped_early`), so memory stays proportional
//!    to the rows. The same buckets give the pairs of the *same* class that differ in `1..=t` columns.
//! 2. *Patches.* Each row of a pair gets a patch: its class, the columns where the pair differs, and its own values
//!    there. Rows that are exact duplicates of each other count once. A row that also differs from a row of its own
//!    class in the same columns (or some of them) is a *natural variant*: rows alike but for a few fields occur under
//!    both labels (sparse or discrete columns). A trigger's copies seldom are (the rows alike their source outside the
//!    trigger's columns are mostly of the source's class).
//! 3. *Shared patches.* A poisoned row's patch is the trigger, shared by every copy; a source row's patch is its own
//!    original values, which differ from copy to copy. For each patch, clean data would hold about
//!    `E = P_{b,J} * min_{j in J} f_j(v_j)` rows carrying it, with `P_{b,J}` the class-b rows patched on the same
//!    columns `J` and `f_j(v)` the share of rows with value `v` in column `j` (the larger of the class's and the
//!    whole data's share). That assumes a row's patch columns say nothing of its values there, but in discrete
//!    tables a row holding a rare value finds its copy pairs across exactly that column, in every class alike; so
//!    `E` is at least what the other classes show: `O * pi_b / (1 - pi_b)`, `O` the distinct rows of other classes
//!    carrying the same values on the same columns on copies of another class's rows, `pi_b` class b's share of the
//!    rows. A trigger's values sit on one class's copies only (their sources hold their own values), so `O` stays
//!    near 0 for it. A patch held by `c >= 3` distinct rows is a trigger when `c > E + 3 sqrt(E) + 1`, when seeing
//!    `c` is unlikely for all candidate patches together (`P(Poisson(E) >= c)` times their number at most
//!    [`FAMILY_TAIL`]), and when fewer than [`NATURAL_SHARE`] of its rows are natural variants (a bag of words whose
//!    words move the label pairs rows of two classes across every word; its patches are mostly variants). Its rows
//!    are flagged: score `0.5 + 0.5 (1 - line / c)`, `line` the first right-hand side.
//! 4. *With a reference*, a trigger is excused when the trusted rows of its class hold its values on its columns at
//!    least a third as often as the data's rows of that class do (and at least once): rows of one class derived from
//!    another's with a few fields set is then how the data is made.
//! 5. *Partial patches.* A copy whose source already held some of the trigger's values differs in fewer columns: a
//!    row patched in the same class on some of a trigger's columns, with the trigger's values there, that carries
//!    the whole trigger, is flagged with it.
//!
//! ## When it is wrong
//! Triggers with noise on them (different values per copy), copies with noise on every column, or more than `t`
//! patched columns are not seen; neither is a copy whose untouched columns hold so few distinct values that every
//! two-block key of theirs puts it in a bucket of more than [`MAX_BUCKET`] rows. In data with few columns (`d < 3`)
//! nothing is analysed. Legitimate rows that repeat another class's rows apart from a few columns set to common values
//! or to values other classes carry the same way (discrete tables) are what the expectation `E` guards against; a
//! rare value that truly goes with one class among rows otherwise alike (a discrete feature that decides the label)
//! looks like a trigger to it, unless a reference holds the same pattern (step 4) or its rows are natural variants. A
//! trigger stamped on copies into several classes raises its own `E` through the other classes' rows; one stamped on
//! copies of rows whose untouched values many rows of the target class share (common contents of sparse or discrete
//! columns) is mostly natural variants and not told from the table's nature.
//!
//! ## Reference
//! Gu, Dolan-Gavitt, Garg, "BadNets", 2017 (a trigger is a fixed pattern stamped on otherwise clean copies); Chen et al.
//! "Targeted Backdoor Attacks on Deep Learning Systems Using Data Poisoning", 2017; Manber and Wu's pigeonhole
//! filtering for approximate matching ("An algorithm for approximate membership checking", 1994).

use super::duplicate::poisson_tail;
use super::DetectContext;
use rayon::prelude::*;
use serde_json::json;
use std::collections::HashMap;

/// Buckets with more rows than this are not searched for pairs.
pub const MAX_BUCKET: usize = 64;
/// The search stops after this many pairs per row over all blocks (discrete data with many near-repeats).
const PAIRS_PER_ROW: usize = 1;
/// Fewest distinct rows that make a shared patch.
const MIN_GROUP: usize = 3;
/// Share of a patch's distinct rows that, when natural variants, make the patch the table's nature.
const NATURAL_SHARE: f64 = 1.0 / 3.0;
/// Chance, over all candidate patches together, at which a shared patch is still called a trigger.
const FAMILY_TAIL: f64 = 1e-3;
/// Most columns a patch may span.
const MAX_PATCH: usize = 3;

/// A row's findings: score (>= 0.5) and reason.
pub type Finding = Option<(f32, String)>;

/// Columns a pair may differ in: `min(3, d / 2)`, leaving at least two that agree.
pub fn patch_columns(d: usize) -> usize {
    (d / 2).min(MAX_PATCH).min(d.saturating_sub(2))
}

fn mix(mut h: u64, v: u64) -> u64 {
    h ^= v
        .wrapping_add(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(h << 6)
        .wrapping_add(h >> 2);
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb)
}

/// Bits of a feature value, with -0.0 and 0.0 the same.
fn bits(v: f32) -> u32 {
    if v == 0.0 {
        0
    } else {
        v.to_bits()
    }
}

/// Columns dealt into `blocks` groups, the columns with most distinct values (over `rows`) first, round robin.
fn deal_columns(x: &ndarray::Array2<f32>, rows: &[usize], blocks: usize) -> Vec<Vec<usize>> {
    let d = x.ncols();
    let mut distinct: Vec<(usize, usize)> = (0..d)
        .into_par_iter()
        .map(|j| {
            let mut v: Vec<u32> = rows.iter().map(|&i| bits(x[[i, j]])).collect();
            v.sort_unstable();
            v.dedup();
            (v.len(), j)
        })
        .collect();
    distinct.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut out = vec![Vec::new(); blocks];
    for (k, &(_, j)) in distinct.iter().enumerate() {
        out[k % blocks].push(j);
    }
    out
}

/// A patch: class, the differing columns (ascending) and the row's own values there.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Patch {
    class: u32,
    len: u8,
    col: [u32; MAX_PATCH],
    val: [u32; MAX_PATCH],
}

impl Patch {
    fn cols(&self) -> &[u32] {
        &self.col[..self.len as usize]
    }
    fn vals(&self) -> &[u32] {
        &self.val[..self.len as usize]
    }
}

/// The columns two rows differ in (at most [`MAX_PATCH`]): (columns, how many).
type Diff = ([u32; MAX_PATCH], u8);

/// A copy pair: its rows (ascending) and the columns they differ in.
type Pair = (usize, usize, Diff);

/// A patch's columns and values, whatever its class.
type PatchPlace<'a> = (&'a [u32], &'a [u32]);

/// A patch, its rows with their partners (row, partner), its distinct row contents, and how many of those are
/// natural variants (rows with a partner of their own class on the same columns).
type Group<'a> = (&'a Patch, Vec<(usize, usize)>, usize, usize);

/// Pairs of rows of different classes that differ in `1..=t` columns, each as (row, row, differing columns), and
/// whether a key's search stopped at its share of [`PAIRS_PER_ROW`] pairs per row (memory stays proportional to the
/// rows).
fn copy_pairs(
    x: &ndarray::Array2<f32>,
    labels: &[Option<u32>],
    rows: &[usize],
    t: usize,
) -> (Vec<Pair>, Vec<(usize, Diff)>, bool) {
    let d = x.ncols();
    // t + 2 blocks: a pair that differs in at most t columns agrees on at least two whole blocks, so it shares a
    // bucket keyed on some two blocks' columns (more columns per key than one block: smaller buckets).
    let blocks = deal_columns(x, rows, t + 2);
    let keys: Vec<Vec<usize>> = (0..blocks.len())
        .flat_map(|a| (a + 1..blocks.len()).map(move |b| (a, b)))
        .map(|(a, b)| blocks[a].iter().chain(&blocks[b]).copied().collect())
        .collect();
    let most = PAIRS_PER_ROW * rows.len() / keys.len().max(1) + MAX_BUCKET * MAX_BUCKET;
    let stopped = std::sync::atomic::AtomicBool::new(false);
    let (mut pairs, mut variants): (Vec<Pair>, Vec<(usize, Diff)>) = keys
        .par_iter()
        .map(|cols| {
            let mut keyed: Vec<(u64, usize)> = rows
                .iter()
                .map(|&i| {
                    (
                        cols.iter()
                            .fold(0u64, |h, &j| mix(h, bits(x[[i, j]]) as u64)),
                        i,
                    )
                })
                .collect();
            keyed.sort_unstable();
            let mut found = Vec::new();
            let mut alike = Vec::new();
            for bucket in keyed.chunk_by(|a, b| a.0 == b.0) {
                if bucket.len() < 2 || bucket.len() > MAX_BUCKET {
                    continue;
                }
                if found.len() >= most {
                    stopped.store(true, std::sync::atomic::Ordering::Relaxed);
                    break;
                }
                for (k, &(_, a)) in bucket.iter().enumerate() {
                    for &(_, b) in &bucket[k + 1..] {
                        let same = labels[a] == labels[b];
                        if same && alike.len() >= 2 * most {
                            continue;
                        }
                        let mut diff = [u32::MAX; MAX_PATCH];
                        let mut len = 0usize;
                        for j in 0..d {
                            if bits(x[[a, j]]) != bits(x[[b, j]]) {
                                if len == t {
                                    len = t + 1;
                                    break;
                                }
                                diff[len] = j as u32;
                                len += 1;
                            }
                        }
                        if !(1..=t).contains(&len) {
                            continue;
                        }
                        if same {
                            alike.push((a, (diff, len as u8)));
                            alike.push((b, (diff, len as u8)));
                        } else {
                            found.push((a.min(b), a.max(b), (diff, len as u8)));
                        }
                    }
                }
            }
            (found, alike)
        })
        .reduce(
            || (Vec::new(), Vec::new()),
            |mut a, b| {
                a.0.extend(b.0);
                a.1.extend(b.1);
                a
            },
        );
    variants.sort_unstable();
    variants.dedup();
    pairs.sort_unstable();
    pairs.dedup();
    (pairs, variants, stopped.into_inner())
}

/// Each row's patches from its copy pairs under `labels`, as (patch, row, partner), sorted and deduplicated.
fn patches(
    x: &ndarray::Array2<f32>,
    labels: &[Option<u32>],
    pairs: &[Pair],
) -> Vec<(Patch, usize, usize)> {
    let mut patched: Vec<(Patch, usize, usize)> = Vec::with_capacity(2 * pairs.len());
    for (a, b, (cols, len)) in pairs {
        for (r, s) in [(*a, *b), (*b, *a)] {
            let Some(class) = labels[r] else { continue };
            let mut val = [u32::MAX; MAX_PATCH];
            for (k, &j) in cols[..*len as usize].iter().enumerate() {
                val[k] = bits(x[[r, j as usize]]);
            }
            patched.push((
                Patch {
                    class,
                    len: *len,
                    col: *cols,
                    val,
                },
                r,
                s,
            ));
        }
    }
    patched.sort_unstable();
    patched.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    patched
}

/// Whether `row` holds the patch's values on its columns.
fn carries(row: ndarray::ArrayView1<f32>, p: &Patch) -> bool {
    p.cols()
        .iter()
        .zip(p.vals())
        .all(|(&j, &v)| row.get(j as usize).is_some_and(|&x| bits(x) == v))
}

/// With a reference: how many of its rows of the patch's class hold the patch's values, and how many rows of that
/// class it has (None without a reference or without rows of the class).
fn holds(reference: Option<&super::LabelledMatrix>, p: &Patch) -> Option<(usize, usize)> {
    let r = reference?;
    let of: Vec<usize> = (0..r.x.nrows())
        .filter(|&i| r.labels[i] == Some(p.class))
        .collect();
    (!of.is_empty()).then(|| {
        let held = of.iter().filter(|&&i| carries(r.x.row(i), p)).count();
        (held, of.len())
    })
}

/// Content hash of a row (exact duplicates count once in a patch's group).
fn row_hash(x: &ndarray::Array2<f32>, i: usize) -> u64 {
    x.row(i).iter().fold(0u64, |h, &v| mix(h, bits(v) as u64))
}

/// Find rows carrying a shared trigger patch. `names` are the feature columns' names and `raw(j, v)` turns a
/// feature value back into the column's units, for the reasons. Returns per row a finding, and a summary.
pub fn detect(
    ctx: &DetectContext,
    names: &[String],
    raw: &dyn Fn(usize, f32) -> f32,
) -> (Vec<Finding>, serde_json::Value) {
    let n = ctx.x.nrows();
    let d = ctx.x.ncols();
    let mut out: Vec<Finding> = vec![None; n];
    let t = patch_columns(d);
    let skipped = if t == 0 {
        Some(format!(
            "{d} feature columns: a copy needs at least 3 (two that agree, one that differs)"
        ))
    } else if ctx.classes.len() < 2 {
        Some("one class: a copy under another label needs two".to_string())
    } else {
        None
    };
    if let Some(why) = skipped {
        return (out, json!({ "skipped": why }));
    }
    let rows: Vec<usize> = (0..n)
        .filter(|&i| ctx.valid[i] && ctx.labels[i].is_some())
        .collect();
    let (pairs, variants, stopped) = copy_pairs(ctx.x, ctx.labels, &rows, t);
    // A row that differs from a row of its own class in the same columns (or some of them) is a natural variant:
    // rows alike but for a few fields under both labels (sparse or discrete columns). A trigger's copies are seldom
    // so (the rows alike their source outside the trigger's columns are mostly of the source's class).
    let patched: Vec<(Patch, usize, usize, bool)> = patches(ctx.x, ctx.labels, &pairs)
        .into_iter()
        .map(|(p, r, s)| {
            let variant = (1u8..1 << p.len).any(|mask| {
                let mut cols = [u32::MAX; MAX_PATCH];
                let mut len = 0u8;
                for (k, &j) in p.cols().iter().enumerate() {
                    if mask & (1 << k) != 0 {
                        cols[len as usize] = j;
                        len += 1;
                    }
                }
                variants.binary_search(&(r, (cols, len))).is_ok()
            });
            (p, r, s, variant)
        })
        .collect();
    let mut hashes: HashMap<usize, u64> = HashMap::new();
    for p in &patched {
        hashes.entry(p.1).or_insert_with(|| row_hash(ctx.x, p.1));
    }
    // Distinct row contents per patch (and of its natural variants), and per (class, columns).
    let distinct = |rows: &mut dyn Iterator<Item = usize>| {
        let mut contents: Vec<u64> = rows.map(|r| hashes[&r]).collect();
        contents.sort_unstable();
        contents.dedup();
        contents.len()
    };
    let mut groups: Vec<Group> = Vec::new();
    for g in patched.chunk_by(|a, b| a.0 == b.0) {
        groups.push((
            &g[0].0,
            g.iter().map(|p| (p.1, p.2)).collect(),
            distinct(&mut g.iter().map(|p| p.1)),
            distinct(&mut g.iter().filter(|p| p.3).map(|p| p.1)),
        ));
    }
    let mut per_cols: HashMap<(u32, &[u32]), Vec<u64>> = HashMap::new();
    for (p, members, _, _) in &groups {
        per_cols
            .entry((p.class, p.cols()))
            .or_default()
            .extend(members.iter().map(|m| hashes[&m.0]));
    }
    let p_bj: HashMap<(u32, &[u32]), usize> = per_cols
        .into_iter()
        .map(|(k, mut v)| {
            v.sort_unstable();
            v.dedup();
            (k, v.len())
        })
        .collect();
    // The same patch (columns and values) in other classes: distinct rows per class.
    let mut elsewhere: HashMap<PatchPlace, Vec<(u32, usize)>> = HashMap::new();
    for (p, _, c, _) in &groups {
        elsewhere
            .entry((p.cols(), p.vals()))
            .or_default()
            .push((p.class, *c));
    }
    // Value shares of the candidate groups' (column, value) pairs: over all rows and within the class.
    let candidates: Vec<usize> = (0..groups.len())
        .filter(|&g| groups[g].2 >= MIN_GROUP)
        .collect();
    let nc = ctx.classes.len();
    let mut class_rows = vec![0usize; nc];
    for &i in &rows {
        if let Some(c) = ctx.labels[i] {
            class_rows[c as usize] += 1;
        }
    }
    // Per column, the wanted values' counts: (over all rows, per class).
    let mut wanted: HashMap<u32, HashMap<u32, (usize, Vec<usize>)>> = HashMap::new();
    for &g in &candidates {
        let p = groups[g].0;
        for (&j, &v) in p.cols().iter().zip(p.vals()) {
            wanted
                .entry(j)
                .or_default()
                .entry(v)
                .or_insert((0, vec![0; nc]));
        }
    }
    wanted.par_iter_mut().for_each(|(&j, values)| {
        for &i in &rows {
            if let Some((all, by_class)) = values.get_mut(&bits(ctx.x[[i, j as usize]])) {
                *all += 1;
                if let Some(c) = ctx.labels[i] {
                    by_class[c as usize] += 1;
                }
            }
        }
    });
    let name = |j: u32| names.get(j as usize).map_or("?", String::as_str);
    let column_names = |p: &Patch| p.cols().iter().map(|&j| name(j)).collect::<Vec<_>>();
    let describe = |p: &Patch| -> String {
        p.cols()
            .iter()
            .zip(p.vals())
            .map(|(&j, &v)| format!("{} = {}", name(j), raw(j as usize, f32::from_bits(v))))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut triggers = Vec::new();
    let mut excused = Vec::new();
    let mut flag = |r: usize, score: f32, reason: String| {
        if out[r].as_ref().is_none_or(|(sc, _)| score > *sc) {
            out[r] = Some((score, reason));
        }
    };
    for &g in &candidates {
        let (p, members, c) = (&groups[g].0, &groups[g].1, groups[g].2);
        let share = p
            .cols()
            .iter()
            .zip(p.vals())
            .map(|(&j, &v)| {
                let (all, by_class) = &wanted[&j][&v];
                let overall = *all as f64 / rows.len().max(1) as f64;
                let within =
                    by_class[p.class as usize] as f64 / class_rows[p.class as usize].max(1) as f64;
                overall.max(within)
            })
            .fold(1.0f64, f64::min);
        let other = elsewhere.get(&(p.cols(), p.vals())).map_or(0, |by| {
            by.iter()
                .filter(|&&(k, _)| k != p.class)
                .map(|&(_, c)| c)
                .sum::<usize>()
        });
        let prior = class_rows[p.class as usize] as f64 / rows.len().max(1) as f64;
        let e = (p_bj[&(p.class, p.cols())] as f64 * share)
            .max(other as f64 * prior / (1.0 - prior).max(f64::EPSILON));
        let line = e + 3.0 * e.sqrt() + 1.0;
        // Many patches are tested at once: the count must also be unlikely for all of them together.
        if (c as f64) <= line || poisson_tail(c, e) * candidates.len() as f64 > FAMILY_TAIL {
            continue;
        }
        // A patch most of whose rows are natural variants is the table's nature, not copies stamped from another
        // class.
        if (groups[g].3 as f64) >= NATURAL_SHARE * c as f64 {
            continue;
        }
        // Copies whose source already held part of the trigger differ in fewer columns: a patch of the same class
        // on some of the trigger's columns, with the trigger's values there, on a row that carries the whole trigger,
        // is part of it.
        let parts: Vec<(&Patch, usize, usize)> = groups
            .iter()
            .filter(|(q, _, _, _)| {
                q.class == p.class
                    && q.cols().len() < p.cols().len()
                    && q.cols().iter().zip(q.vals()).all(|(j, v)| {
                        p.cols()
                            .iter()
                            .position(|pj| pj == j)
                            .is_some_and(|k| p.vals()[k] == *v)
                    })
            })
            .flat_map(|(q, qm, _, _)| qm.iter().map(move |&(r, s)| (*q, r, s)))
            .filter(|&(_, r, _)| carries(ctx.x.row(r), p))
            .collect();
        // A pattern the trusted rows hold too, at a comparable rate, is how the data is made (rows of one class derived
        // from another's with a few fields set), not a trigger.
        if let Some((held, of)) = holds(ctx.reference, p) {
            let in_data = rows
                .iter()
                .filter(|&&i| ctx.labels[i] == Some(p.class) && carries(ctx.x.row(i), p))
                .count();
            if held > 0
                && 3.0 * held as f64 / of as f64
                    >= in_data as f64 / class_rows[p.class as usize].max(1) as f64
            {
                excused.push(json!({
                    "class": ctx.classes[p.class as usize],
                    "columns": column_names(p),
                    "rows": c,
                    "reference_rows": held,
                }));
                continue;
            }
        }
        let score = (0.5 + 0.5 * (1.0 - line / c as f64)) as f32;
        let values = describe(p);
        let class = ctx.classes[p.class as usize].as_str();
        let label_of = |s: usize| ctx.labels[s].map_or("?", |c| ctx.classes[c as usize].as_str());
        for &(r, s) in members {
            flag(
                r,
                score,
                format!(
                    "copy of row {s} (label {}) except {values}: {c} rows labelled {class} are copies of other-class \
                     rows carrying these same values ({e:.1} expected): a trigger patch",
                    label_of(s)
                ),
            );
        }
        for &(part, r, s) in &parts {
            flag(
                r,
                score,
                format!(
                    "copy of row {s} (label {}) except {}, part of a trigger patch ({values}) that {c} rows \
                     labelled {class} carry on copies of other-class rows ({e:.1} expected)",
                    label_of(s),
                    describe(part)
                ),
            );
        }
        let partial = parts.len();
        triggers.push(json!({
            "class": class,
            "columns": column_names(p),
            "rows": c,
            "rows_with_part_of_it": partial,
            "natural_variants": groups[g].3,
            "expected": e,
        }));
    }
    let summary = json!({
        "patch_columns": t,
        "copy_pairs": pairs.len(),
        "patched_rows_natural_variants": patched.iter().filter(|p| p.3).count(),
        "candidates": candidates.len(),
        "search_stopped_early": stopped,
        "triggers": triggers,
        "excused_by_reference": excused,
    });
    (out, summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::DetectConfig;
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};

    /// Run the rule on `x` with `labels` (2 or 3 classes); every row valid.
    fn run(x: &Array2<f32>, labels: &[Option<u32>]) -> Vec<Finding> {
        run_with_summary(x, labels, None).0
    }

    fn run_with_summary(
        x: &Array2<f32>,
        labels: &[Option<u32>],
        reference: Option<&crate::detect::LabelledMatrix>,
    ) -> (Vec<Finding>, serde_json::Value) {
        let n = x.nrows();
        let valid = vec![true; n];
        let classes: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let digests: Vec<[u8; 32]> = (0..n)
            .map(|i| *blake3::hash(&(i as u64).to_le_bytes()).as_bytes())
            .collect();
        let config = DetectConfig::default();
        let ctx = DetectContext {
            x,
            valid: &valid,
            labels,
            classes: &classes,
            digests: &digests,
            reference,
            config: &config,
            pred_probs: None,
            label_clean_rate: None,
        };
        let names: Vec<String> = (0..x.ncols()).map(|j| format!("f{j}")).collect();
        detect(&ctx, &names, &|_, v| v)
    }

    /// Two Gaussian classes (d = 8, continuous values), `n` rows.
    fn gaussian(n: usize, seed: u64) -> (Array2<f32>, Vec<Option<u32>>) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let labels: Vec<Option<u32>> = (0..n).map(|i| Some((i % 2) as u32)).collect();
        let x = Array2::from_shape_fn((n, 8), |(i, j)| {
            let shift = if i % 2 == 0 { 0.0 } else { 1.5 };
            rng.gen::<f32>() * 2.0 - 1.0 + if j < 3 { shift } else { 0.0 }
        });
        (x, labels)
    }

    /// Append `m` copies of class-0 rows with columns `cols` set to `vals`, relabelled 1; returns the copies' sources.
    fn inject(
        x: &mut Array2<f32>,
        labels: &mut Vec<Option<u32>>,
        m: usize,
        cols: &[usize],
        vals: &[f32],
    ) -> Vec<usize> {
        let sources: Vec<usize> = (0..x.nrows())
            .filter(|&i| labels[i] == Some(0))
            .take(m)
            .collect();
        for &s in &sources {
            let mut row = x.row(s).to_owned();
            for (&j, &v) in cols.iter().zip(vals) {
                row[j] = v;
            }
            x.push_row(row.view()).unwrap();
            labels.push(Some(1));
        }
        sources
    }

    #[test]
    fn copies_carrying_one_patch_are_flagged_and_their_sources_and_the_clean_twin_are_not() {
        let (mut x, mut labels) = gaussian(1000, 1);
        let clean = run(&x, &labels);
        assert!(clean.iter().all(Option::is_none), "clean twin flagged");
        let sources = inject(&mut x, &mut labels, 30, &[1, 4, 6], &[0.8, -0.3, 0.55]);
        let found = run(&x, &labels);
        let caught = (1000..1030).filter(|&i| found[i].is_some()).count();
        assert_eq!(caught, 30);
        let clean_flagged = (0..1000).filter(|&i| found[i].is_some()).count();
        assert_eq!(clean_flagged, 0, "sources {:?}", &sources[..3]);
        let (score, reason) = found[1000].clone().unwrap();
        assert!((0.5..=1.0).contains(&score));
        assert!(
            reason.contains("f1 = 0.8")
                && reason.contains("f4 = -0.3")
                && reason.contains("f6 = 0.55"),
            "{reason}"
        );
        assert!(
            reason.contains(&format!("copy of row {} (label a)", sources[0])),
            "{reason}"
        );
        // A copy whose source already held one of the trigger's values differs in two columns only: part of it.
        let (mut x, mut labels) = gaussian(1000, 4);
        x[[0, 4]] = -0.3;
        inject(&mut x, &mut labels, 30, &[1, 4, 6], &[0.8, -0.3, 0.55]);
        let found = run(&x, &labels);
        assert_eq!((1000..1030).filter(|&i| found[i].is_some()).count(), 30);
        let (_, reason) = found[1000].clone().unwrap();
        assert!(
            reason.contains("except f1 = 0.8, f6 = 0.55, part of a trigger patch"),
            "{reason}"
        );
        assert_eq!((0..1000).filter(|&i| found[i].is_some()).count(), 0);
        // A handful of copies is enough, where class statistics barely move.
        let (mut x, mut labels) = gaussian(1000, 2);
        inject(&mut x, &mut labels, 4, &[0, 5], &[0.1, 0.2]);
        let found = run(&x, &labels);
        assert_eq!((1000..1004).filter(|&i| found[i].is_some()).count(), 4);
        assert_eq!((0..1000).filter(|&i| found[i].is_some()).count(), 0);
    }

    /// Five columns of small integers and three random labels: almost every row repeats rows of other classes apart
    /// from a column or two, with common values there.
    fn discrete(n: usize, seed: u64) -> (Array2<f32>, Vec<Option<u32>>) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let labels = (0..n).map(|_| Some(rng.gen_range(0..3u32))).collect();
        let x = Array2::from_shape_fn((n, 5), |_| rng.gen_range(0..4) as f32);
        (x, labels)
    }

    #[test]
    fn a_discrete_clean_table_whose_rows_repeat_each_other_flags_nothing() {
        for seed in 0..4 {
            let (x, labels) = discrete(3000, seed);
            let found = run(&x, &labels);
            assert_eq!(
                found.iter().filter(|f| f.is_some()).count(),
                0,
                "seed {seed}"
            );
        }
    }

    /// A bag of words: 20 Poisson(0.1) counts and a label drawn from a logistic of them, each word moving it by up
    /// to 3 per count: rows that differ in one word differ in label far more often than chance.
    fn bag_of_words(n: usize, seed: u64) -> (Array2<f32>, Vec<Option<u32>>) {
        use rand_distr::Distribution;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let d = 20;
        let w: Vec<f32> = (0..d).map(|_| rng.gen_range(-3.0..3.0)).collect();
        let poisson = rand_distr::Poisson::new(0.1f64).unwrap();
        let x = Array2::from_shape_fn((n, d), |_| poisson.sample(&mut rng) as f32);
        let labels = (0..n)
            .map(|i| {
                let z: f32 = (0..d).map(|j| w[j] * (x[[i, j]] - 0.1)).sum();
                Some(u32::from(rng.gen::<f32>() < 1.0 / (1.0 + (-z).exp())))
            })
            .collect();
        (x, labels)
    }

    #[test]
    fn a_bag_of_words_whose_words_move_the_label_flags_nothing_and_a_trigger_in_it_is_flagged() {
        for seed in 0..4 {
            let (x, labels) = bag_of_words(3000, seed);
            let (found, summary) = run_with_summary(&x, &labels, None);
            assert!(summary["copy_pairs"].as_u64().unwrap() > 1000, "{summary}");
            assert_eq!(
                found.iter().filter(|f| f.is_some()).count(),
                0,
                "seed {seed}: {:?}",
                found.iter().flatten().next()
            );
        }
        // Copies of class-a rows holding five or more words, with two rare counts set and relabelled b (rows of
        // fewer words share every bucket key of the pair search with more than 64 rows: not searched).
        let (mut x, mut labels) = bag_of_words(3000, 0);
        let sources: Vec<usize> = (0..3000)
            .filter(|&i| labels[i] == Some(0) && x.row(i).iter().filter(|&&v| v > 0.0).count() >= 5)
            .take(30)
            .collect();
        assert_eq!(sources.len(), 30);
        for &s in &sources {
            let mut row = x.row(s).to_owned();
            row[3] = 5.0;
            row[11] = 4.0;
            x.push_row(row.view()).unwrap();
            labels.push(Some(1));
        }
        let found = run(&x, &labels);
        assert_eq!((3000..3030).filter(|&i| found[i].is_some()).count(), 30);
        assert_eq!((0..3000).filter(|&i| found[i].is_some()).count(), 0);
    }

    #[test]
    fn exact_duplicates_count_once_and_narrow_tables_are_not_analysed() {
        // Ten identical rows of class b that differ from one class-a row in one column: one distinct patched row.
        let (mut x, mut labels) = gaussian(200, 3);
        let mut row = x.row(0).to_owned();
        row[2] = 9.0;
        for _ in 0..10 {
            x.push_row(row.view()).unwrap();
            labels.push(Some(1));
        }
        assert!(run(&x, &labels).iter().all(Option::is_none));
        // Two columns leave no room for a patch beside the columns that must agree.
        assert_eq!(patch_columns(2), 0);
        assert_eq!(patch_columns(3), 1);
        assert_eq!(patch_columns(40), 3);
        let narrow = x.slice(ndarray::s![.., ..2]).to_owned();
        assert!(run(&narrow, &labels).iter().all(Option::is_none));
    }

    #[test]
    fn the_pair_search_stops_at_about_one_pair_per_row() {
        // Rows that agree on everything but two continuous columns, in 50 buckets of 60: every pair of classes in a
        // bucket differs in two columns (about 45,000 pairs for 3,000 rows).
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let labels: Vec<Option<u32>> = (0..3000).map(|_| Some(rng.gen_range(0..2u32))).collect();
        let x = Array2::from_shape_fn((3000, 6), |(i, j)| match j {
            0 | 1 => rng.gen::<f32>(),
            2 => (i % 50) as f32,
            _ => 0.0,
        });
        let (found, summary) = run_with_summary(&x, &labels, None);
        assert_eq!(summary["search_stopped_early"], true, "{summary}");
        let pairs = summary["copy_pairs"].as_u64().unwrap() as usize;
        // d = 6: t = 3, five blocks, ten keys of two blocks, each stopping at its share plus one bucket.
        assert!(pairs <= 3000 + 10 * MAX_BUCKET * MAX_BUCKET, "{pairs}");
        assert!(found.iter().all(Option::is_none));
    }

    #[test]
    fn a_pattern_the_reference_holds_as_often_is_excused_and_a_new_one_is_not() {
        // Rows of class b derived from class-a rows with three fields set: in the data and in the trusted rows alike.
        let (mut x, mut labels) = gaussian(1000, 5);
        inject(&mut x, &mut labels, 30, &[1, 4, 6], &[0.8, -0.3, 0.55]);
        let (mut rx, mut rl) = gaussian(400, 6);
        inject(&mut rx, &mut rl, 10, &[1, 4, 6], &[0.8, -0.3, 0.55]);
        let derived = crate::detect::LabelledMatrix { x: rx, labels: rl };
        let (found, summary) = run_with_summary(&x, &labels, Some(&derived));
        assert!(found.iter().all(Option::is_none), "{summary}");
        assert_eq!(
            summary["excused_by_reference"][0]["reference_rows"], 10,
            "{summary}"
        );
        // A clean reference, or one holding the pattern far more rarely, excuses nothing.
        let (rx, rl) = gaussian(400, 6);
        let clean = crate::detect::LabelledMatrix { x: rx, labels: rl };
        let (found, _) = run_with_summary(&x, &labels, Some(&clean));
        assert_eq!((1000..1030).filter(|&i| found[i].is_some()).count(), 30);
        let (mut rx, mut rl) = gaussian(4000, 7);
        inject(&mut rx, &mut rl, 1, &[1, 4, 6], &[0.8, -0.3, 0.55]);
        let rare = crate::detect::LabelledMatrix { x: rx, labels: rl };
        let (found, summary) = run_with_summary(&x, &labels, Some(&rare));
        assert_eq!(
            (1000..1030).filter(|&i| found[i].is_some()).count(),
            30,
            "{summary}"
        );
    }

    #[test]
    fn two_triggers_into_one_class_are_two_patches_and_both_are_flagged() {
        let (mut x, mut labels) = gaussian(1000, 8);
        inject(&mut x, &mut labels, 12, &[0, 3], &[0.25, 0.75]);
        // The second trigger's copies come from other class-0 rows (after the first twelve).
        let first: Vec<usize> = (0..1000)
            .filter(|&i| labels[i] == Some(0))
            .skip(12)
            .take(12)
            .collect();
        for &s in &first {
            let mut row = x.row(s).to_owned();
            row[5] = -0.6;
            row[7] = 0.4;
            row[2] = 0.1;
            x.push_row(row.view()).unwrap();
            labels.push(Some(1));
        }
        let (found, summary) = run_with_summary(&x, &labels, None);
        assert_eq!(
            (1000..1024).filter(|&i| found[i].is_some()).count(),
            24,
            "{summary}"
        );
        assert_eq!((0..1000).filter(|&i| found[i].is_some()).count(), 0);
        assert_eq!(
            summary["triggers"].as_array().map(Vec::len),
            Some(2),
            "{summary}"
        );
    }
}
