//! The export formats. Row formats take one [`ExportRow`] at a time; pair formats take
//! [`PreferencePair`]s. Each sink writes one file, streaming.

mod parquet;
mod tabular;
mod training;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use benchtop_core::store::{ExportRow, PreferencePair};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::{ExportError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Every column, one JSON object per line.
    Jsonl,
    /// Every column; RFC 4180, UTF-8 with BOM, cells that spreadsheets would run as formulas
    /// (`=`, `+`, `-`, `@`, tab, CR first) prefixed with `'`.
    Csv,
    /// Every column, typed; snappy-compressed; loads in pandas and HF `datasets`.
    Parquet,
    /// OpenAI chat fine-tuning: `{"messages": [system?, user, assistant]}`; the assistant turn is
    /// the correction when there is one, else the output unless it was judged bad.
    Chat,
    /// KTO: `{prompt, completion, label}` from thumbs.
    Kto,
    /// promptfoo test cases (YAML): `vars` and an `equals` assertion on the expected value.
    Promptfoo,
    /// TRL DPO pairs `{prompt, chosen, rejected}` from A/B preferences and corrections.
    Dpo,
    /// OpenAI preference fine-tuning `{input: {messages}, preferred_output, non_preferred_output}`.
    OpenaiPreference,
}

impl Format {
    pub const ALL: [Format; 8] = [
        Format::Jsonl,
        Format::Csv,
        Format::Parquet,
        Format::Chat,
        Format::Kto,
        Format::Promptfoo,
        Format::Dpo,
        Format::OpenaiPreference,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
            Format::Parquet => "parquet",
            Format::Chat => "chat",
            Format::Kto => "kto",
            Format::Promptfoo => "promptfoo",
            Format::Dpo => "dpo",
            Format::OpenaiPreference => "openai-preference",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Parquet => "parquet",
            Format::Promptfoo => "yaml",
            _ => "jsonl",
        }
    }

    /// Whether the format is built from preference pairs rather than single results.
    pub fn is_pairs(self) -> bool {
        matches!(self, Format::Dpo | Format::OpenaiPreference)
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| format!("unknown format `{s}`; choose one of {}", Format::ALL.map(Format::name).join(", ")))
    }
}

/// A finished file's sha256 (hex) and size, computed as it was written (no second read).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Digest {
    pub sha256: String,
    pub bytes: u64,
}

/// Writes rows of one split to one file.
pub(crate) trait RowSink {
    /// Write `row`; `false` if this format has nothing to write for it (e.g. no output).
    fn write(&mut self, row: &ExportRow, split: &str) -> Result<bool>;
    fn finish(self: Box<Self>) -> Result<Digest>;
}

pub(crate) trait PairSink {
    fn write(&mut self, pair: &PreferencePair) -> Result<()>;
    fn finish(self: Box<Self>) -> Result<Digest>;
}

/// A file that hashes what passes through it.
pub(crate) struct Hashed {
    file: File,
    hasher: Sha256,
    bytes: u64,
}

impl Write for Hashed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Hashed {
    pub(crate) fn open(path: &Path) -> Result<Hashed> {
        let file = File::create(path).map_err(|e| ExportError::write(path, e))?;
        Ok(Hashed { file, hasher: Sha256::new(), bytes: 0 })
    }

    pub(crate) fn digest(self) -> Digest {
        Digest { sha256: self.hasher.finalize().iter().map(|b| format!("{b:02x}")).collect(), bytes: self.bytes }
    }
}

pub(crate) type Out = BufWriter<Hashed>;

pub(crate) fn create(path: &Path) -> Result<Out> {
    Ok(BufWriter::with_capacity(1 << 17, Hashed::open(path)?))
}

/// Flush `out` and give its digest.
pub(crate) fn close(out: Out, path: &Path) -> Result<Digest> {
    let hashed = out.into_inner().map_err(|e| ExportError::write(path, e.into_error()))?;
    Ok(hashed.digest())
}

pub(crate) fn row_sink(format: Format, path: &Path, system_prompt: Option<&str>) -> Result<Box<dyn RowSink>> {
    Ok(match format {
        Format::Jsonl => Box::new(tabular::Jsonl::new(path)?),
        Format::Csv => Box::new(tabular::Csv::new(path)?),
        Format::Parquet => Box::new(parquet::ParquetSink::new(path)?),
        Format::Chat => Box::new(training::Chat::new(path, system_prompt)?),
        Format::Kto => Box::new(training::Kto::new(path)?),
        Format::Promptfoo => Box::new(training::Promptfoo::new(path)?),
        Format::Dpo | Format::OpenaiPreference => {
            return Err(ExportError::Invalid(format!("{} is built from preference pairs", format.name())))
        }
    })
}

pub(crate) fn pair_sink(format: Format, path: &Path) -> Result<Box<dyn PairSink>> {
    match format {
        Format::Dpo => Ok(Box::new(training::Dpo::new(path, false)?)),
        Format::OpenaiPreference => Ok(Box::new(training::Dpo::new(path, true)?)),
        other => Err(ExportError::Invalid(format!("{} is built from single results", other.name()))),
    }
}
