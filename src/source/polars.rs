//! polars input for Rust users (cargo feature `polars`).
//!
//! A `DataFrame` is handed over chunk by chunk through the Arrow C Data Interface: each polars array is exported
//! with `polars_arrow::ffi` and imported with `arrow::ffi::from_ffi` (the C structs have the same layout), so no
//! value is copied row by row. A `LazyFrame` is collected first.

use super::Source;
use crate::error::SourceError;
use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema};
use polars::prelude::{CompatLevel, DataFrame, LazyFrame, SchemaExt};
use std::sync::Arc;

fn err(origin: &str, e: impl std::fmt::Display) -> SourceError {
    SourceError::Read {
        origin: origin.to_string(),
        rows_read: 0,
        message: e.to_string(),
    }
}

/// A source over a polars `DataFrame` (zero-copy through the Arrow C Data Interface).
pub fn from_dataframe(df: &DataFrame, origin: &str) -> Result<Source, SourceError> {
    let pl_schema = df.schema().to_arrow(CompatLevel::newest());
    let pl_fields: Vec<polars_arrow::datatypes::Field> = pl_schema.iter_values().cloned().collect();
    let mut batches = Vec::new();
    let mut schema: Option<Arc<Schema>> = None;
    for chunk in df.iter_chunks(CompatLevel::newest(), false) {
        let mut cols = Vec::new();
        let mut fields = Vec::new();
        for (arr, field) in chunk.into_arrays().into_iter().zip(&pl_fields) {
            let c_arr = polars_arrow::ffi::export_array_to_c(arr);
            let c_schema = polars_arrow::ffi::export_field_to_c(field);
            // SAFETY: polars-arrow's ArrowArray / ArrowSchema and arrow-rs's FFI_ArrowArray / FFI_ArrowSchema are
            // both `#[repr(C)]` definitions of the same Arrow C Data Interface structs; ownership (and the release
            // callback) moves to arrow-rs, which calls it exactly once.
            let (a, s): (arrow::ffi::FFI_ArrowArray, arrow::ffi::FFI_ArrowSchema) = unsafe {
                (
                    std::mem::transmute::<polars_arrow::ffi::ArrowArray, arrow::ffi::FFI_ArrowArray>(
                        c_arr,
                    ),
                    std::mem::transmute::<
                        polars_arrow::ffi::ArrowSchema,
                        arrow::ffi::FFI_ArrowSchema,
                    >(c_schema),
                )
            };
            let f = Field::try_from(&s).map_err(|e| err(origin, e))?;
            // SAFETY: `a` and `s` are valid, exported structs describing the same array.
            let data = unsafe { arrow::ffi::from_ffi(a, &s) }.map_err(|e| err(origin, e))?;
            cols.push(arrow::array::make_array(data));
            fields.push(f);
        }
        let sc = schema
            .get_or_insert_with(|| Arc::new(Schema::new(fields)))
            .clone();
        batches.push(RecordBatch::try_new(sc, cols).map_err(|e| err(origin, e))?);
    }
    let schema = match schema {
        Some(s) => s,
        None => {
            let fields: Vec<Field> = pl_fields
                .iter()
                .map(|f| {
                    let s = polars_arrow::ffi::export_field_to_c(f);
                    // SAFETY: as above, same C struct layout.
                    let s = unsafe {
                        std::mem::transmute::<
                            polars_arrow::ffi::ArrowSchema,
                            arrow::ffi::FFI_ArrowSchema,
                        >(s)
                    };
                    Field::try_from(&s).map_err(|e| err(origin, e))
                })
                .collect::<Result<_, _>>()?;
            Arc::new(Schema::new(fields))
        }
    };
    Ok(Source::memory(schema, batches, origin))
}

/// A source over a polars `LazyFrame` (collected first).
pub fn from_lazyframe(lf: LazyFrame, origin: &str) -> Result<Source, SourceError> {
    let df = lf.collect().map_err(|e| err(origin, e))?;
    from_dataframe(&df, origin)
}
