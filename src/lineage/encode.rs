//! Canonical row encoding and blake3 row digests.
//!
//! Each value is written as a one-byte type tag followed by its bytes, column by column in schema order:
//!
//! | value | encoding |
//! |---|---|
//! | null (any type) | `0x00` |
//! | boolean | `0x01`, then `0` or `1` |
//! | integer (any width, signed or not) that fits i64 | `0x02`, then i64 little-endian |
//! | unsigned integer above i64::MAX | `0x03`, then u64 little-endian |
//! | float (f16/f32/f64) | `0x04`, then the f64 bit pattern, little-endian; every NaN as `0x7ff8000000000000`, -0.0 as 0.0 |
//! | string (Utf8, LargeUtf8, Utf8View) | `0x05`, u64 length, UTF-8 bytes |
//! | binary (any) | `0x06`, u64 length, bytes |
//! | date32 / date64 | `0x07`, days since epoch as i64 |
//! | timestamp | `0x08`, unit byte (0 s, 1 ms, 2 us, 3 ns), i64 |
//! | decimal128 | `0x09`, scale byte, i128 little-endian |
//! | list / fixed-size list | `0x0A`, u64 length, each element encoded |
//!
//! Dictionary-encoded columns are encoded by value, so a row's digest does not depend on batch boundaries,
//! chunking, row groups, dictionary vs plain encoding, integer width or the file format the values came from.

use crate::error::ContractError;
use arrow::array::*;
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int32Type, Int64Type, TimeUnit,
    UInt64Type,
};
use rayon::prelude::*;
use std::sync::Arc;

/// A 32-byte blake3 digest of one row's canonical encoding.
pub type RowDigest = [u8; 32];

/// Hash mode: plain blake3, or blake3's keyed mode with a 32-byte secret.
#[derive(Clone, Copy)]
pub enum HashMode {
    /// Plain blake3.
    Plain,
    /// blake3 keyed hash.
    Keyed([u8; 32]),
}

impl std::fmt::Debug for HashMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HashMode::Plain => write!(f, "Plain"),
            HashMode::Keyed(_) => write!(f, "Keyed(<secret>)"),
        }
    }
}

impl HashMode {
    /// Hash bytes in this mode.
    pub fn hash(&self, bytes: &[u8]) -> RowDigest {
        match self {
            HashMode::Plain => *blake3::hash(bytes).as_bytes(),
            HashMode::Keyed(k) => *blake3::keyed_hash(k, bytes).as_bytes(),
        }
    }
}

/// One column prepared for encoding (dictionaries decoded, types resolved once per batch).
enum Col {
    Bool(BooleanArray),
    /// Values encoded as a `H`-byte head (tag, and a unit byte for timestamps) and a 64-bit word.
    Word(Word),
    UInt64(UInt64Array),
    Str(Arc<dyn Array>),
    Bin(Arc<dyn Array>),
    Dec(Decimal128Array),
    List(Arc<dyn Array>),
}

/// Values of a column whose non-null cells are a head and eight little-endian bytes: integers (tag 0x02), floats
/// (0x04), dates (0x07) and timestamps (0x08 + unit). Arrow's buffers are read in place, without a widening copy.
struct Word {
    head: [u8; 2],
    head_len: usize,
    values: Words,
    nulls: Option<arrow::buffer::NullBuffer>,
}

enum Words {
    I64(arrow::buffer::ScalarBuffer<i64>),
    I32(arrow::buffer::ScalarBuffer<i32>),
    F64(arrow::buffer::ScalarBuffer<f64>),
    F32(arrow::buffer::ScalarBuffer<f32>),
}

impl Word {
    /// A word column with `head` (the tag, and for timestamps the unit byte) before each value.
    fn column<T: arrow::datatypes::ArrowPrimitiveType>(
        head: &[u8],
        array: &ArrayRef,
        values: impl FnOnce(arrow::buffer::ScalarBuffer<T::Native>) -> Words,
    ) -> Col {
        let a = array.as_primitive::<T>();
        let mut h = [0u8; 2];
        h[..head.len()].copy_from_slice(head);
        Col::Word(Word {
            head: h,
            head_len: head.len(),
            values: values(a.values().clone()),
            nulls: a.nulls().cloned(),
        })
    }

    fn width(&self) -> usize {
        self.head_len + 8
    }

