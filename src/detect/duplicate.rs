//! # Duplicates with conflicting labels (`score_duplicate`)
//!
//! ## What it detects
//! The same features under different labels: direct evidence of a label flip or of a poisoned copy. Exact
//! duplicates share a feature digest (blake3 of every column except label and id, in the canonical row encoding);
//! near duplicates are rows whose nearest neighbour (from the label-flip kNN search) is closer than 1/1000 of the
//! median squared nearest-neighbour distance and carries another label, or, when the table holds more of them than
//! its own nearest rows explain, rows with a row of another label within a tenth of the distance to their fifth
//! nearest row ([`TightConflicts`]).
//!
//! ## How
//! Exact: group rows by the first 16 bytes of their feature digest (a hash map: about 64 bytes per row, fine to 100M
//! rows on a large machine). In a group with several labels the majority label (rows in the trusted baseline first,
//! then the most rows, then the label the rows' neighbourhoods agree with, i.e. the least label-flip evidence, then
//! the earliest row) is kept and the other rows are flagged: the minority or new copies, never the whole group.
//! Same-label exact duplicates are counted and score 0.2, not flagged, except *mass copies*: where some feature
//! column is continuous (at least half of its values distinct, so that clean rows almost never coincide on all
//! columns), a group of `g` identical rows under one label scores `r / (1 + r)` with `r = g / 10` for each of its
//! rows: 10 or more identical rows are flagged (a backdoor whose trigger overwrites every numeric column, one row
//! pasted many times), a pair or a triple of double entries is not.
//! Near: of a conflicting pair inside the data, the row with the stronger label-flip evidence is flagged (the later
//! row on a tie); a data row nearly identical to a reference row with another label is flagged. Both only beyond
//! chance: in few dimensions clean rows fall that near by chance, so the pairs are tested against the count the
//! band just beyond the line predicts ([`chance_pairs`]), and only the nearest excess is flagged. With a
//! reference, pairs inside the data come from data rows sharing one of their two nearest reference rows
//! (`LabelFlipOutput::data_nearest`).
//!
//! ## When it is wrong
//! Legitimately ambiguous inputs (the same measurement with two valid labels) are flagged; features that are too
//! coarse (few discrete columns) make distinct examples collide (and hide a few injected near copies among their
//! own tight conflicts). Near-duplicate detection depends on the kNN index
//! finding the true nearest neighbour (IVF probes are approximate on large inputs).
//!
//! ## Reference
//! Northcutt et al., JAIR 2021 (duplicates as label-issue evidence); Lee et al., "Deduplicating Training Data Makes
//! Language Models Better", ACL 2022.

use super::label_flip::{LabelFlipOutput, CLOSE_K};
use super::{DetectorOutput, FLAG_AT};
use crate::lineage::RowStatus;
use serde_json::json;
use std::collections::HashMap;

/// Counts for the report.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct DuplicateSummary {
    /// Groups of two or more rows with identical features.
    pub exact_groups: usize,
    /// Rows that are exact copies of an earlier row (same features).
    pub exact_copies: usize,
    /// Exact groups whose rows carry different labels.
    pub conflicting_groups: usize,
    /// Rows of such groups under another label that clean data would hold, given how often rows with the same
    /// features occur here and how often near rows disagree (about 0 where features never coincide by nature).
    #[serde(default)]
    pub exact_conflicts_expected: f64,
    /// Near-duplicate pairs with different labels.
    pub near_conflicts: usize,
    /// Same-label exact groups of at least [`MASS_COPIES`] rows in data with a continuous feature column.
    #[serde(default)]
    pub mass_copy_groups: usize,
    /// Rows whose nearest rows hold a row of another label within a tenth of the distance to the fifth nearest
    /// ([`TightConflicts`]).
    #[serde(default)]
    pub tight_conflicts: usize,
    /// How many such rows clean data would hold: the rows whose nearest row is that close, times the share of the
    /// other rows whose nearest row has another label.
    #[serde(default)]
    pub tight_expected: f64,
    /// Rows flagged by that test (beyond the expectation, the clearest first, one row of each pair).
    #[serde(default)]
    pub tight_flagged: usize,
}

/// A row is *tight* with a neighbour closer than `1 - TIGHT` of the distance to its [`CLOSE_K`]-th nearest row.
pub const TIGHT: f32 = 0.9;

/// Near copies under another label, measured against the data's own nearest rows.
///
/// A near copy sits much closer to its source than the rows around them sit to each other: the distance to the
/// nearest row of another label is under a tenth of the distance to the fifth nearest row. Clean data holds such rows
/// too (discrete columns, repeated measurements); how many is estimated from the rows that are not that close to
/// anything: the share of them whose nearest row has another label, times the rows that are tight with some row.
#[derive(Debug, Clone, Default)]
pub struct TightConflicts {
    /// (row, its nearest row of another label among its close rows, `1 - d / d_K`), for rows where that is at least
    /// [`TIGHT`].
    pub conflicts: Vec<(usize, usize, f32)>,
    /// Rows whose nearest row is within `1 - TIGHT` of `d_K`.
    pub tight: usize,
    /// Rows with [`CLOSE_K`] close rows that are not tight.
    pub loose: usize,
    /// Of the loose rows, those whose nearest row has another label.
    pub loose_disagree: usize,
}

impl TightConflicts {
    /// Add row `i`, whose nearest other rows (squared distance, row; nearest first) are `close`.
    pub fn observe(&mut self, i: usize, close: &[(f32, usize)], labels: &[Option<u32>]) {
        let (Some(li), Some(&(d2k, _)), Some(&(d21, j1))) =
            (labels[i], close.get(CLOSE_K - 1), close.first())
        else {
            return;
        };
        if !(d2k > 0.0 && d2k.is_finite()) {
            return; // five or more exact copies: no scale to compare with (the exact path sees them)
        }
        let dk = d2k.sqrt();
        let near = |d2: f32| 1.0 - d2.max(0.0).sqrt() / dk;
        if near(d21) < TIGHT {
            self.loose += 1;
            self.loose_disagree += (labels[j1].is_some_and(|l| l != li)) as usize;
            return;
        }
        self.tight += 1;
        if let Some(&(d2, j)) = close
            .iter()
            .find(|&&(_, j)| labels[j].is_some_and(|l| l != li))
        {
            let s = near(d2);
            if s >= TIGHT {
                self.conflicts.push((i, j, s));
            }
        }
    }

