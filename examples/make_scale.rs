//! Writes large synthetic training data for the scale script: `cargo run --release --example make_scale -- DIR ROWS DIM`.
//! DIR/data.parquet (2% random label flips), DIR/reference.parquet (clean, 100k rows).

use poisonscan::synth::SynthSpec;
use std::path::Path;

fn write(path: &Path, d: &poisonscan::synth::SynthData) {
    let b = d.to_batch();
    let f = std::fs::File::create(path).expect("create");
    let mut w = parquet::arrow::ArrowWriter::try_new(f, b.schema(), None).expect("writer");
    for start in (0..b.num_rows()).step_by(65_536) {
        w.write(&b.slice(start, 65_536.min(b.num_rows() - start)))
            .expect("write");
    }
    w.close().expect("close");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = Path::new(args.get(1).map(String::as_str).unwrap_or("out/scale"));
    let rows: usize = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dim: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(32);
    std::fs::create_dir_all(dir).expect("folder");
    let spec = SynthSpec {
        rows,
        dim,
        classes: 10,
        separation: 8.0,
        world_seed: 5,
    };
    write(
        &dir.join("data.parquet"),
        &spec.clean(1).random_flips(0.02, 2),
    );
    write(
        &dir.join("reference.parquet"),
        &SynthSpec {
            rows: 100_000,
            ..spec
        }
        .clean(3),
    );
    println!("wrote {} rows x {dim} features to {}", rows, dir.display());
}
