//! A self-contained HTML report of a scan: verdict and checks, the top flagged rows, score histograms, a projection
//! of the features, backdoor splits, drift, contract findings, label balance and the lineage comparison.
//!
//! One file, no network: the plots are inline SVG drawn by `plotters` ([`plots`]), the page and its one small script
//! (sortable tables) are in [`template`], and what the plots need beyond the JSON report is gathered during the scan
//! ([`visuals`]). Point plots are sampled (at most [`visuals::MAX_POINTS`] rows), so the file stays small however
//! large the data: about 1-2 MB.

pub mod plots;
pub mod template;
pub mod visuals;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::contract::Violation;
use crate::policy::{Policy, Status};
use crate::report::{Report, RowScores};
use plots::{class_colour, Series};
use visuals::Visuals;

/// Flagged rows listed in the report.
pub const TOP_ROWS: usize = 50;
/// Columns whose drift is plotted (drifted ones first).
const DRIFT_PLOTS: usize = 12;

/// Escape text for HTML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A number in at most three significant digits, for plot labels.
pub fn short_num(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let a = x.abs();
    if !(1e-3..1e5).contains(&a) {
        return format!("{x:.1e}");
    }
    let decimals = (2 - a.log10().floor() as i32).max(0) as usize;
    let t = format!("{x:.decimals$}");
    if t.contains('.') {
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        t
    }
}

fn status_cell(s: Status) -> String {
    let t = match s {
        Status::Pass => "pass",
        Status::Warn => "warn",
        Status::Fail => "fail",
    };
    format!("<span class=\"status {t}\">{}</span>", t.to_uppercase())
}

fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

/// A plot, or the reason it could not be drawn (never fails the report).
fn figure(id: &str, svg: Result<String, String>) -> String {
    match svg {
        Ok(s) => format!("<div class=\"plot\" id=\"{}\">{s}</div>", esc(id)),
        Err(e) => format!(
            "<p class=\"muted\" id=\"{}\">plot not drawn: {}</p>",
            esc(id),
            esc(&e)
        ),
    }
}

/// What a report is made from.
pub struct HtmlInput<'a> {
    /// The JSON report.
    pub report: &'a Report,
    /// Per-row scores.
    pub scores: &'a RowScores,
    /// Every contract finding.
    pub violations: &'a [Violation],
    /// Plot data gathered during the scan.
    pub visuals: &'a Visuals,
    /// The policy that set the statuses.
    pub policy: &'a Policy,
}

/// Render the report as one HTML page.
pub fn render(input: &HtmlInput) -> String {
    let r = input.report;
    let verdict = r.verdict.as_str();
    let header = format!(
        "<h1>poisonscan: {}</h1><div class=\"summary\" id=\"summary\">{}</div>",
        verdict.to_uppercase(),
        esc(&r.summary)
    );
    let mut body = String::new();
    body.push_str(&overview(r));
    body.push_str(&checks(r, input.policy));
    if !r.notes.is_empty() {
        body.push_str("<section id=\"notes\"><h2>Notes</h2><ul class=\"notes\">");
        for n in &r.notes {
            let _ = write!(body, "<li>{}</li>", esc(n));
        }
        body.push_str("</ul></section>");
    }
    body.push_str(&top_rows(r, input.scores));
    body.push_str(&histograms(input.scores));
    body.push_str(&projection(input));
    body.push_str(&backdoor(input));
    body.push_str(&contract_findings(input.violations));
    body.push_str(&drift(r, input.visuals));
    body.push_str(&lineage(r));
    template::page(
        &format!("poisonscan report: {}", verdict.to_uppercase()),
        verdict,
        &header,
        &body,
    )
}

fn overview(r: &Report) -> String {
    let mut s = String::from("<section id=\"overview\"><h2>Scan</h2><table>");
    let mut row = |k: &str, v: String| {
        let _ = write!(s, "<tr><th>{}</th><td>{v}</td></tr>", esc(k));
    };
    row("rows scanned", r.rows.to_string());
    row(
        "rows flagged",
        format!(
            "{} ({})",
            r.flagged,
            pct(r.flagged as f64 / r.rows.max(1) as f64)
        ),
    );
    for (k, v) in &r.inputs {
        let text = match v {
            serde_json::Value::String(t) => t.clone(),
            other => other.to_string(),
        };
        row(
            &format!("input: {k}"),
            format!("<code>{}</code>", esc(&text)),
        );
    }
    row("contract", esc(&r.contract_source));
    row(
        "contract hash",
        format!("<code>{}</code>", esc(&r.contract_hash)),
    );
    row(
        "policy hash",
        format!("<code>{}</code>", esc(&r.policy_hash)),
    );
    row(
        "fingerprint (LtHash16 of the row digests)",
        format!(
            "<code id=\"fingerprint\">{}</code>",
            esc(&r.fingerprint.lthash)
        ),
    );
    row(
        "Merkle root",
        format!("<code>{}</code>", esc(&r.fingerprint.merkle_root)),
    );
    row(
        "tool",
        format!(
            "{} {} (report v{})",
            esc(&r.tool),
            esc(&r.tool_version),
            r.report_version
        ),
    );
    let timings: Vec<String> = r
        .timings_ms
        .iter()
        .map(|(k, v)| format!("{} {v} ms", esc(k)))
        .collect();
    row("timings", timings.join(", "));
    s.push_str("</table></section>");
    s
}

