//! Grading values beyond the reference's range: *unusual*, not *impossible*.
//!
//! ## What it decides
//! A reference is a sample. A new clean value falls outside the range of `n` reference values with probability about
//! `2 / (n + 1)`, so with dozens of columns most rows of clean data hold some value just beyond the reference's
//! minimum or maximum. Such a value is unusual, not impossible: it gets a score that grows with how far out it is,
//! and it is flagged only beyond a distance calibrated so that clean rows almost never reach it.
//!
//! ## How
//! Per side of each numeric column, the *tail scale* is estimated from the reference's own extreme values: the mean
//! excess of the `m` most extreme values over the next one (`m = min(10, n / 4)`, at least 1), the exponential-tail
//! maximum-likelihood estimate (Hill-style on a linear scale). A fresh value beyond the range lands, for an
//! exponential tail, `Exp(scale)` beyond it; with the scale estimated from `m` spacings, the chance that it lands more
//! than `c * estimate` beyond is `(1 + c / m)^-m`. `c` is chosen so that this is [`FALSE_FLAG_RATE`]
//! (`c = m (rate^(-1/m) - 1)`: 10.0 for m = 10, 14.9 for m = 5), which keeps the row-level rate small after
//! multiplying by the chance of being beyond the range at all and by the number of columns. Heavy (Pareto) tails
//! get a larger estimate from their spread-out extremes, so they are flagged later. The estimate never goes below the
//! column's resolution (the smallest gap between distinct values; 1 for integer columns).
//!
//! Without a reference the range is the data's own 0.5%..99.5% quantile range (a few poisoned extremes cannot widen
//! it) and the tail scale comes from the spacing of the 95% and 99.5% quantiles (`(q99.5 - q95) / ln 10`, the
//! exponential-tail scale), with `c = 10`. With fewer than 600 rows the range leaves 3 values beyond each end
//! (at most 2.5% of the rows) and the scale is measured from the quantile with ten times that share (at most 25%),
//! so that one poisoned value cannot become the range's end. A column whose bulk (all but those trimmed values) is
//! never negative and stays dense down to 0 has 0 as its domain's edge ([`data_zero_edge`]): a negative value there
//! is impossible, as below a reference that reaches 0.
//!
//! A column whose extremes are spaced wider than its interquartile range has a heavy tail: above its range, a value
//! must also be that far out on the `ln(1 + x - origin)` scale (the same estimate on the logarithms), since
//! Pareto-like extremes spread out multiplicatively. The origin is 0, or the range's lower end where the range reaches
//! below 0 (a skewness or a kurtosis: heavy above, negative at times). Without a reference the logarithmic scale is
//! the smaller of the band's and the one the values beyond the range give (their median excess over `ln 2`, robust
//! to fewer than half of them poisoned): in a column that is mostly 0 or small, `ln(1 + x)` is nearly linear at the
//! band's inner end and the band alone overstates how far the tail spreads.
//!
//! The excess `e = distance beyond the range / flag distance` maps to a score `e / (1 + e)`: 0.5 at the flag
//! distance, 0.001 for a value 0.1% of the flag distance out, 0.999 for a value a thousand flag distances out.
//!
//! ## When it is wrong
//! A reference too small to show a column's tail (a handful of rows) gives a noisy scale: the constant `c` grows as
//! `m` shrinks to compensate, so such columns flag late rather than early. A column whose values are all equal in the
//! reference falls back to its resolution and flags any value ten or more units away.
//!
//! ## Reference
//! Hill, "A simple general approach to inference about the tail of a distribution", Annals of Statistics 1975;
//! Pickands, "Statistical inference using extreme order statistics", Annals of Statistics 1975 (excesses over a
//! high threshold are exponential / generalized Pareto).

/// Chance that a clean value already beyond the reference's range is flagged (per column and side).
pub const FALSE_FLAG_RATE: f64 = 1e-3;
/// Most extreme values used to estimate a tail's scale.
const TAIL_VALUES: usize = 10;
/// Flag distance in tail scales when the range comes from the data's own quantiles.
const DATA_FLAG_SCALES: f64 = 10.0;

/// The range of a numeric column and the distance beyond each end at which a value is flagged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tails {
    /// Values inside are ordinary.
    pub range: [f64; 2],
    /// Distance below `range[0]` and above `range[1]` at which a value scores 0.5.
    pub flag_beyond: [f64; 2],
    /// For a column with a heavy upper tail (extremes spaced wider than its interquartile range): the same distance
    /// above the range measured on `ln(1 + x - origin)` (origin 0, or the range's lower end below 0). A value must be far out on both scales, so a
    /// Pareto-like tail, whose extremes are spread out multiplicatively, is not flagged for an ordinary large value.
    pub log_flag_above: Option<f64>,
}

