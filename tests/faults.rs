//! Faults around a scan: the disk fills while outputs are written, the process is killed mid-write, the input is
//! rewritten while it is being scanned. Each time: exit 3 (or no exit at all for SIGKILL), no partial output at any
//! output path, the input unchanged, and never a verdict on data the scan did not read whole.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command as Std;
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt;
use common::*;

fn bin() -> Std {
    Std::cargo_bin("poisonscan").unwrap()
}

/// Files in `dir` other than the staging files `.poisonscan-*.tmp`.
fn outputs_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            !(n.starts_with(".poisonscan-") && n.ends_with(".tmp"))
        })
        .collect();
    v.sort();
    v
}

struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Std::new("umount").arg(&self.0).status();
    }
}

/// A 64 KiB tmpfs: a disk that fills. Needs root (CI runs as root; elsewhere the test says why it did not run).
fn small_disk(dir: &Path) -> Option<Tmpfs> {
    let at = dir.join("small");
    std::fs::create_dir_all(&at).unwrap();
    let ok = Std::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&at)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to mount a tmpfs to test a full disk"
        );
        eprintln!("skipped: cannot mount a tmpfs here (not root)");
        return None;
    }
    Some(Tmpfs(at))
}

#[test]
fn a_full_disk_during_output_leaves_nothing_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = small_disk(dir.path()) else {
        return;
    };
    let before = std::fs::read(fixture("train_poisoned.parquet")).unwrap();
    let out = bin()
        .args(["scan", "-q", "--label", "label", "--id", "id"])
        .arg(fixture("train_poisoned.parquet"))
        .arg("--reference")
        .arg(fixture("train_reference.parquet"))
        .arg("--report")
        .arg(disk.0.join("report.json"))
        .arg("--scores")
        .arg(disk.0.join("scores.csv"))
        .arg("--html")
        .arg(disk.0.join("report.html"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("No space left on device"), "{err}");
    // Nothing at any output path, and the staging files are gone too.
    let left: Vec<_> = std::fs::read_dir(&disk.0).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert_eq!(
        std::fs::read(fixture("train_poisoned.parquet")).unwrap(),
        before
    );
}

#[test]
fn a_process_killed_mid_write_leaves_only_complete_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let before = std::fs::read(fixture("train_poisoned.parquet")).unwrap();
    // Kill at increasing delays: before the outputs, while they are written, after the renames.
    for (k, ms) in [5u64, 40, 80, 120, 160, 220, 300, 450, 700, 1200]
        .iter()
        .enumerate()
    {
        let out = dir.path().join(format!("run{k}"));
        let mut child = bin()
            .args(["scan", "-q", "--label", "label", "--id", "id"])
            .arg(fixture("train_poisoned.parquet"))
            .arg("--reference")
            .arg(fixture("train_reference.parquet"))
            .arg("--report")
            .arg(out.join("report.json"))
            .arg("--scores")
            .arg(out.join("scores.parquet"))
            .arg("--html")
            .arg(out.join("report.html"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(*ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        if !out.exists() {
            continue;
        }
        // Whatever reached an output path is complete: the JSON parses, the page ends, the Parquet file reads.
        for p in outputs_in(&out) {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            match name.as_str() {
                "report.json" => {
                    let r: serde_json::Value =
                        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
                    assert_eq!(r["rows"], 2040);
                }
                "report.html" => {
                    assert!(std::fs::read_to_string(&p)
                        .unwrap()
                        .trim_end()
                        .ends_with("</html>"))
                }
                "scores.parquet" => assert_eq!(rows(&read_parquet(&p)), 2040),
                other => panic!("unexpected file {other}"),
            }
        }
    }
    assert_eq!(
        std::fs::read(fixture("train_poisoned.parquet")).unwrap(),
        before
    );
}

#[test]
fn an_input_rewritten_during_the_scan_is_refused_not_judged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.csv");
    let mut text = String::from("f0,f1,f2,f3,label\n");
    for i in 0..400_000u64 {
        let x = (i * 2654435761) % 1000;
        text.push_str(&format!(
            "{},{},{},{},{}\n",
            x as f64 / 100.0,
            (x * 7 % 1000) as f64 / 10.0,
            x % 13,
            (x * 3) % 17,
            i % 3
        ));
    }
    std::fs::write(&data, &text).unwrap();
    let report = dir.path().join("report.json");
    let child = bin()
        .args(["scan", "-q", "--label", "label"])
        .arg(&data)
        .arg("--report")
        .arg(&report)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // While it reads, another writer appends rows (a producer still writing the file).
    std::thread::sleep(Duration::from_millis(300));
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&data)
            .unwrap();
        f.write_all(b"1,2,3,4,0\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("changed while it was being scanned"), "{err}");
    // The summary line says the scan did not complete: no verdict on data it did not read whole.
    assert!(
        String::from_utf8_lossy(&out.stdout).ends_with("verdict ERROR\n"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        !report.exists(),
        "a report was written for data the scan did not read whole"
    );
}