fn rule_text(policy: &Policy, check: &str, status: Status) -> String {
    let all = esc(&policy.rules_text(check));
    match policy.decided_by(check, status) {
        Some(d) => format!("<b>{}</b> (rules: {all})", esc(&d)),
        None => all,
    }
}

fn checks(r: &Report, policy: &Policy) -> String {
    let mut s = String::from(
        "<section id=\"checks\"><h2>Checks</h2><table class=\"sortable\"><thead><tr><th>check</th>\
         <th>status</th><th>ran</th><th class=\"num\">count</th><th class=\"num\">share</th>\
         <th>policy rule</th><th>why</th></tr></thead><tbody>",
    );
    for (name, c) in &r.checks {
        let _ = write!(
            s,
            "<tr data-check=\"{n}\"><td>{n}</td><td data-v=\"{st:?}\">{}</td><td>{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            status_cell(c.status),
            c.run.as_str(),
            c.count,
            pct(c.fraction),
            rule_text(policy, name, c.status),
            esc(c.reason.as_deref().unwrap_or("")),
            n = esc(name),
            st = c.status,
        );
    }
    s.push_str("</tbody></table></section>");
    s
}

fn top_rows(r: &Report, scores: &RowScores) -> String {
    let mut s = String::from("<section id=\"flagged\"><h2>Top flagged rows</h2>");
    if r.sample.is_empty() {
        s.push_str("<p>No row was flagged.</p></section>");
        return s;
    }
    let names: Vec<&String> = scores.checks.keys().collect();
    let _ = write!(
        s,
        "<p class=\"muted\">{} of {} flagged rows, highest score first.</p>\
         <table class=\"sortable\" id=\"flagged-rows\"><thead><tr><th class=\"num\">row</th>{}\
         <th class=\"num\">score</th>",
        r.sample.len().min(TOP_ROWS),
        r.flagged,
        if scores.id_column.is_some() {
            "<th>id</th>"
        } else {
            ""
        },
    );
    for n in &names {
        let _ = write!(s, "<th class=\"num\">{}</th>", esc(n));
    }
    s.push_str("<th>reasons</th></tr></thead><tbody>");
    for row in r.sample.iter().take(TOP_ROWS) {
        let _ = write!(s, "<tr><td class=\"num\">{}</td>", row.row);
        if scores.id_column.is_some() {
            let _ = write!(s, "<td>{}</td>", esc(row.id.as_deref().unwrap_or("")));
        }
        let _ = write!(s, "<td class=\"num\">{:.3}</td>", row.score);
        for n in &names {
            let v = scores
                .checks
                .get(*n)
                .and_then(|v| v.get(row.row as usize))
                .copied()
                .unwrap_or(0.0);
            let _ = write!(s, "<td class=\"num\">{v:.3}</td>");
        }
        let _ = write!(s, "<td class=\"reasons\">{}</td></tr>", esc(&row.reasons));
    }
    s.push_str("</tbody></table></section>");
    s
}

fn histograms(scores: &RowScores) -> String {
    let mut s = String::from(
        "<section id=\"histograms\"><h2>Score distributions</h2><p class=\"muted\">Rows per score bin (log \
         scale); bins at or above the flag threshold in red.</p><div class=\"plots\">",
    );
    for (name, v) in &scores.checks {
        s.push_str(&figure(
            &format!("hist-{name}"),
            plots::score_histogram(&format!("score_{name}"), v, crate::detect::FLAG_AT),
        ));
    }
    s.push_str("</div></section>");
    s
}

