//! Deterministic synthetic datasets with ground-truth poison labels, for fixtures, tests and benchmarks.
//!
//! Clean data: `classes` Gaussian blobs in `dim` dimensions with unit variance, class means drawn so that two means
//! are about `separation` standard deviations apart. Poisoning functions return a new dataset and mark the poisoned
//! rows, so detectors can be scored against known truth. Every poisoned dataset has a clean twin (same generator,
//! another seed, no poison).

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::sync::Arc;

/// Shape of a synthetic dataset.
#[derive(Debug, Clone, Copy)]
pub struct SynthSpec {
    /// Rows.
    pub rows: usize,
    /// Feature dimensions.
    pub dim: usize,
    /// Classes.
    pub classes: usize,
    /// Typical distance between two class means, in standard deviations.
    pub separation: f64,
    /// Seed of the class means (shared by a dataset, its reference and its clean twin).
    pub world_seed: u64,
}

/// A dataset with ground truth.
#[derive(Debug, Clone)]
pub struct SynthData {
    /// Features, row-major.
    pub x: Vec<Vec<f64>>,
    /// Labels.
    pub labels: Vec<i64>,
    /// Ground truth: what poisoned each row (`None` for clean rows).
    pub poison: Vec<Option<&'static str>>,
    /// Class means.
    pub means: Vec<Vec<f64>>,
}

fn rng(seed: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed)
}

fn normal() -> Normal<f64> {
    Normal::new(0.0, 1.0).unwrap_or_else(|_| unreachable!("unit normal is valid"))
}

impl SynthSpec {
    /// Class means of this world.
    pub fn means(&self) -> Vec<Vec<f64>> {
        let mut r = rng(self.world_seed);
        let s = self.separation / (2.0 * self.dim as f64).sqrt();
        (0..self.classes)
            .map(|_| (0..self.dim).map(|_| s * normal().sample(&mut r)).collect())
            .collect()
    }

    /// Clean rows drawn with `seed`.
    pub fn clean(&self, seed: u64) -> SynthData {
        let means = self.means();
        let mut r = rng(seed);
        let mut x = Vec::with_capacity(self.rows);
        let mut labels = Vec::with_capacity(self.rows);
        for i in 0..self.rows {
            let c = i % self.classes;
            x.push(
                means[c]
                    .iter()
                    .map(|m| m + normal().sample(&mut r))
                    .collect(),
            );
            labels.push(c as i64);
        }
        // Shuffle rows so classes interleave irregularly.
        for i in (1..x.len()).rev() {
            let j = r.gen_range(0..=i);
            x.swap(i, j);
            labels.swap(i, j);
        }
        SynthData {
            poison: vec![None; x.len()],
            x,
            labels,
            means,
        }
    }
}

