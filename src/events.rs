//! Machine-readable events of a scan for the systems around a pipeline: audit lines in Elastic Common Schema (ECS)
//! for a SIEM, and an OpenLineage run event whose input dataset carries the data-quality facets.
//!
//! ## Audit lines (`--audit-log`, `audit_log=`)
//! JSON lines appended to a file: one per scan verdict and one per check that warned or failed. Stable fields:
//! `@timestamp`, `ecs.version`, `message`, `event.kind` (`alert` for a warn/fail, `event` for a pass),
//! `event.category` (`intrusion_detection`, plus `file` on the verdict line), `event.type` (`allowed` / `denied` on
//! the verdict, `info` / `denied` on a check), `event.action` (`poisonscan-scan` / `poisonscan-check`),
//! `event.outcome` (`success` / `failure`), `event.dataset` (`poisonscan.audit`), `rule.id` (`poisonscan.<check>`),
//! `rule.name`, `rule.ruleset` (the policy's origin), `file.path` (the data), `file.hash.blake3` (the dataset
//! fingerprint), `labels` (`verdict`, `check`), and a `poisonscan` object with the counts.
//!
//! ## OpenLineage
//! A `COMPLETE` run event (job `poisonscan` / `scan`) whose input dataset has the `dataQualityAssertions` facet
//! (one assertion per check: `assertion`, `success`, plus `severity`, `failures`, `status`) and the
//! `dataQualityMetrics` facet (`rowCount`; per column `nullCount`, `count`, `min`, `max`, and `distinctCount` up to
//! [`DISTINCT_CAP`] distinct values).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::SystemTime;

use arrow::array::{Array, ArrayRef, RecordBatch};
use serde_json::{json, Value};

use crate::policy::{Policy, Status};
use crate::report::{Report, Verdict};
use crate::Error;

/// ECS version the audit lines follow.
pub const ECS_VERSION: &str = "8.11.0";
/// Producer URI of the OpenLineage events.
pub const PRODUCER: &str = "https://github.com/poisonscan/poisonscan";
/// Distinct values counted exactly per column; beyond it `distinctCount` is left out.
pub const DISTINCT_CAP: usize = 10_000;

const ASSERTIONS_SCHEMA: &str = "https://openlineage.io/spec/facets/1-0-0/DataQualityAssertionsDatasetFacet.json#/$defs/DataQualityAssertionsDatasetFacet";
const METRICS_SCHEMA: &str = "https://openlineage.io/spec/facets/1-0-1/DataQualityMetricsInputDatasetFacet.json#/$defs/DataQualityMetricsInputDatasetFacet";
const RUN_EVENT_SCHEMA: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";

/// Per-column counts of the scanned data, for the `dataQualityMetrics` facet.
#[derive(Debug, Clone, Default)]
pub struct ColumnMetrics {
    /// Column.
    pub name: String,
    /// Null values.
    pub nulls: u64,
    /// Non-null values.
    pub count: u64,
    /// Smallest and largest finite number (numeric columns).
    pub min_max: Option<(f64, f64)>,
    /// Distinct non-null values (hashes), until [`DISTINCT_CAP`] is passed.
    distinct: Option<HashSet<u64>>,
}

impl ColumnMetrics {
    fn new(name: &str) -> ColumnMetrics {
        ColumnMetrics {
            name: name.to_string(),
            distinct: Some(HashSet::new()),
            ..Default::default()
        }
    }

    /// Distinct non-null values, when at most [`DISTINCT_CAP`].
    pub fn distinct(&self) -> Option<u64> {
        self.distinct.as_ref().map(|d| d.len() as u64)
    }