    /// The count against its expectation, for reasons: `X rows have a near copy under another label, E expected
    /// where nearest rows disagree as elsewhere in the data`.
    pub fn against_expected(&self) -> String {
        format!(
            "{} rows have a near copy under another label, {:.1} expected where nearest rows disagree as elsewhere in \
             the data",
            self.conflicts.len(),
            self.expected()
        )
    }

    /// Conflicting tight rows that clean data would hold.
    pub fn expected(&self) -> f64 {
        if self.loose == 0 {
            return 0.0;
        }
        self.tight as f64 * self.loose_disagree as f64 / self.loose as f64
    }
}

/// The score of a near copy under another label where the data's nearest rows never disagree by nature.
pub const CONFLICT_SCORE: f32 = 0.9;

/// The score of a flagged near copy under another label: `0.5 + 0.4 (1 - min(1, E / X))`, the part of
/// [`CONFLICT_SCORE`] above the flag line scaled by the share of the data's `X` tight conflicts that their clean
/// expectation `E` does not explain. Where clean near-identical rows disagree as often as they do here (hpc_data's
/// runtime classes), a conflicting pair is flagged but ranks just above the line, below findings no clean table
/// produces.
fn conflict_score(tc: &TightConflicts) -> f32 {
    let x = tc.conflicts.len() as f64;
    if x == 0.0 {
        return CONFLICT_SCORE;
    }
    let unexplained = 1.0 - (tc.expected() / x).min(1.0);
    (FLAG_AT as f64 + (CONFLICT_SCORE - FLAG_AT) as f64 * unexplained) as f32
}

/// The score of a flagged near copy given the data's tight conflicts (none measured: [`CONFLICT_SCORE`]), and the
/// note its reason carries where that score is lower: how often near-identical rows disagree here.
fn pair_scoring(tc: Option<&TightConflicts>) -> (f32, String) {
    let score = tc.map_or(CONFLICT_SCORE, conflict_score);
    let note = match tc {
        Some(tc) if score < CONFLICT_SCORE => {
            format!(" [{}: weak evidence here]", tc.against_expected())
        }
        _ => String::new(),
    };
    (score, note)
}

/// Rows of one same-label exact group at which, in data with a continuous feature column, the group is flagged.
pub const MASS_COPIES: f64 = 10.0;

/// What the table's columns say about rows that coincide by nature.
#[derive(Debug, Clone, Copy, Default)]
pub struct TableNature<'a> {
    /// A feature column whose values rarely repeat (exact groups under one label are then made, not drawn).
    pub continuous: Option<&'a str>,
    /// How likely two rows are to be identical on every feature by chance (the product of the columns' collision
    /// chances; about 0 with any continuous column).
    pub coincidence: f64,
    /// Rows of the reference the data rows' nearest rows come from (0 without one).
    pub reference_rows: usize,
}

/// Detect duplicates with conflicting labels.
pub fn detect(
    feature_keys: &[u128],
    labels: &[Option<u32>],
    classes: &[String],
    baseline: Option<&[RowStatus]>,
    near: Option<&LabelFlipOutput>,
    label_scores: Option<&[f32]>,
    nature: TableNature,
) -> (DetectorOutput, DuplicateSummary) {
    let TableNature {
        continuous,
        coincidence,
        reference_rows,
    } = nature;
    let n = feature_keys.len();
    let mut scores = vec![0f32; n];
    let mut reasons: Vec<Option<String>> = vec![None; n];
    let mut summary = DuplicateSummary::default();
    let mut groups: HashMap<u128, Vec<u32>> = HashMap::with_capacity(n);
    for (i, k) in feature_keys.iter().enumerate() {
        groups.entry(*k).or_default().push(i as u32);
    }
    let name = |c: Option<u32>| {
        c.map(|c| classes[c as usize].clone())
            .unwrap_or_else(|| "?".into())
    };
    // The rows of conflicting groups under their odd labels: (row, the kept row, the kept label, the row's label-flip
    // evidence), decided after every group is seen; and the rows that repeat an earlier row under its label.
    let mut odd_rows: Vec<(u32, u32, Option<u32>, f32)> = Vec::new();
    let mut agreeing = 0usize;
    // Over groups of three or more rows: pairs of rows under different labels, and all pairs.
    let mut pairs = (0f64, 0f64);
    for rows in groups.values().filter(|g| g.len() > 1) {
        summary.exact_groups += 1;
        summary.exact_copies += rows.len() - 1;
        // Per label: (rows in the trusted baseline, rows, label-flip evidence summed over its rows, first row).
        let mut tally: HashMap<Option<u32>, (usize, usize, f64, u32)> = HashMap::new();
        for &r in rows {
            let trusted = baseline
                .map(|b| b[r as usize] == RowStatus::Unchanged)
                .unwrap_or(false) as usize;
            let evidence = label_scores.map_or(0.0, |s| s[r as usize] as f64);
            let e = tally.entry(labels[r as usize]).or_insert((0, 0, 0.0, r));
            e.0 += trusted;
            e.1 += 1;
            e.2 += evidence;
        }
        let g = rows.len();
        if g >= 3 {
            let same: f64 = tally.values().map(|v| (v.1 * v.1) as f64).sum();
            pairs.0 += ((g * g) as f64 - same) / 2.0;
            pairs.1 += (g * (g - 1)) as f64 / 2.0;
        }
        if tally.len() < 2 {
            agreeing += g - 1;
            let mass = continuous.map(|c| (c, super::ratio_score(g as f64 / MASS_COPIES)));
            match mass {
                Some((column, score)) if score > 0.2 => {
                    if score >= FLAG_AT {
                        summary.mass_copy_groups += 1;
                    }
                    for &r in rows {
                        scores[r as usize] = scores[r as usize].max(score);
                        if score >= FLAG_AT {
                            reasons[r as usize] = Some(format!(
                                "one of {g} rows with identical features, all labelled {}, in data where {column} is \
                                 continuous (its values rarely repeat): mass copies",
                                name(labels[r as usize])
                            ));
                        }
                    }
                }
                _ => {
                    for &r in &rows[1..] {
                        scores[r as usize] = scores[r as usize].max(0.2);
                    }
                }
            }
            continue;
        }
        summary.conflicting_groups += 1;
        // Keep the label with the most trusted rows, then the most rows, then the one its neighbourhood agrees with
        // (least label-flip evidence per row), then the earliest row: the copy under the odd label is flagged.
        let keep = tally
            .iter()
            .max_by(|a, b| {
                let mean = |v: &(usize, usize, f64, u32)| v.2 / v.1.max(1) as f64;
                (a.1 .0, a.1 .1)
                    .cmp(&(b.1 .0, b.1 .1))
                    .then(mean(b.1).total_cmp(&mean(a.1)))
                    .then(b.1 .3.cmp(&a.1 .3))
            })
            .map(|(l, v)| (*l, v.3));
        if let Some((keep_label, keep_row)) = keep {
            let mut kept = 0usize;
            for &r in rows {
                if labels[r as usize] != keep_label {
                    let evidence = label_scores.map_or(0.0, |s| s[r as usize]);
                    odd_rows.push((r, keep_row, keep_label, evidence));
                } else {
                    kept += 1;
                }
            }
            agreeing += kept.saturating_sub(1);
        }
    }
    // Where rows with the same features are common by nature (a few discrete columns), some of them differ in label
    // by nature too ([`chance_conflicts`]): the odd rows are flagged only beyond that, the clearest first.
    let q = share(pairs).max(near.map_or(0.0, |nr| nearest_disagree(&nr.nearest, labels)));
    // Rows that repeat under their own label measure how often rows coincide; where few do, the columns' own value
    // shares still say how many pairs of clean rows would be identical by chance (a table of a few integer columns).
    let pairs_by_chance = (n * n.saturating_sub(1)) as f64 / 2.0 * coincidence;
    let chance = chance_conflicts(agreeing, q).max(pairs_by_chance * q);
    let budget = beyond_chance(odd_rows.len(), chance);
    summary.exact_conflicts_expected = (chance * 10.0).round() / 10.0;
    odd_rows.sort_by(|a, b| b.3.total_cmp(&a.3).then(a.0.cmp(&b.0)));
    for (k, &(r, keep_row, keep_label, _)) in odd_rows.iter().enumerate() {
        if k < budget {
            scores[r as usize] = 1.0;
            reasons[r as usize] = Some(format!(
                "same features as row {keep_row} (label {}) but label {}: duplicate with conflicting label{}",
                name(keep_label),
                name(labels[r as usize]),
                if chance >= 0.05 {
                    format!(
                        " [{} rows repeat another row's features under another label, {:.1} expected where rows \
                         with the same features are this common]",
                        odd_rows.len(),
                        chance
                    )
                } else {
                    String::new()
                }
            ));
        } else {
            scores[r as usize] = scores[r as usize].max(WITHIN_CHANCE_SCORE);
        }
    }
    if let Some(nr) = near {
        let (conflict_score, natural) = pair_scoring(nr.tight.as_ref());
        let mut ctx = NearPairs {
            conflict_score,
            natural,
            keys: feature_keys,
            exact_q: q,
            twins_by_chance: n as f64 * reference_rows as f64 * coincidence,
            labels,
            classes,
            label_scores,
            scores: &mut scores,
            reasons: &mut reasons,
            summary: &mut summary,
        };
        ctx.flag(&nr.nearest, nr.median_nn2, nr.base_is_data);
        // With a reference the neighbours above are reference rows; near duplicates inside the data come from the
        // data-side pairing.
        if let Some((dn, median)) = &nr.data_nearest {
            ctx.flag(dn, *median, true);
        }
        if let Some(tc) = &nr.tight {
            ctx.flag_tight(tc, feature_keys);
        }
    }
    let out = DetectorOutput {
        name: "duplicate",
        scores,
        reasons,
        summary: json!(summary),
        skipped: None,
    };
    (out, summary)
}