fn projection(input: &HtmlInput) -> String {
    let v = input.visuals;
    let mut s = String::from("<section id=\"projection\"><h2>Features, projected</h2>");
    let Some(p) = &v.projection else {
        s.push_str("<p class=\"muted\">No feature was analysed: nothing to project.</p></section>");
        return s;
    };
    let flagged = input.scores.flagged();
    let is_flagged =
        |row: Option<u64>| row.is_some_and(|r| flagged.get(r as usize).copied().unwrap_or(false));
    let mut by_class: BTreeMap<Option<u32>, Vec<(f32, f32)>> = BTreeMap::new();
    let mut flagged_pts = Vec::new();
    for pt in &p.points {
        if is_flagged(pt.row) {
            flagged_pts.push((pt.x, pt.y));
        } else {
            by_class.entry(pt.class).or_default().push((pt.x, pt.y));
        }
    }
    let mut refs: BTreeMap<Option<u32>, Vec<(f32, f32)>> = BTreeMap::new();
    for pt in &p.reference {
        refs.entry(pt.class).or_default().push((pt.x, pt.y));
    }
    let class_name = |c: Option<u32>| match c {
        Some(c) => v
            .classes
            .get(c as usize)
            .cloned()
            .unwrap_or_else(|| c.to_string()),
        None => "no label".into(),
    };
    let mut series: Vec<Series> = Vec::new();
    for (c, pts) in &by_class {
        series.push(Series {
            name: class_name(*c),
            points: pts,
            colour: class_colour(c.map_or(98, |c| c as usize)),
            filled: true,
            radius: 2,
        });
    }
    for (c, pts) in &refs {
        series.push(Series {
            name: format!("{} (reference)", class_name(*c)),
            points: pts,
            colour: class_colour(c.map_or(98, |c| c as usize)),
            filled: false,
            radius: 3,
        });
    }
    series.push(Series {
        name: "flagged".into(),
        points: &flagged_pts,
        colour: plotters::style::RGBColor(200, 20, 20),
        filled: true,
        radius: 4,
    });
    let _ = write!(
        s,
        "<p class=\"muted\">{} rows of the data ({} flagged) and {} of the reference on the first two principal axes \
         of the scaled features ({} and {} of the variance).</p>",
        p.points.len(),
        flagged_pts.len(),
        p.reference.len(),
        pct(p.explained[0]),
        pct(p.explained[1])
    );
    s.push_str(&figure(
        "pca",
        plots::scatter("principal axes 1 and 2", ("PC 1", "PC 2"), &series),
    ));
    s.push_str("</section>");
    s
}

fn backdoor(input: &HtmlInput) -> String {
    let v = input.visuals;
    if v.backdoor.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "<section id=\"backdoor\"><h2>Backdoor findings</h2><p class=\"muted\">Each class with flagged \
         sub-cluster rows: axis 1 runs from the rest of the class to the flagged rows, axis 2 is the class's main \
         remaining direction.</p><div class=\"plots\">",
    );
    for (k, view) in v.backdoor.iter().enumerate() {
        let inside: Vec<(f32, f32)> = view
            .points
            .iter()
            .filter(|p| p.1)
            .map(|p| (p.0.x, p.0.y))
            .collect();
        let rest: Vec<(f32, f32)> = view
            .points
            .iter()
            .filter(|p| !p.1)
            .map(|p| (p.0.x, p.0.y))
            .collect();
        let refs: Vec<(f32, f32)> = view.reference.iter().map(|p| (p.x, p.y)).collect();
        let series = [
            Series {
                name: format!("rest of class {}", view.class),
                points: &rest,
                colour: plotters::style::RGBColor(120, 120, 120),
                filled: true,
                radius: 2,
            },
            Series {
                name: "reference rows of the class".into(),
                points: &refs,
                colour: plotters::style::RGBColor(40, 90, 200),
                filled: false,
                radius: 3,
            },
            Series {
                name: format!("flagged sub-cluster ({} rows)", inside.len()),
                points: &inside,
                colour: plotters::style::RGBColor(200, 20, 20),
                filled: true,
                radius: 3,
            },
        ];
        s.push_str(&figure(
            &format!("backdoor-{k}"),
            plots::scatter(
                &format!("class {}", view.class),
                ("towards the sub-cluster", "main other direction"),
                &series,
            ),
        ));
    }
    s.push_str("</div></section>");
    s
}