/// Multiplier `c` with `(1 + c / m)^-m = FALSE_FLAG_RATE`.
pub fn flag_multiplier(m: usize) -> f64 {
    let m = m.max(1) as f64;
    m * (FALSE_FLAG_RATE.powf(-1.0 / m) - 1.0)
}

/// Smallest positive gap between consecutive distinct values (integers: at least 1); `None` for a constant column.
fn resolution(sorted: &[f64], integer: bool) -> Option<f64> {
    let gap = sorted
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|&d| d > 0.0)
        .fold(f64::INFINITY, f64::min);
    match (gap.is_finite(), integer) {
        (true, true) => Some(gap.max(1.0)),
        (true, false) => Some(gap),
        (false, _) => None,
    }
}

fn floor_scale(sorted: &[f64], integer: bool) -> f64 {
    resolution(sorted, integer).unwrap_or_else(|| {
        if integer {
            1.0
        } else {
            0.01 * sorted.first().map_or(1.0, |v| v.abs().max(1.0))
        }
    })
}

/// Mean distance of the `extremes` from `threshold`, the next value inward: the exponential tail's maximum-likelihood
/// scale estimate from the most extreme order statistics.
fn mean_excess(threshold: f64, extremes: &[f64]) -> f64 {
    extremes.iter().map(|x| (x - threshold).abs()).sum::<f64>() / extremes.len().max(1) as f64
}

/// Tails from a trusted reference's sorted finite values (`None` when there are none).
pub fn from_reference(sorted: &[f64], integer: bool) -> Option<Tails> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let floor = floor_scale(sorted, integer);
    let m = (n / 4)
        .clamp(1, TAIL_VALUES)
        .min(n.saturating_sub(1))
        .max(1);
    let c = flag_multiplier(m);
    let (lo, hi) = (sorted[0], sorted[n - 1]);
    // Without an (m + 1)-th value (a one-value reference) there is no spacing: the resolution floor decides.
    let spaced = n > m;
    let scale_hi = if spaced {
        mean_excess(sorted[n - 1 - m], &sorted[n - m..])
    } else {
        0.0
    };
    let scale_lo = if spaced {
        mean_excess(sorted[m], &sorted[..m])
    } else {
        0.0
    };
    let iqr =
        super::drift::quantile_sorted(sorted, 0.75) - super::drift::quantile_sorted(sorted, 0.25);
    let o = log_origin(lo);
    let log_flag_above = (scale_hi > iqr.max(0.0) && scale_hi > 0.0).then(|| {
        let logs: Vec<f64> = sorted[n - 1 - m..]
            .iter()
            .map(|x| (x - o).ln_1p())
            .collect();
        let scale = mean_excess(logs[0], &logs[1..]);
        let floor = ((hi - o + floor).ln_1p() - (hi - o).ln_1p()).max(f64::MIN_POSITIVE);
        c * scale.max(floor)
    });
    Some(Tails {
        range: [lo, hi],
        flag_beyond: [c * scale_lo.max(floor), c * scale_hi.max(floor)],
        log_flag_above,
    })
}

/// Values left beyond each end of the range when it comes from the data's own quantiles, however few the rows: with
/// fewer than 600 rows the 0.5% / 99.5% quantiles would sit on the most extreme value, which a single poisoned
/// value then moves.
const DATA_TRIMMED: f64 = 3.0;

/// Without a reference, for `n` values: the share left beyond each end of the range (at least [`DATA_TRIMMED`]
/// values, 0.5%..2.5%) and the share ten times larger (at most 25%) that the tail scale is measured from.
fn data_tail_shares(n: f64) -> (f64, f64) {
    let tail = (DATA_TRIMMED / n).clamp(0.005, 0.025);
    (tail, (10.0 * tail).min(0.25))
}

/// Exponential scale of the values beyond a range end, from the median of their distances to it (`median / ln 2`):
/// robust to poisoned extremes among them as long as they are fewer than half. `None` with fewer than 3.
fn median_excess_scale(mut d: Vec<f64>) -> Option<f64> {
    if d.len() < 3 {
        return None;
    }
    d.sort_by(f64::total_cmp);
    Some(super::drift::quantile_sorted(&d, 0.5) / std::f64::consts::LN_2)
}

