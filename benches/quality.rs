//! Detection-quality benchmark (not a timed test): `cargo bench --bench quality`.
//!
//! For each synthetic case (see `poisonscan::synth::quality_cases`) the poisoned data and its clean twin are scanned
//! with a trusted reference and without one; the table gives precision@k (k = true poisons), recall, precision,
//! ROC-AUC and the false-positive rate on the clean twin. Results are recorded in docs/quality.md.

use poisonscan::synth::{quality, quality_cases, SynthData};
use poisonscan::{Scanner, Source};

fn source(d: &SynthData, name: &str) -> Source {
    let b = d.to_batch();
    Source::memory(b.schema(), vec![b], name)
}

fn run(data: &SynthData, reference: Option<&SynthData>) -> (Vec<f32>, Vec<bool>) {
    let mut s = Scanner::new(source(data, "data")).label("label").id("id");
    if let Some(r) = reference {
        s = s.reference(source(r, "reference"));
    }
    let out = s.run().expect("scan");
    (out.scores.overall(), out.scores.flagged())
}

fn main() {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    println!("| case | reference | precision@k | recall | precision | ROC-AUC | FPR poisoned | FPR clean twin |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut worst_clean: f64 = 0.0;
    for case in quality_cases() {
        if filter
            .as_ref()
            .is_some_and(|f| !case.name.contains(f.as_str()))
        {
            continue;
        }
        let (reference, poisoned, twin) = case.build();
        let truth: Vec<bool> = poisoned.poison.iter().map(|p| p.is_some()).collect();
        for with_ref in [true, false] {
            let r = with_ref.then_some(&reference);
            let (scores, flagged) = run(&poisoned, r);
            let q = quality(&scores, &flagged, &truth);
            let (_, clean_flags) = run(&twin, r);
            let fpr_twin =
                clean_flags.iter().filter(|&&f| f).count() as f64 / clean_flags.len() as f64;
            worst_clean = worst_clean.max(fpr_twin);
            println!(
                "| {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.4} | {:.4} |",
                case.name,
                if with_ref { "yes" } else { "no" },
                q.precision_at_k,
                q.recall,
                q.precision,
                q.roc_auc,
                q.false_positive_rate,
                fpr_twin
            );
        }
    }
    println!("\nworst false-positive rate on a clean twin: {worst_clean:.4}");
    if filter.is_none() {
        ivf_recall();
    }
}

/// Recall@10 of the IVF search against exact brute force, on 100k rows x 32 features (1,000 queries).
fn ivf_recall() {
    use poisonscan::detect::ivf::{default_nlist, IvfIndex};
    let spec = poisonscan::synth::SynthSpec {
        rows: 100_000,
        dim: 32,
        classes: 10,
        separation: 8.0,
        world_seed: 9,
    };
    let d = spec.clean(1);
    let x = ndarray::Array2::from_shape_fn((d.len(), 32), |(i, j)| d.x[i][j] as f32);
    let exact = IvfIndex::build(x.view(), 1, 1);
    for nprobe in [2usize, 6, 16] {
        let t = std::time::Instant::now();
        let ivf = IvfIndex::build(x.view(), default_nlist(x.nrows()), nprobe);
        let build = t.elapsed();
        let (mut hits, mut total) = (0usize, 0usize);
        let t = std::time::Instant::now();
        // The IVF side goes through `search_all`, the path the label-flip detector runs; the truth is exact search
        // (one list, exact distances).
        let picked: Vec<usize> = (0..x.nrows()).step_by(100).collect();
        let queries = x.select(ndarray::Axis(0), &picked);
        let self_ids: Vec<Option<u32>> = picked.iter().map(|&q| Some(q as u32)).collect();
        let found = ivf.search_all(queries.view(), 10, &self_ids);
        for (&q, nb) in picked.iter().zip(&found) {
            let row = x.row(q).to_vec();
            let b: Vec<u32> = exact
                .search(&row, 10, Some(q as u32))
                .iter()
                .map(|n| n.1)
                .collect();
            hits += nb.iter().filter(|n| b.contains(&n.1)).count();
            total += b.len();
        }
        println!(
            "IVF nlist={} nprobe={nprobe}: recall@10 = {:.3} (1,000 queries through search_all vs brute force; build {:.2} s, queries+exact {:.2} s)",
            ivf.nlist(),
            hits as f64 / total as f64,
            build.as_secs_f64(),
            t.elapsed().as_secs_f64()
        );
    }
}
