//! JSONL and CSV: every column of [`crate::flat::COLUMNS`].

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use benchtop_core::store::ExportRow;
use serde_json::{Map, Value};

use super::{create, RowSink};
use crate::flat::{cells, Cell, COLUMNS};
use crate::{ExportError, Result};

pub(crate) struct Jsonl {
    path: PathBuf,
    out: BufWriter<File>,
}

impl Jsonl {
    pub(crate) fn new(path: &Path) -> Result<Jsonl> {
        Ok(Jsonl { path: path.to_path_buf(), out: create(path)? })
    }
}

impl RowSink for Jsonl {
    fn write(&mut self, row: &ExportRow, split: &str) -> Result<bool> {
        let object: Map<String, Value> = COLUMNS
            .iter()
            .zip(cells(row, split))
            .map(|((name, _), cell)| {
                let value = match cell {
                    Cell::Int(v) => v.map(Value::from).unwrap_or(Value::Null),
                    Cell::Float(v) => v.map(Value::from).unwrap_or(Value::Null),
                    Cell::Bool(v) => v.map(Value::from).unwrap_or(Value::Null),
                    Cell::Text(v) => v.map(Value::from).unwrap_or(Value::Null),
                    Cell::Json(v) => v.unwrap_or(Value::Null),
                    Cell::List(v) => Value::from(v),
                };
                (name.to_string(), value)
            })
            .collect();
        serde_json::to_writer(&mut self.out, &object)?;
        self.out.write_all(b"\n").map_err(|e| ExportError::write(&self.path, e))?;
        Ok(true)
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.out.flush().map_err(|e| ExportError::write(&self.path, e))
    }
}

pub(crate) struct Csv {
    path: PathBuf,
    out: csv::Writer<BufWriter<File>>,
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
pub(crate) fn formula_safe(text: String) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text
    }
}

impl RowSink for Csv {
    fn write(&mut self, row: &ExportRow, split: &str) -> Result<bool> {
        let record = cells(row, split).into_iter().map(|cell| match cell {
            Cell::Int(v) => v.map(|v| v.to_string()).unwrap_or_default(),
            Cell::Float(v) => v.map(|v| v.to_string()).unwrap_or_default(),
            Cell::Bool(v) => v.map(|v| v.to_string()).unwrap_or_default(),
            Cell::Text(v) => v.map(formula_safe).unwrap_or_default(),
            Cell::Json(v) => v.map(|v| formula_safe(v.to_string())).unwrap_or_default(),
            Cell::List(v) => formula_safe(v.join("|")),
        });
        self.out.write_record(record)?;
        Ok(true)
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.out.flush().map_err(|e| ExportError::write(&self.path, e))
    }
}