/// Tails from the scanned data's own sorted finite values (robust to a few poisoned extremes).
pub fn from_data(sorted: &[f64], integer: bool) -> Option<Tails> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len() as f64;
    let q = |p: f64| super::drift::quantile_sorted(sorted, p);
    let floor = floor_scale(sorted, integer);
    // The range ends at the quantile that leaves at least DATA_TRIMMED values beyond it (0.5% from 600 rows on); the
    // tail scale is the spacing from the quantile with ten times that tail share (5%, at most 25%), per e-fold of the
    // share: the exponential tail's scale.
    let (tail, inner) = data_tail_shares(n);
    let folds = (inner / tail).ln();
    let scale_hi = (q(1.0 - tail) - q(1.0 - inner)) / folds;
    let scale_lo = (q(inner) - q(tail)) / folds;
    let (lo, hi) = (q(tail), q(1.0 - tail));
    let heavy = scale_hi > 0.0 && scale_hi > q(0.75) - q(0.25);
    let o = log_origin(lo);
    let log_flag_above = heavy.then(|| {
        // On the logarithms the band can overstate the tail: where the bulk is small or mostly 0, ln(1 + x) is
        // nearly linear at the band's inner end. The values beyond the range say how far the tail itself spreads
        // (their median, robust to fewer than half of them poisoned); the smaller scale is taken.
        let band = ((hi - o).ln_1p() - (q(1.0 - inner) - o).ln_1p()) / folds;
        let above = &sorted[sorted.partition_point(|&x| x <= hi)..];
        let beyond = above
            .iter()
            .map(|x| (x - o).ln_1p() - (hi - o).ln_1p())
            .collect();
        let scale = median_excess_scale(beyond).map_or(band, |t| band.min(t));
        let floor = ((hi - o + floor).ln_1p() - (hi - o).ln_1p()).max(f64::MIN_POSITIVE);
        DATA_FLAG_SCALES * scale.max(floor)
    });
    Some(Tails {
        range: [lo, hi],
        flag_beyond: [
            DATA_FLAG_SCALES * scale_lo.max(floor),
            DATA_FLAG_SCALES * scale_hi.max(floor),
        ],
        log_flag_above,
    })
}

/// Share of the interquartile range within which the data's 5% quantile must lie above 0 for 0 to be the column's
/// edge.
const ZERO_EDGE_SPREAD: f64 = 0.25;

/// Whether the scanned data's own values have 0 as their domain's lower edge: the bulk (all but the values trimmed
/// from the range, see [`from_data`]) is never negative, and its lowest 5% lie within a quarter of its interquartile
/// range (plus one resolution step: 1 for integers) of 0 (counts, durations, hours of a day: a density that stays
/// high up to 0 and stops there). A bell that merely lies mostly above 0 thins out before it reaches 0 (its 5%
/// quantile is 0.8 interquartile ranges or more above its 0.5% quantile), and amounts that start well above 0 are not
/// bounded by it.
pub fn data_zero_edge(sorted: &[f64], integer: bool) -> bool {
    if sorted.is_empty() {
        return false;
    }
    let n = sorted.len() as f64;
    let q = |p: f64| super::drift::quantile_sorted(sorted, p);
    let (tail, inner) = data_tail_shares(n);
    let iqr = (q(0.75) - q(0.25)).max(0.0);
    let step = resolution(sorted, integer).unwrap_or(0.0);
    q(tail) >= 0.0 && q(inner) <= ZERO_EDGE_SPREAD * iqr + step && q(1.0) > 0.0
}

/// Where the logarithmic scale of a heavy upper tail starts: 0, or the range's lower end when the range reaches below 0
/// (a skewness or a kurtosis, heavy-tailed above yet negative at times), so that `ln(1 + x - origin)` is defined over
/// the whole range. A never-negative column keeps `ln(1 + x)`.
fn log_origin(range_lo: f64) -> f64 {
    range_lo.min(0.0)
}

/// How far `x` lies beyond the range, in flag distances (0 inside the range); above a heavy-tailed column's range,
/// the smaller of the linear and the `ln(1 + x - origin)` excess ([`log_origin`]).
pub fn excess(range: [f64; 2], flag_beyond: [f64; 2], log_flag_above: Option<f64>, x: f64) -> f64 {
    let unit = |d: f64| if d > 0.0 { d } else { f64::MIN_POSITIVE };
    if x > range[1] {
        let linear = (x - range[1]) / unit(flag_beyond[1]);
        let o = log_origin(range[0]);
        match log_flag_above {
            Some(d) if range[1] >= o => {
                linear.min(((x - o).ln_1p() - (range[1] - o).ln_1p()) / unit(d))
            }
            _ => linear,
        }
    } else if x < range[0] {
        (range[0] - x) / unit(flag_beyond[0])
    } else {
        0.0
    }
}