/// A near pair under two labels: (row, its nearest row, that row's label, the row's label, squared distance).
type NearPair = (usize, usize, Option<u32>, Option<u32>, f32);

/// Flags rows that are nearly identical to another row with a different label.
struct NearPairs<'a> {
    labels: &'a [Option<u32>],
    /// Feature digests of the data rows: a data pair with the same digest is the exact path's decision.
    keys: &'a [u128],
    /// How often two rows with the same features disagree in label here ([`chance_conflicts`]).
    exact_q: f64,
    /// How many data rows would be identical to a reference row by chance, from the columns' value shares.
    twins_by_chance: f64,
    classes: &'a [String],
    label_scores: Option<&'a [f32]>,
    /// The score of a flagged near copy ([`conflict_score`]).
    conflict_score: f32,
    /// Where that score is below [`CONFLICT_SCORE`]: how often near-identical rows disagree here, for the reason.
    natural: String,
    scores: &'a mut [f32],
    reasons: &'a mut [Option<String>],
    summary: &'a mut DuplicateSummary,
}

impl NearPairs<'_> {
    /// `nearest[i]` = (squared distance, row, its label) of row i's nearest neighbour; pairs closer than 1e-3 of the
    /// median squared distance are near duplicates. When the neighbours are data rows, one row of a conflicting pair
    /// is flagged (the one with the stronger label-flip evidence, else the later one); when they are reference rows,
    /// the data row is.
    fn flag(
        &mut self,
        nearest: &[super::label_flip::NearestRow],
        median_nn2: f32,
        pairs_are_data: bool,
    ) {
        let name = |c: Option<u32>| {
            c.map(|c| self.classes[c as usize].clone())
                .unwrap_or_else(|| "?".into())
        };
        let eps = (median_nn2 * 1e-3).max(1e-12);
        // A data pair with identical features is its exact group's (the exact path decided it).
        let exact_group = |i: usize, j: usize, d2: f32| {
            pairs_are_data
                && d2 == 0.0
                && self
                    .keys
                    .get(i)
                    .is_some_and(|k| self.keys.get(j) == Some(k))
        };
        // The pairs within the line under two labels, nearest first.
        let mut pairs: Vec<NearPair> = (0..self.scores.len().min(nearest.len()))
            .filter_map(|i| {
                let (d2, j, lj) = nearest[i]?;
                let li = self.labels[i];
                (d2 <= eps && lj != li && lj.is_some() && li.is_some() && !exact_group(i, j, d2))
                    .then_some((i, j, lj, li, d2))
            })
            .collect();
        pairs.sort_by(|a, b| a.4.total_cmp(&b.4).then(a.0.cmp(&b.0)));
        // In few dimensions clean rows fall this near each other by chance (two features, 500 rows: about one row
        // in 1,500; [`chance_pairs`]), with a few discrete columns rows coincide exactly by nature, and with a
        // rounded continuous one beside them near-identical rows are common (both [`chance_conflicts`], from the
        // rows whose nearest row under their own label is identical or within the line; the near count is the
        // larger of the band's and the agreeing rows'). Where the pairs are no more than these give, lone pairs are
        // left unflagged; beyond it, the nearest `X - E` rows of pairs are resolved (flagged, or left for the other
        // row of their pair), the others are not.
        let (mut agreeing_exact, mut agreeing_near) = (0usize, 0usize);
        for (i, nr) in nearest.iter().enumerate().take(self.scores.len()) {
            if let Some((d2, j, lj)) = *nr {
                if d2 <= eps && lj.is_some() && lj == self.labels[i] && !exact_group(i, j, d2) {
                    if d2 == 0.0 {
                        agreeing_exact += 1;
                    } else {
                        agreeing_near += 1;
                    }
                }
            }
        }
        let by_shares = if pairs_are_data {
            0.0 // the exact path above counted the data's own coincidences
        } else {
            self.twins_by_chance * self.exact_q
        };
        let chance = chance_pairs(nearest, self.labels, eps)
            .max(chance_conflicts(agreeing_near, self.exact_q))
            + chance_conflicts(agreeing_exact, self.exact_q).max(by_shares);
        let mut budget = beyond_chance(pairs.len(), chance);
        // The agreeing rows' count `A` is itself drawn: of the `X + A` rows near a row within the line, each
        // disagrees with chance `q`, so `X` is binomial, and clearly more than its share only when `P(Binomial(X +
        // A, q) >= X) <= CHANCE_TAIL`. The Poisson test against `A q / (1 - q)` alone takes `A` as known: a clean
        // Titanic-like table with 34 such pairs against 29 agreeing rows (q = 0.39, 18.4 expected) had P = 7e-4
        // there, and 0.010 as a binomial.
        let x = pairs.len();
        if budget > 0
            && super::binomial_tail(x + agreeing_near + agreeing_exact, self.exact_q.min(0.9), x)
                > CHANCE_TAIL
        {
            budget = 0;
        }
        // Rows under one label that are all near copies of the same row of another label: a group no natural
        // disagreement between near-identical rows explains. Not so for exact copies: where rows with the same
        // features are common (discrete or sparse columns), many rows repeat one row of another label exactly by
        // nature, and they stay within the chance count like single pairs.
        let mut copies: HashMap<(usize, Option<u32>), usize> = HashMap::new();
        for &(_, j, _, li, _) in &pairs {
            *copies.entry((j, li)).or_default() += 1;
        }
        let beyond = self.groups_beyond_chance(nearest, eps, &copies, exact_group);
        for (i, j, lj, li, d2) in pairs {
            // A group chance explains counts as single pairs.
            let group = copies
                .get(&(j, li))
                .copied()
                .filter(|g| beyond.get(g) == Some(&true))
                .unwrap_or(1);
            let in_budget = budget > 0;
            budget = budget.saturating_sub(1);
            if self.scores[i] >= FLAG_AT {
                continue;
            }
            let flag_i = if pairs_are_data {
                if self.scores[j] >= FLAG_AT {
                    continue; // already resolved through the other row (or its exact group)
                }
                let (si, sj) = self
                    .label_scores
                    .map(|s| (s[i], s[j]))
                    .unwrap_or((0.0, 0.0));
                si > sj || (si == sj && i > j)
            } else {
                true
            };
            if flag_i && !in_budget && (group == 1 || d2 == 0.0) {
                // Within chance: not flagged, but the pair still ranks above every row no detector flags.
                self.scores[i] = self.scores[i].max(WITHIN_CHANCE_SCORE);
            } else if flag_i {
                self.summary.near_conflicts += 1;
                let (score, context) = if group > 1 {
                    (
                        CONFLICT_SCORE,
                        format!(
                            ", one of {group} rows labelled {} that are near copies of it",
                            name(li)
                        ),
                    )
                } else {
                    (self.conflict_score, self.natural.clone())
                };
                self.scores[i] = score;
                self.reasons[i] = Some(format!(
                    "nearly identical to {}row {j} (label {}) but label {}{context}: near duplicate with conflicting \
                     label",
                    if pairs_are_data { "" } else { "reference " },
                    name(lj),
                    name(li)
                ));
            }
        }
    }
}

