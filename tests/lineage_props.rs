//! Property tests: row digests and fingerprints do not depend on batch boundaries, dictionary encoding, integer or
//! float width, row-group layout, file format, or how the input was partitioned.

mod common;

use arrow::array::{
    Array, ArrayRef, DictionaryArray, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema};
use poisonscan::lineage::{HashMode, LineageState, RowDigest, RowHasher};
use poisonscan::Source;
use proptest::prelude::*;
use std::sync::Arc;

fn table(ints: &[i64], floats: &[Option<f64>], words: &[Option<String>]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("i", DataType::Int64, false),
        Field::new("x", DataType::Float64, true),
        Field::new("s", DataType::Utf8, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ints.to_vec())),
            Arc::new(Float64Array::from(floats.to_vec())),
            Arc::new(StringArray::from(words.to_vec())),
        ],
    )
    .unwrap()
}

fn digests(batches: &[RecordBatch]) -> Vec<RowDigest> {
    let h = RowHasher::new((0..batches[0].num_columns()).collect(), HashMode::Plain);
    batches
        .iter()
        .flat_map(|b| h.digest_batch(b).unwrap())
        .collect()
}

fn split(b: &RecordBatch, cuts: &[usize]) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (b.num_rows() + 1)).collect();
    cuts.sort();
    for c in cuts.into_iter().chain([b.num_rows()]) {
        if c > start {
            out.push(b.slice(start, c - start));
            start = c;
        }
    }
    out
}

