//! Canonical row encoding and blake3 row digests.
//!
//! Each value is written as a one-byte type tag followed by its bytes, column by column in schema order. Numbers
//! take their shortest exact form, chosen by value (never by column type), so the same number always has the same
//! bytes:
//!
//! | value | encoding |
//! |---|---|
//! | null (any type; every cell of a column without a type) | `0x00` |
//! | boolean | `0x01`, then `0` or `1` |
//! | integer (any width, signed or not) in i32 range | `0x0C`, then i32 little-endian |
//! | other integer that fits i64 | `0x02`, then i64 little-endian |
//! | unsigned integer above i64::MAX | `0x03`, then u64 little-endian |
//! | float (f16/f32/f64) exactly representable as f32, including ±inf and NaN | `0x0B`, then the f32 bit pattern, little-endian; every NaN as `0x7fc00000`, -0.0 as 0.0 |
//! | other float | `0x04`, then the f64 bit pattern, little-endian |
//! | string (Utf8, LargeUtf8, Utf8View) | `0x05`, u64 length, UTF-8 bytes |
//! | binary (any) | `0x06`, u64 length, bytes |
//! | date32 / date64 | `0x07`, days since epoch as i32 |
//! | timestamp | `0x08`, unit byte (0 s, 1 ms, 2 us, 3 ns), i64 |
//! | decimal128 | `0x09`, scale byte, i128 little-endian |
//! | list / large list / fixed-size list | `0x0A`, u64 length, each element encoded |
//! | struct | `0x0D`, u64 field count, each field's value encoded |
//! | map | `0x0E`, u64 entry count, each entry's key and value encoded |
//!
//! Inside lists, structs and maps, booleans, numbers and nested values are encoded as above; any other value (a
//! string, binary, date, timestamp or decimal) is written as a string (`0x05`) of its display form.
//!
//! Dictionary-encoded columns are encoded by value, so a row's digest does not depend on batch boundaries,
//! chunking, row groups, dictionary vs plain encoding, integer or float width, or the file format the values came
//! from. This is row encoding version 2 (`ROW_ENCODING_VERSION`); version 1 wrote every integer as i64 and every
//! float as f64 bits, nine bytes per number.

use crate::error::ContractError;
use arrow::array::*;
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float16Type, Float32Type, Float64Type, Int16Type,
    Int32Type, Int64Type, Int8Type, TimeUnit, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use rayon::prelude::*;
use std::sync::Arc;

/// Version of the canonical row encoding (recorded in manifests: digests of different versions never compare).
pub const ROW_ENCODING_VERSION: u32 = 2;

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
    /// Lists, structs and maps, encoded value by value (`encode_dyn`).
    Nested(Arc<dyn Array>),
}

/// Values of a column whose non-null cells are integers, floats, dates or timestamps, read in place from Arrow's
/// buffers (no widening copy). Each value is written in its shortest exact form: a tag and four bytes when it has one
/// (integers in i32 range, floats exactly representable as f32, dates), else its long head (the tag, and a unit byte
/// for timestamps) and eight bytes.
struct Word {
    /// Tag of the four-byte form; None when values always take the long form (timestamps).
    short_tag: Option<u8>,
    /// Tag (and unit byte) of the eight-byte form.
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

/// A native value of a word column and its two canonical forms (the one place that defines them).
trait Native: Copy {
    /// The four-byte form, when the value has one: an integer in i32 range (two's complement), or a float exactly
    /// representable as f32 (its f32 bits; every NaN as `0x7fc00000`, -0.0 as 0.0).
    fn short(self) -> Option<u32>;
    /// The eight-byte form: an integer as i64, a float as its f64 bits (canonical NaN, -0.0 as 0.0).
    fn long(self) -> u64;
}

impl Native for i64 {
    #[inline(always)]
    fn short(self) -> Option<u32> {
        i32::try_from(self).ok().map(|v| v as u32)
    }
    #[inline(always)]
    fn long(self) -> u64 {
        self as u64
    }
}

impl Native for i32 {
    #[inline(always)]
    fn short(self) -> Option<u32> {
        Some(self as u32)
    }
    #[inline(always)]
    fn long(self) -> u64 {
        self as i64 as u64
    }
}

impl Native for f32 {
    #[inline(always)]
    fn short(self) -> Option<u32> {
        Some(canonical_f32_bits(self))
    }
    #[inline(always)]
    fn long(self) -> u64 {
        canonical_bits(self as f64)
    }
}

impl Native for f64 {
    #[inline(always)]
    fn short(self) -> Option<u32> {
        let narrow = self as f32;
        // NaN never equals itself: every NaN takes the short form too.
        (narrow as f64 == self || self.is_nan()).then(|| canonical_f32_bits(narrow))
    }
    #[inline(always)]
    fn long(self) -> u64 {
        canonical_bits(self)
    }
}

/// How every value of a null-free word column is written in one batch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    /// Tag and four bytes.
    Short,
    /// Head and eight bytes.
    Long,
    /// Some values each way (the general, per-row path).
    Mixed,
}

