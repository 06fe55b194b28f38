//! Column roles shared by the stages: which columns are keys, label-like, categories to one-hot, and the feature
//! columns the detectors use.

use super::fit::ReferenceRows;
use super::Scanner;
use crate::contract::Contract;
use crate::error::Error;
use crate::features::FeatureMatrix;
use crate::lineage;

/// Columns the contract marks as row keys, other than the id: never features.
pub(super) fn key_columns(contract: &Contract, id: Option<&str>) -> Vec<String> {
    contract
        .columns
        .iter()
        .filter(|c| c.key && Some(c.name.as_str()) != id)
        .map(|c| c.name.clone())
        .collect()
}

/// The text columns (positions in `text_names`) that the contract calls a closed category set of 2 to 64 values, with
/// the categories in the contract's order: not the label, the id or a key.
pub(super) fn one_hot_columns(
    contract: &Contract,
    text_names: &[String],
    s: &Scanner,
    keys: &[String],
) -> Vec<(usize, Vec<String>)> {
    text_names
        .iter()
        .enumerate()
        .filter_map(|(t, name)| {
            let c = contract.column(name)?;
            if c.family != "string"
                || Some(name) == s.label.as_ref()
                || Some(name) == s.id.as_ref()
                || Some(name) == contract.label.as_ref()
                || keys.contains(name)
            {
                return None;
            }
            let cats: Vec<String> = c
                .categories
                .as_ref()?
                .iter()
                .map(|x| x.value.clone())
                .collect();
            (2..=64).contains(&cats.len()).then_some((t, cats))
        })
        .collect()
}

/// A column named like a label (`label`, `target`, `y`, `class`, ...), for a scan given none.
pub(super) fn label_like<'a>(names: impl Iterator<Item = &'a str>) -> Option<String> {
    const LIKE: [&str; 9] = [
        "label",
        "labels",
        "target",
        "y",
        "class",
        "outcome",
        "ground_truth",
        "gt",
        "category",
    ];
    let names: Vec<&str> = names.collect();
    LIKE.iter()
        .find_map(|want| names.iter().find(|n| n.eq_ignore_ascii_case(want)))
        .map(|n| n.to_string())
}

/// Choose the feature columns the detectors use: the reference's columns are matched to the data's by name, and a
/// column missing on more than half of the rows it is fitted on (the reference's, else the data's) is left out of
/// both, with a note. Returns the names kept and whether the reference's features fit the data's.
pub(super) fn select_features(
    data: &mut FeatureMatrix,
    names: &[String],
    embedding: Option<&str>,
    reference: Option<&mut ReferenceRows>,
    notes: &mut Vec<String>,
) -> (Vec<String>, bool) {
    let emb_dim = data.dim.saturating_sub(names.len());
    let mut all: Vec<String> = names.to_vec();
    let emb_name = embedding.unwrap_or("embedding");
    all.extend((0..emb_dim).map(|j| format!("{emb_name}[{j}]")));
    let mut reference = reference;
    let mut reference_usable = reference.is_some();
    if let Some(r) = reference.as_deref_mut() {
        let r_emb = r.features.dim.saturating_sub(r.names.len());
        let mut keep: Vec<usize> = Vec::new();
        for n in names {
            match r.names.iter().position(|m| m == n) {
                Some(j) => keep.push(j),
                None => reference_usable = false,
            }
        }
        if r_emb == emb_dim {
            keep.extend((0..emb_dim).map(|j| r.names.len() + j));
        } else {
            reference_usable = false;
        }
        if reference_usable {
            r.features.keep_columns(&keep);
        } else {
            notes.push(
                "the reference's feature columns differ from the data's: the detectors are fitted on the data"
                    .into(),
            );
        }
    }
    let (fit, on) = match reference.as_deref() {
        Some(r) if reference_usable => (r.features.present_fraction(), "reference"),
        _ => (data.present_fraction(), "data"),
    };
    let keep: Vec<usize> = (0..all.len()).filter(|&j| fit[j] >= 0.5).collect();
    let dropped: Vec<String> = (0..all.len())
        .filter(|&j| fit[j] < 0.5)
        .map(|j| format!("{} ({:.0}% of values present)", all[j], 100.0 * fit[j]))
        .collect();
    if !dropped.is_empty() {
        notes.push(format!(
            "left out of the features, missing (null, NaN or inf) on more than half of the {on}'s rows: {}",
            dropped.join(", ")
        ));
        data.keep_columns(&keep);
        if let (Some(r), true) = (reference, reference_usable) {
            r.features.keep_columns(&keep);
        }
    }
    (
        keep.iter().map(|&j| all[j].clone()).collect(),
        reference_usable,
    )
}

pub(super) fn class_of(classes: &[String], v: Option<&str>) -> Option<u32> {
    let v = v?;
    classes.iter().position(|c| c == v).map(|p| p as u32)
}

pub(super) fn check_columns(
    schema: &arrow::datatypes::SchemaRef,
    origin: &str,
    s: &Scanner,
) -> Result<(), Error> {
    for (col, role) in [
        (&s.label, "--label"),
        (&s.id, "--id"),
        (&s.embedding, "--embedding"),
        (&s.pred_probs, "--pred-probs"),
    ] {
        if let Some(c) = col {
            lineage::column_index(schema, origin, c, role)?;
        }
    }
    Ok(())
}
