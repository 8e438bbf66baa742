//! JSONL and CSV: every column of [`crate::flat::COLUMNS`].

use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};

use benchtop_core::store::ExportRow;

use super::{close, create, Digest, Out, RowSink};
use crate::flat::{cells, Cell, JsonRow, COLUMNS};
use crate::{ExportError, Result};

pub(crate) struct Jsonl {
    path: PathBuf,
    out: Out,
}

impl Jsonl {
    pub(crate) fn new(path: &Path) -> Result<Jsonl> {
        Ok(Jsonl { path: path.to_path_buf(), out: create(path)? })
    }
}

impl RowSink for Jsonl {
    fn write(&mut self, row: &ExportRow, split: &str) -> Result<bool> {
        serde_json::to_writer(&mut self.out, &JsonRow(&cells(row, split)))?;
        self.out.write_all(b"\n").map_err(|e| ExportError::write(&self.path, e))?;
        Ok(true)
    }

    fn finish(self: Box<Self>) -> Result<Digest> {
        close(self.out, &self.path)
    }
}

pub(crate) struct Csv {
    path: PathBuf,
    out: csv::Writer<Out>,
}

impl Csv {
    pub(crate) fn new(path: &Path) -> Result<Csv> {
        let mut file = create(path)?;
        // A BOM so spreadsheet programs read the file as UTF-8.
        file.write_all("\u{feff}".as_bytes()).map_err(|e| ExportError::write(path, e))?;
        let mut out = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(file);
        out.write_record(COLUMNS.iter().map(|(name, _)| *name))?;
        Ok(Csv { path: path.to_path_buf(), out })
    }
}

/// Spreadsheets run a cell starting with one of these as a formula; a leading `'` makes it text.
pub(crate) fn formula_safe<'a>(text: impl Into<Cow<'a, str>>) -> Cow<'a, str> {
    let text = text.into();
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{text}"))
    } else {
        text
    }
}

impl RowSink for Csv {
    fn write(&mut self, row: &ExportRow, split: &str) -> Result<bool> {
        let record = cells(row, split).map(|cell| -> Cow<'_, str> {
            match cell {
                Cell::Int(v) => v.map(|v| v.to_string().into()).unwrap_or_default(),
                Cell::Float(v) => v.map(|v| v.to_string().into()).unwrap_or_default(),
                Cell::Bool(v) => v.map(|v| v.to_string().into()).unwrap_or_default(),
                Cell::Text(v) => v.map(formula_safe).unwrap_or_default(),
                Cell::Json(v) => v.map(|v| formula_safe(v.to_string())).unwrap_or_default(),
                Cell::Object(v) => {
                    v.map(|v| formula_safe(serde_json::to_string(v).unwrap_or_default())).unwrap_or_default()
                }
                Cell::List(v) => formula_safe(v.join("|")),
            }
        });
        self.out.write_record(record.iter().map(|c| c.as_bytes()))?;
        Ok(true)
    }

    fn finish(self: Box<Self>) -> Result<Digest> {
        let out =
            self.out.into_inner().map_err(|e| ExportError::write(&self.path, std::io::Error::other(e.to_string())))?;
        close(out, &self.path)
    }
}
