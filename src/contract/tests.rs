//! Contract behaviour against known truth: impossible versus unusual, grading order, calibration on clean twins.

use super::profile::{Profiler, Trust};
use super::*;
use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use rand::SeedableRng;
use rand_distr::{Distribution, Exp, Normal, Pareto, Poisson};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::sync::Arc;

fn float_batch(cols: Vec<(&str, Vec<Option<f64>>)>) -> RecordBatch {
    let fields: Vec<Field> = cols
        .iter()
        .map(|(n, _)| Field::new(*n, DataType::Float64, true))
        .collect();
    let arrays: Vec<ArrayRef> = cols
        .into_iter()
        .map(|(_, v)| Arc::new(Float64Array::from(v)) as ArrayRef)
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
}

fn profile(b: &RecordBatch, trust: Trust) -> Contract {
    let mut p = Profiler::new(b.schema(), "ref", None, None);
    p.add_batch(b).unwrap();
    p.finish(trust)
}

fn reference_x() -> RecordBatch {
    let xs: Vec<Option<f64>> = (0..500).map(|i| Some((i % 100) as f64 / 50.0)).collect();
    float_batch(vec![("x", xs)])
}

#[test]
fn impossible_findings_score_one_and_unusual_ones_are_graded_in_order() {
    let c = profile(&reference_x(), Trust::Reference);
    let data = float_batch(vec![(
        "x",
        vec![
            Some(1.0),           // inside
            Some(1.98 * 1.001),  // +0.1% beyond the maximum
            Some(1.98 * 1000.0), // x1000
            Some(-1.0),          // negative: never negative in the reference
            Some(f64::NAN),      // NaN
            Some(f64::INFINITY), // inf
            None,                // null
            Some(1.98 * 2.0),    // twice the maximum
        ],
    )]);
    let checker = ContractChecker::new(&c, &data.schema(), "data").unwrap();
    let (_, found) = checker.check_batch(&data, 100);
    let score = |row: u64| {
        found
            .iter()
            .filter(|v| v.row == row)
            .map(|v| v.score)
            .fold(0.0f32, f32::max)
    };
    let kind = |row: u64| found.iter().find(|v| v.row == row).map(|v| v.kind);
    assert_eq!(kind(100), None);
    assert_eq!(kind(101), Some(ViolationKind::Unusual));
    assert!(score(101) < 0.05, "+0.1% is not flagged: {}", score(101));
    assert!(
        score(102) > 0.99 && score(102) < 1.0,
        "x1000: {}",
        score(102)
    );
    assert!(score(101) < score(107) && score(107) < score(102));
    assert_eq!(kind(103), Some(ViolationKind::Negative));
    assert_eq!(kind(104), Some(ViolationKind::Nan));
    assert_eq!(kind(105), Some(ViolationKind::Inf));
    assert_eq!(kind(106), Some(ViolationKind::Null));
    for row in [103, 104, 105, 106] {
        assert_eq!(score(row), 1.0);
        assert!(found.iter().find(|v| v.row == row).unwrap().impossible());
    }
    let near = found.iter().find(|v| v.row == 101).unwrap();
    assert!(
        !near.flags()
            && near
                .reason()
                .contains("just above the reference maximum 1.98")
    );
    assert!(
        near.reason().ends_with("unusual, not flagged"),
        "{}",
        near.reason()
    );
    let far = found.iter().find(|v| v.row == 102).unwrap();
    assert!(
        far.flags() && far.reason().contains("far above"),
        "{}",
        far.reason()
    );
}

#[test]
fn checks_work_on_sliced_batches() {
    let c = profile(&reference_x(), Trust::Reference);
    let data = float_batch(vec![(
        "x",
        vec![Some(f64::NAN), Some(1.0), Some(3000.0), None, Some(1.5)],
    )]);
    let checker = ContractChecker::new(&c, &data.schema(), "data").unwrap();
    let (_, found) = checker.check_batch(&data.slice(1, 3), 10);
    let rows: Vec<(u64, ViolationKind)> = found.iter().map(|v| (v.row, v.kind)).collect();
    assert_eq!(
        rows,
        vec![(12, ViolationKind::Null), (11, ViolationKind::Unusual)]
    );
}