impl Word {
    /// A word column of `kind` (integer, float, date or timestamp with `unit`).
    fn column<T: arrow::datatypes::ArrowPrimitiveType>(
        kind: Kind,
        array: &ArrayRef,
        values: impl FnOnce(arrow::buffer::ScalarBuffer<T::Native>) -> Words,
    ) -> Col {
        let a = array.as_primitive::<T>();
        let (short_tag, head, head_len) = match kind {
            Kind::Int => (Some(0x0C), [0x02, 0], 1),
            Kind::Float => (Some(0x0B), [0x04, 0], 1),
            Kind::Date => (Some(0x07), [0x07, 0], 1),
            Kind::Timestamp(unit) => (None, [0x08, unit], 2),
        };
        Col::Word(Word {
            short_tag,
            head,
            head_len,
            values: values(a.values().clone()),
            nulls: a.nulls().cloned(),
        })
    }

    fn is_null(&self, i: usize) -> bool {
        self.nulls.as_ref().is_some_and(|n| n.is_null(i))
    }

    /// The encoded length of a non-null value.
    #[inline(always)]
    fn len_of<T: Native>(&self, v: T) -> usize {
        match self.short_tag.and(v.short()) {
            Some(_) => 5,
            None => self.head_len + 8,
        }
    }

    /// Write non-null value `v` at the start of `out`; returns its length.
    #[inline(always)]
    fn put<T: Native>(&self, v: T, out: &mut [u8]) -> usize {
        put_cell(v, self.short_tag, &self.head[..self.head_len], out)
    }

    /// How the values of rows `start..start + n` are written when they are not null (a pass over them for 64-bit
    /// columns, whose values may or may not have a short form).
    fn form(&self, start: usize, n: usize) -> Form {
        /// Whether every value, no value or some values have a short form.
        struct Classify(usize);
        impl WordsFn<Form> for Classify {
            fn call<T: Native>(self, values: &[T]) -> Form {
                let values = &values[..self.0];
                let short = values.iter().filter(|v| v.short().is_some()).count();
                if short == values.len() {
                    Form::Short
                } else if short == 0 {
                    Form::Long
                } else {
                    Form::Mixed
                }
            }
        }
        match (&self.values, self.short_tag) {
            (_, None) => Form::Long,
            (Words::I32(_) | Words::F32(_), Some(_)) => Form::Short,
            _ => self.with_values(start, Classify(n)),
        }
    }

    /// Call `f` with this column's values from row `start` on.
    fn with_values<R>(&self, start: usize, f: impl WordsFn<R>) -> R {
        match &self.values {
            Words::I64(v) => f.call(&v[start..]),
            Words::I32(v) => f.call(&v[start..]),
            Words::F64(v) => f.call(&v[start..]),
            Words::F32(v) => f.call(&v[start..]),
        }
    }
}

