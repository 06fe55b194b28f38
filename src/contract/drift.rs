//! Drift against the reference: population stability index (PSI) and a binned Kolmogorov–Smirnov statistic, both
//! computed from mergeable counts over bins fixed by the reference's deciles (numeric columns) or its categories.
//!
//! Thresholds: PSI > 0.25 is the usual "significant shift" mark, and PSI must also exceed what sampling alone gives
//! it at alpha = 0.001 (Yurdakul 2018: `PSI ~ chi2(B - 1) (1/n + 1/m)` for `B` bins, `n` data and `m` reference rows),
//! which is above 0.25 for small references; KS is compared with its two-sample critical value at alpha = 0.001
//! (1.949 * sqrt((n + m) / (n m))). Binned KS is a lower bound of the exact KS statistic.

use serde::{Deserialize, Serialize};

/// PSI above which a column counts as drifted.
pub const PSI_DRIFT: f64 = 0.25;
/// Smoothing for empty bins in PSI.
const EPS: f64 = 1e-4;

/// Reference distribution of a numeric column: bins split at `edges`, with the reference's share per bin.
/// Bin `k` holds values `x <= edges[k]` (and above the previous edge); the last bin holds values above all edges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftSketch {
    /// Inner bin edges, increasing.
    pub edges: Vec<f64>,
    /// Reference share of each of the `edges.len() + 1` bins.
    pub proportions: Vec<f64>,
}

impl DriftSketch {
    /// Decile bins from a sorted sample of finite values; `None` when the column is (nearly) constant.
    pub fn from_sorted(sorted: &[f64]) -> Option<DriftSketch> {
        if sorted.len() < 20 {
            return None;
        }
        let mut edges: Vec<f64> = (1..10)
            .map(|k| quantile_sorted(sorted, k as f64 / 10.0))
            .collect();
        edges.dedup();
        if edges.len() < 2 {
            return None;
        }
        let mut counts = vec![0u64; edges.len() + 1];
        for &x in sorted {
            counts[bin(&edges, x)] += 1;
        }
        let n = sorted.len() as f64;
        Some(DriftSketch {
            edges,
            proportions: counts.iter().map(|&c| c as f64 / n).collect(),
        })
    }

    /// Bin of a value.
    pub fn bin(&self, x: f64) -> usize {
        bin(&self.edges, x)
    }
}

fn bin(edges: &[f64], x: f64) -> usize {
    edges.partition_point(|&e| e < x)
}

/// Linear-interpolated quantile of a sorted slice (q in [0, 1]).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let (lo, hi, w) = quantile_position(sorted.len(), q);
    sorted[lo] * (1.0 - w) + sorted[hi] * w
}

/// Where quantile `q` of `len > 0` sorted values lies: the two order statistics around it and the weight of the
/// upper one (linear interpolation).
pub(crate) fn quantile_position(len: usize, q: f64) -> (usize, usize, f64) {
    let pos = q.clamp(0.0, 1.0) * (len - 1) as f64;
    let lo = pos.floor() as usize;
    (lo, pos.ceil() as usize, pos - lo as f64)
}

/// Population stability index of observed counts against expected shares.
pub fn psi(expected: &[f64], counts: &[u64]) -> f64 {
    let n: u64 = counts.iter().sum();
    if n == 0 {
        return 0.0;
    }
    expected
        .iter()
        .zip(counts)
        .map(|(&e, &c)| {
            let a = (c as f64 / n as f64).max(EPS);
            let e = e.max(EPS);
            (a - e) * (a / e).ln()
        })
        .sum()
}

/// Largest gap between the cumulative shares (binned two-sample KS statistic).
pub fn ks_binned(expected: &[f64], counts: &[u64]) -> f64 {
    let n: u64 = counts.iter().sum();
    if n == 0 {
        return 0.0;
    }
    let (mut ce, mut ca, mut d) = (0.0f64, 0.0f64, 0.0f64);
    for (&e, &c) in expected.iter().zip(counts) {
        ce += e;
        ca += c as f64 / n as f64;
        d = d.max((ce - ca).abs());
    }
    d
}

/// Two-sample KS critical value at alpha = 0.001.
pub fn ks_critical(n: u64, m: u64) -> f64 {
    if n == 0 || m == 0 {
        return 1.0;
    }
    let (n, m) = (n as f64, m as f64);
    1.949 * ((n + m) / (n * m)).sqrt()
}

/// The PSI that sampling alone exceeds with probability 0.001 when `n` data rows and `m` reference rows fall into
/// `bins` bins: `chi2_0.999(bins - 1) (1/n + 1/m)` (Yurdakul 2018), the quantile by Wilson and Hilferty's cube.
pub fn psi_critical(bins: usize, n: u64, m: u64) -> f64 {
    if n == 0 || m == 0 || bins < 2 {
        return f64::INFINITY;
    }
    let k = (bins - 1) as f64;
    let z = 3.090_232; // standard normal quantile at 0.999
    let c = 2.0 / (9.0 * k);
    let chi2 = k * (1.0 - c + z * c.sqrt()).powi(3);
    chi2 * (1.0 / n as f64 + 1.0 / m as f64)
}

/// Drift of one column (or of the label distribution).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDrift {
    /// Column.
    pub column: String,
    /// "numeric", "categorical" or "label".
    pub kind: String,
    /// Population stability index.
    pub psi: f64,
    /// Binned KS statistic (numeric columns).
    pub ks: Option<f64>,
    /// KS critical value at alpha = 0.001.
    pub ks_critical: Option<f64>,
    /// The PSI sampling alone exceeds at alpha = 0.001 ([`psi_critical`]; absent in older reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psi_critical: Option<f64>,
    /// PSI above both 0.25 and its critical value, or KS above its critical value.
    pub drifted: bool,
    /// Rows of the data per bin (or per value): counts that add up across partitions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counts: Vec<u64>,
    /// The reference's share per bin.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected: Vec<f64>,
    /// Rows of the reference.
    #[serde(default)]
    pub reference_rows: u64,
}

