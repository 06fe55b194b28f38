//! Gate policy: per-check `warn_if` / `error_if` thresholds (counts or fractions), read from TOML.
//!
//! ```toml
//! [contract]
//! error_if = "> 0"        # any row with a contract violation fails the scan
//! [outlier]
//! warn_if = "> 0"
//! error_if = "> 0.5%"     # a fraction of the rows scanned
//! ```
//!
//! Checks: `contract` (rows with an impossible finding), `unusual` (rows with a value flagged beyond the
//! reference's range), `duplicate`, `outlier`, `label`, `backdoor` (rows flagged), `duplicate_id` (rows whose id
//! value is repeated), `drift` (columns drifted, fraction of columns compared), `baseline_changed` (rows changed or
//! removed since the baseline manifest), `baseline_added` (rows added since it).
//!
//! A check missing from the file keeps its built-in rule, and a key missing from a check's table keeps its built-in
//! value: `[label] error_if = "> 5%"` changes only `error_if`. `"never"` disables one key.
//!
//! Fail-safe rules: a check that could not run (no label column, one class, too few rows, no usable feature) is
//! reported as skipped with the reason. When one of the core detectors (`outlier`, `label`, `backdoor`) is skipped,
//! the verdict is at best WARN; a check listed in `require = ["label", "backdoor"]` (top level of the file) that did
//! not run FAILs the scan. A detector switched off on purpose (`--no-outliers`) is reported as disabled and does not
//! lower the verdict unless it is required.

use crate::error::PolicyError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The detectors whose absence makes a scan incomplete: when one of them is skipped the verdict is at best WARN.
pub const CORE_DETECTORS: [&str; 3] = ["outlier", "label", "backdoor"];

/// Names of the checks a policy can set.
pub const CHECKS: [&str; 10] = [
    "contract",
    "unusual",
    "duplicate",
    "outlier",
    "label",
    "backdoor",
    "duplicate_id",
    "drift",
    "baseline_changed",
    "baseline_added",
];

/// A threshold: `count > n`, `count >= n`, or the same on a fraction (`> 1%`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Threshold {
    /// Strict (`>`) or not (`>=`).
    pub strict: bool,
    /// The value (a count, or a fraction in [0, 1] when `percent`).
    pub value: f64,
    /// Whether `value` is a fraction.
    pub percent: bool,
}

impl TryFrom<String> for Threshold {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let t = s.trim();
        let (strict, rest) = if let Some(r) = t.strip_prefix(">=") {
            (false, r)
        } else if let Some(r) = t.strip_prefix('>') {
            (true, r)
        } else {
            return Err(format!(
                "'{s}': a threshold looks like \"> 0\", \">= 10\" or \"> 1.5%\""
            ));
        };
        let rest = rest.trim();
        let (num, percent) = match rest.strip_suffix('%') {
            Some(n) => (n.trim(), true),
            None => (rest, false),
        };
        let v: f64 = num
            .parse()
            .map_err(|_| format!("'{s}': '{num}' is not a number"))?;
        if !v.is_finite() || v < 0.0 {
            return Err(format!("'{s}': the value must be a non-negative number"));
        }
        Ok(Threshold {
            strict,
            value: if percent { v / 100.0 } else { v },
            percent,
        })
    }
}

impl From<Threshold> for String {
    fn from(t: Threshold) -> String {
        let op = if t.strict { ">" } else { ">=" };
        if t.percent {
            format!("{op} {}%", t.value * 100.0)
        } else {
            format!("{op} {}", t.value)
        }
    }
}

impl Threshold {
    fn parse(s: &str) -> Threshold {
        Threshold::try_from(s.to_string()).unwrap_or(Threshold {
            strict: true,
            value: 0.0,
            percent: false,
        })
    }
    /// Whether `count` out of `total` crosses the threshold.
    pub fn crossed(&self, count: u64, total: u64) -> bool {
        let x = if self.percent {
            count as f64 / total.max(1) as f64
        } else {
            count as f64
        };
        if self.strict {
            x > self.value
        } else {
            x >= self.value
        }
    }
}

/// Rule for one check.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Warn when crossed.
    #[serde(default, deserialize_with = "opt_threshold")]
    pub warn_if: Option<Threshold>,
    /// Fail when crossed.
    #[serde(default, deserialize_with = "opt_threshold")]
    pub error_if: Option<Threshold>,
}

/// The keys a policy file gives for one check: `None` keeps the built-in value, `Some(None)` is `"never"`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulePatch {
    #[serde(default, deserialize_with = "some_threshold")]
    warn_if: Option<Option<Threshold>>,
    #[serde(default, deserialize_with = "some_threshold")]
    error_if: Option<Option<Threshold>>,
}

fn some_threshold<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<Threshold>>, D::Error> {
    opt_threshold(d).map(Some)
}

