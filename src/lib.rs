//! # poisonscan
//!
//! Scan machine-learning training data for poisoning before a model is trained on it.
//!
//! The detectors' module docs explain how they work down to their private steps and constants, and link to them:
//! those links resolve in `cargo doc --document-private-items` (the build CI checks), not in the public docs.
#![allow(rustdoc::private_intra_doc_links)]
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
