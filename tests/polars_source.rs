//! polars input (cargo feature `polars`): `cargo test --features polars --test polars_source`.
#![cfg(feature = "polars")]

use poisonscan::lineage::{HashMode, RowHasher};
use poisonscan::source::polars::{from_dataframe, from_lazyframe};
use poisonscan::Scanner;
use polars::prelude::*;

fn frame() -> DataFrame {
    let n = 3000usize;
    let f0: Vec<f64> = (0..n)
        .map(|i| ((i * 37 % 101) as f64) / 10.0 + if i % 2 == 0 { 0.0 } else { 50.0 })
        .collect();
    let f1: Vec<f64> = (0..n).map(|i| ((i * 53 % 97) as f64) / 10.0).collect();
    let label: Vec<i64> = (0..n).map(|i| (i % 2) as i64).collect();
    let name: Vec<String> = (0..n).map(|i| format!("r{}", i % 7)).collect();
    df!("id" => (0..n as i64).collect::<Vec<_>>(), "f0" => f0, "f1" => f1, "name" => name, "label" => label).unwrap()
}

#[test]
fn a_dataframe_scans_like_the_same_arrow_data() {
    let df = frame();
    let mut src = from_dataframe(&df, "polars").unwrap();
    let batches: Vec<_> = src.open().unwrap().map(|b| b.unwrap()).collect();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 3000);
    let schema = batches[0].schema();
    assert_eq!(schema.field(3).name(), "name");
    // Strings arrive as Utf8View without a copy; the digest is the same as for plain Utf8.
    let h = RowHasher::new((0..5).collect(), HashMode::Plain);
    let d: Vec<_> = batches
        .iter()
        .flat_map(|b| h.digest_batch(b).unwrap())
        .collect();
    let casted: Vec<_> = batches
        .iter()
        .map(|b| {
            let cols = b
                .columns()
                .iter()
                .map(|c| {
                    arrow::compute::cast(
                        c,
                        &match c.data_type() {
                            arrow::datatypes::DataType::Utf8View => {
                                arrow::datatypes::DataType::Utf8
                            }
                            other => other.clone(),
                        },
                    )
                    .unwrap()
                })
                .collect::<Vec<_>>();
            arrow::array::RecordBatch::try_from_iter(
                schema.fields().iter().map(|f| f.name().clone()).zip(cols),
            )
            .unwrap()
        })
        .collect();
    let d2: Vec<_> = casted
        .iter()
        .flat_map(|b| h.digest_batch(b).unwrap())
        .collect();
    assert_eq!(d, d2);
    let out = Scanner::new(from_lazyframe(df.lazy(), "lazy").unwrap())
        .label("label")
        .id("id")
        .run()
        .unwrap();
    assert_eq!(out.report.rows, 3000);
    assert_eq!(out.report.flagged, 0, "{}", out.report.summary);
}
