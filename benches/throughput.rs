//! Throughput benchmarks (criterion): `cargo bench --bench throughput`.
//!
//! On a generated 1M-row x 34-column Parquet file (one row group, the same rows in 16 row groups, and with f32
//! features): raw Parquet decode (also on the rayon pool, one task per row group), the contract pass (decode +
//! checks), the lineage pass (decode + blake3 row digests), row digests of decoded batches (on the pool and on one
//! thread, and one thread alternating decode and digest), and blake3 over the same canonical bytes (one call per row,
//! eight rows at a time, one buffer); and a full scan (all detectors) of 100k rows x 32 features. Figures are
//! recorded in docs/performance.md.

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use poisonscan::contract::profile::{Profiler, Trust};
use poisonscan::contract::ContractChecker;
use poisonscan::lineage::{HashMode, RowHasher};
use poisonscan::synth::SynthSpec;
use poisonscan::{Scanner, Source};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

fn write(
    path: &Path,
    rows: usize,
    seed: u64,
    flips: f64,
    row_group_rows: Option<usize>,
    f32_features: bool,
) {
    let spec = SynthSpec {
        rows,
        dim: 32,
        classes: 10,
        separation: 8.0,
        world_seed: 3,
    };
    let d = spec.clean(seed);
    let d = if flips > 0.0 {
        d.random_flips(flips, 1)
    } else {
        d
    };
    let b = d.to_batch();
    // The same values with f32 features (as PyTorch and most embedding pipelines store them).
    let b = if f32_features {
        let fields: Vec<Field> = b
            .schema()
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Float64 => Field::new(f.name(), DataType::Float32, f.is_nullable()),
                _ => f.as_ref().clone(),
            })
            .collect();
        let cols = b
            .columns()
            .iter()
            .zip(&fields)
            .map(|(c, f)| arrow::compute::cast(c, f.data_type()).unwrap())
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
    } else {
        b
    };
    let f = std::fs::File::create(path).unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(row_group_rows)
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, b.schema(), Some(props)).unwrap();
    for start in (0..b.num_rows()).step_by(65_536) {
        w.write(&b.slice(start, 65_536.min(b.num_rows() - start)))
            .unwrap();
    }
    w.close().unwrap();
}

fn data_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("poisonscan-bench");
    std::fs::create_dir_all(&dir).unwrap();
    // m1: one row group (the writer's default of 1Mi rows); m1_rg: the same rows in 16 row groups of 65,536 rows
    // (as DuckDB, polars or Spark write files of this size).
    // m1_f32: m1 with f32 features.
    for (name, rows, seed, flips, rg, f32_features) in [
        ("m1.parquet", 1_000_000, 1, 0.0, None, false),
        ("m1_rg.parquet", 1_000_000, 1, 0.0, Some(65_536), false),
        ("m1_f32.parquet", 1_000_000, 1, 0.0, None, true),
        ("k100.parquet", 100_000, 2, 0.02, None, false),
        ("k100_ref.parquet", 100_000, 3, 0.0, None, false),
    ] {
        if !dir.join(name).exists() {
            write(&dir.join(name), rows, seed, flips, rg, f32_features);
        }
    }
    dir
}