fn rows_strategy() -> impl Strategy<Value = (Vec<i64>, Vec<Option<f64>>, Vec<Option<String>>)> {
    (1usize..120).prop_flat_map(|n| {
        (
            // Integers with and without an i32 form, floats with and without an exact f32 form.
            prop::collection::vec(
                prop_oneof![any::<i64>(), any::<i32>().prop_map(i64::from)],
                n,
            ),
            prop::collection::vec(
                prop_oneof![
                    Just(None),
                    Just(Some(f64::NAN)),
                    Just(Some(-0.0)),
                    any::<f64>().prop_map(Some),
                    any::<f32>().prop_map(|v| Some(f64::from(v)))
                ],
                n,
            ),
            prop::collection::vec(prop::option::of("[a-c]{0,3}"), n),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn fixed_width_batches_hash_like_the_documented_encoding(
        rows in prop::collection::vec((any::<i64>(), any::<f64>(), any::<bool>()), 1..300),
        forms in (0usize..4, 0usize..4),
        cut in 0usize..300,
    ) {
        // No nulls and no strings. Integers all in i32 range, all beyond it, mixed row by row, or the first rows in one
        // form and the rest in the other; floats all f32-exact, none, or mixed the same ways. Rows are encoded in
        // blocks of 64: a block whose numbers all take one form has the same layout in every row and takes the
        // fixed-width path (also on a slice); a mixed block takes the general path. Both must give the documented
        // encoding.
        let half = rows.len() / 2;
        let rows: Vec<(i64, f64, bool)> = rows
            .into_iter()
            .enumerate()
            .map(|(k, (i, x, b))| {
                let mixed = |form: usize| match form {
                    2 => k % 3 == 0,
                    _ => k < half,
                };
                let i = match forms.0 {
                    0 => i64::from(i as i32),
                    1 => i | (1 << 40),
                    f => if mixed(f) { i64::from(i as i32) } else { i | (1 << 40) },
                };
                let short = [f64::from(x as f32), f64::NAN, -0.0, f64::INFINITY][k % 4];
                let long = if f64::from(x as f32) == x { 0.1 + k as f64 } else { x };
                let x = match forms.1 {
                    0 => short,
                    1 => long,
                    f => if mixed(f) { short } else { long },
                };
                (i, x, b)
            })
            .collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int64, false),
            Field::new("x", DataType::Float64, false),
            Field::new("b", DataType::Boolean, false),
        ]));
        let b = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
                Arc::new(Float64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
                Arc::new(arrow::array::BooleanArray::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
            ],
        )
        .unwrap();
        let cut = cut % rows.len();
        let sliced = b.slice(cut, rows.len() - cut);
        let h = RowHasher::new(vec![0, 1, 2], HashMode::Plain);
        for batch in [&b, &sliced] {
            let got = h.digest_batch(batch).unwrap();
            for (r, d) in got.iter().enumerate() {
                let enc = h.encode_row(batch, r).unwrap();
                let (i, x, _) = rows[r + if std::ptr::eq(batch, &b) { 0 } else { cut }];
                let int_len = if i32::try_from(i).is_ok() { 5 } else { 9 };
                let float_len = if x.is_nan() || f64::from(x as f32) == x { 5 } else { 9 };
                prop_assert_eq!(enc.len(), int_len + float_len + 2);
                prop_assert_eq!(*d, *blake3::hash(&enc).as_bytes());
            }
        }
        prop_assert_eq!(&digests(std::slice::from_ref(&b))[cut..], &digests(&[sliced])[..]);
    }

    #[test]
    fn batch_digests_are_blake3_of_the_documented_encoding((i, x, s) in rows_strategy(), long in 0usize..3000, key in prop::array::uniform32(any::<u8>())) {
        // Rows are hashed eight at a time (AVX2) or one by one; both must equal blake3 of the encoding, in both modes,
        // also when one row is longer than a blake3 chunk (1024 bytes).
        let mut s = s;
        s[0] = Some("w".repeat(long));
        let b = table(&i, &x, &s);
        for mode in [HashMode::Plain, HashMode::Keyed(key)] {
            let h = RowHasher::new(vec![0, 1, 2], mode);
            let got = h.digest_batch(&b).unwrap();
            for (r, d) in got.iter().enumerate() {
                prop_assert_eq!(*d, mode.hash(&h.encode_row(&b, r).unwrap()));
            }
        }
    }

    #[test]
    fn digests_ignore_batch_boundaries((i, x, s) in rows_strategy(), cuts in prop::collection::vec(0usize..200, 0..6)) {
        let whole = table(&i, &x, &s);
        prop_assert_eq!(digests(std::slice::from_ref(&whole)), digests(&split(&whole, &cuts)));
    }

    #[test]
    fn digests_ignore_dictionary_encoding_and_number_width((i, x, s) in rows_strategy()) {
        // The same values as i32 / f32 / dictionary columns and as i64 / f64 / plain columns.
        let dict: DictionaryArray<Int32Type> = s.iter().map(|v| v.as_deref()).collect();
        let narrow: Vec<i32> = i.iter().map(|v| *v as i32).collect();
        let wide: Vec<i64> = narrow.iter().map(|v| *v as i64).collect();
        let narrow_x: Vec<Option<f32>> = x.iter().map(|v| v.map(|v| v as f32)).collect();
        let wide_x: Vec<Option<f64>> = narrow_x.iter().map(|v| v.map(f64::from)).collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int32, false),
            Field::new("x", DataType::Float32, true),
            Field::new("s", dict.data_type().clone(), true),
        ]));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from(narrow)),
            Arc::new(arrow::array::Float32Array::from(narrow_x)),
            Arc::new(dict),
        ];
        let encoded = RecordBatch::try_new(schema, cols).unwrap();
        prop_assert_eq!(digests(&[encoded]), digests(&[table(&wide, &wide_x, &s)]));
    }

    #[test]
    fn a_column_without_values_hashes_like_a_typed_column_of_nulls((i, _x, s) in rows_strategy()) {
        // CSV type inference gives a column empty in every row the Null type; the same rows from a file that types
        // it (here f64, all null) have the same digests.
        let schema = Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int64, false),
            Field::new("x", DataType::Null, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(i.clone())),
            Arc::new(arrow::array::NullArray::new(i.len())),
            Arc::new(StringArray::from(s.clone())),
        ];
        let untyped = RecordBatch::try_new(schema, cols).unwrap();
        prop_assert_eq!(digests(&[untyped]), digests(&[table(&i, &vec![None; i.len()], &s)]));
    }

    #[test]
    fn partitions_merge_to_the_same_fingerprint((i, x, s) in rows_strategy(), parts in 1usize..8) {
        let whole = table(&i, &x, &s);
        let d = digests(std::slice::from_ref(&whole));
        let mut one = LineageState::new(16);
        one.add(0, &d);
        let size = d.len().div_ceil(parts);
        let mut states: Vec<LineageState> = d.chunks(size).enumerate().map(|(k, c)| {
            let mut st = LineageState::new(16);
            st.add((k * size) as u64, c);
            st
        }).collect();
        states.reverse();
        let mut merged = LineageState::new(16);
        for st in states { merged.merge(st).unwrap(); }
        prop_assert_eq!(merged.finish().unwrap(), one.finish().unwrap());
    }

    #[test]
    fn a_changed_value_changes_the_digest_of_that_row_only((i, x, s) in rows_strategy(), pick in any::<prop::sample::Index>()) {
        let before = digests(&[table(&i, &x, &s)]);
        let mut i2 = i.clone();
        let r = pick.index(i.len());
        i2[r] = i2[r].wrapping_add(1);
        let after = digests(&[table(&i2, &x, &s)]);
        for k in 0..before.len() {
            prop_assert_eq!(before[k] == after[k], k != r);
        }
    }
}