#[test]
fn declared_hard_bounds_are_impossible() {
    let mut c = profile(&reference_x(), Trust::Reference);
    c.columns[0].max = Some(1.5);
    let data = float_batch(vec![("x", vec![Some(1.6), Some(1.4)])]);
    let (_, found) = ContractChecker::new(&c, &data.schema(), "d")
        .unwrap()
        .check_batch(&data, 0);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, ViolationKind::OutOfRange);
    assert!(found[0]
        .reason()
        .contains("outside the contract's bounds [0.0, 1.5]: impossible"));
}

#[test]
fn version_1_contracts_are_read_and_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = profile(&reference_x(), Trust::Reference);
    c.contract_version = 1;
    for col in &mut c.columns {
        col.min = Some(0.0);
        col.max = Some(4.0);
        col.range = None;
        col.flag_beyond = None;
        col.log_flag_above = None;
    }
    let p = dir.path().join("v1.json");
    let mut v: serde_json::Value = serde_json::from_str(&c.to_json()).unwrap();
    for col in v["columns"].as_array_mut().unwrap() {
        let o = col.as_object_mut().unwrap();
        for k in ["range", "flag_beyond", "log_flag_above", "null_proportion"] {
            o.remove(k);
        }
    }
    std::fs::write(&p, v.to_string()).unwrap();
    let read = Contract::read(&p).unwrap();
    assert_eq!(read.contract_version, CONTRACT_VERSION);
    let x = &read.columns[0];
    assert_eq!(
        (x.min, x.max, x.range, x.flag_beyond),
        (Some(0.0), None, Some([0.0, 4.0]), Some([1.0, 1.0]))
    );
    let mut v: serde_json::Value = serde_json::from_str(&c.to_json()).unwrap();
    v["contract_version"] = serde_json::json!(7);
    std::fs::write(&p, v.to_string()).unwrap();
    assert!(Contract::read(&p)
        .unwrap_err()
        .to_string()
        .contains("reads versions 1 and 2"));
}

