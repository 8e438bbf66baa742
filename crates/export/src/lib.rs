//! Evaluation sets out of the feedback log, and test sets into it.
//!
//! - [`export()`]: results (filtered) → JSONL, CSV, Parquet, OpenAI chat fine-tuning, KTO,
//!   promptfoo tests; preferences and corrections → TRL DPO pairs or OpenAI preference pairs.
//!   Streaming writers: memory stays constant with the number of rows (dedup and splits keep one
//!   small entry per distinct input). Optional seeded, label-stratified train/test split that
//!   never puts one input in two splits; a `manifest.json` with counts and each file's sha256,
//!   and a dataset card `README.md`.
//! - [`report::html_report`]: a self-contained HTML report of a run.
//! - [`import`]: CSV, JSONL and Parquet files → test-set cases, bad rows reported by line.

mod error;
mod export;
mod flat;
pub mod formats;
pub mod import;
pub mod report;
mod split;

pub use error::ExportError;
pub use export::{export, ExportOptions, FileEntry, Manifest};
pub use formats::Format;
pub use split::SplitSpec;

pub type Result<T, E = ExportError> = std::result::Result<T, E>;