/// The kind of a word column.
#[derive(Clone, Copy)]
enum Kind {
    Int,
    Float,
    Date,
    /// A timestamp with its unit byte (0 s, 1 ms, 2 us, 3 ns).
    Timestamp(u8),
}

/// A computation over a column's values of any native type (a generic closure).
trait WordsFn<R> {
    fn call<T: Native>(self, values: &[T]) -> R;
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
        // A column with no value in any row (CSV type inference gives it no type): every cell is a null, encoded as
        // a null of any other type is.
        Null => Col::Bool(BooleanArray::new_null(array.len())),
        Boolean => Col::Bool(array.as_boolean().clone()),
        Int64 => Word::column::<Int64Type>(Kind::Int, array, Words::I64),
        Int32 => Word::column::<Int32Type>(Kind::Int, array, Words::I32),
        Int8 | Int16 | UInt8 | UInt16 => {
            Word::column::<Int32Type>(Kind::Int, &cast(array, &Int32, column)?, Words::I32)
        }
        UInt32 => Word::column::<Int64Type>(Kind::Int, &cast(array, &Int64, column)?, Words::I64),
        UInt64 => {
            let a = array.as_primitive::<UInt64Type>();
            // Values that fit i64 are integers like any other; a column with larger values is encoded value by value.
            if arrow::compute::max(a).is_none_or(|m| m <= i64::MAX as u64) {
                Word::column::<Int64Type>(Kind::Int, &cast(array, &Int64, column)?, Words::I64)
            } else {
                Col::UInt64(a.clone())
            }
        }
        Float64 => Word::column::<Float64Type>(Kind::Float, array, Words::F64),
        Float32 => Word::column::<Float32Type>(Kind::Float, array, Words::F32),
        Float16 => {
            Word::column::<Float32Type>(Kind::Float, &cast(array, &Float32, column)?, Words::F32)
        }
        Utf8 | LargeUtf8 | Utf8View => Col::Str(array.clone()),
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => Col::Bin(array.clone()),
        Date32 => Word::column::<Date32Type>(Kind::Date, array, Words::I32),
        Date64 => {
            Word::column::<Date32Type>(Kind::Date, &cast(array, &Date32, column)?, Words::I32)
        }
        Timestamp(unit, _) => {
            let u = match unit {
                TimeUnit::Second => 0,
                TimeUnit::Millisecond => 1,
                TimeUnit::Microsecond => 2,
                TimeUnit::Nanosecond => 3,
            };
            Word::column::<Int64Type>(
                Kind::Timestamp(u),
                &cast(array, &Int64, column)?,
                Words::I64,
            )
        }
        Decimal128(_, _) => Col::Dec(array.as_primitive::<Decimal128Type>().clone()),
        List(_) | LargeList(_) | FixedSizeList(_, _) | Struct(_) | Map(_, _) => {
            Col::Nested(array.clone())
        }
        other => return Err(unsupported(column, other)),
    })
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u64).to_le_bytes());
}

/// Write non-null value `v` at the start of `out` in its shortest exact form: `short_tag` and four bytes when it has
/// a short form (and the kind allows one), else `head` and eight bytes. Returns its length (the one place that lays
/// out a number's cell).
#[inline(always)]
fn put_cell<T: Native>(v: T, short_tag: Option<u8>, head: &[u8], out: &mut [u8]) -> usize {
    match short_tag.zip(v.short()) {
        Some((tag, bits)) => {
            out[0] = tag;
            out[1..5].copy_from_slice(&bits.to_le_bytes());
            5
        }
        None => {
            let h = head.len();
            out[..h].copy_from_slice(head);
            out[h..h + 8].copy_from_slice(&v.long().to_le_bytes());
            h + 8
        }
    }
}