fn passes(c: &mut Criterion) {
    let dir = data_dir();
    let big = dir.join("m1.parquet");
    let mut g = c.benchmark_group("passes_1M_rows");
    g.sample_size(10).measurement_time(Duration::from_secs(15));
    g.throughput(Throughput::Elements(1_000_000));
    let decode = |path: &Path| {
        let mut s = Source::path(path).unwrap();
        s.open()
            .unwrap()
            .map(|x| x.unwrap().num_rows())
            .sum::<usize>()
    };
    g.bench_function("parquet_decode", |b| b.iter(|| decode(&big)));
    let contract = {
        let mut s = Source::path(&big).unwrap();
        let mut st = s.open().unwrap();
        let mut p = Profiler::new(st.schema(), "bench", Some("label"), Some("id"));
        for batch in &mut st {
            p.add_batch(&batch.unwrap()).unwrap();
        }
        p.finish(Trust::Reference)
    };
    g.bench_function("contract_pass", |b| {
        b.iter(|| {
            let mut s = Source::path(&big).unwrap();
            let st = s.open().unwrap();
            let checker = ContractChecker::new(&contract, &st.schema(), "bench").unwrap();
            let mut start = 0u64;
            let mut v = 0usize;
            for batch in st {
                let batch = batch.unwrap();
                v += checker.check_batch(&batch, start).1.len();
                start += batch.num_rows() as u64;
            }
            v
        })
    });
    // The lineage pass as `poisonscan lineage` runs it (`lineage::digest_source`): with one row group, decode ahead
    // on one thread and digest each batch on the rayon pool; with several, one rayon task decodes and digests each
    // row group. Both fold the digests into the fingerprint state.
    let lineage = |path: &Path| {
        let mut s = Source::path(path).unwrap();
        poisonscan::lineage::digest_source(&mut s, None, HashMode::Plain)
            .unwrap()
            .digests
            .len()
    };
    g.bench_function("lineage_pass", |b| b.iter(|| lineage(&big)));
    let grouped = dir.join("m1_rg.parquet");
    g.bench_function("parquet_decode_16_row_groups", |b| {
        b.iter(|| decode(&grouped))
    });
    // Decode alone with the lineage pass's own parallelism (one rayon task per row group, no hashing): the strictest
    // baseline for the row above.
    g.bench_function("parquet_decode_16_row_groups_parallel", |b| {
        use rayon::prelude::*;
        b.iter(|| {
            let mut s = Source::path(&grouped).unwrap();
            let parts = s.parts().unwrap().unwrap();
            parts
                .par_iter()
                .map(|p| {
                    p.open()
                        .unwrap()
                        .map(|x| x.unwrap().num_rows())
                        .sum::<usize>()
                })
                .sum::<usize>()
        })
    });
    g.bench_function("lineage_pass_16_row_groups", |b| {
        b.iter(|| lineage(&grouped))
    });
    // f32 features: five bytes per feature in the row encoding instead of nine (docs/lineage.md).
    let narrow = dir.join("m1_f32.parquet");
    g.bench_function("parquet_decode_f32", |b| b.iter(|| decode(&narrow)));
    g.bench_function("lineage_pass_f32", |b| b.iter(|| lineage(&narrow)));
    // blake3 alone over the same canonical row encodings (one contiguous buffer, multi-threaded).
    let (bytes, ends) = {
        let mut s = Source::path(&big).unwrap();
        let st = s.open().unwrap();
        let h = RowHasher::new((0..st.schema().fields().len()).collect(), HashMode::Plain);
        let mut out = Vec::new();
        let mut ends = Vec::new();
        for batch in st {
            let batch = batch.unwrap();
            for r in 0..batch.num_rows() {
                out.extend(h.encode_row(&batch, r).unwrap());
                ends.push(out.len());
            }
        }
        (out, ends)
    };
    // The same bytes as 1M separate blake3 inputs, one `blake3::hash` call per row (rayon): what the lineage pass
    // would cost hashing rows one by one instead of eight at a time.
    let rows: Vec<&[u8]> = {
        let mut begin = 0;
        ends.iter()
            .map(|&end| {
                let row = &bytes[begin..end];
                begin = end;
                row
            })
            .collect()
    };
    g.bench_function("blake3_one_call_per_row", |b| {
        use rayon::prelude::*;
        b.iter(|| {
            rows.par_iter()
                .map(|r| blake3::hash(r).as_bytes()[0] as u64)
                .sum::<u64>()
        })
    });
    // The same rows hashed eight at a time (`lineage::lanes`, AVX2 when available), rayon over blocks of rows.
    g.bench_function("blake3_eight_rows_at_a_time", |b| {
        use rayon::prelude::*;
        b.iter(|| {
            let mut out = vec![[0u8; 32]; rows.len()];
            out.par_chunks_mut(2048)
                .zip(rows.par_chunks(2048))
                .for_each(|(o, r)| poisonscan::lineage::lanes::hash_many(&HashMode::Plain, r, o));
            out[0][0]
        })
    });
    // Row digests of the already-decoded batches (encoding + hashing, no decode).
    let decoded: Vec<_> = {
        let mut s = Source::path(&big).unwrap();
        s.open().unwrap().map(|x| x.unwrap()).collect()
    };
    g.bench_function("digest_batch_in_memory", |b| {
        let h = RowHasher::new((0..decoded[0].num_columns()).collect(), HashMode::Plain);
        b.iter(|| {
            decoded
                .iter()
                .map(|x| h.digest_batch(x).unwrap().len())
                .sum::<usize>()
        })
    });
    // The same on one thread, and one thread alternating between decoding a batch and digesting it: the core time
    // the lineage pass needs, and what alternating the two kinds of work costs (docs/performance.md).
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    g.bench_function("digest_batch_in_memory_one_thread", |b| {
        let h = RowHasher::new((0..decoded[0].num_columns()).collect(), HashMode::Plain);
        b.iter(|| {
            one_thread.install(|| {
                decoded
                    .iter()
                    .map(|x| h.digest_batch(x).unwrap().len())
                    .sum::<usize>()
            })
        })
    });
    g.bench_function("decode_then_digest_each_batch_one_thread", |b| {
        let h = RowHasher::new((0..decoded[0].num_columns()).collect(), HashMode::Plain);
        b.iter(|| {
            one_thread.install(|| {
                let mut s = Source::path(&big).unwrap();
                s.open()
                    .unwrap()
                    .map(|x| h.digest_batch(&x.unwrap()).unwrap().len())
                    .sum::<usize>()
            })
        })
    });
    g.bench_function("blake3_same_bytes", |b| {
        b.iter(|| {
            let mut hasher = blake3::Hasher::new();
            hasher.update_rayon(&bytes);
            hasher.finalize()
        })
    });
    g.finish();
}