/// A policy file: `require` and one table per check.
#[derive(Debug, Deserialize)]
struct PolicyFile {
    #[serde(default)]
    require: Vec<String>,
    #[serde(flatten)]
    checks: BTreeMap<String, RulePatch>,
}

fn opt_threshold<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Threshold>, D::Error> {
    let s = String::deserialize(d)?;
    if s.trim() == "never" {
        return Ok(None);
    }
    Threshold::try_from(s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// The policy: a rule per check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Rules by check name.
    pub rules: BTreeMap<String, Rule>,
    /// Checks that must run: a required check that was skipped or disabled fails the scan.
    #[serde(default)]
    pub require: Vec<String>,
    /// Where it came from.
    pub origin: String,
}

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Below every threshold.
    Pass,
    /// Crossed `warn_if`.
    Warn,
    /// Crossed `error_if`.
    Fail,
}

impl Default for Policy {
    /// Any impossible contract finding, conflicting duplicate, backdoor cluster or changed baseline row fails; flagged
    /// unusual values, label flips and outliers fail above 0.5% of the rows and warn below; drift and added rows warn.
    fn default() -> Self {
        let r = |w: Option<&str>, e: Option<&str>| Rule {
            warn_if: w.map(Threshold::parse),
            error_if: e.map(Threshold::parse),
        };
        let mut rules = BTreeMap::new();
        rules.insert("contract".into(), r(None, Some("> 0")));
        rules.insert("unusual".into(), r(Some("> 0"), Some("> 0.5%")));
        rules.insert("duplicate".into(), r(None, Some("> 0")));
        rules.insert("label".into(), r(Some("> 0"), Some("> 0.5%")));
        rules.insert("outlier".into(), r(Some("> 0"), Some("> 0.5%")));
        rules.insert("backdoor".into(), r(None, Some("> 0")));
        rules.insert("duplicate_id".into(), r(Some("> 0"), None));
        rules.insert("drift".into(), r(Some("> 0"), None));
        rules.insert("baseline_changed".into(), r(None, Some("> 0")));
        rules.insert("baseline_added".into(), r(Some("> 0"), None));
        Policy {
            rules,
            require: Vec::new(),
            origin: "<built-in>".into(),
        }
    }
}

impl Policy {
    /// The rule that set `status` for `check`: `error_if > 0.5%`, `warn_if > 0`, or `require` for a required check
    /// that did not run; `None` for a pass.
    pub fn decided_by(&self, check: &str, status: Status) -> Option<String> {
        let text = |name: &str, t: &Option<Threshold>| {
            t.clone().map(|t| format!("{name} {}", String::from(t)))
        };
        let rule = self.rules.get(check);
        let by_threshold = rule.and_then(|r| match status {
            Status::Fail => text("error_if", &r.error_if),
            Status::Warn => text("warn_if", &r.warn_if),
            Status::Pass => None,
        });
        by_threshold
            .or_else(|| (self.requires(check) && status == Status::Fail).then(|| "require".into()))
    }

    /// Every rule of `check` as text (`warn_if > 0, error_if > 0.5%`), `no rule` when there is none.
    pub fn rules_text(&self, check: &str) -> String {
        let Some(r) = self.rules.get(check) else {
            return "no rule".into();
        };
        let mut parts: Vec<String> = [("warn_if", &r.warn_if), ("error_if", &r.error_if)]
            .into_iter()
            .filter_map(|(n, t)| t.clone().map(|t| format!("{n} {}", String::from(t))))
            .collect();
        if self.requires(check) {
            parts.push("required".into());
        }
        if parts.is_empty() {
            "never".into()
        } else {
            parts.join(", ")
        }
    }