    fn add(&mut self, a: &ArrayRef, converter: Option<&arrow::row::RowConverter>) {
        self.nulls += a.null_count() as u64;
        self.count += (a.len() - a.null_count()) as u64;
        // Float64 (most feature columns) is read in place; other numeric types go through the one f64 cast.
        let cast;
        let floats = match a.as_any().downcast_ref::<arrow::array::Float64Array>() {
            Some(f) => Some(f),
            None => {
                cast = crate::contract::checks::as_f64(a);
                cast.as_ref()
            }
        };
        if let Some(v) = floats {
            for x in v.iter().flatten().filter(|x| x.is_finite()) {
                self.min_max = Some(match self.min_max {
                    Some((lo, hi)) => (lo.min(x), hi.max(x)),
                    None => (x, x),
                });
            }
        }
        let Some(set) = self.distinct.as_mut() else {
            return;
        };
        match converter.map(|c| c.convert_columns(std::slice::from_ref(a))) {
            Some(Ok(rows)) => {
                use std::hash::{Hash, Hasher};
                for i in (0..a.len()).filter(|&i| a.is_valid(i)) {
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    rows.row(i).as_ref().hash(&mut h);
                    set.insert(h.finish());
                    // Past the cap the count is left out: stop hashing there (a float column of a 65,536-row
                    // batch would otherwise hash every value before the check).
                    if set.len() > DISTINCT_CAP {
                        self.distinct = None;
                        return;
                    }
                }
            }
            _ => self.distinct = None,
        }
    }
}

/// Accumulates [`ColumnMetrics`] over the batches of a scan.
#[derive(Debug)]
pub struct MetricsCollector {
    columns: Vec<ColumnMetrics>,
    /// One row converter per column (built once), to hash values of any type for the distinct count.
    converters: Vec<Option<arrow::row::RowConverter>>,
}

