//! The fit stage: where the contract comes from (a contract file, a fitted scanner, a trusted reference profiled
//! now, or the data itself), and the trusted rows the detectors are fitted and calibrated on.

use super::columns::{
    check_columns, class_of, key_columns, label_like, one_hot_columns, select_features,
};
use super::{ContractSource, Scanner};
use crate::contract::checks;
use crate::contract::profile::{Profiler, Trust};
use crate::contract::Contract;
use crate::detect;
use crate::error::Error;
use crate::features::{sample_by_digest, FeatureMatrix, FeatureSpec, RobustScaler};
use crate::lineage::{HashMode, RowDigest, RowHasher};
use crate::source::Source;

/// What the fit stage hands on: the contract the data is checked against, where it came from (for the report), and
/// the trusted rows (raw, before any column choice or scaling) when there are any.
pub(super) struct Fit {
    pub(super) contract: Contract,
    pub(super) source: String,
    pub(super) reference: Option<ReferenceRows>,
}

/// Columns that are never features: the label, the id and the predictions (sorted).
pub(super) fn role_columns(s: &Scanner) -> Vec<String> {
    let mut exclude: Vec<String> = [&s.label, &s.id, &s.pred_probs]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    exclude.sort();
    exclude
}

/// Resolve the scanner's contract source. Inferring from the data reads it once here (a stream is spooled so that
/// the scan can read it again).
pub(super) fn fit(s: &mut Scanner) -> Result<Fit, Error> {
    let exclude = role_columns(s);
    let data_origin = s.data.origin();
    let fit = match std::mem::replace(&mut s.contract_source, ContractSource::Infer) {
        ContractSource::Contract { contract, origin } => Fit {
            contract,
            source: format!("contract file {origin}"),
            reference: None,
        },
        ContractSource::Fitted { fitted, origin } => {
            let f = *fitted;
            Fit {
                contract: f.contract().clone(),
                source: format!("fitted scanner {origin} (reference {})", f.origin()),
                reference: Some(f.rows),
            }
        }
        ContractSource::Reference(mut src) => {
            let (contract, rows) = read_reference(&mut src, s, &exclude)?;
            Fit {
                contract,
                source: format!("reference {}", src.origin()),
                reference: Some(rows),
            }
        }
        ContractSource::Infer => {
            let empty = Source::memory(
                std::sync::Arc::new(arrow::datatypes::Schema::empty()),
                vec![],
                "",
            );
            s.data = std::mem::replace(&mut s.data, empty).into_rewindable()?;
            let mut stream = s.data.open()?;
            let schema = stream.schema();
            check_columns(&schema, &data_origin, s)?;
            let mut p = Profiler::new(schema, &data_origin, s.label.as_deref(), s.id.as_deref());
            for b in &mut stream {
                p.add_batch(&b?)?;
            }
            Fit {
                contract: p.finish(Trust::Data),
                source: "inferred from data".to_string(),
                reference: None,
            }
        }
    };
    if let (Some(l), Some(cl)) = (&s.label, &fit.contract.label) {
        if l != cl {
            return Err(Error::Usage(format!(
                "--label {l} differs from the contract's label column {cl}"
            )));
        }
    }
    Ok(fit)
}

/// The columns the scan gives a role to beyond the caller's: a label-like column when no label was given, and the
/// contract's key columns; with the notes that say so.
pub(super) struct Roles {
    /// Columns that are never features in the data: the label, id, predictions, a label-like column and the keys.
    pub(super) exclude: Vec<String>,
    pub(super) keys: Vec<String>,
    pub(super) label_guess: Option<String>,
    pub(super) notes: Vec<String>,
}

pub(super) fn roles(s: &Scanner, contract: &Contract) -> Roles {
    let mut notes: Vec<String> = Vec::new();
    let label_guess = match &s.label {
        Some(_) => None,
        None => label_like(contract.columns.iter().map(|c| c.name.as_str())),
    };
    if let Some(g) = &label_guess {
        notes.push(format!(
            "no label column given; column {g} looks like one and is not used as a feature: pass --label {g} \
             (Python: label=\"{g}\") to run the label-based detectors"
        ));
    }
    let keys = key_columns(contract, s.id.as_deref());
    if !keys.is_empty() {
        notes.push(format!(
            "{} {} a unique key per row: not used as a feature or to find duplicates{}",
            keys.join(", "),
            if keys.len() == 1 { "holds" } else { "hold" },
            if s.id.is_none() {
                format!(" (pass --id {} to carry it into the scores)", keys[0])
            } else {
                String::new()
            }
        ));
    }
    let mut exclude = role_columns(s);
    exclude.extend(label_guess.iter().cloned());
    exclude.extend(keys.iter().cloned());
    Roles {
        exclude,
        keys,
        label_guess,
        notes,
    }
}

/// Profile a trusted reference into a contract, including the detectors' calibration measured on it
/// (`poisonscan profile`). `features` / `embedding` choose the feature columns as in a scan.
pub fn profile_reference(
    reference: &mut Source,
    label: Option<&str>,
    id: Option<&str>,
    features: Option<Vec<String>>,
    embedding: Option<&str>,
) -> Result<Contract, Error> {
    Ok(profile_rows(reference, label, id, features, embedding)?.0)
}