impl SynthData {
    /// Rows.
    pub fn len(&self) -> usize {
        self.x.len()
    }
    /// True for zero rows.
    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }
    /// Number of poisoned rows.
    pub fn poisoned(&self) -> usize {
        self.poison.iter().filter(|p| p.is_some()).count()
    }
    fn classes(&self) -> usize {
        self.means.len()
    }

    /// Relabel `rate` of all rows to a random other class.
    pub fn random_flips(mut self, rate: f64, seed: u64) -> SynthData {
        let mut r = rng(seed);
        let k = self.classes() as i64;
        let n = (self.len() as f64 * rate).round() as usize;
        let mut idx: Vec<usize> = (0..self.len()).collect();
        for i in 0..n {
            let j = r.gen_range(i..idx.len());
            idx.swap(i, j);
            let row = idx[i];
            let shift = r.gen_range(1..k);
            self.labels[row] = (self.labels[row] + shift) % k;
            self.poison[row] = Some("random_flip");
        }
        self
    }

    /// Relabel `rate` of class `a` as class `b`.
    pub fn targeted_flips(mut self, a: i64, b: i64, rate: f64, seed: u64) -> SynthData {
        let mut r = rng(seed);
        for i in 0..self.len() {
            if self.labels[i] == a && r.gen::<f64>() < rate {
                self.labels[i] = b;
                self.poison[i] = Some("targeted_flip");
            }
        }
        self
    }

    /// Relabel as `b` the `count` rows of class `a` nearest to class `b`'s mean.
    pub fn boundary_flips(mut self, a: i64, b: i64, count: usize) -> SynthData {
        let mb = self.means[b as usize].clone();
        let mut rows: Vec<(f64, usize)> = (0..self.len())
            .filter(|&i| self.labels[i] == a)
            .map(|i| {
                (
                    self.x[i]
                        .iter()
                        .zip(&mb)
                        .map(|(x, m)| (x - m).powi(2))
                        .sum::<f64>(),
                    i,
                )
            })
            .collect();
        rows.sort_by(|p, q| p.0.total_cmp(&q.0));
        for &(_, i) in rows.iter().take(count) {
            self.labels[i] = b;
            self.poison[i] = Some("boundary_flip");
        }
        self
    }

    /// Append `count` backdoor rows: copies of class-`a` rows with a trigger on the first three features, labelled
    /// `b`. `in_range`: the trigger value is inside the clean range of those features (else far outside it).
    pub fn backdoor(
        mut self,
        a: i64,
        b: i64,
        count: usize,
        in_range: bool,
        seed: u64,
    ) -> SynthData {
        let mut r = rng(seed);
        let src: Vec<usize> = (0..self.len())
            .filter(|&i| self.labels[i] == a && self.poison[i].is_none())
            .collect();
        if src.is_empty() {
            return self;
        }
        let dims = self.x[0].len().min(3);
        let trigger: Vec<f64> = (0..dims)
            .map(|d| {
                if in_range {
                    // A value clean rows do take, but that class a rows rarely do: the class-a mean shifted by 1.5 sd.
                    self.means[a as usize][d] + 1.5
                } else {
                    self.means[a as usize][d] + 12.0
                }
            })
            .collect();
        for _ in 0..count {
            let s = src[r.gen_range(0..src.len())];
            let mut row = self.x[s].clone();
            row[..dims].copy_from_slice(&trigger);
            self.x.push(row);
            self.labels.push(b);
            self.poison.push(Some(if in_range {
                "backdoor_in_range"
            } else {
                "backdoor_out_of_range"
            }));
        }
        self
    }

    /// Append `count` near copies (noise 1e-4 sd) of random clean rows under another label.
    pub fn conflicting_duplicates(mut self, count: usize, exact: bool, seed: u64) -> SynthData {
        let mut r = rng(seed);
        let k = self.classes() as i64;
        let n = self.len();
        for _ in 0..count {
            let s = r.gen_range(0..n);
            let row: Vec<f64> = if exact {
                self.x[s].clone()
            } else {
                self.x[s]
                    .iter()
                    .map(|v| v + 1e-4 * normal().sample(&mut r))
                    .collect()
            };
            self.x.push(row);
            self.labels.push((self.labels[s] + r.gen_range(1..k)) % k);
            self.poison.push(Some(if exact {
                "duplicate_conflict"
            } else {
                "near_duplicate_conflict"
            }));
        }
        self
    }

    /// As an Arrow batch: `id` (Int64), `f0..f{d-1}` (Float64), `label` (Int64).
    pub fn to_batch(&self) -> RecordBatch {
        let d = self.x.first().map(|r| r.len()).unwrap_or(0);
        let mut fields = vec![Field::new("id", DataType::Int64, false)];
        let mut cols: Vec<ArrayRef> =
            vec![Arc::new(Int64Array::from_iter_values(0..self.len() as i64))];
        for j in 0..d {
            fields.push(Field::new(format!("f{j}"), DataType::Float64, false));
            cols.push(Arc::new(Float64Array::from_iter_values(
                self.x.iter().map(|r| r[j]),
            )));
        }
        fields.push(Field::new("label", DataType::Int64, false));
        cols.push(Arc::new(Int64Array::from(self.labels.clone())));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
            .unwrap_or_else(|_| unreachable!("columns match the schema by construction"))
    }
}