fn full_scan(c: &mut Criterion) {
    let dir = data_dir();
    let mut g = c.benchmark_group("full_scan_100k_x_32");
    g.sample_size(10).measurement_time(Duration::from_secs(30));
    g.throughput(Throughput::Elements(100_000));
    g.bench_function("all_detectors_with_reference", |b| {
        b.iter(|| {
            Scanner::new(Source::path(dir.join("k100.parquet")).unwrap())
                .label("label")
                .id("id")
                .reference(Source::path(dir.join("k100_ref.parquet")).unwrap())
                .run()
                .unwrap()
                .report
                .flagged
        })
    });
    g.bench_function("all_detectors_no_reference", |b| {
        b.iter(|| {
            Scanner::new(Source::path(dir.join("k100.parquet")).unwrap())
                .label("label")
                .id("id")
                .run()
                .unwrap()
                .report
                .flagged
        })
    });
    g.finish();
}

/// The order-independent fingerprint's cost per row: LtHash16 (2 KiB blake3 expansion per row, summed lane-wise)
/// against the 256-bit digest sum it replaced, on 1M row digests.
fn multiset_hash(c: &mut Criterion) {
    let digests: Vec<[u8; 32]> = (0..1_000_000u64)
        .map(|i| *blake3::hash(&i.to_le_bytes()).as_bytes())
        .collect();
    let mut g = c.benchmark_group("multiset_hash_1M_rows");
    g.sample_size(10);
    g.throughput(Throughput::Elements(digests.len() as u64));
    g.bench_function("digest_sum_mod_2_256", |b| {
        b.iter(|| {
            let mut acc = [0u64; 4];
            for d in &digests {
                let mut carry = 0u128;
                for (k, limb) in acc.iter_mut().enumerate() {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(&d[k * 8..k * 8 + 8]);
                    let s = *limb as u128 + u64::from_le_bytes(w) as u128 + carry;
                    *limb = s as u64;
                    carry = s >> 64;
                }
            }
            acc
        })
    });
    g.bench_function("lthash16_parallel", |b| {
        b.iter(|| {
            let mut h = poisonscan::lineage::lthash::LtHash::new();
            h.add_all(&digests);
            h.checksum()
        })
    });
    g.bench_function("lthash16_one_thread", |b| {
        b.iter(|| {
            let mut h = poisonscan::lineage::lthash::LtHash::new();
            for d in &digests {
                h.add(d);
            }
            h.checksum()
        })
    });
    g.finish();
}

criterion_group!(benches, passes, full_scan, multiset_hash);
criterion_main!(benches);