/// The contract of a reference (with its calibration) and the rows the detectors are fitted on.
pub(crate) fn profile_rows(
    reference: &mut Source,
    label: Option<&str>,
    id: Option<&str>,
    features: Option<Vec<String>>,
    embedding: Option<&str>,
) -> Result<(Contract, ReferenceRows), Error> {
    let mut s = Scanner::new(Source::memory(
        std::sync::Arc::new(arrow::datatypes::Schema::empty()),
        vec![],
        "",
    ));
    s.label = label.map(str::to_string);
    s.id = id.map(str::to_string);
    s.features = features;
    s.embedding = embedding.map(str::to_string);
    let (mut contract, raw) = read_reference(reference, &s, &role_columns(&s))?;
    let classes = contract.classes().unwrap_or_default();
    if label.is_some() && classes.len() >= 2 {
        let mut rows = ReferenceRows {
            features: raw.features.clone(),
            names: raw.names.clone(),
            text_names: raw.text_names.clone(),
            labels: Vec::new(),
            digests: Vec::new(),
        };
        // The features a scan with this contract uses: no key columns, no column missing on most rows, categories
        // one-hot (the same choices as `Scanner::run`, so the calibration measures the same space).
        let keys = key_columns(&contract, s.id.as_deref());
        let emb = rows.features.dim.saturating_sub(rows.names.len());
        let keep: Vec<usize> = (0..rows.names.len())
            .filter(|&j| !keys.contains(&rows.names[j]))
            .chain(rows.names.len()..rows.names.len() + emb)
            .collect();
        rows.features.keep_columns(&keep);
        let names: Vec<String> = keep[..keep.len() - emb]
            .iter()
            .map(|&j| rows.names[j].clone())
            .collect();
        select_features(&mut rows.features, &names, embedding, None, &mut Vec::new());
        let one_hot_start = rows.features.dim;
        let cats = one_hot_columns(&contract, &rows.text_names, &s, &keys);
        rows.features.append_one_hot(&rows.text_names, &cats);
        let picked = sample_by_digest(&raw.digests, &rows.features.valid, s.detect.max_fit_rows);
        let mut x = detect::take_rows(rows.features.take_array().view(), &picked);
        if x.ncols() > 0 {
            let mut scaler = RobustScaler::fit(&x, &vec![true; x.nrows()]);
            scaler.leave_unscaled(one_hot_start);
            scaler.transform(&mut x);
            let labels: Vec<Option<u32>> = picked
                .iter()
                .map(|&i| class_of(&classes, raw.labels[i].as_deref()))
                .collect();
            let cfg = &s.detect;
            contract.calibration = Some(crate::contract::Calibration {
                label_clean_rate: detect::label_flip::clean_candidate_rates(
                    &x,
                    &labels,
                    classes.len(),
                    cfg,
                ),
            });
        }
    }
    Ok((contract, raw))
}

/// Trusted rows as read: raw features (before any column choice or scaling), labels and digests.
#[derive(Debug, Clone)]
pub(crate) struct ReferenceRows {
    pub(crate) features: FeatureMatrix,
    /// Names of the scalar feature columns (the embedding's cells follow them).
    pub(crate) names: Vec<String>,
    /// Names of the text columns recorded for one-hot features.
    pub(crate) text_names: Vec<String>,
    pub(crate) labels: Vec<Option<String>>,
    pub(crate) digests: Vec<RowDigest>,
}

pub(super) fn read_reference(
    src: &mut Source,
    s: &Scanner,
    exclude: &[String],
) -> Result<(Contract, ReferenceRows), Error> {
    let mut stream = src.open()?;
    let schema = stream.schema();
    let origin = stream.origin().to_string();
    check_columns(&schema, &origin, s)?;
    let guess = match &s.label {
        Some(_) => None,
        None => label_like(schema.fields().iter().map(|f| f.name().as_str())),
    };
    let ex: Vec<&str> = exclude
        .iter()
        .map(String::as_str)
        .chain(guess.as_deref())
        .collect();
    let spec = FeatureSpec::resolve(
        &schema,
        &origin,
        s.features.as_deref(),
        s.embedding.as_deref(),
        &ex,
    )?;
    let label_idx = s.label.as_ref().and_then(|l| schema.index_of(l).ok());
    let hasher = RowHasher::new((0..schema.fields().len()).collect(), HashMode::Plain);
    let mut p = Profiler::new(schema.clone(), &origin, s.label.as_deref(), s.id.as_deref());
    let mut rows = ReferenceRows {
        features: FeatureMatrix {
            embedding_len: spec.embedding_length(&schema),
            ..FeatureMatrix::default()
        },
        names: spec.names.clone(),
        text_names: spec.text_names.clone(),
        labels: Vec::new(),
        digests: Vec::new(),
    };
    for b in &mut stream {
        let b = b?;
        // One digest per reference row serves both the profile's sample and the detectors' fit sample.
        let d = hasher.digest_batch(&b)?;
        p.add_batch_with_digests(&b, &d);
        rows.features.push_batch(&b, &spec);
        rows.digests.extend(d);
        match label_idx.and_then(|i| checks::as_utf8(b.column(i))) {
            Some(l) => rows.labels.extend(l.iter().map(|v| v.map(str::to_string))),
            None => rows.labels.extend(std::iter::repeat_n(None, b.num_rows())),
        }
    }
    if p.rows() == 0 {
        return Err(Error::ZeroRows { origin });
    }
    Ok((p.finish(Trust::Reference), rows))
}