/// Tabular fixture for contract checks: `id`, `f0..f5` (Float64), `count` (Int64, never negative), `channel`
/// (Utf8 from a small set), `label` (Int64 0..3).
#[derive(Debug, Clone)]
pub struct TabularRows {
    /// Ids.
    pub id: Vec<i64>,
    /// Float features, one Vec per column.
    pub f: Vec<Vec<f64>>,
    /// Counts.
    pub count: Vec<i64>,
    /// Channel.
    pub channel: Vec<String>,
    /// Labels.
    pub label: Vec<i64>,
    /// Ground truth.
    pub poison: Vec<Option<&'static str>>,
}

const CHANNELS: [&str; 3] = ["web", "store", "phone"];

impl TabularRows {
    /// Clean rows of the tabular world.
    pub fn clean(rows: usize, seed: u64) -> TabularRows {
        let spec = SynthSpec {
            rows,
            dim: 6,
            classes: 4,
            separation: 8.0,
            world_seed: 7,
        };
        let base = spec.clean(seed);
        let mut r = rng(seed ^ 0xabc);
        let count = (0..rows)
            .map(|_| (3.0 + 1.5 * normal().sample(&mut r)).abs().round() as i64)
            .collect();
        let channel = (0..rows)
            .map(|_| CHANNELS[r.gen_range(0..3)].to_string())
            .collect();
        TabularRows {
            id: (0..rows as i64).collect(),
            f: (0..6)
                .map(|j| base.x.iter().map(|row| row[j]).collect())
                .collect(),
            count,
            channel,
            label: base.labels,
            poison: vec![None; rows],
        }
    }

    /// Corrupt 42 rows in place (6 of each kind): NaN, +inf, -inf, extreme values, negative counts, unknown labels
    /// and unknown categories; `poison` records the kind.
    pub fn corrupt(&mut self, seed: u64) {
        let mut r = rng(seed);
        let kinds: [&'static str; 7] = [
            "nan",
            "inf",
            "neg_inf",
            "extreme",
            "negative_count",
            "unknown_label",
            "unknown_category",
        ];
        let n = self.id.len();
        let mut used = std::collections::HashSet::new();
        for (k, kind) in kinds.iter().enumerate() {
            for _ in 0..6 {
                let mut row = r.gen_range(0..n);
                while !used.insert(row) {
                    row = r.gen_range(0..n);
                }
                let col = (k + row) % 6;
                match *kind {
                    "nan" => self.f[col][row] = f64::NAN,
                    "inf" => self.f[col][row] = f64::INFINITY,
                    "neg_inf" => self.f[col][row] = f64::NEG_INFINITY,
                    "extreme" => self.f[col][row] = 1e6,
                    "negative_count" => self.count[row] = -5,
                    "unknown_label" => self.label[row] = 99,
                    _ => self.channel[row] = "zzz".into(),
                }
                self.poison[row] = Some(kind);
            }
        }
    }

    /// As an Arrow batch.
    pub fn to_batch(&self) -> RecordBatch {
        let mut fields = vec![Field::new("id", DataType::Int64, false)];
        let mut cols: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(self.id.clone()))];
        for (j, c) in self.f.iter().enumerate() {
            fields.push(Field::new(format!("f{j}"), DataType::Float64, false));
            cols.push(Arc::new(Float64Array::from(c.clone())));
        }
        fields.push(Field::new("count", DataType::Int64, false));
        cols.push(Arc::new(Int64Array::from(self.count.clone())));
        fields.push(Field::new("channel", DataType::Utf8, false));
        cols.push(Arc::new(StringArray::from_iter_values(self.channel.iter())));
        fields.push(Field::new("label", DataType::Int64, false));
        cols.push(Arc::new(Int64Array::from(self.label.clone())));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
            .unwrap_or_else(|_| unreachable!("columns match the schema by construction"))
    }
}

/// Detection quality against ground truth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    /// Share of true poisons among the `k` highest scores, `k` = number of true poisons.
    pub precision_at_k: f64,
    /// Share of true poisons flagged.
    pub recall: f64,
    /// Share of flagged rows that are poisons.
    pub precision: f64,
    /// Area under the ROC curve of the scores.
    pub roc_auc: f64,
    /// Share of clean rows flagged.
    pub false_positive_rate: f64,
}

