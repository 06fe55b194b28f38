//! Times the label stage's kNN search: 250,000 queries on a 100,000-row x 32 reference (the scale script's shapes):
//! `cargo run --release --example knn_time`.
use poisonscan::detect::ivf::{default_nlist, IvfIndex};
use poisonscan::synth::SynthSpec;

fn matrix(d: &poisonscan::synth::SynthData) -> ndarray::Array2<f32> {
    ndarray::Array2::from_shape_fn((d.len(), d.x[0].len()), |(i, j)| d.x[i][j] as f32)
}

fn main() {
    let spec = SynthSpec {
        rows: 100_000,
        dim: 32,
        classes: 10,
        separation: 8.0,
        world_seed: 5,
    };
    let base = matrix(&spec.clean(3));
    let queries = matrix(
        &SynthSpec {
            rows: 250_000,
            ..spec
        }
        .clean(1),
    );
    let t = std::time::Instant::now();
    let index = IvfIndex::build(base.view(), default_nlist(base.nrows()), 4);
    println!(
        "build {:.2} s ({} lists)",
        t.elapsed().as_secs_f64(),
        index.nlist()
    );
    let none = vec![None; queries.nrows()];
    let mut check = 0f64;
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let found = index.search_all(queries.view(), 10, &none);
        check = found
            .iter()
            .map(|nb| nb.iter().map(|n| n.0 as f64).sum::<f64>())
            .sum();
        println!(
            "search_all 250k queries: {:.2} s",
            t.elapsed().as_secs_f64()
        );
    }
    println!("sum of neighbour distances {check:.6e}");
}