impl MetricsCollector {
    /// One accumulator per column of `schema`.
    pub fn new(schema: &arrow::datatypes::Schema) -> MetricsCollector {
        MetricsCollector {
            columns: schema
                .fields()
                .iter()
                .map(|f| ColumnMetrics::new(f.name()))
                .collect(),
            converters: schema
                .fields()
                .iter()
                .map(|f| {
                    arrow::row::RowConverter::new(vec![arrow::row::SortField::new(
                        f.data_type().clone(),
                    )])
                    .ok()
                })
                .collect(),
        }
    }
    /// Count one batch.
    pub fn add(&mut self, batch: &RecordBatch) {
        for ((m, a), c) in self
            .columns
            .iter_mut()
            .zip(batch.columns())
            .zip(&self.converters)
        {
            m.add(a, c.as_ref());
        }
    }
    /// The metrics.
    pub fn finish(self) -> Vec<ColumnMetrics> {
        self.columns
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn data_path(r: &Report) -> String {
    match r.inputs.get("data") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    }
}

/// The audit lines of one scan (the verdict first), at time `now`.
pub fn audit_events(report: &Report, policy: &Policy, now: SystemTime) -> Vec<Value> {
    let ts = rfc3339(now);
    let verdict = report.verdict.as_str();
    let file = json!({
        "path": data_path(report),
        "hash": { "blake3": report.fingerprint.lthash },
    });
    let counts = json!({
        "rows": report.rows,
        "flagged": report.flagged,
        "verdict": verdict,
        "report_version": report.report_version,
        "tool_version": report.tool_version,
        "contract_source": report.contract_source,
        "contract_hash": report.contract_hash,
        "policy_hash": report.policy_hash,
        "merkle_root": report.fingerprint.merkle_root,
        "checks": report.checks.iter().map(|(k, c)| (k.clone(), json!({
            "status": c.status, "run": c.run.as_str(), "count": c.count, "fraction": c.fraction,
        }))).collect::<BTreeMap<_, _>>(),
    });
    let alert = report.verdict != Verdict::Pass;
    let mut out = vec![json!({
        "@timestamp": ts,
        "ecs": { "version": ECS_VERSION },
        "message": report.summary,
        "event": {
            "kind": if alert { "alert" } else { "event" },
            "category": ["intrusion_detection", "file"],
            "type": [if report.verdict == Verdict::Fail { "denied" } else { "allowed" }],
            "action": "poisonscan-scan",
            "outcome": if report.verdict == Verdict::Fail { "failure" } else { "success" },
            "dataset": "poisonscan.audit",
            "provider": "poisonscan",
        },
        "rule": { "id": "poisonscan.verdict", "name": "verdict", "ruleset": policy.origin },
        "file": file,
        "labels": { "verdict": verdict },
        "poisonscan": counts,
    })];
    for (name, c) in &report.checks {
        if c.status == Status::Pass {
            continue;
        }
        let fail = c.status == Status::Fail;
        let status = if fail { "fail" } else { "warn" };
        out.push(json!({
            "@timestamp": ts,
            "ecs": { "version": ECS_VERSION },
            "message": format!(
                "poisonscan check {name}: {status} ({} of {} rows{})",
                c.count,
                report.rows,
                c.reason.as_ref().map(|r| format!("; {r}")).unwrap_or_default()
            ),
            "event": {
                "kind": "alert",
                "category": ["intrusion_detection"],
                "type": [if fail { "denied" } else { "info" }],
                "action": "poisonscan-check",
                "outcome": "failure",
                "dataset": "poisonscan.audit",
                "provider": "poisonscan",
                "severity": if fail { 3 } else { 2 },
            },
            "rule": {
                "id": format!("poisonscan.{name}"),
                "name": name,
                "ruleset": policy.origin,
                "description": policy.decided_by(name, c.status),
            },
            "file": file,
            "labels": { "verdict": verdict, "check": name },
            "poisonscan": {
                "check": name,
                "status": status,
                "run": c.run.as_str(),
                "count": c.count,
                "fraction": c.fraction,
                "rows": report.rows,
                "reason": c.reason,
            },
        }));
    }
    out
}

/// Append the audit lines to `path` in one write (the file is created if missing; earlier lines are kept).
pub fn append_audit_log(path: &Path, events: &[Value]) -> Result<(), Error> {
    use std::io::Write;
    let mut text = String::new();
    for e in events {
        text.push_str(&e.to_string());
        text.push('\n');
    }
    let io = |e: std::io::Error| Error::Output {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_data().map_err(io)
}

/// A random (version 4) UUID from the operating system's randomness.
fn uuid4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The OpenLineage run event of a scan.
pub fn openlineage_event(
    report: &Report,
    policy: &Policy,
    metrics: &[ColumnMetrics],
    now: SystemTime,
) -> Value {
    let assertions: Vec<Value> = report
        .checks
        .iter()
        .map(|(name, c)| {
            let severity = policy.rules.get(name).map_or("warn", |r| {
                if r.error_if.is_some() {
                    "error"
                } else {
                    "warn"
                }
            });
            json!({
                "assertion": format!("poisonscan.{name}"),
                "name": name,
                "success": c.status == Status::Pass && c.run.as_str() == "ran",
                "severity": severity,
                "failures": c.count,
                "status": c.status,
                "run": c.run.as_str(),
            })
        })
        .collect();
    let columns: BTreeMap<String, Value> = metrics
        .iter()
        .map(|m| {
            let mut o = serde_json::Map::new();
            o.insert("nullCount".into(), json!(m.nulls));
            o.insert("count".into(), json!(m.count));
            if let Some(d) = m.distinct() {
                o.insert("distinctCount".into(), json!(d));
            }
            if let Some((lo, hi)) = m.min_max {
                o.insert("min".into(), json!(lo));
                o.insert("max".into(), json!(hi));
            }
            (m.name.clone(), Value::Object(o))
        })
        .collect();
    json!({
        "eventType": "COMPLETE",
        "eventTime": rfc3339(now),
        "producer": PRODUCER,
        "schemaURL": RUN_EVENT_SCHEMA,
        "run": {
            "runId": uuid4(),
            "facets": {
                "poisonscan": {
                    "_producer": PRODUCER,
                    "_schemaURL": format!("{PRODUCER}/docs/cli.md#openlineage"),
                    "verdict": report.verdict.as_str(),
                    "summary": report.summary,
                    "fingerprint": report.fingerprint.lthash,
                    "merkleRoot": report.fingerprint.merkle_root,
                    "toolVersion": report.tool_version,
                },
            },
        },
        "job": { "namespace": "poisonscan", "name": "scan" },
        "inputs": [{
            "namespace": "file",
            "name": data_path(report),
            "inputFacets": {
                "dataQualityAssertions": {
                    "_producer": PRODUCER,
                    "_schemaURL": ASSERTIONS_SCHEMA,
                    "assertions": assertions,
                },
                "dataQualityMetrics": {
                    "_producer": PRODUCER,
                    "_schemaURL": METRICS_SCHEMA,
                    "rowCount": report.rows,
                    "columnMetrics": columns,
                },
            },
        }],
        "outputs": [],
    })
}

/// Write the event to a file (atomically) or POST it to an `http://` / `https://` URL (an OpenLineage endpoint such
/// as Marquez's `/api/v1/lineage`).
pub fn send_openlineage(target: &str, event: &Value) -> Result<(), Error> {
    if target.starts_with("http://") || target.starts_with("https://") {
        let fail = |m: String| Error::Output {
            path: target.into(),
            message: m,
        };
        return match ureq::post(target)
            .timeout(std::time::Duration::from_secs(30))
            .set("Content-Type", "application/json")
            .send_string(&event.to_string())
        {
            Ok(_) => Ok(()),
            Err(ureq::Error::Status(code, resp)) => Err(fail(format!(
                "OpenLineage endpoint answered {code}: {}",
                resp.into_string().unwrap_or_default()
            ))),
            Err(e) => Err(fail(format!("OpenLineage endpoint not reached: {e}"))),
        };
    }
    let text = serde_json::to_string_pretty(event).unwrap_or_default();
    crate::output::write_text_atomically(Path::new(target), &text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch(schema: &Arc<Schema>, from: i64, to: i64, label: &str) -> RecordBatch {
        let n = (to - from) as usize;
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(from..to)),
                Arc::new(Float64Array::from_iter_values(
                    (from..to).map(|v| (v % 7) as f64),
                )),
                Arc::new(StringArray::from_iter_values(std::iter::repeat_n(label, n))),
            ],
        )
        .unwrap()
    }