fn read_all(path: &std::path::Path, batch_size: usize) -> Vec<RecordBatch> {
    let mut src = Source::path(path).unwrap().with_batch_size(batch_size);
    src.open().unwrap().map(|b| b.unwrap()).collect()
}

#[test]
fn parquet_ipc_and_csv_of_the_same_values_hash_alike_whatever_the_layout() {
    let n = 1000;
    let ints: Vec<i64> = (0..n).map(|k| k * 7919 % 1013 - 500).collect();
    let floats: Vec<Option<f64>> = (0..n)
        .map(|k| Some((k as f64 * 0.37).sin() * 1e3))
        .collect();
    let words: Vec<Option<String>> = (0..n).map(|k| Some(format!("w{}", k % 13))).collect();
    let b = table(&ints, &floats, &words);
    let expected = digests(std::slice::from_ref(&b));
    let dir = tempfile::tempdir().unwrap();
    for rg in [37usize, 1000] {
        let p = dir.path().join(format!("t{rg}.parquet"));
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(rg))
            .build();
        let mut w = parquet::arrow::ArrowWriter::try_new(
            std::fs::File::create(&p).unwrap(),
            b.schema(),
            Some(props),
        )
        .unwrap();
        w.write(&b).unwrap();
        w.close().unwrap();
        for bs in [1usize, 64, 4096] {
            assert_eq!(
                digests(&read_all(&p, bs)),
                expected,
                "parquet row groups {rg}, batch {bs}"
            );
        }
    }
    let ipc = dir.path().join("t.arrow");
    let mut w =
        arrow::ipc::writer::FileWriter::try_new(std::fs::File::create(&ipc).unwrap(), &b.schema())
            .unwrap();
    for part in split(&b, &[100, 555]) {
        w.write(&part).unwrap();
    }
    w.finish().unwrap();
    assert_eq!(digests(&read_all(&ipc, 100)), expected, "ipc");
    let csv = dir.path().join("t.csv");
    let mut w = arrow::csv::WriterBuilder::new()
        .with_header(true)
        .build(std::fs::File::create(&csv).unwrap());
    w.write(&b).unwrap();
    drop(w);
    assert_eq!(digests(&read_all(&csv, 333)), expected, "csv");
    // A folder of Parquet files reads as one input.
    let folder = dir.path().join("parts");
    std::fs::create_dir(&folder).unwrap();
    for (k, part) in split(&b, &[400]).iter().enumerate() {
        common::write_parquet(&folder.join(format!("part-{k}.parquet")), part);
    }
    assert_eq!(digests(&read_all(&folder, 128)), expected, "folder");
}

#[test]
fn the_encoding_is_the_documented_one() {
    // One row, byte for byte as in the table in src/lineage/encode.rs and docs/lineage.md.
    let b = table(&[-2], &[Some(-0.0)], &[None]);
    let h = RowHasher::new(vec![0, 1, 2], HashMode::Plain);
    let mut want = vec![0x0C];
    want.extend_from_slice(&(-2i32).to_le_bytes()); // an integer in i32 range: four bytes
    want.push(0x0B);
    want.extend_from_slice(&0u32.to_le_bytes()); // -0.0 is encoded as 0.0, an f32-exact float: four bytes
    want.push(0x00); // null
    assert_eq!(h.encode_row(&b, 0).unwrap(), want);
    assert_eq!(
        h.digest_batch(&b).unwrap()[0],
        *blake3::hash(&want).as_bytes()
    );
    let nan = table(
        &[1 << 40],
        &[Some(f64::from_bits(0x7ff0_0000_0000_0001))],
        &[Some("ab".into())],
    );
    let mut want = vec![0x02];
    want.extend_from_slice(&(1i64 << 40).to_le_bytes()); // beyond i32: eight bytes
    want.push(0x0B);
    want.extend_from_slice(&0x7fc0_0000u32.to_le_bytes()); // every NaN is the canonical NaN
    want.push(0x05);
    want.extend_from_slice(&2u64.to_le_bytes());
    want.extend_from_slice(b"ab");
    assert_eq!(h.encode_row(&nan, 0).unwrap(), want);
    // A float with no exact f32 form keeps its f64 bits.
    let tenth = table(&[0], &[Some(0.1)], &[None]);
    let mut want = vec![0x0C, 0, 0, 0, 0, 0x04];
    want.extend_from_slice(&0.1f64.to_bits().to_le_bytes());
    want.push(0x00);
    assert_eq!(h.encode_row(&tenth, 0).unwrap(), want);
    assert_eq!(
        h.digest_batch(&tenth).unwrap()[0],
        *blake3::hash(&want).as_bytes()
    );
}