fn contract_findings(violations: &[Violation]) -> String {
    let mut s = String::from("<section id=\"contract\"><h2>Contract findings per column</h2>");
    if violations.is_empty() {
        s.push_str("<p>No value outside the contract.</p></section>");
        return s;
    }
    // column -> (impossible by kind, unusual flagged, unusual not flagged)
    let mut per: BTreeMap<&str, (BTreeMap<&'static str, u64>, u64, u64)> = BTreeMap::new();
    for v in violations {
        let e = per.entry(v.column.as_str()).or_default();
        if v.impossible() {
            *e.0.entry(v.kind.as_str()).or_default() += 1;
        } else if v.flags() {
            e.1 += 1;
        } else {
            e.2 += 1;
        }
    }
    s.push_str(
        "<table class=\"sortable\" id=\"contract-table\"><thead><tr><th>column</th><th class=\"num\">impossible\
         </th><th>impossible kinds</th><th class=\"num\">unusual, flagged</th><th class=\"num\">unusual, not \
         flagged</th></tr></thead><tbody>",
    );
    for (col, (imp, uf, un)) in &per {
        let total: u64 = imp.values().sum();
        let kinds: Vec<String> = imp.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = write!(
            s,
            "<tr><td>{}</td><td class=\"num\">{total}</td><td>{}</td><td class=\"num\">{uf}</td>\
             <td class=\"num\">{un}</td></tr>",
            esc(col),
            esc(&kinds.join(", "))
        );
    }
    s.push_str("</tbody></table></section>");
    s
}

fn drift(r: &Report, v: &Visuals) -> String {
    let mut s = String::from("<section id=\"drift\"><h2>Drift against the reference</h2>");
    if r.drift.is_empty() {
        s.push_str(
            "<p class=\"muted\">No drift statistics: drift is measured against a reference or a contract with \
             sketches.</p></section>",
        );
        return s;
    }
    s.push_str(
        "<p class=\"muted\">A column drifts when its PSI exceeds both 0.25 and what sampling alone gives at \
         alpha = 0.001 (PSI critical), or its binned KS statistic exceeds the critical value at alpha = 0.001.</p>\
         <table class=\"sortable\" id=\"drift-table\"><thead><tr><th>column</th><th>kind</th>\
         <th class=\"num\">PSI</th><th class=\"num\">PSI critical</th><th class=\"num\">KS</th>\
         <th class=\"num\">KS critical</th><th>drifted</th></tr></thead><tbody>",
    );
    for d in &r.drift {
        let f = |x: Option<f64>| x.map_or("–".to_string(), |x| format!("{x:.4}"));
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{:.4}</td><td class=\"num\">{}</td><td class=\"num\">{}\
             </td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&d.column),
            esc(&d.kind),
            d.psi,
            f(d.psi_critical),
            f(d.ks),
            f(d.ks_critical),
            if d.drifted { "<b>yes</b>" } else { "no" }
        );
    }
    s.push_str("</tbody></table>");
    let drifted = |c: &str| r.drift.iter().any(|d| d.column == c && d.drifted);
    let mut order: Vec<&visuals::DriftBins> = v.drift.iter().collect();
    // The label first, then drifted columns, then the rest, in their order.
    order.sort_by_key(|b| (b.kind != "label", !drifted(&b.column)));
    s.push_str("<div class=\"plots\">");
    for b in order.into_iter().take(DRIFT_PLOTS) {
        let n: u64 = b.observed.iter().sum();
        let observed: Vec<f64> = b
            .observed
            .iter()
            .map(|&c| c as f64 / n.max(1) as f64)
            .collect();
        let title = if b.kind == "label" {
            format!("label balance: {}", b.column)
        } else {
            format!("{} ({})", b.column, b.kind)
        };
        s.push_str(&figure(
            &format!("drift-{}", b.column),
            plots::paired_bars(&title, &b.bins, &b.expected, &observed),
        ));
    }
    s.push_str("</div></section>");
    s
}

fn lineage(r: &Report) -> String {
    let mut s = String::from("<section id=\"lineage\"><h2>Lineage</h2>");
    let d = &r.duplicates;
    let _ = write!(
        s,
        "<table><tr><th>exact duplicate groups</th><td class=\"num\">{}</td></tr><tr><th>exact copies</th>\
         <td class=\"num\">{}</td></tr><tr><th>groups with conflicting labels</th><td class=\"num\">{}</td></tr>\
         <tr><th>near duplicates with conflicting labels</th><td class=\"num\">{}</td></tr>\
         <tr><th>mass copies (groups of 10 or more identical rows under one label)</th><td class=\"num\">{}</td>\
         </tr><tr><th>tight conflicts (a row of another label within a tenth of the 5th nearest row's distance)\
         </th><td class=\"num\">{} ({:.1} expected, {} flagged)</td></tr></table>",
        d.exact_groups,
        d.exact_copies,
        d.conflicting_groups,
        d.near_conflicts,
        d.mass_copy_groups,
        d.tight_conflicts,
        d.tight_expected,
        d.tight_flagged
    );
    match &r.baseline {
        Some(b) => {
            let _ = write!(
                s,
                "<h3>Against the baseline manifest <code>{}</code></h3><table id=\"baseline\"><tr><th>added</th>\
                 <td class=\"num\">{}</td></tr><tr><th>removed</th><td class=\"num\">{}</td></tr><tr><th>changed\
                 </th><td class=\"num\">{}</td></tr><tr><th>matched by</th><td>{}</td></tr>{}</table>",
                esc(&b.manifest),
                b.added,
                b.removed,
                b.changed,
                if b.by_id { "id" } else { "row content" },
                if b.schema_changed {
                    "<tr><th>schema</th><td><b>changed</b>: every row's digest changes with it</td></tr>"
                } else {
                    ""
                }
            );
        }
        None => s.push_str(
            "<p class=\"muted\">No baseline manifest given (<code>--baseline</code>).</p>",
        ),
    }
    s.push_str("</section>");
    s
}