impl NearPairs<'_> {
    /// Which sizes of groups (rows under one label that are all near copies of one row of another label) are more
    /// than chance gives. Where near-identical rows are common (a few discrete columns and a rounded continuous one),
    /// several rows fall near one row by nature, and with each differing from it in label at rate `q` some of those
    /// gatherings are all under another label: with `m_j` rows near row `j`, `sum_j P(Binomial(m_j, q) >= g)` groups
    /// of `g` or more are expected, and the `G(g)` seen are beyond chance when `P(Poisson(expected) >= G(g)) <=
    /// GROUP_TAIL` (for `g` or any smaller size seen). Copies injected into continuous data gather where clean rows do
    /// not: only their own gathering counts, `q^g`.
    fn groups_beyond_chance(
        &self,
        nearest: &[super::label_flip::NearestRow],
        eps: f32,
        copies: &HashMap<(usize, Option<u32>), usize>,
        exact_group: impl Fn(usize, usize, f32) -> bool,
    ) -> HashMap<usize, bool> {
        let mut sizes: Vec<usize> = copies.values().copied().filter(|&g| g > 1).collect();
        if sizes.is_empty() {
            return HashMap::new();
        }
        sizes.sort_unstable();
        sizes.dedup();
        let mut gathered: HashMap<usize, usize> = HashMap::new();
        for (i, nr) in nearest.iter().enumerate().take(self.labels.len()) {
            if let Some((d2, j, lj)) = *nr {
                if d2 <= eps && lj.is_some() && self.labels[i].is_some() && !exact_group(i, j, d2) {
                    *gathered.entry(j).or_default() += 1;
                }
            }
        }
        let q = self.exact_q.min(0.9);
        let mut beyond = false;
        sizes
            .into_iter()
            .map(|g| {
                let seen = copies.values().filter(|&&c| c >= g).count();
                let natural: f64 = gathered
                    .values()
                    .map(|&m| super::binomial_tail(m, q, g))
                    .sum();
                beyond |= poisson_tail(seen, natural) <= GROUP_TAIL;
                (g, beyond)
            })
            .collect()
    }
}