    fn is_null(&self, i: usize) -> bool {
        self.nulls.as_ref().is_some_and(|n| n.is_null(i))
    }

    /// The 64-bit word of row `i` (integers sign-extended, floats as canonical f64 bits).
    fn word(&self, i: usize) -> u64 {
        /// The word of the first value.
        struct First;
        impl WordsFn<u64> for First {
            fn call<T: Copy>(self, values: &[T], word: impl Fn(T) -> u64) -> u64 {
                word(values[0])
            }
        }
        self.with_values(i, First)
    }

    /// Call `f` with this column's values from row `start` on, as a slice and the conversion of a value to its word
    /// (the one place that defines it).
    fn with_values<R>(&self, start: usize, f: impl WordsFn<R>) -> R {
        match &self.values {
            Words::I64(v) => f.call(&v[start..], |x: i64| x as u64),
            Words::I32(v) => f.call(&v[start..], |x: i32| x as i64 as u64),
            Words::F64(v) => f.call(&v[start..], canonical_bits),
            Words::F32(v) => f.call(&v[start..], |x: f32| canonical_bits(x as f64)),
        }
    }
}

/// A computation over a column's values of any native type (a generic closure).
trait WordsFn<R> {
    fn call<T: Copy>(self, values: &[T], word: impl Fn(T) -> u64) -> R;
}

fn unsupported(column: &str, dt: &DataType) -> ContractError {
    ContractError::UnsupportedType {
        origin: "row encoding".into(),
        column: column.to_string(),
        found: dt.to_string(),
    }
}

fn cast(array: &ArrayRef, to: &DataType, column: &str) -> Result<ArrayRef, ContractError> {
    arrow::compute::cast(array, to).map_err(|_| unsupported(column, array.data_type()))
}

fn prepare(array: &ArrayRef, column: &str) -> Result<Col, ContractError> {
    use DataType::*;
    let dt = array.data_type();
    Ok(match dt {
        Dictionary(_, value) => {
            let decoded = cast(array, value, column)?;
            return prepare(&decoded, column);
        }
        Boolean => Col::Bool(array.as_boolean().clone()),
        Int64 => Word::column::<Int64Type>(&[0x02], array, Words::I64),
        Int32 => Word::column::<Int32Type>(&[0x02], array, Words::I32),
        Int8 | Int16 | UInt8 | UInt16 => {
            Word::column::<Int32Type>(&[0x02], &cast(array, &Int32, column)?, Words::I32)
        }
        UInt32 => Word::column::<Int64Type>(&[0x02], &cast(array, &Int64, column)?, Words::I64),
        UInt64 => Col::UInt64(array.as_primitive::<UInt64Type>().clone()),
        Float64 => Word::column::<Float64Type>(&[0x04], array, Words::F64),
        Float32 => Word::column::<Float32Type>(&[0x04], array, Words::F32),
        Float16 => {
            Word::column::<Float64Type>(&[0x04], &cast(array, &Float64, column)?, Words::F64)
        }
        Utf8 | LargeUtf8 | Utf8View => Col::Str(array.clone()),
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => Col::Bin(array.clone()),
        Date32 => Word::column::<Date32Type>(&[0x07], array, Words::I32),
        Date64 => Word::column::<Date32Type>(&[0x07], &cast(array, &Date32, column)?, Words::I32),
        Timestamp(unit, _) => {
            let u = match unit {
                TimeUnit::Second => 0,
                TimeUnit::Millisecond => 1,
                TimeUnit::Microsecond => 2,
                TimeUnit::Nanosecond => 3,
            };
            Word::column::<Int64Type>(&[0x08, u], &cast(array, &Int64, column)?, Words::I64)
        }
        Decimal128(_, _) => Col::Dec(array.as_primitive::<Decimal128Type>().clone()),
        List(_) | LargeList(_) | FixedSizeList(_, _) => Col::List(array.clone()),
        other => return Err(unsupported(column, other)),
    })
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u64).to_le_bytes());
}

fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.push(0x04);
    out.extend_from_slice(&canonical_bits(v).to_le_bytes());
}

