//! The HTML report: self-contained, complete, and true to the scan it shows (fixtures with ground truth).

mod common;

use assert_cmd::Command;
use common::*;

fn html_of(data: &str, reference: &str, code: i32) -> (String, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("r.html");
    let report = dir.path().join("r.json");
    Command::cargo_bin("poisonscan")
        .unwrap()
        .args(["scan", "-q", "--label", "label", "--id", "id"])
        .arg(fixture(data))
        .arg("--reference")
        .arg(fixture(reference))
        .arg("--html")
        .arg(&html)
        .arg("--report")
        .arg(&report)
        .assert()
        .code(code);
    let r = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    (std::fs::read_to_string(&html).unwrap(), r)
}

/// Nothing is fetched: no external script, style sheet, image or font (the SVG namespace is a name, not a fetch).
fn assert_self_contained(html: &str) {
    for bad in [
        "<link",
        "src=\"http",
        "src='http",
        "href=\"http",
        "url(http",
        "@import",
        "<img",
    ] {
        assert!(!html.contains(bad), "the page fetches something: {bad}");
    }
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
}

#[test]
fn the_poisoned_fixture_report_shows_the_verdict_checks_flagged_rows_and_plots() {
    let (html, r) = html_of("train_poisoned.parquet", "train_reference.parquet", 1);
    assert_self_contained(&html);
    assert!(html.contains("<header class=\"fail\" id=\"verdict\"><h1>poisonscan: FAIL</h1>"));
    assert!(html.contains(&format!(
        "id=\"summary\">{}</div>",
        r["summary"].as_str().unwrap()
    )));
    // Every check of the report has its row, with its status.
    for (name, c) in r["checks"].as_object().unwrap() {
        let status = c["status"].as_str().unwrap().to_uppercase();
        let row = format!("<tr data-check=\"{name}\"><td>{name}</td>");
        let at = html
            .find(&row)
            .unwrap_or_else(|| panic!("no row for check {name}"));
        let rest = &html[at..at + 300];
        assert!(rest.contains(&status), "check {name}: {rest}");
    }
    // The flagged rows listed are true poisons (the fixture's flags are all correct at the top).
    let truth = truth("train_poisoned.truth.csv");
    let table = &html[html.find("id=\"flagged-rows\"").unwrap()..];
    let table = &table[..table.find("</table>").unwrap()];
    let listed: Vec<usize> = table
        .split("<tr><td class=\"num\">")
        .skip(1)
        .map(|t| t[..t.find('<').unwrap()].parse().unwrap())
        .collect();
    assert_eq!(listed.len(), 50);
    let true_poisons = listed.iter().filter(|i| truth.contains_key(i)).count();
    assert!(
        true_poisons >= 48,
        "{true_poisons} of 50 listed rows are poisons"
    );
    // One histogram per detector, the projection, a backdoor view per split class, drift and lineage.
    for id in [
        "hist-label",
        "hist-backdoor",
        "hist-outlier",
        "hist-duplicate",
        "hist-contract",
        "pca",
        "backdoor-0",
        "drift-table",
        "drift-label",
        "lineage",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "missing {id}");
    }
    assert!(html.matches("<svg").count() >= 8);
    assert!(!html.contains("plot not drawn"));
    assert!(html.len() < 3_000_000, "{} bytes", html.len());
}

#[test]
fn the_clean_twin_report_passes_and_says_nothing_was_flagged() {
    let (html, r) = html_of("train_clean.parquet", "train_reference.parquet", 0);
    assert_eq!(r["verdict"], "pass");
    assert_self_contained(&html);
    assert!(html.contains("<header class=\"pass\" id=\"verdict\"><h1>poisonscan: PASS</h1>"));
    assert!(html.contains("<p>No row was flagged.</p>"));
    assert!(!html.contains("id=\"backdoor-0\""));
}

#[test]
fn text_from_the_data_is_escaped() {
    use poisonscan::html::esc;
    assert_eq!(
        esc("<script>alert('x')</script> & \"q\""),
        "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
    );
}

#[test]
fn audit_log_and_openlineage_file_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let ol = dir.path().join("ol.json");
    for _ in 0..2 {
        Command::cargo_bin("poisonscan")
            .unwrap()
            .args(["scan", "-q", "--label", "label", "--id", "id"])
            .arg(fixture("train_poisoned.parquet"))
            .arg("--reference")
            .arg(fixture("train_reference.parquet"))
            .arg("--audit-log")
            .arg(&log)
            .arg("--openlineage")
            .arg(&ol)
            .assert()
            .code(1);
    }
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Per scan: the verdict and the three failing checks (backdoor, duplicate, label); the second scan appended.
    assert_eq!(lines.len(), 8);
    assert_eq!(lines[0]["event"]["action"], "poisonscan-scan");
    assert_eq!(lines[4]["event"]["action"], "poisonscan-scan");
    let checks: Vec<&str> = lines[1..4]
        .iter()
        .map(|l| l["labels"]["check"].as_str().unwrap())
        .collect();
    assert_eq!(checks, ["backdoor", "duplicate", "label"]);
    let e: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&ol).unwrap()).unwrap();
    let a = &e["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"];
    let names: Vec<&str> = a
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "backdoor",
            "contract",
            "drift",
            "duplicate",
            "duplicate_id",
            "label",
            "outlier",
            "unusual"
        ]
    );
    // The audit log may not be an input: refused before anything is read (exit 2), the input untouched.
    let before = std::fs::read(fixture("train_reference.parquet")).unwrap();
    Command::cargo_bin("poisonscan")
        .unwrap()
        .args(["scan", "-q", "--label", "label"])
        .arg(fixture("train_poisoned.parquet"))
        .arg("--reference")
        .arg(fixture("train_reference.parquet"))
        .arg("--audit-log")
        .arg(fixture("train_reference.parquet"))
        .assert()
        .code(2);
    assert_eq!(
        std::fs::read(fixture("train_reference.parquet")).unwrap(),
        before
    );
}