/// Largest chance, given the groups of near copies clean data of the table would hold, of seeing as many as the data
/// does, at which a group is flagged whole ([`NearPairs::groups_beyond_chance`]). Looser than [`CHANCE_TAIL`]: rows
/// gathered under one label near one row of another are stronger evidence than as many pairs anywhere.
const GROUP_TAIL: f64 = 0.05;

/// The score of a near pair or an exact conflict under two labels that chance explains ([`chance_pairs`],
/// [`chance_conflicts`]): just under the flag line, above the label detector's unflagged rows (at most
/// `FLAG_AT - 0.0001`).
const WITHIN_CHANCE_SCORE: f32 = FLAG_AT - 0.00005;

/// Largest chance, given the conflicting rows clean data of the table would hold by chance, of seeing as many as the
/// data does, at which near pairs or exact conflicts are still flagged ([`beyond_chance`]).
const CHANCE_TAIL: f64 = 1e-3;

/// How many rows of exact groups clean data would hold under another label than their group's kept one: `agreeing`
/// rows repeat an earlier row under its label, and two rows with the same features disagree in label with chance `q`,
/// so `agreeing q / (1 - q)` (`q` at most 0.9). `q` is the larger of how often two rows of a group of three or more
/// disagree (a copy under another label makes a group of two; larger groups are what a few discrete columns produce
/// by nature) and how often a row's nearest other row has another label. Features that never coincide by nature (a
/// continuous column) leave `agreeing` at about 0, and every conflicting copy stands out.
fn chance_conflicts(agreeing: usize, q: f64) -> f64 {
    let q = q.min(0.9);
    agreeing as f64 * q / (1.0 - q)
}

/// The share of rows whose nearest row (at a distance above 0, with a label) has another label.
fn nearest_disagree(nearest: &[super::label_flip::NearestRow], labels: &[Option<u32>]) -> f64 {
    let (mut apart, mut disagree) = (0usize, 0usize);
    for (i, nr) in nearest.iter().enumerate().take(labels.len()) {
        if let (Some((d2, _, Some(lj))), Some(li)) = (nr, labels[i]) {
            if *d2 > 0.0 {
                apart += 1;
                disagree += (*lj != li) as usize;
            }
        }
    }
    share((disagree as f64, apart as f64))
}

/// The share `disagree / all` of a pair count (0 without pairs).
fn share((disagree, all): (f64, f64)) -> f64 {
    if all > 0.0 {
        disagree / all
    } else {
        0.0
    }
}

/// How many rows clean data would hold within `eps` (squared) of their nearest row under another label, by chance:
/// the rows whose nearest row lies in the band `(eps, 10 eps]` stand for the rows inside `eps` (squared distances
/// near 0 are spread no thinner than a one-dimensional table spreads them: at most `1 / (sqrt(10) - 1)` of the band's
/// count fall inside), times the share of the rows beyond the band whose nearest row has another label. Injected copies
/// sit far inside `eps`, so they add little to the band.
fn chance_pairs(
    nearest: &[super::label_flip::NearestRow],
    labels: &[Option<u32>],
    eps: f32,
) -> f64 {
    let (mut band, mut far, mut far_disagree) = (0usize, 0usize, 0usize);
    for (i, nr) in nearest.iter().enumerate().take(labels.len()) {
        let (Some((d2, _, lj)), Some(li)) = (nr, labels[i]) else {
            continue;
        };
        if *d2 <= eps {
            continue;
        }
        if *d2 <= 10.0 * eps {
            band += 1;
        } else {
            far += 1;
            far_disagree += lj.is_some_and(|l| l != li) as usize;
        }
    }
    if far == 0 {
        return band as f64;
    }
    band as f64 / (10f64.sqrt() - 1.0) * far_disagree as f64 / far as f64
}

/// How many of `x` rows to flag where clean data would hold `chance` of them: `ceil(x - chance)` when seeing `x` or
/// more is that unlikely (`P(Poisson(chance) >= x) <= CHANCE_TAIL`), else none.
fn beyond_chance(x: usize, chance: f64) -> usize {
    if poisson_tail(x, chance) <= CHANCE_TAIL {
        (x as f64 - chance).ceil() as usize
    } else {
        0
    }
}

/// `P(X >= x)` for `X ~ Poisson(mean)`.
pub(super) fn poisson_tail(x: usize, mean: f64) -> f64 {
    if x == 0 {
        return 1.0;
    }
    if mean <= 0.0 {
        return 0.0;
    }
    // 1 - P(X < x), summed term by term.
    let mut term = (-mean).exp();
    let mut below = 0.0;
    for k in 0..x {
        below += term;
        term *= mean / (k + 1) as f64;
    }
    (1.0 - below).max(0.0)
}

/// How far the tight rows of clean data may disagree more often than the loose ones: in dense regions (the common
/// values of a few discrete columns, with a rounded fare) labels can be more mixed than the table's average, and a
/// Titanic-like table held up to 1.3 times its expectation.
const TIGHT_MARGIN: f64 = 1.5;

