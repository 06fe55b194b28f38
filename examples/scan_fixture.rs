//! Scan a fixture from Rust: `cargo run --example scan_fixture`.
//!
//! Everything the CLI's `scan` does goes through [`poisonscan::Scanner`]: here the poisoned training fixture is
//! checked against its trusted reference, the verdict and the first flagged rows are printed, and the scores and
//! report are written under `out/`.

use poisonscan::{Scanner, Source};

fn main() -> Result<(), poisonscan::Error> {
    let outcome = Scanner::new(Source::path("fixtures/train_poisoned.parquet")?)
        .label("label")
        .id("id")
        .reference(Source::path("fixtures/train_reference.parquet")?)
        .run()?;
    for row in outcome.report.sample.iter().take(5) {
        println!("row {} (score {:.2}): {}", row.row, row.score, row.reasons);
    }
    outcome
        .scores
        .write(std::path::Path::new("out/example_scores.parquet"))?;
    outcome
        .report
        .write(std::path::Path::new("out/example_report.json"))?;
    println!("{}", outcome.report.summary);
    Ok(())
}