fn put_i64(out: &mut Vec<u8>, tag: u8, v: Option<i64>) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(tag);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// Append the canonical encoding of `array[i]` (any supported type, including nested lists) to `out`.
fn encode_dyn(array: &dyn Array, i: usize, out: &mut Vec<u8>) {
    use DataType::*;
    if array.is_null(i) {
        out.push(0);
        return;
    }
    match array.data_type() {
        Boolean => {
            out.push(0x01);
            out.push(array.as_boolean().value(i) as u8);
        }
        Int8 => put_i64(
            out,
            2,
            Some(array.as_primitive::<arrow::datatypes::Int8Type>().value(i) as i64),
        ),
        Int16 => put_i64(
            out,
            2,
            Some(array.as_primitive::<arrow::datatypes::Int16Type>().value(i) as i64),
        ),
        Int32 => put_i64(
            out,
            2,
            Some(array.as_primitive::<arrow::datatypes::Int32Type>().value(i) as i64),
        ),
        Int64 => put_i64(
            out,
            2,
            Some(array.as_primitive::<arrow::datatypes::Int64Type>().value(i)),
        ),
        UInt8 => put_i64(
            out,
            2,
            Some(array.as_primitive::<arrow::datatypes::UInt8Type>().value(i) as i64),
        ),
        UInt16 => put_i64(
            out,
            2,
            Some(
                array
                    .as_primitive::<arrow::datatypes::UInt16Type>()
                    .value(i) as i64,
            ),
        ),
        UInt32 => put_i64(
            out,
            2,
            Some(
                array
                    .as_primitive::<arrow::datatypes::UInt32Type>()
                    .value(i) as i64,
            ),
        ),
        UInt64 => put_u64(
            out,
            array
                .as_primitive::<arrow::datatypes::UInt64Type>()
                .value(i),
        ),
        Float16 => put_f64(
            out,
            array
                .as_primitive::<arrow::datatypes::Float16Type>()
                .value(i)
                .to_f64(),
        ),
        Float32 => put_f64(
            out,
            array
                .as_primitive::<arrow::datatypes::Float32Type>()
                .value(i) as f64,
        ),
        Float64 => put_f64(
            out,
            array
                .as_primitive::<arrow::datatypes::Float64Type>()
                .value(i),
        ),
        List(_) => put_list(out, &array.as_list::<i32>().value(i)),
        LargeList(_) => put_list(out, &array.as_list::<i64>().value(i)),
        FixedSizeList(_, _) => put_list(out, &array.as_fixed_size_list().value(i)),
        _ => {
            // Other element types inside lists: encode via their string form (rare; documented).
            let s = arrow::util::display::array_value_to_string(array, i).unwrap_or_default();
            out.push(0x05);
            put_len(out, s.len());
            out.extend_from_slice(s.as_bytes());
        }
    }
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    if v <= i64::MAX as u64 {
        put_i64(out, 2, Some(v as i64));
    } else {
        out.push(0x03);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn put_list(out: &mut Vec<u8>, values: &ArrayRef) {
    out.push(0x0A);
    put_len(out, values.len());
    for j in 0..values.len() {
        encode_dyn(values.as_ref(), j, out);
    }
}

fn put_bytes(out: &mut Vec<u8>, tag: u8, b: &[u8]) {
    out.push(tag);
    put_len(out, b.len());
    out.extend_from_slice(b);
}

/// Add `width` (non-null) or 1 (null) to each row's length.
fn add_fixed(
    nulls: Option<&arrow::buffer::NullBuffer>,
    start: usize,
    lens: &mut [usize],
    width: usize,
) {
    match nulls {
        None => lens.iter_mut().for_each(|l| *l += width),
        Some(nb) => {
            for (k, l) in lens.iter_mut().enumerate() {
                *l += if nb.is_valid(start + k) { width } else { 1 };
            }
        }
    }
}

/// The canonical bit pattern of a float: every NaN as `0x7ff8000000000000`, -0.0 as 0.0 (adding +0.0 turns -0.0
/// into +0.0 and leaves every other value unchanged), without branches.
#[inline(always)]
fn canonical_bits(v: f64) -> u64 {
    let bits = (v + 0.0).to_bits();
    if v.is_nan() {
        0x7ff8_0000_0000_0000u64
    } else {
        bits
    }
}

impl Col {
    /// Bytes of a string or binary value (None when null or not a string/binary column).
    fn bytes_at(&self, i: usize) -> Option<&[u8]> {
        match self {
            Col::Str(a) if a.is_valid(i) => Some(match a.data_type() {
                DataType::Utf8 => a.as_string::<i32>().value(i).as_bytes(),
                DataType::LargeUtf8 => a.as_string::<i64>().value(i).as_bytes(),
                _ => a.as_string_view().value(i).as_bytes(),
            }),
            Col::Bin(a) if a.is_valid(i) => Some(match a.data_type() {
                DataType::Binary => a.as_binary::<i32>().value(i),
                DataType::LargeBinary => a.as_binary::<i64>().value(i),
                DataType::FixedSizeBinary(_) => a.as_fixed_size_binary().value(i),
                _ => a.as_binary_view().value(i),
            }),
            _ => None,
        }
    }

    /// The encoded width of every value when the column has no nulls and a fixed-width type, else None.
    fn fixed_width(&self) -> Option<usize> {
        match self {
            Col::Word(w) => w.nulls.is_none().then_some(w.width()),
            Col::UInt64(a) => (a.null_count() == 0).then_some(9),
            Col::Bool(a) => (a.null_count() == 0).then_some(2),
            Col::Dec(a) => (a.null_count() == 0).then_some(18),
            Col::Str(_) | Col::Bin(_) | Col::List(_) => None,
        }
    }

    /// Write rows `start..` of a fixed-width, null-free column at `offset` of each `row_len`-byte row of `buf`.
    fn write_fixed(
        &self,
        start: usize,
        buf: &mut [u8],
        row_len: usize,
        offset: usize,
        scratch: &mut Vec<u8>,
    ) {
        /// Cells of a null-free word column, one per `row_len`-byte row, with an `H`-byte head.
        struct Cells<'a, const H: usize> {
            buf: &'a mut [u8],
            row_len: usize,
            offset: usize,
            head: [u8; H],
        }
        impl<const H: usize> WordsFn<()> for Cells<'_, H> {
            fn call<T: Copy>(self, values: &[T], word: impl Fn(T) -> u64) {
                for (row, &v) in self.buf.chunks_exact_mut(self.row_len).zip(values) {
                    let cell = &mut row[self.offset..self.offset + H + 8];
                    cell[..H].copy_from_slice(&self.head);
                    cell[H..].copy_from_slice(&word(v).to_le_bytes());
                }
            }
        }
        match self {
            Col::Word(w) if w.head_len == 1 => w.with_values(
                start,
                Cells {
                    buf,
                    row_len,
                    offset,
                    head: [w.head[0]],
                },
            ),
            Col::Word(w) => w.with_values(
                start,
                Cells {
                    buf,
                    row_len,
                    offset,
                    head: w.head,
                },
            ),
            _ => {
                for (k, row) in buf.chunks_exact_mut(row_len).enumerate() {
                    scratch.clear();
                    self.encode(start + k, scratch);
                    row[offset..offset + scratch.len()].copy_from_slice(scratch);
                }
            }
        }
    }

    /// Add the encoded length of rows `start..start + lens.len()` to `lens` (column at a time).
    fn add_lens(&self, start: usize, lens: &mut [usize], scratch: &mut Vec<u8>) {
        match self {
            Col::Word(w) => add_fixed(w.nulls.as_ref(), start, lens, w.width()),
            Col::UInt64(a) => add_fixed(a.nulls(), start, lens, 9),
            Col::Bool(a) => add_fixed(a.nulls(), start, lens, 2),
            Col::Dec(a) => add_fixed(a.nulls(), start, lens, 18),
            Col::Str(_) | Col::Bin(_) => {
                for (k, l) in lens.iter_mut().enumerate() {
                    *l += self.bytes_at(start + k).map_or(1, |b| 9 + b.len());
                }
            }
            Col::List(_) => {
                for (k, l) in lens.iter_mut().enumerate() {
                    scratch.clear();
                    self.encode(start + k, scratch);
                    *l += scratch.len();
                }
            }
        }
    }

    /// Write the encoding of rows `start..start + pos.len()` at `buf[pos[k]..]`, advancing each `pos[k]`.
    fn write(&self, start: usize, buf: &mut [u8], pos: &mut [usize], scratch: &mut Vec<u8>) {
        /// Cells of a word column that may have nulls, at each row's cursor.
        struct Cells<'a> {
            buf: &'a mut [u8],
            pos: &'a mut [usize],
            start: usize,
            word: &'a Word,
        }
        impl WordsFn<()> for Cells<'_> {
            fn call<T: Copy>(self, values: &[T], word: impl Fn(T) -> u64) {
                let h = self.word.head_len;
                for (k, (p, &v)) in self.pos.iter_mut().zip(values).enumerate() {
                    if self.word.is_null(self.start + k) {
                        self.buf[*p] = 0;
                        *p += 1;
                    } else {
                        self.buf[*p..*p + h].copy_from_slice(&self.word.head[..h]);
                        self.buf[*p + h..*p + h + 8].copy_from_slice(&word(v).to_le_bytes());
                        *p += h + 8;
                    }
                }
            }
        }
        match self {
            Col::Word(w) => w.with_values(
                start,
                Cells {
                    buf,
                    pos,
                    start,
                    word: w,
                },
            ),
            _ => {
                for (k, p) in pos.iter_mut().enumerate() {
                    scratch.clear();
                    self.encode(start + k, scratch);
                    buf[*p..*p + scratch.len()].copy_from_slice(scratch);
                    *p += scratch.len();
                }
            }
        }
    }

    fn encode(&self, i: usize, out: &mut Vec<u8>) {
        match self {
            Col::Bool(a) => {
                if a.is_null(i) {
                    out.push(0)
                } else {
                    out.push(0x01);
                    out.push(a.value(i) as u8);
                }
            }
            Col::Word(w) => {
                if w.is_null(i) {
                    out.push(0)
                } else {
                    out.extend_from_slice(&w.head[..w.head_len]);
                    out.extend_from_slice(&w.word(i).to_le_bytes());
                }
            }
            Col::UInt64(a) => {
                if a.is_null(i) {
                    out.push(0)
                } else {
                    put_u64(out, a.value(i))
                }
            }
            Col::Str(_) | Col::Bin(_) => match self.bytes_at(i) {
                None => out.push(0),
                Some(b) => put_bytes(
                    out,
                    if matches!(self, Col::Str(_)) {
                        0x05
                    } else {
                        0x06
                    },
                    b,
                ),
            },
            Col::Dec(a) => {
                if a.is_null(i) {
                    out.push(0);
                    return;
                }
                out.push(0x09);
                out.push(a.scale() as u8);
                out.extend_from_slice(&a.value(i).to_le_bytes());
            }
            Col::List(a) => encode_dyn(a.as_ref(), i, out),
        }
    }
}

