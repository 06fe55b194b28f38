//! # Duplicates with conflicting labels (`score_duplicate`)
//!
//! ## What it detects
//! The same features under different labels: direct evidence of a label flip or of a poisoned copy. Exact
//! duplicates share a feature digest (blake3 of every column except label and id, in the canonical row encoding);
//! near duplicates are rows whose nearest neighbour (from the label-flip kNN search) is closer than 1/1000 of the
//! median squared nearest-neighbour distance and carries another label.
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
//! row on a tie); a data row nearly identical to a reference row with another label is always flagged. With a
//! reference, pairs inside the data come from data rows sharing one of their two nearest reference rows
//! (`LabelFlipOutput::data_nearest`).
//!
//! ## When it is wrong
//! Legitimately ambiguous inputs (the same measurement with two valid labels) are flagged; features that are too
//! coarse (few discrete columns) make distinct examples collide. Near-duplicate detection depends on the kNN index
//! finding the true nearest neighbour (IVF probes are approximate on large inputs).
//!
//! ## Reference
//! Northcutt et al., JAIR 2021 (duplicates as label-issue evidence); Lee et al., "Deduplicating Training Data Makes
//! Language Models Better", ACL 2022.

use super::label_flip::LabelFlipOutput;
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
    /// Near-duplicate pairs with different labels.
    pub near_conflicts: usize,
    /// Same-label exact groups of at least [`MASS_COPIES`] rows in data with a continuous feature column.
    #[serde(default)]
    pub mass_copy_groups: usize,
}

/// Rows of one same-label exact group at which, in data with a continuous feature column, the group is flagged.
pub const MASS_COPIES: f64 = 10.0;

/// Detect duplicates with conflicting labels.
pub fn detect(
    feature_keys: &[u128],
    labels: &[Option<u32>],
    classes: &[String],
    baseline: Option<&[RowStatus]>,
    near: Option<&LabelFlipOutput>,
    label_scores: Option<&[f32]>,
    continuous: Option<&str>,
) -> (DetectorOutput, DuplicateSummary) {
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
        if tally.len() < 2 {
            let g = rows.len();
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
            for &r in rows {
                if labels[r as usize] != keep_label {
                    scores[r as usize] = 1.0;
                    reasons[r as usize] = Some(format!(
                        "same features as row {keep_row} (label {}) but label {}: duplicate with conflicting label",
                        name(keep_label),
                        name(labels[r as usize])
                    ));
                }
            }
        }
    }
    if let Some(nr) = near {
        let mut ctx = NearPairs {
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

/// Flags rows that are nearly identical to another row with a different label.
struct NearPairs<'a> {
    labels: &'a [Option<u32>],
    classes: &'a [String],
    label_scores: Option<&'a [f32]>,
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
        for i in 0..self.scores.len().min(nearest.len()) {
            let Some((d2, j, lj)) = nearest[i] else {
                continue;
            };
            let li = self.labels[i];
            if d2 > eps || lj == li || lj.is_none() || li.is_none() || self.scores[i] >= FLAG_AT {
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
            if flag_i {
                self.summary.near_conflicts += 1;
                self.scores[i] = 0.9;
                self.reasons[i] = Some(format!(
                    "nearly identical to {}row {j} (label {}) but label {}: near duplicate with conflicting label",
                    if pairs_are_data { "" } else { "reference " },
                    name(lj),
                    name(li)
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_a_tied_conflicting_pair_the_copy_its_neighbourhood_disagrees_with_is_flagged() {
        // Rows 0 and 3 share features under labels 0 and 1; row 0 comes first but its label-flip evidence is high.
        let keys = [7u128, 1, 2, 7, 3];
        let labels = [Some(0), Some(0), Some(1), Some(1), Some(0)];
        let classes = ["a".to_string(), "b".to_string()];
        let evidence = [0.45f32, 0.0, 0.0, 0.05, 0.0];
        let (out, summary) = detect(&keys, &labels, &classes, None, None, Some(&evidence), None);
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
        let (out, _) = detect(&keys, &labels, &classes, None, None, None, None);
        assert_eq!((out.scores[0], out.scores[3]), (0.0, 1.0));
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
        let (out, summary) = detect(&keys, &labels, &classes, None, None, None, Some("f0"));
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
        let (out, summary) = detect(&keys, &labels, &classes, None, None, None, None);
        assert_eq!(summary.mass_copy_groups, 0);
        assert!(out.scores.iter().all(|&s| s < FLAG_AT));
    }
}