/// Score detection against truth (`truth[i]` = row i is poisoned).
pub fn quality(scores: &[f32], flagged: &[bool], truth: &[bool]) -> Quality {
    let pos = truth.iter().filter(|&&t| t).count();
    let neg = truth.len() - pos;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let at_k = order.iter().take(pos).filter(|&&i| truth[i]).count();
    let tp = (0..truth.len()).filter(|&i| truth[i] && flagged[i]).count();
    let fp = (0..truth.len())
        .filter(|&i| !truth[i] && flagged[i])
        .count();
    // AUC by ranks (ties share the average rank).
    let mut ranked: Vec<usize> = (0..scores.len()).collect();
    ranked.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut ranks = vec![0f64; scores.len()];
    let mut i = 0;
    while i < ranked.len() {
        let mut j = i;
        while j + 1 < ranked.len() && scores[ranked[j + 1]] == scores[ranked[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &k in &ranked[i..=j] {
            ranks[k] = r;
        }
        i = j + 1;
    }
    let sum_pos: f64 = (0..truth.len())
        .filter(|&i| truth[i])
        .map(|i| ranks[i])
        .sum();
    let auc = if pos > 0 && neg > 0 {
        (sum_pos - (pos * (pos + 1)) as f64 / 2.0) / (pos * neg) as f64
    } else {
        f64::NAN
    };
    Quality {
        precision_at_k: if pos > 0 {
            at_k as f64 / pos as f64
        } else {
            f64::NAN
        },
        recall: if pos > 0 {
            tp as f64 / pos as f64
        } else {
            f64::NAN
        },
        precision: if tp + fp > 0 {
            tp as f64 / (tp + fp) as f64
        } else {
            f64::NAN
        },
        roc_auc: auc,
        false_positive_rate: if neg > 0 { fp as f64 / neg as f64 } else { 0.0 },
    }
}

/// A quality-benchmark case: a world, a poisoning, and a clean twin.
#[derive(Debug, Clone)]
pub struct Case {
    /// Name for tables.
    pub name: String,
    /// The world.
    pub spec: SynthSpec,
    /// The poisoning applied to clean rows.
    pub poison: fn(SynthData) -> SynthData,
}

impl Case {
    /// (reference, poisoned data, clean twin).
    pub fn build(&self) -> (SynthData, SynthData, SynthData) {
        (
            self.spec.clean(101),
            (self.poison)(self.spec.clean(102)),
            self.spec.clean(103),
        )
    }
}

fn spec(rows: usize, dim: usize, classes: usize) -> SynthSpec {
    SynthSpec {
        rows,
        dim,
        classes,
        separation: 8.0,
        world_seed: (dim * 100 + classes) as u64,
    }
}

/// The cases of the quality benchmark (and of the detector tests).
pub fn quality_cases() -> Vec<Case> {
    let mut v = Vec::new();
    // (rows, dims, classes, separation): the last world has overlapping classes (a few % Bayes error).
    let worlds = [
        (4000, 10, 2, 8.0),
        (4000, 32, 5, 8.0),
        (6000, 64, 10, 8.0),
        (8000, 128, 20, 8.0),
        (4000, 16, 4, 4.5),
    ];
    for &(rows, dim, classes, sep) in &worlds {
        let w = |name: &str, poison: fn(SynthData) -> SynthData| Case {
            name: format!("{name} (d={dim}, c={classes}, sep={sep})"),
            spec: SynthSpec {
                separation: sep,
                ..spec(rows, dim, classes)
            },
            poison,
        };
        v.push(w("random flips 5%", |d| d.random_flips(0.05, 1)));
        v.push(w("random flips 20%", |d| d.random_flips(0.20, 2)));
        v.push(w("targeted flips 0->1 (30% of class 0)", |d| {
            d.targeted_flips(0, 1, 0.3, 3)
        }));
        v.push(w("boundary flips 0->1 (40 rows)", |d| {
            d.boundary_flips(0, 1, 40)
        }));
        v.push(w("backdoor, out-of-range trigger (60 rows)", |d| {
            d.backdoor(0, 1, 60, false, 4)
        }));
        v.push(w("backdoor, in-range trigger (60 rows)", |d| {
            d.backdoor(0, 1, 60, true, 5)
        }));
        v.push(w("near duplicates, conflicting labels (40)", |d| {
            d.conflicting_duplicates(40, false, 6)
        }));
    }
    v
}