/// 64 columns of the shapes real tables have (normal, exponential, heavy Pareto, Poisson counts, sparse integers,
/// constant), a 360-row reference and a 1,000-row clean twin from the same distribution.
fn mixed_table(rows: usize, seed: u64) -> RecordBatch {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let normal = Normal::new(5.0, 2.0).unwrap();
    let exp = Exp::new(0.5).unwrap();
    let pareto = Pareto::new(1.0, 2.5).unwrap();
    let poisson = Poisson::new(3.0).unwrap();
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for j in 0..64 {
        let name = format!("f{j}");
        match j % 6 {
            0 => {
                let v: Vec<f64> = (0..rows).map(|_| normal.sample(&mut rng)).collect();
                fields.push(Field::new(name, DataType::Float64, false));
                arrays.push(Arc::new(Float64Array::from(v)));
            }
            1 => {
                let v: Vec<f64> = (0..rows).map(|_| exp.sample(&mut rng)).collect();
                fields.push(Field::new(name, DataType::Float64, false));
                arrays.push(Arc::new(Float64Array::from(v)));
            }
            2 => {
                let v: Vec<f64> = (0..rows).map(|_| pareto.sample(&mut rng)).collect();
                fields.push(Field::new(name, DataType::Float64, false));
                arrays.push(Arc::new(Float64Array::from(v)));
            }
            3 => {
                let v: Vec<i64> = (0..rows).map(|_| poisson.sample(&mut rng) as i64).collect();
                fields.push(Field::new(name, DataType::Int64, false));
                arrays.push(Arc::new(Int64Array::from(v)));
            }
            4 => {
                // sparse pixels: mostly 0, sometimes 1..16
                let v: Vec<i64> = (0..rows)
                    .map(|_| {
                        if rand::Rng::gen_bool(&mut rng, 0.03) {
                            rand::Rng::gen_range(&mut rng, 1..=16)
                        } else {
                            0
                        }
                    })
                    .collect();
                fields.push(Field::new(name, DataType::Int64, false));
                arrays.push(Arc::new(Int64Array::from(v)));
            }
            _ => {
                let v: Vec<&str> = (0..rows)
                    .map(|_| ["a", "b", "c"][rand::Rng::gen_range(&mut rng, 0..3)])
                    .collect();
                fields.push(Field::new(name, DataType::Utf8, false));
                arrays.push(Arc::new(StringArray::from(v)));
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
}

fn floats(b: &RecordBatch, column: usize) -> Vec<f64> {
    b.column(column)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap()
        .values()
        .to_vec()
}

fn rows_flagged(c: &Contract, data: &RecordBatch) -> (usize, usize) {
    let (_, found) = ContractChecker::new(c, &data.schema(), "data")
        .unwrap()
        .check_batch(data, 0);
    let mut flagged: Vec<u64> = found.iter().filter(|v| v.flags()).map(|v| v.row).collect();
    flagged.sort();
    flagged.dedup();
    let mut touched: Vec<u64> = found.iter().map(|v| v.row).collect();
    touched.sort();
    touched.dedup();
    (flagged.len(), touched.len())
}

#[test]
fn a_clean_twin_of_64_columns_is_almost_never_flagged_with_or_without_a_reference() {
    let reference = mixed_table(360, 1);
    let twin = mixed_table(1000, 2);
    let c = profile(&reference, Trust::Reference);
    let (flagged, touched) = rows_flagged(&c, &twin);
    // Many clean rows hold some value just beyond a 360-row reference's range; almost none is flagged.
    assert!(
        touched > 100,
        "values beyond the range are common: {touched}"
    );
    assert!(
        flagged <= 5,
        "{flagged} of 1000 clean rows flagged with a reference"
    );
    let inferred = profile(&twin, Trust::Data);
    let (flagged, _) = rows_flagged(&inferred, &twin);
    assert!(
        flagged <= 5,
        "{flagged} of 1000 clean rows flagged without a reference"
    );
}

/// The twin with one cell corrupted in each of 12 rows: x1000 on a normal column, negative Poisson counts, NaN.
fn corrupted_twin() -> (RecordBatch, Vec<usize>) {
    let twin = mixed_table(1000, 2);
    let mut cols: Vec<ArrayRef> = twin.columns().to_vec();
    let f0 = floats(&twin, 0);
    let mut f0c = f0.clone();
    let mut f1 = floats(&twin, 1);
    let mut f3: Vec<i64> = twin
        .column(3)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .values()
        .to_vec();
    let bad: Vec<usize> = (0..12).map(|i| i * 83 + 5).collect();
    for (k, &r) in bad.iter().enumerate() {
        match k % 3 {
            0 => f0c[r] = f0[r] * 1000.0,
            1 => f3[r] = -f3[r] - 1,
            _ => f1[r] = f64::NAN,
        }
    }
    cols[0] = Arc::new(Float64Array::from(f0c));
    cols[1] = Arc::new(Float64Array::from(f1));
    cols[3] = Arc::new(Int64Array::from(f3));
    (RecordBatch::try_new(twin.schema(), cols).unwrap(), bad)
}

fn assert_corrupted_rows_outrank_clean(
    c: &Contract,
    data: &RecordBatch,
    bad: &[usize],
) -> Vec<Violation> {
    let (_, found) = ContractChecker::new(c, &data.schema(), "d")
        .unwrap()
        .check_batch(data, 0);
    let mut score = vec![0.0f32; data.num_rows()];
    for v in &found {
        score[v.row as usize] = score[v.row as usize].max(v.score);
    }
    let worst_clean = (0..data.num_rows())
        .filter(|i| !bad.contains(i))
        .map(|i| score[i])
        .fold(0.0, f32::max);
    for &r in bad {
        assert!(
            score[r] >= 0.5 && score[r] > worst_clean,
            "row {r}: {} vs clean {worst_clean}",
            score[r]
        );
    }
    found
}

#[test]
fn corrupted_cells_in_the_twin_are_all_found_and_outrank_clean_rows() {
    let c = profile(&mixed_table(360, 1), Trust::Reference);
    let (data, bad) = corrupted_twin();
    assert_corrupted_rows_outrank_clean(&c, &data, &bad);
}

#[test]
fn without_a_reference_negative_counts_are_impossible_and_all_corrupted_cells_outrank_clean_rows() {
    let (data, bad) = corrupted_twin();
    let c = profile(&data, Trust::Data);
    // Poisson counts pile up at 0: 0 is the column's edge even though the data holds 4 negative values.
    assert_eq!(c.columns[3].min, Some(0.0));
    // A normal column centred at 5 (sd 2) is not bounded at 0.
    assert_eq!(c.columns[0].min, None);
    let found = assert_corrupted_rows_outrank_clean(&c, &data, &bad);
    for (k, &r) in bad.iter().enumerate() {
        if k % 3 == 1 {
            let v = found
                .iter()
                .find(|v| v.row == r as u64 && v.column == "f3")
                .unwrap();
            assert_eq!(v.kind, ViolationKind::Negative, "{}", v.reason());
            assert!(
                v.reason().contains("never negative in the data"),
                "{}",
                v.reason()
            );
        }
    }
}

#[test]
fn types_must_match_the_contract_and_contract_files_name_real_types() {
    use arrow::array::{Array, FixedSizeListBuilder, Float32Builder};
    let mut eb = FixedSizeListBuilder::new(Float32Builder::new(), 3);
    for i in 0..40 {
        eb.values().append_slice(&[i as f32, 1.0, 2.0]);
        eb.append(true);
    }
    let emb = eb.finish();
    let schema = Arc::new(Schema::new(vec![
        Field::new("f0", DataType::Int64, false),
        Field::new("label", DataType::Utf8, false),
        Field::new("emb", emb.data_type().clone(), false),
    ]));
    let reference = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values((0..40).map(|i| i * 7 % 5))),
            Arc::new(StringArray::from_iter_values((0..40).map(|i| {
                if i % 2 == 0 {
                    "a"
                } else {
                    "b"
                }
            }))),
            Arc::new(emb),
        ],
    )
    .unwrap();
    let mut p = Profiler::new(schema, "ref", Some("label"), None);
    p.add_batch(&reference).unwrap();
    let c = p.finish(Trust::Reference);
    // Every dtype a profile writes (lists included) reads back.
    let back = Contract::from_json(&c.to_json(), std::path::Path::new("c.json")).unwrap();
    let dtypes = |c: &Contract| {
        c.columns
            .iter()
            .map(|x| x.dtype.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(dtypes(&back), dtypes(&c));
    assert!(c.columns.iter().all(|x| !x.key), "no key column here");
    // A dtype that is no Arrow type, or of another family than written beside it, is refused.
    for (from, to) in [("\"Int64\"", "\"Banana\""), ("\"Int64\"", "\"Float64\"")] {
        let text = c.to_json().replacen(from, to, 1);
        let e = Contract::from_json(&text, std::path::Path::new("c.json")).unwrap_err();
        assert!(e.to_string().contains("f0"), "{e}");
    }
    let emb_type = reference.column(2).data_type().clone();
    let mismatch = |cols: Vec<(&str, DataType)>, widen: bool| {
        let mut fields: Vec<Field> = cols
            .into_iter()
            .map(|(n, t)| Field::new(n, t, true))
            .collect();
        fields.push(Field::new("emb", emb_type.clone(), false));
        ContractChecker::with_widening(&c, &Arc::new(Schema::new(fields)), "data", widen).err()
    };
    let labels = DataType::Utf8;
    let floats = DataType::Float64;
    let ints = DataType::Int64;
    // Float data in an int column: refused, both types named, even with widening.
    for widen in [false, true] {
        let e = mismatch(
            vec![("f0", floats.clone()), ("label", labels.clone())],
            widen,
        )
        .unwrap();
        let m = e.to_string();
        assert!(
            m.contains("Int64") && m.contains("Float64") && m.contains("f0"),
            "{m}"
        );
    }
    // An int label where the contract's is text: refused.
    let e = mismatch(vec![("f0", ints.clone()), ("label", ints.clone())], true).unwrap();
    assert!(e.to_string().contains("label"), "{e}");
    // The same types: accepted.
    assert!(mismatch(vec![("f0", ints.clone()), ("label", labels.clone())], false).is_none());
}

/// 2,000 rows: an hour of the working day (uniform on 6-24 h: 0 is not its edge) with 3 mirrored negative values
/// (rows 11, 500, 1333), a heavy-tailed amount (clean, its top values lie beyond the data's 99.5th percentile), a
/// complete column with 3 nulls (rows 77, 901, 1700) and, if `optional` is set, a column null in 5% of the rows.
fn rare_nulls_and_signs(optional: bool) -> (Contract, RecordBatch) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    let pareto = Pareto::new(100.0, 1.5).unwrap();
    let n = 2000;
    let mut hour: Vec<Option<f64>> = (0..n)
        .map(|_| Some(rand::Rng::gen_range(&mut rng, 6.0..24.0)))
        .collect();
    let amount: Vec<Option<f64>> = (0..n).map(|_| Some(pareto.sample(&mut rng))).collect();
    let mut complete: Vec<Option<f64>> = (0..n)
        .map(|_| Some(rand::Rng::gen_range(&mut rng, 0.0..1.0)))
        .collect();
    let (signs, nulls) = ([11usize, 500, 1333], [77usize, 901, 1700]);
    for &r in &signs {
        hour[r] = hour[r].map(|h| -h);
    }
    for &r in &nulls {
        complete[r] = None;
    }
    let mut cols = vec![("hour", hour), ("amount", amount), ("complete", complete)];
    if optional {
        let opt = (0..n).map(|i| (i % 20 != 3).then_some(i as f64)).collect();
        cols.push(("optional", opt));
    }
    let data = float_batch(cols);
    let c = profile(&data, Trust::Data);
    (c, data)
}

#[test]
fn without_a_reference_rare_nulls_and_signs_outrank_unflagged_values_beyond_the_range() {
    // Nulls are common in another column, so the 3 of the complete column are graded by rarity, not flagged.
    let (c, data) = rare_nulls_and_signs(true);
    let (n, signs, nulls) = (2000, [11usize, 500, 1333], [77usize, 901, 1700]);
    assert_eq!(
        c.columns[0].min, None,
        "hours from 6 to 24 are not bounded at 0"
    );
    let (_, found) = ContractChecker::new(&c, &data.schema(), "d")
        .unwrap()
        .check_batch(&data, 0);
    let mut score = vec![0.0f32; n];
    for v in &found {
        score[v.row as usize] = score[v.row as usize].max(v.score);
    }
    for &r in &signs {
        let v = found
            .iter()
            .find(|v| v.row == r as u64 && v.column == "hour" && v.score >= 0.25)
            .unwrap_or_else(|| panic!("row {r}: no rare-sign finding"));
        assert!(
            v.reason()
                .contains("is negative, and negatives are rare in the column: 3 of 2000"),
            "{}",
            v.reason()
        );
    }
    let rare: Vec<usize> = signs.iter().chain(&nulls).copied().collect();
    let amount_only: Vec<f32> = (0..n)
        .filter(|i| !rare.contains(i))
        .map(|i| score[i])
        .filter(|&s| s > 0.0 && s < 0.5)
        .collect();
    assert!(
        amount_only.len() >= 5,
        "the heavy tail's top values are unusual: {amount_only:?}"
    );
    let worst = amount_only.iter().copied().fold(0.0, f32::max);
    for &r in &rare {
        assert!(
            score[r] > worst,
            "row {r}: {} vs unflagged beyond-range values up to {worst}",
            score[r]
        );
    }
    // Three nulls in 2,000 rows are graded, not flagged: missing values are part of this data.
    for &r in &nulls {
        assert!(score[r] < 0.5, "row {r}: {}", score[r]);
        let v = found
            .iter()
            .find(|v| v.row == r as u64 && v.column == "complete")
            .unwrap();
        assert!(
            v.reason()
                .contains("but nulls are part of the data (optional is null in 5.00% of the rows)"),
            "{}",
            v.reason()
        );
    }
}

#[test]
fn without_a_reference_rare_nulls_in_data_without_common_nulls_are_impossible() {
    // The same data without the optional column: no column has more than 3 nulls, so a null is as foreign to the
    // data as a NaN.
    let (c, data) = rare_nulls_and_signs(false);
    let (_, found) = ContractChecker::new(&c, &data.schema(), "d")
        .unwrap()
        .check_batch(&data, 0);
    let nulls: Vec<&Violation> = found
        .iter()
        .filter(|v| v.kind == ViolationKind::Null)
        .collect();
    let rows: Vec<u64> = nulls.iter().map(|v| v.row).collect();
    assert_eq!(rows, vec![77, 901, 1700]);
    for v in nulls {
        assert!(v.impossible() && v.score == 1.0);
        assert!(
            v.reason().contains(
                "almost never null in the data: 3 of 2000 rows, and no column of the data has more than a rare \
                 few nulls"
            ),
            "{}",
            v.reason()
        );
    }
}

#[test]
fn a_heavy_tail_that_reaches_below_zero_is_graded_on_its_logarithm() {
    // A kurtosis-like column: heavy above, negative at times (Pareto shifted by -1.5). Its clean top values are
    // not flagged, with or without a reference; a thousand times its largest clean value is.
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
    let pareto = Pareto::new(1.0, 2.0).unwrap();
    let draw = |rng: &mut Xoshiro256PlusPlus, n: usize| -> Vec<Option<f64>> {
        (0..n).map(|_| Some(pareto.sample(rng) - 1.5)).collect()
    };
    for trust in [Trust::Reference, Trust::Data] {
        let (mut flagged, mut total) = (0usize, 0usize);
        for _ in 0..20 {
            let reference = float_batch(vec![("k", draw(&mut rng, 1600))]);
            let c = profile(&reference, trust);
            assert!(c.columns[0].log_flag_above.is_some(), "{trust:?}");
            let fresh = float_batch(vec![("k", draw(&mut rng, 1600))]);
            let (_, found) = ContractChecker::new(&c, &fresh.schema(), "d")
                .unwrap()
                .check_batch(&fresh, 0);
            flagged += found.iter().filter(|v| v.flags()).count();
            total += 1600;
            let max = c.columns[0].observed.map_or(0.0, |o| o[1]);
            let poisoned = float_batch(vec![("k", vec![Some(1000.0 * max)])]);
            let (_, found) = ContractChecker::new(&c, &poisoned.schema(), "d")
                .unwrap()
                .check_batch(&poisoned, 0);
            assert!(found.iter().any(|v| v.flags()), "{trust:?}: {found:?}");
        }
        // Far under the 0.5% of rows the contract may flag on clean data.
        assert!(
            (flagged as f64) < 0.001 * total as f64,
            "{trust:?}: {flagged} of {total}"
        );
    }
}

#[test]
fn without_a_reference_a_rare_category_of_a_new_form_is_flagged_and_a_rare_one_of_a_common_form_is_not(
) {
    // 2,000 rows of a marital status: three common words, a rare legitimate word seen 4 times ('widow') and a
    // corrupted marker seen 4 times ('??corrupt??'). Both are rare; only the marker has a form ('?a?') that none of
    // the common values ('a') has.
    let n = 2000;
    let mut status: Vec<&str> = (0..n)
        .map(|i| ["married", "single", "divorced"][i % 3])
        .collect();
    let (widow, corrupt) = ([5usize, 600, 1200, 1800], [17usize, 700, 1300, 1901]);
    for &r in &widow {
        status[r] = "widow";
    }
    for &r in &corrupt {
        status[r] = "??corrupt??";
    }
    let schema = Arc::new(Schema::new(vec![Field::new(
        "status",
        DataType::Utf8,
        false,
    )]));
    let data = RecordBatch::try_new(
        schema,
        vec![Arc::new(StringArray::from(status)) as ArrayRef],
    )
    .unwrap();
    let c = profile(&data, Trust::Data);
    let (_, found) = ContractChecker::new(&c, &data.schema(), "d")
        .unwrap()
        .check_batch(&data, 0);
    let score = |r: usize| {
        found
            .iter()
            .filter(|v| v.row == r as u64)
            .map(|v| v.score)
            .fold(0.0f32, f32::max)
    };
    for &r in &corrupt {
        assert!(score(r) >= 0.5, "row {r}: {}", score(r));
        let v = found.iter().find(|v| v.row == r as u64).unwrap();
        assert!(
            v.reason()
                .contains("of a form ('?a?') that no common value of the column has"),
            "{}",
            v.reason()
        );
    }
    for &r in &widow {
        assert!(score(r) > 0.0 && score(r) < 0.5, "row {r}: {}", score(r));
    }
    assert_eq!(super::checker::form("Married 2x"), "Aa 9a");
    assert_eq!(super::checker::form("12-b"), "9-a");
}