impl NearPairs<'_> {
    /// Near copies under another label beyond what the data's own nearest rows give clean data
    /// ([`TightConflicts`]): when the conflicting tight rows clearly exceed their expectation `E`
    /// (`X > 1.5 E + 3 sqrt(E) + 1`, [`TIGHT_MARGIN`]), the clearest `ceil(X - E)` are flagged, of each pair the row
    /// with the stronger label-flip evidence (the later row on a tie).
    fn flag_tight(&mut self, tc: &TightConflicts, keys: &[u128]) {
        // A row with the same features as its conflicting row is its exact group's (the exact path decided it, by
        // how often rows coincide here): neither counted nor flagged here.
        let conflicts: Vec<&(usize, usize, f32)> = tc
            .conflicts
            .iter()
            .filter(|&&(i, j, _)| keys.get(i).is_none() || keys.get(i) != keys.get(j))
            .collect();
        let x = conflicts.len();
        let e = tc.expected();
        self.summary.tight_conflicts = x;
        self.summary.tight_expected = (e * 10.0).round() / 10.0;
        if (x as f64) <= TIGHT_MARGIN * e + 3.0 * e.sqrt() + 1.0 {
            return;
        }
        let evidence = |r: usize| self.label_scores.map_or(0.0, |s| s[r]);
        let mut odd: Vec<&(usize, usize, f32)> = conflicts
            .into_iter()
            .filter(|&&(i, j, _)| {
                let (si, sj) = (evidence(i), evidence(j));
                si > sj || (si == sj && i > j)
            })
            .collect();
        odd.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
        let budget = (x as f64 - e).ceil() as usize;
        let name = |c: Option<u32>| {
            c.map(|c| self.classes[c as usize].clone())
                .unwrap_or_else(|| "?".into())
        };
        for &&(i, j, s) in odd.iter().take(budget) {
            if self.scores[i] >= FLAG_AT {
                continue;
            }
            self.summary.tight_flagged += 1;
            self.summary.near_conflicts += 1;
            self.scores[i] = self.conflict_score;
            self.reasons[i] = Some(format!(
                "nearly identical to row {j} (label {}) but label {}: {:.0}% of the distance to its {CLOSE_K}th \
                 nearest row [{}]: near duplicate with conflicting label",
                name(self.labels[j]),
                name(self.labels[i]),
                100.0 * (1.0 - s),
                tc.against_expected()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The detector without baseline, neighbours or label evidence, in a table with no continuous column.
    fn plain(
        keys: &[u128],
        labels: &[Option<u32>],
        classes: &[String],
    ) -> (DetectorOutput, DuplicateSummary) {
        detect(
            keys,
            labels,
            classes,
            None,
            None,
            None,
            TableNature::default(),
        )
    }

    #[test]
    fn in_a_tied_conflicting_pair_the_copy_its_neighbourhood_disagrees_with_is_flagged() {
        // Rows 0 and 3 share features under labels 0 and 1; row 0 comes first but its label-flip evidence is high.
        let keys = [7u128, 1, 2, 7, 3];
        let labels = [Some(0), Some(0), Some(1), Some(1), Some(0)];
        let classes = ["a".to_string(), "b".to_string()];
        let evidence = [0.45f32, 0.0, 0.0, 0.05, 0.0];
        let (out, summary) = detect(
            &keys,
            &labels,
            &classes,
            None,
            None,
            Some(&evidence),
            TableNature::default(),
        );
        assert_eq!(summary.conflicting_groups, 1);
        assert_eq!(
            out.scores[0], 1.0,
            "the copy under the odd label is flagged"
        );
        assert_eq!(
            out.scores[3], 0.0,
            "the copy its neighbourhood agrees with is kept"
        );
        assert!(out.reasons[0]
            .as_deref()
            .unwrap()
            .contains("same features as row 3 (label b)"));
        // Without evidence the earliest row is kept, as before.
        let (out, _) = plain(&keys, &labels, &classes);
        assert_eq!((out.scores[0], out.scores[3]), (0.0, 1.0));
    }

    /// Tight conflicts: `x` rows, of which the clean expectation explains `expected` (10 tight rows; the loose
    /// rows' share of disagreeing nearest rows sets it).
    fn natural_conflicts(x: usize, expected: usize) -> TightConflicts {
        TightConflicts {
            conflicts: (0..x).map(|i| (100 + i, 200 + i, 0.95)).collect(),
            tight: 10,
            loose: 10,
            loose_disagree: expected,
        }
    }

    #[test]
    fn a_near_copy_scores_by_the_share_of_tight_conflicts_clean_data_does_not_explain() {
        assert_eq!(conflict_score(&natural_conflicts(4, 0)), CONFLICT_SCORE);
        assert!((conflict_score(&natural_conflicts(4, 2)) - 0.7).abs() < 1e-6);
        assert_eq!(conflict_score(&natural_conflicts(4, 5)), FLAG_AT);
        assert_eq!(conflict_score(&natural_conflicts(0, 5)), CONFLICT_SCORE);
    }

    #[test]
    fn where_near_identical_rows_disagree_by_nature_a_pair_ranks_low_and_a_group_of_copies_does_not(
    ) {
        // Row 1 (label b) is a near copy of row 0 (label a); rows 3 and 4 (label b) are both near copies of row 2
        // (label a). Evidence marks the copies.
        let labels = [Some(0), Some(1), Some(0), Some(1), Some(1), Some(0)];
        let classes = ["a".to_string(), "b".to_string()];
        let evidence = [0.1f32, 0.4, 0.1, 0.4, 0.4, 0.0];
        let nearest = vec![
            Some((1e-6, 1, Some(1))),
            Some((1e-6, 0, Some(0))),
            Some((1e-6, 3, Some(1))),
            Some((1e-6, 2, Some(0))),
            Some((1e-6, 2, Some(0))),
            Some((1.0, 0, Some(0))),
        ];
        for (tight, pair, weak) in [
            (natural_conflicts(4, 5), FLAG_AT, true),
            (natural_conflicts(4, 0), CONFLICT_SCORE, false),
        ] {
            let (conflict_score, natural) = pair_scoring(Some(&tight));
            let mut scores = vec![0f32; 6];
            let mut reasons = vec![None; 6];
            let mut summary = DuplicateSummary::default();
            let mut pairs = NearPairs {
                labels: &labels,
                keys: &[1, 2, 3, 4, 5, 6],
                exact_q: 0.0,
                twins_by_chance: 0.0,
                classes: &classes,
                label_scores: Some(&evidence),
                conflict_score,
                natural,
                scores: &mut scores,
                reasons: &mut reasons,
                summary: &mut summary,
            };
            pairs.flag(&nearest, 1.0, true);
            assert_eq!(scores[1], pair, "the lone pair's copy");
            assert_eq!(
                (scores[0], scores[2], scores[5]),
                (0.0, 0.0, 0.0),
                "the sources are kept"
            );
            assert_eq!(
                (scores[3], scores[4]),
                (CONFLICT_SCORE, CONFLICT_SCORE),
                "the group of copies"
            );
            let r = reasons[4].as_deref().unwrap_or_default();
            assert!(
                r.contains("one of 2 rows labelled b that are near copies of it"),
                "{r}"
            );
            assert_eq!(
                reasons[1]
                    .as_deref()
                    .unwrap_or_default()
                    .contains("[4 rows have a near copy under another label, 5.0 expected where nearest rows disagree as elsewhere in the data: weak evidence here]"),
                weak,
                "the lone pair's reason names the natural disagreement only where it lowers the score"
            );
        }
    }

    #[test]
    fn beyond_chance_flags_the_excess_only_when_chance_cannot_explain_it() {
        // No chance count: any conflict is beyond it. One expected: three are not unlikely enough, twelve are.
        assert_eq!(beyond_chance(1, 0.0), 1);
        assert_eq!(beyond_chance(3, 1.0), 0);
        assert_eq!(beyond_chance(12, 1.0), 11);
        assert_eq!(beyond_chance(0, 0.0), 0);
    }

    #[test]
    fn the_poisson_tail_is_its_sum() {
        assert_eq!(poisson_tail(0, 3.0), 1.0);
        assert_eq!(poisson_tail(1, 0.0), 0.0);
        // P(X >= 1) = 1 - e^-m; P(X >= 3) for m = 0.15 is 5.2e-4.
        assert!((poisson_tail(1, 0.5) - (1.0 - (-0.5f64).exp())).abs() < 1e-12);
        let m: f64 = 0.15;
        let want = 1.0 - (-m).exp() * (1.0 + m + m * m / 2.0);
        assert!((poisson_tail(3, m) - want).abs() < 1e-12 && want > 5e-4 && want < 6e-4);
        // Decreasing in x, increasing in the mean.
        assert!(poisson_tail(5, 2.0) < poisson_tail(4, 2.0));
        assert!(poisson_tail(5, 2.0) < poisson_tail(5, 3.0));
    }

    #[test]
    fn chance_pairs_scale_the_band_above_the_line_by_how_often_nearest_rows_disagree() {
        // eps = 1: two rows in the band (1, 10], four beyond it of which one has a nearest row of another label, one
        // inside the line (not counted) and one without a label (not counted).
        let labels: Vec<Option<u32>> = vec![
            Some(0),
            Some(0),
            Some(0),
            Some(0),
            Some(0),
            Some(0),
            Some(0),
            None,
        ];
        let nearest: Vec<crate::detect::label_flip::NearestRow> = vec![
            Some((2.0, 1, Some(0))),
            Some((9.0, 0, Some(1))),
            Some((20.0, 3, Some(0))),
            Some((30.0, 2, Some(1))),
            Some((40.0, 5, Some(0))),
            Some((50.0, 4, Some(0))),
            Some((0.5, 0, Some(1))),
            Some((3.0, 0, Some(0))),
        ];
        let want = 2.0 / (10f64.sqrt() - 1.0) * 0.25;
        assert!((chance_pairs(&nearest, &labels, 1.0) - want).abs() < 1e-12);
        // Nothing beyond the band: the band itself.
        assert_eq!(chance_pairs(&nearest[..2], &labels, 1.0), 2.0);
        // Nothing near the line: no chance pairs.
        assert_eq!(chance_pairs(&nearest[2..6], &labels[2..6], 1.0), 0.0);
    }

    #[test]
    fn exact_conflicts_expected_follow_the_agreeing_repeats_and_the_disagreement_odds() {
        // 30 rows repeat an earlier row under its label; rows disagree a quarter of the time: 30 x 1/3 = 10.
        assert!((chance_conflicts(30, 0.25) - 10.0).abs() < 1e-12);
        assert_eq!(chance_conflicts(0, 0.5), 0.0);
        // The odds are capped at q = 0.9.
        assert!((chance_conflicts(1, 0.99) - 9.0).abs() < 1e-9);
        assert_eq!(share((1.0, 4.0)), 0.25);
        assert_eq!(share((0.0, 0.0)), 0.0);
        // Nearest rows at distance 0 or without a label do not count: one of the two others disagrees.
        let labels = vec![Some(0), Some(0), Some(1), Some(0)];
        let nearest: Vec<crate::detect::label_flip::NearestRow> = vec![
            Some((0.0, 2, Some(1))),
            Some((1.0, 2, Some(1))),
            Some((1.0, 3, Some(1))),
            Some((1.0, 1, None)),
        ];
        assert_eq!(nearest_disagree(&nearest, &labels), 0.5);
        let exact = detect(
            &[7, 7, 7, 7, 9, 9],
            &[Some(0), Some(0), Some(0), Some(1), Some(0), Some(1)],
            &["a".into(), "b".into()],
            None,
            None,
            None,
            TableNature::default(),
        );
        // Without near rows to measure, groups of three or more give q: the group of four has 3 of 6 pairs apart, so
        // its 2 agreeing repeats expect 2 conflicts; the 2 odd rows are within that and rank just under the line.
        assert!(
            (exact.1.exact_conflicts_expected - 2.0).abs() < 1e-9,
            "{:?}",
            exact.1
        );
        assert!(exact.0.scores.iter().all(|&s| s < FLAG_AT));
        assert_eq!(exact.0.scores[3], WITHIN_CHANCE_SCORE);
        // Pairs only (nothing coincides by nature): every odd copy is flagged.
        let pairs = detect(
            &[1, 1, 2, 2, 3],
            &[Some(0), Some(1), Some(0), Some(1), Some(0)],
            &["a".into(), "b".into()],
            None,
            None,
            None,
            TableNature::default(),
        );
        assert_eq!(pairs.0.scores.iter().filter(|&&s| s >= FLAG_AT).count(), 2);
    }

    #[test]
    fn tight_rows_are_counted_against_what_the_loose_rows_disagree() {
        let labels: Vec<Option<u32>> = [0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0]
            .iter()
            .map(|&l| Some(l))
            .collect();
        let far = |rows: [usize; 4]| rows.map(|r| (1.0f32, r));
        let mut t = TightConflicts::default();
        // Row 0: row 1 (another label) at a hundredth of the distance to its 5th row: a tight conflict.
        let mut close = vec![(1e-4f32, 1usize)];
        close.extend(far([2, 3, 4, 5]));
        t.observe(0, &close, &labels);
        // Row 2: tight with a row of its own label (3), its nearest other-label row (1) far: tight, no conflict.
        let mut close = vec![(1e-4f32, 3usize)];
        close.extend(far([1, 4, 5, 6]));
        t.observe(2, &close, &labels);
        // Rows 6 and 8: loose; the nearest row of 6 has another label, that of 8 its own.
        let loose = |first: usize| {
            let mut c = vec![(0.5f32, first)];
            c.extend(far([2, 3, 4, 5]));
            c
        };
        t.observe(6, &loose(7), &labels);
        t.observe(8, &loose(9), &labels);
        // Fewer than five close rows, or five exact copies: no scale, not counted.
        t.observe(9, &[(1e-4, 1), (1.0, 2)], &labels);
        t.observe(
            10,
            &[(0.0, 2), (0.0, 3), (0.0, 4), (0.0, 5), (0.0, 1)],
            &labels,
        );
        assert_eq!((t.tight, t.loose, t.loose_disagree), (2, 2, 1));
        assert_eq!(t.conflicts.len(), 1);
        let (i, j, s) = t.conflicts[0];
        assert_eq!((i, j), (0, 1));
        assert!((s - 0.99).abs() < 1e-4, "{s}");
        assert!(
            (t.expected() - 1.0).abs() < 1e-9,
            "2 tight rows x 1/2 of the loose rows"
        );
    }

    /// Near pairs within the line under `labels` (row `i`'s nearest row `nearest[i]`, at 1e-6 for `Some`), flagged
    /// with label disagreement `q` between near-identical rows and no other evidence: the rows' scores.
    fn near_flags(labels: &[u32], nearest: &[Option<usize>], q: f64) -> Vec<f32> {
        let labels: Vec<Option<u32>> = labels.iter().map(|&l| Some(l)).collect();
        let nearest: Vec<super::super::label_flip::NearestRow> = nearest
            .iter()
            .map(|j| j.map(|j| (1e-6f32, j, labels[j])))
            .collect();
        let keys: Vec<u128> = (0..labels.len() as u128).collect();
        let classes = ["a".to_string(), "b".to_string()];
        let mut scores = vec![0f32; labels.len()];
        let mut reasons = vec![None; labels.len()];
        let mut summary = DuplicateSummary::default();
        let mut pairs = NearPairs {
            labels: &labels,
            keys: &keys,
            exact_q: q,
            twins_by_chance: 0.0,
            classes: &classes,
            label_scores: None,
            conflict_score: CONFLICT_SCORE,
            natural: String::new(),
            scores: &mut scores,
            reasons: &mut reasons,
            summary: &mut summary,
        };
        pairs.flag(&nearest, 1.0, false);
        scores
    }

    #[test]
    fn near_pairs_are_flagged_only_when_they_outnumber_their_share_of_the_rows_near_a_row() {
        // Each data row near its own reference row: `x` under the other label, `a` under the same, q = 0.39.
        let rows = |x: usize, a: usize| {
            let mut labels: Vec<u32> = vec![0; x + a];
            let mut nearest: Vec<Option<usize>> = vec![None; x + a];
            labels.extend((0..x + a).map(|i| u32::from(i < x)));
            nearest.extend((0..x + a).map(Some));
            near_flags(&labels, &nearest, 0.39)
        };
        let flagged = |s: &[f32]| s.iter().filter(|&&v| v >= FLAG_AT).count();
        // 34 pairs against 29 agreeing rows: 18.5 expected, P(Poisson >= 34) = 8e-4 flagged 16 rows before; as the
        // binomial share of 63 rows it is P = 0.011 (q = 0.39), chance.
        assert_eq!(flagged(&rows(34, 29)), 0);
        // Against 5 agreeing rows: 3.2 expected, and the 31 beyond are flagged.
        assert_eq!(flagged(&rows(34, 5)), 31);
    }

    #[test]
    fn a_group_of_near_copies_is_flagged_whole_only_where_rows_do_not_gather_near_one_row_by_nature(
    ) {
        // Reference rows 0..30 (labels a, b alternating); data rows from 30 on. Three data rows labelled b near
        // reference row 0 (label a); many rows near no reference row.
        let mut labels: Vec<u32> = (0..30).map(|i| i % 2).collect();
        let mut nearest: Vec<Option<usize>> = vec![None; 30];
        labels.extend([1, 1, 1]);
        nearest.extend([Some(0); 3]);
        labels.extend((0..200).map(|i| i % 2));
        nearest.extend(vec![None; 200]);
        let lone = near_flags(&labels, &nearest, 0.3);
        // Nothing else gathers: 0.3^3 = 0.027 groups of three expected, one seen.
        assert!(
            lone[30..33].iter().all(|&s| s == CONFLICT_SCORE),
            "{:?}",
            &lone[30..33]
        );
        // The same three among 20 gatherings of four rows near a reference row, one of each four under the other
        // label: groups of three under one label are expected about 20 x P(Binomial(4, 0.3) >= 3) = 1.7 times, so
        // the three are pairs, within the chance count here (23 pairs, 60 agreeing x 0.3 / 0.7 = 25.7 expected).
        for t in 1..21 {
            for k in 0..4u32 {
                labels.push((t as u32 + (k == 0) as u32) % 2);
                nearest.push(Some(t));
            }
        }
        let gathered = near_flags(&labels, &nearest, 0.3);
        assert!(
            gathered[30..33].iter().all(|&s| s < FLAG_AT),
            "{:?}",
            &gathered[30..33]
        );
    }

    #[test]
    fn mass_copies_are_flagged_only_where_a_column_is_continuous_and_double_entries_never() {
        // 200 distinct rows, a same-label pair (rows 0, 1), and 12 identical rows under one label (rows 2..14).
        let mut keys: Vec<u128> = (0..200u128).map(|k| 1000 + k).collect();
        keys[1] = keys[0];
        for k in keys.iter_mut().take(14).skip(2) {
            *k = 42;
        }
        let labels: Vec<Option<u32>> = (0..200).map(|i| Some((i % 2) as u32)).collect();
        let mut labels = labels;
        labels[1] = labels[0];
        for l in labels.iter_mut().take(14).skip(2) {
            *l = Some(1);
        }
        let classes = ["a".to_string(), "b".to_string()];
        let (out, summary) = detect(
            &keys,
            &labels,
            &classes,
            None,
            None,
            None,
            TableNature {
                continuous: Some("f0"),
                ..Default::default()
            },
        );
        assert_eq!(summary.mass_copy_groups, 1);
        for r in 2..14 {
            assert!(out.scores[r] >= FLAG_AT, "row {r}: {}", out.scores[r]);
            assert!(out.reasons[r]
                .as_deref()
                .unwrap()
                .contains("one of 12 rows with identical features, all labelled b, in data where f0 is continuous"));
        }
        assert_eq!(
            (out.scores[0], out.scores[1]),
            (0.0, 0.2),
            "a double entry is not flagged"
        );
        assert!(out.scores[14..].iter().all(|&s| s == 0.0));
        // Discrete data (no continuous column): identical rows are how such data looks, and nothing is flagged.
        let (out, summary) = plain(&keys, &labels, &classes);
        assert_eq!(summary.mass_copy_groups, 0);
        assert!(out.scores.iter().all(|&s| s < FLAG_AT));
    }
}
