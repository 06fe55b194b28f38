//! Writes the fixtures in `fixtures/` (deterministic): `cargo run --example make_fixtures -- fixtures`.
//!
//! - Tabular world (contract checks): `reference.parquet` (trusted), `clean.parquet` / `clean.csv` (clean twin),
//!   `corrupted.parquet` and `corrupted.csv` (NaN, inf, extremes, negative counts, unknown labels and categories;
//!   the CSV adds values that are not numbers), each with a `.truth.csv` (row, kind).
//! - Training world (detectors): `train_reference.parquet`, `train_clean.parquet` (clean twin) and
//!   `train_poisoned.parquet` (random label flips, an in-range backdoor, conflicting duplicates) with its truth file.
//! - `broken/`: a truncated Parquet file, an empty file, a file with the wrong schema, one with zero rows, and a
//!   text file named `.parquet`.

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use poisonscan::synth::{SynthSpec, TabularRows};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

fn write_parquet(path: &Path, batch: &RecordBatch) {
    let f = std::fs::File::create(path).expect("create fixture");
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(512))
        .build();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(f, batch.schema(), Some(props)).expect("writer");
    w.write(batch).expect("write");
    w.close().expect("close");
}

fn write_truth(path: &Path, poison: &[Option<&str>]) {
    let mut f = std::fs::File::create(path).expect("create truth");
    writeln!(f, "row,kind").unwrap();
    for (i, p) in poison.iter().enumerate() {
        if let Some(k) = p {
            writeln!(f, "{i},{k}").unwrap();
        }
    }
}

fn write_csv(path: &Path, t: &TabularRows, wrong_type: &[usize]) {
    let mut f = std::fs::File::create(path).expect("create csv");
    writeln!(f, "id,f0,f1,f2,f3,f4,f5,count,channel,label").unwrap();
    for i in 0..t.id.len() {
        let mut cells = vec![t.id[i].to_string()];
        for (j, c) in t.f.iter().enumerate() {
            cells.push(if j == 2 && wrong_type.contains(&i) {
                "abc".to_string()
            } else {
                format!("{}", c[i])
            });
        }
        cells.push(t.count[i].to_string());
        cells.push(t.channel[i].clone());
        cells.push(t.label[i].to_string());
        writeln!(f, "{}", cells.join(",")).unwrap();
    }
}

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "fixtures".into());
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir.join("broken")).expect("create fixture folder");

    // Tabular world.
    let reference = TabularRows::clean(2000, 1);
    write_parquet(&dir.join("reference.parquet"), &reference.to_batch());
    let clean = TabularRows::clean(2000, 2);
    write_parquet(&dir.join("clean.parquet"), &clean.to_batch());
    write_csv(&dir.join("clean.csv"), &clean, &[]);
    let mut corrupted = TabularRows::clean(2000, 3);
    corrupted.corrupt(4);
    write_parquet(&dir.join("corrupted.parquet"), &corrupted.to_batch());
    write_truth(&dir.join("corrupted.truth.csv"), &corrupted.poison);
    let wrong: Vec<usize> = (0..2000)
        .filter(|i| i % 331 == 17 && corrupted.poison[*i].is_none())
        .collect();
    let mut csv_truth = corrupted.poison.clone();
    for &i in &wrong {
        csv_truth[i] = Some("wrong_type");
    }
    write_csv(&dir.join("corrupted.csv"), &corrupted, &wrong);
    write_truth(&dir.join("corrupted_csv.truth.csv"), &csv_truth);

    // Training world.
    let spec = SynthSpec {
        rows: 2000,
        dim: 8,
        classes: 4,
        separation: 8.0,
        world_seed: 11,
    };
    write_parquet(
        &dir.join("train_reference.parquet"),
        &spec.clean(21).to_batch(),
    );
    write_parquet(&dir.join("train_clean.parquet"), &spec.clean(22).to_batch());
    let poisoned = spec
        .clean(23)
        .random_flips(0.02, 24)
        .backdoor(0, 1, 30, true, 25)
        .conflicting_duplicates(10, true, 26);
    write_parquet(&dir.join("train_poisoned.parquet"), &poisoned.to_batch());
    write_truth(&dir.join("train_poisoned.truth.csv"), &poisoned.poison);

    // Broken files.
    let bytes = std::fs::read(dir.join("corrupted.parquet")).expect("read back");
    std::fs::write(
        dir.join("broken/truncated.parquet"),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    std::fs::write(dir.join("broken/empty.parquet"), b"").unwrap();
    std::fs::write(dir.join("broken/not_parquet.parquet"), b"id,f0\n1,2\n").unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("f0", DataType::Float64, false),
        Field::new("f1", DataType::Utf8, false),
        Field::new("label", DataType::Int64, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![0, 1])),
        Arc::new(Float64Array::from(vec![0.5, 1.5])),
        Arc::new(StringArray::from(vec!["x", "y"])),
        Arc::new(Int64Array::from(vec![0, 1])),
    ];
    write_parquet(
        &dir.join("broken/wrong_schema.parquet"),
        &RecordBatch::try_new(schema, cols).unwrap(),
    );
    let empty = reference.to_batch().slice(0, 0);
    write_parquet(&dir.join("broken/zero_rows.parquet"), &empty);
    println!("fixtures written to {}", dir.display());
}