/// Score of an excess: `e / (1 + e)`, 0.5 at the flag distance.
pub fn score(e: f64) -> f32 {
    crate::detect::ratio_score(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_distr::{Distribution, Exp, Normal, Pareto};

    #[test]
    fn multiplier_meets_the_false_flag_rate() {
        for m in [1, 3, 5, 10] {
            let c = flag_multiplier(m);
            let rate = (1.0 + c / m as f64).powf(-(m as f64));
            assert!(
                (rate - FALSE_FLAG_RATE).abs() < 1e-9,
                "m={m} c={c} rate={rate}"
            );
        }
        assert!((flag_multiplier(10) - 9.95).abs() < 0.01);
    }

    fn clean_flag_rate(
        draw: &mut dyn FnMut(&mut rand_xoshiro::Xoshiro256PlusPlus) -> f64,
        n: usize,
    ) -> f64 {
        // Fresh references of n values; count fresh clean values that reach the flag distance.
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(7);
        let (mut flagged, mut total) = (0u64, 0u64);
        for _ in 0..200 {
            let mut r: Vec<f64> = (0..n).map(|_| draw(&mut rng)).collect();
            r.sort_by(f64::total_cmp);
            let t = from_reference(&r, false).unwrap();
            for _ in 0..500 {
                let x = draw(&mut rng);
                flagged += (excess(t.range, t.flag_beyond, t.log_flag_above, x) >= 1.0) as u64;
                total += 1;
            }
        }
        flagged as f64 / total as f64
    }

    #[test]
    fn clean_values_almost_never_reach_the_flag_distance() {
        let normal = Normal::new(0.0, 1.0).unwrap();
        let exp = Exp::new(1.0).unwrap();
        let pareto = Pareto::new(1.0, 1.5).unwrap();
        for n in [30usize, 360, 2000] {
            let rates = [
                clean_flag_rate(&mut |r| normal.sample(r), n),
                clean_flag_rate(&mut |r| exp.sample(r), n),
                clean_flag_rate(&mut |r| pareto.sample(r), n),
            ];
            // Per value and column: far below the ~2/(n+1) chance of merely leaving the range.
            for (k, rate) in rates.iter().enumerate() {
                assert!(
                    *rate < 0.1 * 2.0 / (n as f64 + 1.0) + 2e-5,
                    "n={n} dist={k} rate={rate}"
                );
            }
        }
    }

    #[test]
    fn far_values_outrank_near_ones_and_inside_scores_zero() {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(1);
        let mut r: Vec<f64> = (0..360).map(|_| rng.gen_range(1.2..3.22)).collect();
        r.sort_by(f64::total_cmp);
        let t = from_reference(&r, false).unwrap();
        let max = t.range[1];
        let near = score(excess(
            t.range,
            t.flag_beyond,
            t.log_flag_above,
            max * 1.001,
        ));
        let far = score(excess(
            t.range,
            t.flag_beyond,
            t.log_flag_above,
            max * 1000.0,
        ));
        assert!(near < 0.05 && far > 0.99, "near {near} far {far}");
        assert_eq!(
            score(excess(t.range, t.flag_beyond, t.log_flag_above, 2.0)),
            0.0
        );
    }

    #[test]
    fn constant_and_integer_columns_fall_back_to_their_resolution() {
        let zeros = vec![0.0; 300];
        let t = from_reference(&zeros, true).unwrap();
        assert_eq!(t.range, [0.0, 0.0]);
        // A sparse pixel column: 2 is unusual but not flagged, 16 is flagged.
        assert!(excess(t.range, t.flag_beyond, t.log_flag_above, 2.0) < 1.0);
        assert!(excess(t.range, t.flag_beyond, t.log_flag_above, 16.0) >= 1.0);
        let counts: Vec<f64> = (0..400).map(|i| (i % 7) as f64).collect();
        let mut s = counts.clone();
        s.sort_by(f64::total_cmp);
        let t = from_reference(&s, true).unwrap();
        assert!(t.flag_beyond[1] >= flag_multiplier(10));
    }

    #[test]
    fn data_tails_ignore_a_few_poisoned_extremes() {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(3);
        let normal = Normal::new(10.0, 2.0).unwrap();
        let mut v: Vec<f64> = (0..5000).map(|_| normal.sample(&mut rng)).collect();
        v.extend([1e6, 2e6, -1e6]);
        v.sort_by(f64::total_cmp);
        let t = from_data(&v, false).unwrap();
        assert!(t.range[1] < 20.0 && t.flag_beyond[1] < 30.0);
        assert!(excess(t.range, t.flag_beyond, t.log_flag_above, 1e6) > 1e4);
        assert!(excess(t.range, t.flag_beyond, t.log_flag_above, 17.0) < 1.0);
    }

    #[test]
    fn small_data_one_poisoned_extreme_is_not_the_range_end() {
        // 120 rows, as in iris: the 99.5% quantile would sit between the two largest values.
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(5);
        let normal = Normal::new(4.0, 1.5).unwrap();
        let clean: Vec<f64> = (0..119).map(|_| normal.sample(&mut rng)).collect();
        let mut v = clean.clone();
        v.push(4000.0);
        v.sort_by(f64::total_cmp);
        let t = from_data(&v, false).unwrap();
        assert!(t.range[1] < 20.0, "range {:?}", t.range);
        assert!(score(excess(t.range, t.flag_beyond, t.log_flag_above, 4000.0)) > 0.95);
        // The clean values themselves stay unflagged.
        let flagged = clean
            .iter()
            .filter(|&&x| excess(t.range, t.flag_beyond, t.log_flag_above, x) >= 1.0)
            .count();
        assert_eq!(flagged, 0);
    }

    #[test]
    fn a_mostly_zero_heavy_column_is_graded_by_its_own_extremes() {
        // Pending jobs: 90% zero, the rest log-uniform up to 5,000 (as in hpc_data). On ln(1 + x) the band from the
        // 95% to the 99.5% quantile spans 70 to 3,300, an e-fold per 1.7 of the band's e-folds, so ten scales would
        // be a factor of 10^7; the values beyond the range themselves spread over less than half an e-fold.
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(13);
        let mut v: Vec<f64> = (0..3500)
            .map(|i| {
                if i % 10 == 0 {
                    (rng.gen_range(0.0..5000f64.ln())).exp().round()
                } else {
                    0.0
                }
            })
            .collect();
        v.sort_by(f64::total_cmp);
        let max = v[v.len() - 1];
        let t = from_data(&v, true).unwrap();
        assert!(t.log_flag_above.is_some());
        let e = |x: f64| excess(t.range, t.flag_beyond, t.log_flag_above, x);
        assert!(e(max) < 0.5, "the clean maximum: {}", e(max));
        assert!(
            e(1000.0 * max) >= 1.0,
            "a thousand times it: {}",
            e(1000.0 * max)
        );
        // Poisons among the values beyond the range (fewer than half of them) do not widen it.
        let mut p = v.clone();
        p.extend([1000.0 * max, 2000.0 * max, 1e9]);
        p.sort_by(f64::total_cmp);
        let t = from_data(&p, true).unwrap();
        assert!(excess(t.range, t.flag_beyond, t.log_flag_above, 1000.0 * max) >= 1.0);
    }

    #[test]
    fn data_zero_edge_needs_a_bulk_that_stops_at_zero() {
        // Hours of a day (0..24) with two negative values written into them: 0 is the edge.
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(9);
        let mut v: Vec<f64> = (0..3000).map(|_| rng.gen_range(0.0..24.0)).collect();
        v.extend([-12.2, -3.0]);
        v.sort_by(f64::total_cmp);
        assert!(data_zero_edge(&v, false));
        // Sparse counts (mostly 0) too.
        let mut counts: Vec<f64> = (0..1000)
            .map(|i| if i % 10 == 0 { 3.0 } else { 0.0 })
            .collect();
        counts.sort_by(f64::total_cmp);
        assert!(data_zero_edge(&counts, true));
        // A bell that lies mostly above 0 is not bounded there, nor is a column far from 0.
        let normal = Normal::new(4.0, 1.5).unwrap();
        let mut bell: Vec<f64> = (0..2000).map(|_| normal.sample(&mut rng)).collect();
        bell.sort_by(f64::total_cmp);
        assert!(!data_zero_edge(&bell, false));
        let far: Vec<f64> = v.iter().map(|x| x + 1000.0).collect();
        assert!(!data_zero_edge(&far, false));
        assert!(!data_zero_edge(&[0.0; 50], true));
    }
}
