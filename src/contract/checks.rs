//! Contract check kernels: small functions over Arrow arrays, each returning the positions of violating rows.
//!
//! Every kernel handles nulls explicitly (a null is never a range or category violation: nullability is its own
//! check) and works on sliced arrays (positions are relative to the slice).

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, StringArray};
use arrow::datatypes::DataType;
use std::collections::HashSet;

/// Positions of null values.
pub fn null_rows(a: &dyn Array) -> Vec<usize> {
    if a.null_count() == 0 {
        return Vec::new();
    }
    (0..a.len()).filter(|&i| a.is_null(i)).collect()
}

/// Positions of NaN values and of +-inf values (nulls skipped).
pub fn non_finite(v: &Float64Array) -> (Vec<usize>, Vec<usize>) {
    let mut nan = Vec::new();
    let mut inf = Vec::new();
    for (i, x) in v.iter().enumerate() {
        if let Some(x) = x {
            if x.is_nan() {
                nan.push(i);
            } else if x.is_infinite() {
                inf.push(i);
            }
        }
    }
    (nan, inf)
}

/// Positions of finite values outside `[lo, hi]` (nulls, NaN and inf skipped: they have their own checks).
pub fn out_of_range(v: &Float64Array, lo: Option<f64>, hi: Option<f64>) -> Vec<usize> {
    let lo = lo.unwrap_or(f64::NEG_INFINITY);
    let hi = hi.unwrap_or(f64::INFINITY);
    v.iter()
        .enumerate()
        .filter_map(|(i, x)| match x {
            Some(x) if x.is_finite() && (x < lo || x > hi) => Some(i),
            _ => None,
        })
        .collect()
}

/// Positions of (non-null) values not in `allowed`.
pub fn not_in_set(v: &StringArray, allowed: &HashSet<String>) -> Vec<usize> {
    v.iter()
        .enumerate()
        .filter_map(|(i, x)| match x {
            Some(x) if !allowed.contains(x) => Some(i),
            _ => None,
        })
        .collect()
}

/// Positions of (non-null) strings whose length in characters is outside `[lo, hi]`.
pub fn length_out_of_range(v: &StringArray, lo: u64, hi: u64) -> Vec<usize> {
    v.iter()
        .enumerate()
        .filter_map(|(i, x)| match x {
            Some(x) => {
                let n = x.chars().count() as u64;
                (n < lo || n > hi).then_some(i)
            }
            None => None,
        })
        .collect()
}

/// Numeric (or boolean) array as Float64 (a copy for non-f64 types); `None` for non-numeric types.
pub fn as_f64(a: &ArrayRef) -> Option<Float64Array> {
    let dt = a.data_type();
    let numeric = dt.is_numeric() || matches!(dt, DataType::Boolean);
    let numeric = numeric || matches!(dt, DataType::Dictionary(_, v) if v.is_numeric());
    if !numeric {
        return None;
    }
    let c = arrow::compute::cast(a, &DataType::Float64).ok()?;
    Some(c.as_primitive::<arrow::datatypes::Float64Type>().clone())
}

/// Any array as Utf8 strings (`None` when arrow cannot cast the type to strings).
pub fn as_utf8(a: &ArrayRef) -> Option<StringArray> {
    let c = arrow::compute::cast(a, &DataType::Utf8).ok()?;
    c.as_any().downcast_ref::<StringArray>().cloned()
}

/// Cast `a` to `to`, treating values that do not convert as nulls, and return the positions of values that were
/// present but did not convert (e.g. `"abc"` in a numeric column read from CSV).
pub fn coerce(a: &ArrayRef, to: &DataType) -> Option<(ArrayRef, Vec<usize>)> {
    let opts = arrow::compute::CastOptions {
        safe: true,
        ..Default::default()
    };
    let c = arrow::compute::cast_with_options(a, to, &opts).ok()?;
    let failed = if c.null_count() > a.null_count() {
        (0..a.len())
            .filter(|&i| c.is_null(i) && !a.is_null(i) && !is_blank(a, i))
            .collect()
    } else {
        Vec::new()
    };
    Some((c, failed))
}

fn is_blank(a: &ArrayRef, i: usize) -> bool {
    match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().value(i).trim().is_empty(),
        DataType::LargeUtf8 => a.as_string::<i64>().value(i).trim().is_empty(),
        DataType::Utf8View => a.as_string_view().value(i).trim().is_empty(),
        _ => false,
    }
}

/// Display one value of an array for a reason text.
pub fn show(a: &dyn Array, i: usize) -> String {
    if a.is_null(i) {
        return "null".into();
    }
    arrow::util::display::array_value_to_string(a, i).unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, StringArray};
    use std::sync::Arc;

    #[test]
    fn nulls_and_non_finite_on_a_slice() {
        let v = Float64Array::from(vec![
            Some(1.0),
            None,
            Some(f64::NAN),
            Some(f64::INFINITY),
            Some(2.0),
            Some(f64::NEG_INFINITY),
            None,
        ]);
        let s = v.slice(1, 5); // None, NaN, inf, 2.0, -inf
        assert_eq!(null_rows(&s), vec![0]);
        assert_eq!(non_finite(&s), (vec![1], vec![2, 4]));
    }

    #[test]
    fn range_skips_nulls_and_non_finite() {
        let v = Float64Array::from(vec![
            Some(-1.0),
            None,
            Some(f64::NAN),
            Some(5.0),
            Some(11.0),
        ]);
        assert_eq!(out_of_range(&v, Some(0.0), Some(10.0)), vec![0, 4]);
        assert_eq!(out_of_range(&v.slice(3, 2), Some(0.0), Some(10.0)), vec![1]);
        assert!(out_of_range(&v, None, None).is_empty());
    }

    #[test]
    fn sets_and_lengths() {
        let v = StringArray::from(vec![Some("a"), None, Some("zz"), Some("b")]);
        let allowed: HashSet<String> = ["a", "b"].into_iter().map(String::from).collect();
        assert_eq!(not_in_set(&v, &allowed), vec![2]);
        assert_eq!(length_out_of_range(&v, 1, 1), vec![2]);
    }

    #[test]
    fn coerce_reports_unparseable_strings_not_blanks() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![
            Some("1.5"),
            Some("abc"),
            Some(""),
            None,
            Some("2"),
        ]));
        let (c, bad) = coerce(&a, &DataType::Float64).unwrap();
        assert_eq!(bad, vec![1]);
        assert_eq!(c.null_count(), 3);
        let i: ArrayRef = Arc::new(Int32Array::from(vec![1, 2]));
        assert_eq!(as_f64(&i).unwrap().values().to_vec(), vec![1.0, 2.0]);
        assert!(as_f64(&a).is_none());
    }
}