#[test]
fn structs_and_maps_encode_as_documented() {
    use arrow::array::{MapBuilder, StringBuilder, StructArray};
    use arrow::datatypes::Fields;
    // A struct {x: i64, y: utf8} column (second row null) and a map<utf8, i64> column.
    let fields = Fields::from(vec![
        Field::new("x", DataType::Int64, true),
        Field::new("y", DataType::Utf8, true),
    ]);
    let st = StructArray::new(
        fields,
        vec![
            Arc::new(Int64Array::from(vec![Some(3), Some(4)])),
            Arc::new(StringArray::from(vec![None, Some("b")])),
        ],
        Some(vec![true, false].into()),
    );
    let mut mb = MapBuilder::new(
        None,
        StringBuilder::new(),
        arrow::array::Int64Builder::new(),
    );
    mb.keys().append_value("k");
    mb.values().append_value(1 << 40);
    mb.append(true).unwrap();
    mb.append(true).unwrap(); // an empty map
    let map = mb.finish();
    let schema = Arc::new(Schema::new(vec![
        Field::new("s", st.data_type().clone(), true),
        Field::new("m", map.data_type().clone(), true),
    ]));
    let b = RecordBatch::try_new(schema, vec![Arc::new(st), Arc::new(map)]).unwrap();
    let h = RowHasher::new(vec![0, 1], HashMode::Plain);
    let mut want = vec![0x0D];
    want.extend_from_slice(&2u64.to_le_bytes()); // two fields
    want.push(0x0C);
    want.extend_from_slice(&3i32.to_le_bytes()); // x = 3
    want.push(0x00); // y null
    want.push(0x0E);
    want.extend_from_slice(&1u64.to_le_bytes()); // one entry
    want.push(0x05);
    want.extend_from_slice(&1u64.to_le_bytes());
    want.extend_from_slice(b"k"); // key "k"
    want.push(0x02);
    want.extend_from_slice(&(1i64 << 40).to_le_bytes()); // value 2^40
    assert_eq!(h.encode_row(&b, 0).unwrap(), want);
    assert_eq!(
        h.digest_batch(&b).unwrap()[0],
        *blake3::hash(&want).as_bytes()
    );
    let mut want = vec![0x00, 0x0E]; // a null struct; an empty map
    want.extend_from_slice(&0u64.to_le_bytes());
    assert_eq!(h.encode_row(&b, 1).unwrap(), want);
    assert_eq!(
        h.digest_batch(&b).unwrap()[1],
        *blake3::hash(&want).as_bytes()
    );
}