impl ColumnDrift {
    /// Compare counts with a reference of `reference_rows` rows.
    pub fn compute(
        column: &str,
        kind: &str,
        expected: &[f64],
        counts: &[u64],
        reference_rows: u64,
    ) -> ColumnDrift {
        let p = psi(expected, counts);
        let n: u64 = counts.iter().sum();
        let (ks, crit) = if kind == "numeric" {
            (
                Some(ks_binned(expected, counts)),
                Some(ks_critical(n, reference_rows)),
            )
        } else {
            (None, None)
        };
        let psi_crit = psi_critical(expected.len(), n, reference_rows);
        let drifted =
            (p > PSI_DRIFT && p > psi_crit) || matches!((ks, crit), (Some(k), Some(c)) if k > c);
        ColumnDrift {
            column: column.to_string(),
            kind: kind.to_string(),
            psi: p,
            ks,
            ks_critical: crit,
            psi_critical: psi_crit.is_finite().then_some(psi_crit),
            drifted,
            counts: counts.to_vec(),
            expected: expected.to_vec(),
            reference_rows,
        }
    }

    /// The drift of the rows of `self` and `other` together (partitions of one dataset, same column and bins); `None`
    /// when their bins differ.
    pub fn merged(&self, other: &ColumnDrift) -> Option<ColumnDrift> {
        if self.column != other.column
            || self.kind != other.kind
            || self.counts.len() != other.counts.len()
            || self.expected != other.expected
            || self.counts.is_empty()
        {
            return None;
        }
        let counts: Vec<u64> = self
            .counts
            .iter()
            .zip(&other.counts)
            .map(|(a, b)| a + b)
            .collect();
        Some(ColumnDrift::compute(
            &self.column,
            &self.kind,
            &self.expected,
            &counts,
            self.reference_rows,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_distribution_has_small_psi_and_shift_is_caught() {
        let sorted: Vec<f64> = (0..10_000).map(|i| i as f64 / 10_000.0).collect();
        let s = DriftSketch::from_sorted(&sorted).unwrap();
        let mut same = vec![0u64; s.proportions.len()];
        let mut shifted = vec![0u64; s.proportions.len()];
        for i in 0..5000 {
            let x = (i as f64 * 0.618).fract();
            same[s.bin(x)] += 1;
            shifted[s.bin((x * 0.5) + 0.5)] += 1;
        }
        let a = ColumnDrift::compute("x", "numeric", &s.proportions, &same, 10_000);
        let b = ColumnDrift::compute("x", "numeric", &s.proportions, &shifted, 10_000);
        assert!(!a.drifted && a.psi < 0.01, "{a:?}");
        assert!(b.drifted && b.psi > 1.0, "{b:?}");
    }

    #[test]
    fn psi_critical_is_the_chi_square_quantile_scaled_by_both_sample_sizes() {
        // chi2_0.999(9) = 27.877, chi2_0.999(1) = 10.828 (tables); Wilson-Hilferty is within 1% at 9 and 3% at 1.
        let c9 = psi_critical(10, 400, 100) / (1.0 / 400.0 + 1.0 / 100.0);
        assert!((c9 - 27.877).abs() < 0.3, "{c9}");
        let c1 = psi_critical(2, 1, 1) / 2.0;
        assert!((c1 - 10.828).abs() < 0.35, "{c1}");
        // Large samples leave 0.25 as the line; no bins or rows give no line at all.
        assert!(psi_critical(10, 1_000_000, 10_000) < 0.01);
        assert!(psi_critical(1, 100, 100).is_infinite() && psi_critical(10, 0, 100).is_infinite());
    }

    #[test]
    fn a_small_reference_does_not_call_sampling_noise_drift_but_still_sees_a_shift() {
        // 400 rows of a column against the deciles of 100 reference rows from the same distribution (a seeded split
        // of a clean table): PSI 0.258, above 0.25 but below the 0.35 sampling gives at alpha = 0.001.
        let expected = [0.1; 10];
        let clean = [34, 19, 25, 56, 67, 48, 16, 17, 68, 50];
        let d = ColumnDrift::compute("b", "numeric", &expected, &clean, 100);
        assert!(
            d.psi > PSI_DRIFT && d.psi < d.psi_critical.unwrap(),
            "{d:?}"
        );
        assert!(!d.drifted, "{d:?}");
        // The same rows moved into the upper half of the reference's range drift.
        let shifted = [0, 0, 0, 0, 0, 80, 80, 80, 80, 80];
        let d = ColumnDrift::compute("b", "numeric", &expected, &shifted, 100);
        assert!(d.drifted && d.psi > d.psi_critical.unwrap(), "{d:?}");
        // With a large reference the same PSI of 0.258 is drift by PSI alone (its critical value is about 0.001).
        let d = ColumnDrift::compute("b", "numeric", &expected, &clean.map(|c| c * 100), 100_000);
        assert!(d.drifted && d.psi > PSI_DRIFT, "{d:?}");
        assert!(d.psi_critical.unwrap() < 0.01, "{d:?}");
    }

    #[test]
    fn constant_column_has_no_sketch() {
        assert!(DriftSketch::from_sorted(&[1.0; 100]).is_none());
    }
}
