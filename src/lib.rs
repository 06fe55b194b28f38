//! # poisonscan
//!
//! Scan machine-learning training data for poisoning before a model is trained on it.
pub mod contract;
pub mod error;
pub mod lineage;
pub mod detect;
pub mod features;
pub mod output;
pub mod source;

pub use error::{Error, Result};

/// This crate's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