/// Row `row` of a batch of word-typed columns (every integer width, f32, dates, a timestamp), byte for byte, and its
/// digest through `digest_batch` (the fixed-layout path when `nulls` is false, the general path otherwise).
#[test]
fn every_fixed_width_type_encodes_as_documented() {
    use arrow::array::{
        Date32Array, Date64Array, Float32Array, Int8Array, TimestampMillisecondArray, UInt16Array,
        UInt32Array,
    };
    for nulls in [false, true] {
        let last = if nulls { None } else { Some(1) };
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int8Array::from(vec![Some(-3), last.map(|v| v as i8)])),
            Arc::new(Int32Array::from(vec![Some(-70_000), last])),
            Arc::new(UInt16Array::from(vec![
                Some(65_535),
                last.map(|v| v as u16),
            ])),
            Arc::new(UInt32Array::from(vec![
                Some(u32::MAX),
                last.map(|v| v as u32),
            ])),
            Arc::new(Float32Array::from(vec![
                Some(-0.0f32),
                last.map(|v| v as f32),
            ])),
            Arc::new(Float32Array::from(vec![Some(f32::NAN), Some(1.5)])),
            Arc::new(Date32Array::from(vec![Some(-1), last])),
            Arc::new(Date64Array::from(vec![Some(86_400_000 * 3), Some(0)])),
            Arc::new(TimestampMillisecondArray::from(vec![
                Some(-5),
                last.map(i64::from),
            ])),
        ];
        let fields: Vec<Field> = cols
            .iter()
            .enumerate()
            .map(|(k, c)| Field::new(format!("c{k}"), c.data_type().clone(), true))
            .collect();
        let b = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
        let h = RowHasher::new((0..b.num_columns()).collect(), HashMode::Plain);
        let short = |out: &mut Vec<u8>, tag: u8, w: u32| {
            out.push(tag);
            out.extend_from_slice(&w.to_le_bytes());
        };
        let long = |out: &mut Vec<u8>, tag: u8, w: u64| {
            out.push(tag);
            out.extend_from_slice(&w.to_le_bytes());
        };
        let mut want = Vec::new();
        short(&mut want, 0x0C, -3i32 as u32);
        short(&mut want, 0x0C, -70_000i32 as u32);
        short(&mut want, 0x0C, 65_535);
        long(&mut want, 0x02, u32::MAX as u64); // beyond i32: the i64 form
        short(&mut want, 0x0B, 0); // -0.0 as 0.0
        short(&mut want, 0x0B, 0x7fc0_0000);
        short(&mut want, 0x07, -1i32 as u32);
        short(&mut want, 0x07, 3); // date64 as days
        want.extend_from_slice(&[0x08, 1]); // timestamp, unit ms
        want.extend_from_slice(&(-5i64).to_le_bytes());
        assert_eq!(h.encode_row(&b, 0).unwrap(), want, "nulls: {nulls}");
        let mut second = Vec::new();
        for (tag, w) in [
            (0x0C, 1u32),
            (0x0C, 1),
            (0x0C, 1),
            (0x0C, 1), // u32 1 fits i32: the short form, in the same column as u32::MAX above
            (0x0B, 1f32.to_bits()),
        ] {
            if nulls {
                second.push(0);
            } else {
                short(&mut second, tag, w);
            }
        }
        short(&mut second, 0x0B, 1.5f32.to_bits());
        if nulls {
            second.push(0);
        } else {
            short(&mut second, 0x07, 1);
        }
        short(&mut second, 0x07, 0);
        if nulls {
            second.push(0);
        } else {
            second.extend_from_slice(&[0x08, 1]);
            second.extend_from_slice(&1i64.to_le_bytes());
        }
        assert_eq!(h.encode_row(&b, 1).unwrap(), second, "nulls: {nulls}");
        let d = h.digest_batch(&b).unwrap();
        assert_eq!(d[0], *blake3::hash(&want).as_bytes(), "nulls: {nulls}");
        assert_eq!(d[1], *blake3::hash(&second).as_bytes(), "nulls: {nulls}");
    }
}

/// `digest_source` reads a Parquet file or folder with several row groups in parallel (one task per row group);
/// digests, ids and the fingerprint must be those of a sequential pass over the same rows.
#[test]
fn parallel_row_group_digests_equal_the_sequential_pass() {
    use poisonscan::lineage::digest_source;
    let n = 5000;
    let ints: Vec<i64> = (0..n).map(|k| k * 31 % 977).collect();
    let floats: Vec<Option<f64>> = (0..n)
        .map(|k| (k % 11 != 0).then_some(k as f64 / 3.0))
        .collect();
    let words: Vec<Option<String>> = (0..n).map(|k| Some(format!("id{k}"))).collect();
    let b = table(&ints, &floats, &words);
    let mut memory = Source::memory(b.schema(), split(&b, &[1234, 4000]), "memory");
    let want = digest_source(&mut memory, Some("s"), HashMode::Plain).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rg.parquet");
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(700))
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&file).unwrap(),
        b.schema(),
        Some(props.clone()),
    )
    .unwrap();
    w.write(&b).unwrap();
    w.close().unwrap();
    let folder = dir.path().join("parts");
    std::fs::create_dir(&folder).unwrap();
    for (k, part) in split(&b, &[1500, 1501, 3900]).iter().enumerate() {
        let mut w = parquet::arrow::ArrowWriter::try_new(
            std::fs::File::create(folder.join(format!("part-{k}.parquet"))).unwrap(),
            b.schema(),
            Some(props.clone()),
        )
        .unwrap();
        w.write(part).unwrap();
        w.close().unwrap();
    }
    for path in [&file, &folder] {
        let mut src = Source::path(path).unwrap().with_batch_size(256);
        let parts = src.parts().unwrap().unwrap();
        assert!(parts.len() > 3, "{path:?}: {} parts", parts.len());
        let got = digest_source(&mut src, Some("s"), HashMode::Plain).unwrap();
        assert_eq!(got.digests, want.digests, "{path:?}");
        assert_eq!(got.ids, want.ids, "{path:?}");
        assert_eq!(
            got.state.finish().unwrap(),
            want.state.finish().unwrap(),
            "{path:?}"
        );
    }
}