/// Encodes rows of batches over a fixed set of columns (by index) and hashes them.
pub struct RowHasher {
    columns: Vec<usize>,
    mode: HashMode,
}

/// Rows per rayon task when hashing a batch.
const ROWS_PER_TASK: usize = 2048;
/// Rows encoded into one buffer before hashing (a few tens of KiB for typical rows, so it stays in cache).
const ROWS_PER_BLOCK: usize = 128;

impl RowHasher {
    /// Hash the columns at `columns` (schema order) in `mode`.
    pub fn new(columns: Vec<usize>, mode: HashMode) -> RowHasher {
        RowHasher { columns, mode }
    }

    /// Digest every row of `batch`, in parallel.
    pub fn digest_batch(&self, batch: &RecordBatch) -> Result<Vec<RowDigest>, ContractError> {
        let mut out = Vec::new();
        self.digest_batch_into(batch, &mut out)?;
        Ok(out)
    }

    /// Append the digest of every row of `batch` to `digests`, in parallel (no intermediate vector).
    pub fn digest_batch_into(
        &self,
        batch: &RecordBatch,
        digests: &mut Vec<RowDigest>,
    ) -> Result<(), ContractError> {
        let first = digests.len();
        digests.resize(first + batch.num_rows(), [0u8; 32]);
        self.digest_batch_to(batch, &mut digests[first..])
    }