/// Append a non-null number in its shortest exact form: `short_tag` and four bytes, or `long_tag` and eight.
fn put_number<T: Native>(out: &mut Vec<u8>, v: T, short_tag: u8, long_tag: u8) {
    let mut cell = [0u8; 10];
    let n = put_cell(v, Some(short_tag), &[long_tag], &mut cell);
    out.extend_from_slice(&cell[..n]);
}

/// Append a non-null integer in its shortest exact form.
fn put_int(out: &mut Vec<u8>, v: i64) {
    put_number(out, v, 0x0C, 0x02);
}

/// Append a non-null float in its shortest exact form.
fn put_float(out: &mut Vec<u8>, v: f64) {
    put_number(out, v, 0x0B, 0x04);
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
        Int8 => put_int(out, array.as_primitive::<Int8Type>().value(i).into()),
        Int16 => put_int(out, array.as_primitive::<Int16Type>().value(i).into()),
        Int32 => put_int(out, array.as_primitive::<Int32Type>().value(i).into()),
        Int64 => put_int(out, array.as_primitive::<Int64Type>().value(i)),
        UInt8 => put_int(out, array.as_primitive::<UInt8Type>().value(i).into()),
        UInt16 => put_int(out, array.as_primitive::<UInt16Type>().value(i).into()),
        UInt32 => put_int(out, array.as_primitive::<UInt32Type>().value(i).into()),
        UInt64 => put_u64(out, array.as_primitive::<UInt64Type>().value(i)),
        Float16 => put_float(out, array.as_primitive::<Float16Type>().value(i).to_f64()),
        Float32 => put_float(out, array.as_primitive::<Float32Type>().value(i).into()),
        Float64 => put_float(out, array.as_primitive::<Float64Type>().value(i)),
        List(_) => put_list(out, &array.as_list::<i32>().value(i)),
        LargeList(_) => put_list(out, &array.as_list::<i64>().value(i)),
        FixedSizeList(_, _) => put_list(out, &array.as_fixed_size_list().value(i)),
        Struct(_) => {
            let fields = array.as_struct().columns();
            out.push(0x0D);
            put_len(out, fields.len());
            for f in fields {
                encode_dyn(f.as_ref(), i, out);
            }
        }
        Map(_, _) => {
            let entries = array.as_map().value(i);
            out.push(0x0E);
            put_len(out, entries.len());
            for j in 0..entries.len() {
                encode_dyn(entries.column(0).as_ref(), j, out);
                encode_dyn(entries.column(1).as_ref(), j, out);
            }
        }
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
    if let Ok(v) = i64::try_from(v) {
        put_int(out, v);
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

/// The canonical bit pattern of an f32: every NaN as `0x7fc00000`, -0.0 as 0.0.
#[inline(always)]
fn canonical_f32_bits(v: f32) -> u32 {
    if v.is_nan() {
        0x7fc0_0000
    } else {
        (v + 0.0).to_bits()
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

    /// The encoded width of every value of rows `start..start + n` when it is the same for all of them (no nulls, a
    /// fixed-width type, and for 64-bit integers and floats every value in the same form), else None.
    fn fixed_width(&self, start: usize, n: usize) -> Option<usize> {
        let no_nulls = |nulls: Option<&arrow::buffer::NullBuffer>| {
            nulls.is_none_or(|b| b.slice(start, n).null_count() == 0)
        };
        match self {
            Col::Word(w) if no_nulls(w.nulls.as_ref()) => match w.form(start, n) {
                Form::Short => Some(5),
                Form::Long => Some(w.head_len + 8),
                Form::Mixed => None,
            },
            Col::Bool(a) => no_nulls(a.nulls()).then_some(2),
            Col::Dec(a) => no_nulls(a.nulls()).then_some(18),
            Col::Word(_) | Col::UInt64(_) | Col::Str(_) | Col::Bin(_) | Col::Nested(_) => None,
        }
    }

    /// Write rows `start..` of a column at `offset` of each `row_len`-byte row of `buf`, every value `width` bytes
    /// (`fixed_width`; a word column's short form is 5 bytes, its long form at least 9).
    fn write_fixed(
        &self,
        start: usize,
        buf: &mut [u8],
        (row_len, offset, width): (usize, usize, usize),
        scratch: &mut Vec<u8>,
    ) {
        /// Cells of a null-free word column in the short form, one per `row_len`-byte row.
        struct Short<'a> {
            buf: &'a mut [u8],
            row_len: usize,
            offset: usize,
            tag: u8,
        }
        impl WordsFn<()> for Short<'_> {
            fn call<T: Native>(self, values: &[T]) {
                for (row, &v) in self.buf.chunks_exact_mut(self.row_len).zip(values) {
                    let cell = &mut row[self.offset..self.offset + 5];
                    cell[0] = self.tag;
                    cell[1..].copy_from_slice(&v.short().unwrap_or_default().to_le_bytes());
                }
            }
        }
        /// Cells of a null-free word column in the long form, with an `H`-byte head.
        struct Long<'a, const H: usize> {
            buf: &'a mut [u8],
            row_len: usize,
            offset: usize,
            head: [u8; H],
        }
        impl<const H: usize> WordsFn<()> for Long<'_, H> {
            fn call<T: Native>(self, values: &[T]) {
                for (row, &v) in self.buf.chunks_exact_mut(self.row_len).zip(values) {
                    let cell = &mut row[self.offset..self.offset + H + 8];
                    cell[..H].copy_from_slice(&self.head);
                    cell[H..].copy_from_slice(&v.long().to_le_bytes());
                }
            }
        }
        match self {
            Col::Word(w) => match w.short_tag {
                Some(tag) if width == 5 => w.with_values(
                    start,
                    Short {
                        buf,
                        row_len,
                        offset,
                        tag,
                    },
                ),
                _ if w.head_len == 1 => w.with_values(
                    start,
                    Long {
                        buf,
                        row_len,
                        offset,
                        head: [w.head[0]],
                    },
                ),
                _ => w.with_values(
                    start,
                    Long {
                        buf,
                        row_len,
                        offset,
                        head: w.head,
                    },
                ),
            },
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
        /// Lengths of a word column's cells (1 for a null).
        struct Lens<'a> {
            lens: &'a mut [usize],
            start: usize,
            word: &'a Word,
        }
        impl WordsFn<()> for Lens<'_> {
            fn call<T: Native>(self, values: &[T]) {
                for (k, (l, &v)) in self.lens.iter_mut().zip(values).enumerate() {
                    *l += if self.word.is_null(self.start + k) {
                        1
                    } else {
                        self.word.len_of(v)
                    };
                }
            }
        }
        match self {
            Col::Word(w) => w.with_values(
                start,
                Lens {
                    lens,
                    start,
                    word: w,
                },
            ),
            Col::UInt64(a) => {
                for (k, l) in lens.iter_mut().enumerate() {
                    *l += match a.is_valid(start + k).then(|| a.value(start + k)) {
                        None => 1,
                        Some(v) if v <= i32::MAX as u64 => 5,
                        Some(_) => 9,
                    };
                }
            }
            Col::Bool(a) => add_fixed(a.nulls(), start, lens, 2),
            Col::Dec(a) => add_fixed(a.nulls(), start, lens, 18),
            Col::Str(_) | Col::Bin(_) => {
                for (k, l) in lens.iter_mut().enumerate() {
                    *l += self.bytes_at(start + k).map_or(1, |b| 9 + b.len());
                }
            }
            Col::Nested(_) => {
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
            fn call<T: Native>(self, values: &[T]) {
                for (k, (p, &v)) in self.pos.iter_mut().zip(values).enumerate() {
                    if self.word.is_null(self.start + k) {
                        self.buf[*p] = 0;
                        *p += 1;
                    } else {
                        *p += self.word.put(v, &mut self.buf[*p..]);
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
                /// The cell of the first value.
                struct First<'a>(&'a Word, &'a mut Vec<u8>);
                impl WordsFn<()> for First<'_> {
                    fn call<T: Native>(self, values: &[T]) {
                        let mut cell = [0u8; 10];
                        let n = self.0.put(values[0], &mut cell);
                        self.1.extend_from_slice(&cell[..n]);
                    }
                }
                if w.is_null(i) {
                    out.push(0)
                } else {
                    w.with_values(i, First(w, out));
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
            Col::Nested(a) => encode_dyn(a.as_ref(), i, out),
        }
    }
}

/// One thread's buffers for encoding a block of rows.
#[derive(Default)]
struct Block {
    buf: Vec<u8>,
    widths: Vec<usize>,
    lens: Vec<usize>,
    pos: Vec<usize>,
    scratch: Vec<u8>,
}

impl Block {
    /// Encode rows `start..start + n` of `cols` into the buffer; returns each row's bytes.
    fn encode(&mut self, cols: &[Col], start: usize, n: usize) -> Vec<&[u8]> {
        let Block {
            buf,
            widths,
            lens,
            pos,
            scratch,
        } = self;
        // Every value of every column in this block has the same width (the common case for feature tables): every
        // row has the same length and each value a fixed offset, so rows are written without per-row lengths or
        // cursors.
        widths.clear();
        let fixed = cols.iter().all(|c| match c.fixed_width(start, n) {
            Some(w) => {
                widths.push(w);
                true
            }
            None => false,
        });
        let row_len: usize = widths.iter().sum();
        if fixed && row_len > 0 {
            // Every byte of every row is written below: only a grown buffer needs filling.
            buf.resize(n * row_len, 0u8);
            let mut offset = 0;
            for (c, &w) in cols.iter().zip(widths.iter()) {
                c.write_fixed(
                    start,
                    &mut buf[..n * row_len],
                    (row_len, offset, w),
                    scratch,
                );
                offset += w;
            }
            return buf.chunks_exact(row_len).collect();
        }
        lens.clear();
        lens.resize(n, 0usize);
        for c in cols {
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
        for c in cols {
            c.write(start, buf, pos, scratch);
        }
        let mut begin = 0;
        pos.iter()
            .map(|&end| {
                let row = &buf[begin..end];
                begin = end;
                row
            })
            .collect()
    }
}

/// Encodes rows of batches over a fixed set of columns (by index) and hashes them.
pub struct RowHasher {
    columns: Vec<usize>,
    mode: HashMode,
}

/// Rows per rayon task when hashing a batch.
const ROWS_PER_TASK: usize = 2048;
/// Rows encoded into one buffer before hashing: about 19 KiB for rows of 300 bytes, so the buffer stays in the L1 data
/// cache while each column is written into it (64 rows beat 128 in an A/B probe).
const ROWS_PER_BLOCK: usize = 64;

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
        out.par_chunks_mut(ROWS_PER_TASK).enumerate().for_each_init(
            Block::default,
            |block, (t, task)| {
                // Encode a block of rows column by column into one buffer (small enough to stay in cache), then
                // hash the block's rows eight at a time.
                for (b, chunk) in task.chunks_mut(ROWS_PER_BLOCK).enumerate() {
                    let start = t * ROWS_PER_TASK + b * ROWS_PER_BLOCK;
                    let rows = block.encode(&cols, start, chunk.len());
                    super::lanes::hash_many(&self.mode, &rows, chunk);
                }
            },
        );
        Ok(())
    }

    /// The canonical encoding of one row (for tests and documentation).
    pub fn encode_row(&self, batch: &RecordBatch, row: usize) -> Result<Vec<u8>, ContractError> {
        // Prepared from a one-row slice, so per-batch work (dictionary decoding, range checks) is done for one row.
        let one = batch.slice(row, 1);
        let schema = one.schema();
        let mut buf = Vec::new();
        for &c in &self.columns {
            prepare(one.column(c), schema.field(c).name())?.encode(0, &mut buf);
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
