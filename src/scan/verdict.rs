//! The verdict stage: per-row scores and reasons, each check judged by the policy (a check that could not run is
//! visible, and a required one fails), the summary line and the versioned report.

use super::detectors::{Detection, Runs};
use super::pass::DataPass;
use super::{ScanOutcome, Scanner};
use crate::contract::{Contract, ViolationKind};
use crate::detect::FLAG_AT;
use crate::error::Error;
use crate::lineage::{Diff, DuplicateIds, HashMode, RowStatus};
use crate::policy::{Policy, Status, CORE_DETECTORS};
use crate::report::{
    BaselineSummary, CheckResult, Report, RowScores, Run, SampleRow, Verdict, REPORT_VERSION,
};
use std::collections::BTreeMap;
use std::time::Instant;

/// What the earlier stages hand to the verdict.
pub(super) struct Stages {
    pub(super) contract: Contract,
    pub(super) contract_source: String,
    pub(super) data_origin: String,
    pub(super) pass: DataPass,
    pub(super) detection: Detection,
    pub(super) diff: Option<Diff>,
    pub(super) mode: HashMode,
    pub(super) notes: Vec<String>,
    pub(super) timings: BTreeMap<String, u64>,
    pub(super) started: Instant,
}

/// Judge the scan and assemble its outcome.
pub(super) fn finish(s: Scanner, st: Stages) -> Result<ScanOutcome, Error> {
    let Stages {
        contract,
        contract_source,
        data_origin,
        pass,
        detection:
            Detection {
                outputs,
                mut runs,
                summaries,
                duplicates,
                visuals,
                feature_names,
            },
        diff,
        mode,
        mut notes,
        mut timings,
        started: t0,
    } = st;
    let n = pass.rows;
    // A row's contract score is its worst violation's; impossible and flagged-unusual rows are counted apart.
    let mut contract_scores = vec![0.0f32; n];
    let (mut impossible, mut unusual) = (vec![false; n], vec![false; n]);
    for v in &pass.violations {
        let r = v.row as usize;
        contract_scores[r] = contract_scores[r].max(v.score);
        if v.impossible() {
            impossible[r] = true;
        } else if v.flags() {
            unusual[r] = true;
        }
    }
    let id_values = if pass.id_chunks.is_empty() {
        None
    } else {
        let parts: Vec<&dyn arrow::array::Array> =
            pass.id_chunks.iter().map(|a| a.as_ref()).collect();
        Some(arrow::compute::concat(&parts).map_err(|e| Error::Output {
            path: "scores".into(),
            message: format!("joining the id column's batches: {e}"),
        })?)
    };
    let mut scores = RowScores {
        ids: pass.ids.clone(),
        id_values,
        id_column: s.id.clone(),
        ..Default::default()
    };
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); n];
    for v in &pass.violations {
        reasons[v.row as usize].push(v.reason());
    }
    scores.checks.insert("contract".into(), contract_scores);
    for o in &outputs {
        for (i, r) in o.reasons.iter().enumerate() {
            if let (Some(r), true) = (r, o.scores[i] >= FLAG_AT) {
                reasons[i].push(r.clone());
            }
        }
        scores.checks.insert(o.name.to_string(), o.scores.clone());
    }
    for name in ["outlier", "label", "backdoor"] {
        scores
            .checks
            .entry(name.to_string())
            .or_insert_with(|| vec![0.0; n]);
    }
    let mut baseline_summary = None;
    if let (Some(d), Some((_, origin))) = (&diff, &s.baseline) {
        for (i, st) in d.status.iter().enumerate() {
            if *st == RowStatus::Changed {
                reasons[i].extend(d.reason(i));
            }
        }
        scores.checks.insert("baseline".into(), d.scores());
        scores.baseline_status = Some(d.status.iter().map(|s| s.as_str()).collect());
        baseline_summary = Some(BaselineSummary {
            manifest: origin.clone(),
            added: d.count(RowStatus::Added) as u64,
            removed: d.removed.len() as u64,
            changed: d.count(RowStatus::Changed) as u64,
            by_id: d.by_id,
            schema_changed: d.schema_changed,
        });
    }
    scores.reasons = reasons.into_iter().map(|r| r.join("; ")).collect();
    let flagged_mask = scores.flagged();
    let flagged = flagged_mask.iter().filter(|&&f| f).count() as u64;
    let duplicate_ids = pass.ids.as_deref().and_then(DuplicateIds::find);
    if let (Some(d), Some(col)) = (&duplicate_ids, &s.id) {
        notes.push(d.describe(col));
    }
    if !contract.inferred_from_data {
        runs.insert("drift", (Run::Ran, None));
    } else {
        runs.insert(
            "drift",
            (
                Run::Disabled,
                Some("no reference or contract file: nothing to compare the data with".into()),
            ),
        );
    }
    if s.id.is_none() {
        runs.insert(
            "duplicate_id",
            (Run::Disabled, Some("no id column given".into())),
        );
    }
    let mut checks = BTreeMap::new();
    let policy = &s.policy;
    let mut eval = |name: &str, count: u64, total: u64| {
        let (run, why) = runs.get(name).cloned().unwrap_or((Run::Ran, None));
        let (status, reason) = gate_status(policy, name, run, why, count, total);
        checks.insert(
            name.to_string(),
            CheckResult::counted(count, total, status, run, reason),
        );
    };
    let rows_with = |m: &[bool]| m.iter().filter(|&&v| v).count() as u64;
    eval("contract", rows_with(&impossible), n as u64);
    eval("unusual", rows_with(&unusual), n as u64);
    for name in ["duplicate", "outlier", "label", "backdoor"] {
        let c = scores
            .checks
            .get(name)
            .map(|v| v.iter().filter(|&&s| s >= FLAG_AT).count())
            .unwrap_or(0);
        eval(name, c as u64, n as u64);
    }
    eval(
        "duplicate_id",
        duplicate_ids.as_ref().map_or(0, |d| d.rows),
        n as u64,
    );
    eval(
        "drift",
        pass.drift.iter().filter(|d| d.drifted).count() as u64,
        pass.drift.len() as u64,
    );
    if let Some(b) = &baseline_summary {
        eval("baseline_changed", b.changed + b.removed, n as u64);
        eval("baseline_added", b.added, n as u64);
    }
    let worst = checks
        .values()
        .map(|c| c.status)
        .max()
        .unwrap_or(Status::Pass);
    let verdict = match worst {
        Status::Pass => Verdict::Pass,
        Status::Warn => Verdict::Warn,
        Status::Fail => Verdict::Fail,
    };
    let mut violation_kinds: BTreeMap<String, u64> = BTreeMap::new();
    for v in &pass.violations {
        let kind = match (v.kind, v.flags()) {
            (ViolationKind::Unusual, false) => "unusual_not_flagged",
            (k, _) => k.as_str(),
        };
        *violation_kinds.entry(kind.to_string()).or_default() += 1;
    }
    let overall = scores.overall();
    let mut order: Vec<usize> = (0..n).filter(|&i| flagged_mask[i]).collect();
    order.sort_by(|&a, &b| overall[b].total_cmp(&overall[a]).then(a.cmp(&b)));
    let sample = order
        .iter()
        .take(100)
        .map(|&i| SampleRow {
            row: i as u64,
            id: pass.ids.as_ref().map(|ids| ids[i].clone()),
            score: overall[i],
            reasons: scores.reasons[i].clone(),
        })
        .collect();
    let summary = summary_line(n, flagged, &checks, &runs, &s.policy, verdict);
    timings.insert("total".to_string(), t0.elapsed().as_millis() as u64);
    let mut inputs = BTreeMap::new();
    inputs.insert("data".to_string(), serde_json::json!(data_origin));
    inputs.insert("label".to_string(), serde_json::json!(s.label));
    inputs.insert("id".to_string(), serde_json::json!(s.id));
    inputs.insert("features".to_string(), serde_json::json!(feature_names));
    inputs.insert("embedding".to_string(), serde_json::json!(pass.embedding));
    inputs.insert("policy".to_string(), serde_json::json!(s.policy.origin));
    // Whether the row digests (and so the fingerprint) are keyed: a key with an unkeyed baseline is not used.
    inputs.insert(
        "keyed".to_string(),
        serde_json::json!(matches!(mode, HashMode::Keyed(_))),
    );
    let report = Report {
        report_version: REPORT_VERSION,
        tool: "poisonscan".into(),
        tool_version: crate::VERSION.into(),
        inputs,
        contract_source,
        contract_hash: contract.hash(),
        policy_hash: s.policy.hash(),
        rows: n as u64,
        flagged,
        checks,
        violations: violation_kinds,
        drift: pass.drift,
        fingerprint: pass.lineage.finish()?,
        schema_hash: pass.schema_hash,
        baseline: baseline_summary,
        duplicates,
        detectors: summaries,
        notes,
        duplicate_ids,
        sample,
        timings_ms: timings,
        verdict,
        summary,
    };
    Ok(ScanOutcome {
        report,
        scores,
        violations: pass.violations,
        contract,
        digests: pass.digests,
        hash_mode: mode,
        visuals,
        metrics: pass.metrics,
        policy: s.policy.clone(),
        data: s.data,
    })
}