    /// Parse TOML text; checks not named keep their built-in rule, and keys not given keep their built-in value.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Policy, PolicyError> {
        let err = |m: String| PolicyError {
            path: origin.to_path_buf(),
            message: m,
        };
        let parsed: PolicyFile = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let mut p = Policy::default();
        let known = |k: &str| -> Result<(), PolicyError> {
            if CHECKS.contains(&k) {
                Ok(())
            } else {
                Err(err(format!(
                    "unknown check '{k}' (known: {})",
                    CHECKS.join(", ")
                )))
            }
        };
        for (k, patch) in parsed.checks {
            known(&k)?;
            let rule = p.rules.entry(k).or_default();
            if let Some(w) = patch.warn_if {
                rule.warn_if = w;
            }
            if let Some(e) = patch.error_if {
                rule.error_if = e;
            }
        }
        for k in &parsed.require {
            known(k)?;
        }
        p.require = parsed.require;
        p.origin = origin.display().to_string();
        Ok(p)
    }

    /// Read a policy file.
    pub fn read(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
            path: PathBuf::from(path),
            message: format!("cannot read: {e}"),
        })?;
        Policy::from_toml(&text, path)
    }

    /// Evaluate one check.
    pub fn evaluate(&self, check: &str, count: u64, total: u64) -> Status {
        let Some(rule) = self.rules.get(check) else {
            return Status::Pass;
        };
        if rule
            .error_if
            .as_ref()
            .is_some_and(|t| t.crossed(count, total))
        {
            Status::Fail
        } else if rule
            .warn_if
            .as_ref()
            .is_some_and(|t| t.crossed(count, total))
        {
            Status::Warn
        } else {
            Status::Pass
        }
    }

    /// Whether the policy demands that `check` runs.
    pub fn requires(&self, check: &str) -> bool {
        self.require.iter().any(|r| r == check)
    }

    /// blake3 of the canonical JSON form (rules and required checks).
    pub fn hash(&self) -> String {
        blake3::hash(
            serde_json::to_string(&(&self.rules, &self.require))
                .unwrap_or_default()
                .as_bytes(),
        )
        .to_hex()
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_rule_that_decided_is_named() {
        let p = Policy::default();
        assert_eq!(
            p.decided_by("label", Status::Fail).as_deref(),
            Some("error_if > 0.5%")
        );
        assert_eq!(
            p.decided_by("label", Status::Warn).as_deref(),
            Some("warn_if > 0")
        );
        assert_eq!(p.decided_by("label", Status::Pass), None);
        assert_eq!(p.rules_text("unusual"), "warn_if > 0, error_if > 0.5%");
        let mut q = Policy::from_toml("require = [\"backdoor\"]", Path::new("p.toml")).unwrap();
        // backdoor has no warn_if: a skipped, required backdoor check fails by `require`.
        assert_eq!(
            q.decided_by("backdoor", Status::Fail).as_deref(),
            Some("error_if > 0")
        );
        q.rules.remove("backdoor");
        assert_eq!(
            q.decided_by("backdoor", Status::Fail).as_deref(),
            Some("require")
        );
        assert_eq!(q.rules_text("backdoor"), "no rule");
    }

    use super::*;

    #[test]
    fn thresholds_on_counts_and_fractions() {
        let p = Policy::from_toml(
            "[outlier]\nwarn_if = \">= 2\"\nerror_if = \"> 10%\"\n[drift]\nwarn_if = \"never\"\n",
            Path::new("p.toml"),
        )
        .unwrap();
        assert_eq!(p.evaluate("outlier", 1, 100), Status::Pass);
        assert_eq!(p.evaluate("outlier", 2, 100), Status::Warn);
        assert_eq!(p.evaluate("outlier", 11, 100), Status::Fail);
        assert_eq!(p.evaluate("drift", 5, 10), Status::Pass);
        assert_eq!(
            p.evaluate("contract", 1, 100),
            Status::Fail,
            "built-in rule kept"
        );
    }

    #[test]
    fn a_key_given_replaces_only_that_key_and_require_is_checked() {
        let p = Policy::from_toml(
            "require = [\"label\", \"backdoor\"]\n[label]\nerror_if = \"> 50%\"\n",
            Path::new("p.toml"),
        )
        .unwrap();
        // The built-in warn_if of `label` ("> 0") survives.
        assert_eq!(p.evaluate("label", 1, 100), Status::Warn);
        assert_eq!(p.evaluate("label", 40, 100), Status::Warn);
        assert_eq!(p.evaluate("label", 60, 100), Status::Fail);
        assert!(p.requires("label") && p.requires("backdoor") && !p.requires("outlier"));
        let never =
            Policy::from_toml("[label]\nwarn_if = \"never\"\n", Path::new("p.toml")).unwrap();
        assert_eq!(never.evaluate("label", 1, 1000), Status::Pass);
        assert_eq!(never.evaluate("label", 60, 100), Status::Fail);
        let e = Policy::from_toml("require = [\"labels\"]\n", Path::new("p.toml")).unwrap_err();
        assert!(e.to_string().contains("unknown check 'labels'"), "{e}");
        assert_ne!(p.hash(), Policy::default().hash());
    }

    #[test]
    fn bad_policies_are_rejected_with_the_reason() {
        let e = Policy::from_toml("[nope]\nerror_if = \"> 0\"\n", Path::new("p.toml")).unwrap_err();
        assert!(e.to_string().contains("unknown check 'nope'"));
        let e =
            Policy::from_toml("[label]\nerror_if = \"lots\"\n", Path::new("p.toml")).unwrap_err();
        assert!(e.to_string().contains("threshold looks like"), "{e}");
        let e = Policy::from_toml("[label]\nfail_if = \"> 1\"\n", Path::new("p.toml")).unwrap_err();
        assert!(e.to_string().contains("fail_if"), "{e}");
    }
}