    #[test]
    fn distinct_counts_are_exact_up_to_the_cap_and_left_out_beyond_it() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("x", DataType::Float64, false),
            Field::new("label", DataType::Utf8, false),
        ]));
        let cap = DISTINCT_CAP as i64;
        // Exactly the cap over two batches (values repeated across them count once).
        let mut m = MetricsCollector::new(&schema);
        m.add(&batch(&schema, 0, cap / 2 + 10, "a"));
        m.add(&batch(&schema, cap / 2, cap, "b"));
        let c = m.finish();
        assert_eq!(c[0].distinct(), Some(DISTINCT_CAP as u64));
        assert_eq!(c[1].distinct(), Some(7));
        assert_eq!(c[2].distinct(), Some(2));
        assert_eq!(
            (c[0].count, c[0].min_max),
            (cap as u64 + 10, Some((0.0, (cap - 1) as f64)))
        );
        // One more distinct value, in the middle of a batch: the count is left out, the other counts go on.
        let mut m = MetricsCollector::new(&schema);
        m.add(&batch(&schema, 0, cap + 1, "a"));
        m.add(&batch(&schema, 0, 5, "c"));
        let c = m.finish();
        assert_eq!(c[0].distinct(), None);
        assert_eq!(c[0].count, cap as u64 + 6);
        assert_eq!(c[0].min_max, Some((0.0, cap as f64)));
        assert_eq!(c[2].distinct(), Some(2));
    }
}