/// The status of one check under the policy, and the reason when it is not a threshold's: a required check that did
/// not run fails; a core detector that could not run makes the scan incomplete (at best WARN).
fn gate_status(
    policy: &Policy,
    name: &str,
    run: Run,
    why: Option<String>,
    count: u64,
    total: u64,
) -> (Status, Option<String>) {
    match run {
        Run::Ran => (policy.evaluate(name, count, total), None),
        _ if policy.requires(name) => (
            Status::Fail,
            Some(format!(
                "{}; the policy requires it",
                why.unwrap_or_else(|| run.as_str().into())
            )),
        ),
        Run::Skipped if CORE_DETECTORS.contains(&name) => (
            Status::Warn,
            Some(format!(
                "{}; the scan is incomplete",
                why.unwrap_or_else(|| "did not run".into())
            )),
        ),
        _ => (Status::Pass, why),
    }
}

/// The one-line summary: rows, flagged rows, the checks that counted something, the checks that did not run (grouped
/// by reason: "label, backdoor skipped (no label column given)") and the verdict.
fn summary_line(
    n: usize,
    flagged: u64,
    checks: &BTreeMap<String, CheckResult>,
    runs: &Runs,
    policy: &Policy,
    verdict: Verdict,
) -> String {
    let per_check: Vec<String> = checks
        .iter()
        .filter(|(_, c)| c.count > 0 && c.run == Run::Ran)
        .map(|(k, c)| {
            let status = match c.status {
                Status::Fail => " fail",
                Status::Warn => " warn",
                Status::Pass => "",
            };
            format!("{k} {}{status}", c.count)
        })
        .collect();
    // Checks that did not run, grouped by reason: "label, backdoor skipped (no label column given)".
    let mut by_reason: Vec<(String, Vec<&str>)> = Vec::new();
    for (k, (run, why)) in runs {
        let shown = *run == Run::Skipped
            || (*run == Run::Disabled && (CORE_DETECTORS.contains(k) || policy.requires(k)));
        if !shown {
            continue;
        }
        let why = format!("{} ({})", run.as_str(), why.clone().unwrap_or_default());
        match by_reason.iter_mut().find(|(w, _)| *w == why) {
            Some((_, names)) => names.push(k),
            None => by_reason.push((why, vec![k])),
        }
    }
    let not_run: Vec<String> = by_reason
        .iter()
        .map(|(why, names)| format!("{} {why}", names.join(", ")))
        .collect();
    format!(
        "poisonscan: {n} rows scanned, {flagged} flagged{}{}; verdict {}",
        if per_check.is_empty() {
            String::new()
        } else {
            format!(" ({})", per_check.join(", "))
        },
        if not_run.is_empty() {
            String::new()
        } else {
            format!("; not run: {}", not_run.join(", "))
        },
        verdict.as_str().to_uppercase()
    )
}
