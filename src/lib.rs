//! # poisonscan
//!
//! Scan machine-learning training data for poisoning before a model is trained on it.
pub mod attest;
pub mod contract;
pub mod detect;
pub mod error;
pub mod events;
pub mod features;
pub mod fit;
pub mod html;
pub mod lineage;
pub mod merge;
pub mod output;
pub mod policy;
pub mod report;
pub mod scan;
pub mod source;
pub mod synth;

pub use contract::Contract;
pub use error::{Error, Result};
pub use policy::Policy;
pub use report::{Report, RowScores, Verdict};
pub use scan::{ScanOutcome, Scanner};
pub use source::Source;

/// This crate's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
