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
//! reference's range), `duplicate`, `outlier`, `label`, `backdoor` (rows flagged), `drift` (columns drifted, fraction
//! of columns compared), `baseline_changed` (rows changed or removed since the baseline manifest), `baseline_added`
//! (rows added since it). A check missing from the file keeps its built-in rule; `"never"` disables a rule.

use crate::error::PolicyError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Names of the checks a policy can set.
pub const CHECKS: [&str; 9] = [
    "contract",
    "unusual",
    "duplicate",
    "outlier",
    "label",
    "backdoor",
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
        rules.insert("drift".into(), r(Some("> 0"), None));
        rules.insert("baseline_changed".into(), r(None, Some("> 0")));
        rules.insert("baseline_added".into(), r(Some("> 0"), None));
        Policy {
            rules,
            origin: "<built-in>".into(),
        }
    }
}

impl Policy {
    /// Parse TOML text; checks not named keep their built-in rule.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Policy, PolicyError> {
        let err = |m: String| PolicyError {
            path: origin.to_path_buf(),
            message: m,
        };
        let parsed: BTreeMap<String, Rule> =
            toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let mut p = Policy::default();
        for (k, v) in parsed {
            if !CHECKS.contains(&k.as_str()) {
                return Err(err(format!(
                    "unknown check '{k}' (known: {})",
                    CHECKS.join(", ")
                )));
            }
            p.rules.insert(k, v);
        }
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

    /// blake3 of the canonical JSON form.
    pub fn hash(&self) -> String {
        blake3::hash(
            serde_json::to_string(&self.rules)
                .unwrap_or_default()
                .as_bytes(),
        )
        .to_hex()
        .to_string()
    }
}

#[cfg(test)]
mod tests {
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