    /// Write the digest of every row of `batch` to `out`, in parallel. `out` must have one slot per row (callers
    /// check row counts that come from file metadata before calling).
    pub(crate) fn digest_batch_to(
        &self,
        batch: &RecordBatch,
        out: &mut [RowDigest],
    ) -> Result<(), ContractError> {
        debug_assert_eq!(out.len(), batch.num_rows());
        let schema = batch.schema();
        let cols: Vec<Col> = self
            .columns
            .iter()
            .map(|&c| prepare(batch.column(c), schema.field(c).name()))
            .collect::<Result<_, _>>()?;
        // Every column fixed-width and null-free in this batch (the common case for feature tables): every row has
        // the same length and each value a fixed offset, so rows are written without per-row lengths or cursors.
        let widths: Option<Vec<usize>> = cols.iter().map(Col::fixed_width).collect();
        if let Some(widths) = widths {
            let row_len: usize = widths.iter().sum();
            if row_len > 0 {
                self.digest_fixed(&cols, &widths, row_len, out);
                return Ok(());
            }
        }
        out.par_chunks_mut(ROWS_PER_TASK).enumerate().for_each_init(
            || (Vec::new(), Vec::new(), Vec::new(), Vec::new()),
            |(buf, lens, pos, scratch), (t, task)| {
                // Encode a block of rows column by column into one buffer (small enough to stay in cache), then
                // hash the block's rows eight at a time.
                for (b, chunk) in task.chunks_mut(ROWS_PER_BLOCK).enumerate() {
                    let start = t * ROWS_PER_TASK + b * ROWS_PER_BLOCK;
                    lens.clear();
                    lens.resize(chunk.len(), 0usize);
                    for c in &cols {
                        c.add_lens(start, lens, scratch);
                    }
                    pos.clear();
                    let mut total = 0;
                    for &l in lens.iter() {
                        pos.push(total);
                        total += l;
                    }
                    // Every byte is written below: only a grown buffer needs filling.
                    buf.resize(total, 0u8);
                    for c in &cols {
                        c.write(start, buf, pos, scratch);
                    }
                    let mut begin = 0;
                    let rows: Vec<&[u8]> = pos
                        .iter()
                        .map(|&end| {
                            let row = &buf[begin..end];
                            begin = end;
                            row
                        })
                        .collect();
                    super::lanes::hash_many(&self.mode, &rows, chunk);
                }
            },
        );
        Ok(())
    }

    /// `digest_batch` for batches whose columns all have a fixed encoded width (see `Col::fixed_width`).
    fn digest_fixed(&self, cols: &[Col], widths: &[usize], row_len: usize, out: &mut [RowDigest]) {
        out.par_chunks_mut(ROWS_PER_TASK).enumerate().for_each_init(
            || (Vec::new(), Vec::new()),
            |(buf, scratch), (t, task)| {
                for (b, chunk) in task.chunks_mut(ROWS_PER_BLOCK).enumerate() {
                    let start = t * ROWS_PER_TASK + b * ROWS_PER_BLOCK;
                    // Every byte of every row is written below: only a grown buffer needs filling.
                    buf.resize(chunk.len() * row_len, 0u8);
                    let mut offset = 0;
                    for (c, &w) in cols.iter().zip(widths) {
                        c.write_fixed(start, buf, row_len, offset, scratch);
                        offset += w;
                    }
                    let rows: Vec<&[u8]> = buf.chunks_exact(row_len).collect();
                    super::lanes::hash_many(&self.mode, &rows, chunk);
                }
            },
        );
    }

    /// The canonical encoding of one row (for tests and documentation).
    pub fn encode_row(&self, batch: &RecordBatch, row: usize) -> Result<Vec<u8>, ContractError> {
        let schema = batch.schema();
        let mut buf = Vec::new();
        for &c in &self.columns {
            prepare(batch.column(c), schema.field(c).name())?.encode(row, &mut buf);
        }
        Ok(buf)
    }
}

/// A canonical description of a schema (names and logical type families) and its blake3 hash, hex.
pub fn schema_hash(schema: &arrow::datatypes::Schema) -> String {
    let mut s = String::new();
    for f in schema.fields() {
        s.push_str(f.name());
        s.push(':');
        s.push_str(type_family(f.data_type()));
        s.push(';');
    }
    blake3::hash(s.as_bytes()).to_hex().to_string()
}

/// The logical family of a type as used by the row encoding (so Int32 and Int64 hash alike).
pub fn type_family(dt: &DataType) -> &'static str {
    use DataType::*;
    match dt {
        Dictionary(_, v) => type_family(v),
        Boolean => "bool",
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 => "int",
        Float16 | Float32 | Float64 => "float",
        Utf8 | LargeUtf8 | Utf8View => "string",
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => "binary",
        Date32 | Date64 => "date",
        Timestamp(_, _) => "timestamp",
        Decimal128(_, _) => "decimal",
        List(_) | LargeList(_) | FixedSizeList(_, _) => "list",
        _ => "other",
    }
}
