//! Test sets from files: CSV, JSONL or Parquet rows → cases. A bad row is reported with its line
//! (or row) number and the reason, and the good rows still import; only a file that cannot be
//! read at all fails the import.
//!
//! Column mapping: `expected` names the expected-output column (default: the first of
//! `expected`, `label`, `answer` present), `tags` the tags column (default `tags`; cells are split
//! on `,`, `;` or `|`), and `vars` the input columns (default: every other column). In JSONL a
//! `vars` object, when present, is used as the variables.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use benchtop_core::store::NewCase;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::{ExportError, Result};

/// Longest line (or cell) accepted; longer rows are rejected rather than read into memory.
pub const MAX_ROW_BYTES: usize = 8 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    Csv,
    Jsonl,
    Parquet,
}

impl ImportFormat {
    pub fn from_path(path: &Path) -> Option<ImportFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(ImportFormat::Csv),
            "jsonl" | "ndjson" => Some(ImportFormat::Jsonl),
            "parquet" => Some(ImportFormat::Parquet),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ColumnMap {
    pub vars: Option<Vec<String>>,
    pub expected: Option<String>,
    pub tags: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejected {
    /// 1-based line in the file (CSV: counting the header; Parquet: the row number).
    pub line: u64,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImportReport {
    pub cases: Vec<NewCase>,
    pub rejected: Vec<Rejected>,
}

pub fn import_file(path: &Path, format: Option<ImportFormat>, map: &ColumnMap) -> Result<ImportReport> {
    let format = format.or_else(|| ImportFormat::from_path(path)).ok_or_else(|| {
        ExportError::Invalid(format!(
            "cannot tell the format of {}; name it .csv, .jsonl or .parquet, or say which",
            path.display()
        ))
    })?;
    let open = || File::open(path).map_err(|e| ExportError::Read { path: path.to_path_buf(), source: e });
    match format {
        ImportFormat::Csv => import_csv(open()?, map),
        ImportFormat::Jsonl => import_jsonl(BufReader::new(open()?), map),
        ImportFormat::Parquet => import_parquet(open()?, map),
    }
}

/// The mapping resolved against a file's columns.
struct Resolved {
    expected: Option<String>,
    tags: Option<String>,
    vars: Option<Vec<String>>,
}

fn resolve(map: &ColumnMap, columns: &[String]) -> Result<Resolved> {
    let has = |c: &str| columns.iter().any(|x| x == c);
    for name in map.expected.iter().chain(map.tags.iter()).chain(map.vars.iter().flatten()) {
        if !columns.is_empty() && !has(name) {
            return Err(ExportError::Invalid(format!(
                "the file has no column `{name}` (it has: {})",
                columns.join(", ")
            )));
        }
    }
    Ok(Resolved {
        expected: map
            .expected
            .clone()
            .or_else(|| ["expected", "label", "answer"].into_iter().find(|c| has(c)).map(str::to_string)),
        tags: map.tags.clone().or_else(|| has("tags").then(|| "tags".to_string())),
        vars: map.vars.clone(),
    })
}

fn split_tags(text: &str) -> Vec<String> {
    text.split([',', ';', '|']).map(str::trim).filter(|t| !t.is_empty()).map(str::to_string).collect()
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// A case from one record's fields (name → value), or why not.
fn case_from(fields: Map<String, Value>, m: &Resolved) -> std::result::Result<NewCase, String> {
    let mut expected = None;
    let mut tags = Vec::new();
    let mut vars = Map::new();
    for (name, value) in fields {
        if Some(&name) == m.expected.as_ref() {
            expected = scalar_text(&value).filter(|s| !s.is_empty());
        } else if Some(&name) == m.tags.as_ref() {
            tags = match value {
                Value::Array(items) => items.iter().filter_map(scalar_text).collect(),
                other => scalar_text(&other).map(|t| split_tags(&t)).unwrap_or_default(),
            };
        } else if m.vars.as_ref().is_none_or(|v| v.contains(&name)) {
            vars.insert(name, value);
        }
    }
    let empty = |v: &Value| v.is_null() || v.as_str().is_some_and(|s| s.trim().is_empty());
    if vars.values().all(empty) {
        return Err("no input values (every input column is empty)".into());
    }
    Ok(NewCase { vars, expected, tags })
}

pub fn import_csv(reader: impl Read, map: &ColumnMap) -> Result<ImportReport> {
    let mut csv = csv::ReaderBuilder::new().flexible(false).from_reader(reader);
    let headers: Vec<String> = csv
        .byte_headers()?
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let h = if i == 0 { h.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(h) } else { h };
            String::from_utf8(h.to_vec()).map_err(|_| ExportError::Invalid("the CSV header is not valid UTF-8".into()))
        })
        .collect::<Result<_>>()?;
    if headers.is_empty() || headers.iter().all(String::is_empty) {
        return Err(ExportError::Invalid("the CSV file has no header row; the first row must name the columns".into()));
    }
    let resolved = resolve(map, &headers)?;
    let mut report = ImportReport::default();
    let mut record = csv::ByteRecord::new();
    loop {
        let line = csv.position().line();
        match csv.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map(|p| p.line()).unwrap_or(line);
                let mut fields = Map::new();
                let mut bad = None;
                for (name, bytes) in headers.iter().zip(record.iter()) {
                    if bytes.len() > MAX_ROW_BYTES {
                        bad = Some(format!("column `{name}` is longer than {} MiB", MAX_ROW_BYTES >> 20));
                        break;
                    }
                    match std::str::from_utf8(bytes) {
                        Ok(text) => {
                            fields.insert(name.clone(), Value::String(text.to_string()));
                        }
                        Err(e) => {
                            bad = Some(format!("column `{name}` is not valid UTF-8 (byte {})", e.valid_up_to()));
                            break;
                        }
                    }
                }
                match bad.map(Err).unwrap_or_else(|| case_from(fields, &resolved)) {
                    Ok(case) => report.cases.push(case),
                    Err(reason) => report.rejected.push(Rejected { line, reason }),
                }
            }
            Err(e) => match e.kind() {
                csv::ErrorKind::UnequalLengths { pos, expected_len, len } => report.rejected.push(Rejected {
                    line: pos.as_ref().map(|p| p.line()).unwrap_or(line),
                    reason: format!("{len} fields where the header has {expected_len}"),
                }),
                csv::ErrorKind::Utf8 { pos, .. } => report.rejected.push(Rejected {
                    line: pos.as_ref().map(|p| p.line()).unwrap_or(line),
                    reason: "not valid UTF-8".into(),
                }),
                _ => return Err(e.into()),
            },
        }
    }
    Ok(report)
}

pub fn import_jsonl(mut reader: impl BufRead, map: &ColumnMap) -> Result<ImportReport> {
    let mut report = ImportReport::default();
    let mut buf = Vec::new();
    let mut line = 0u64;
    loop {
        buf.clear();
        line += 1;
        let read = reader
            .by_ref()
            .take(MAX_ROW_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| ExportError::Read { path: format!("line {line}").into(), source: e })?;
        if read == 0 {
            break;
        }
        if buf.len() > MAX_ROW_BYTES && buf.last() != Some(&b'\n') {
            report.rejected.push(Rejected { line, reason: format!("longer than {} MiB", MAX_ROW_BYTES >> 20) });
            // Skip the rest of this line.
            let mut rest = Vec::new();
            reader
                .read_until(b'\n', &mut rest)
                .map_err(|e| ExportError::Read { path: format!("line {line}").into(), source: e })?;
            continue;
        }
        let text = match std::str::from_utf8(&buf) {
            Ok(t) => t.trim_start_matches('\u{feff}').trim(),
            Err(e) => {
                report.rejected.push(Rejected { line, reason: format!("not valid UTF-8 (byte {})", e.valid_up_to()) });
                continue;
            }
        };
        if text.is_empty() {
            continue;
        }
        let outcome = match serde_json::from_str::<Value>(text) {
            Err(e) => Err(format!("not valid JSON: {e}")),
            Ok(Value::Object(obj)) => jsonl_case(obj, map),
            Ok(_) => Err("each line must be a JSON object".into()),
        };
        match outcome {
            Ok(case) => report.cases.push(case),
            Err(reason) => report.rejected.push(Rejected { line, reason }),
        }
    }
    Ok(report)
}

/// JSONL has no header: the mapping is resolved against each record's own keys.
fn jsonl_case(mut obj: Map<String, Value>, map: &ColumnMap) -> std::result::Result<NewCase, String> {
    let fields = match obj.remove("vars") {
        Some(Value::Object(mut vars)) => {
            for key in [map.expected.as_deref(), map.tags.as_deref()]
                .into_iter()
                .flatten()
                .chain(["expected", "label", "answer", "tags"])
            {
                if let Some(v) = obj.remove(key) {
                    vars.insert(key.to_string(), v);
                }
            }
            vars
        }
        Some(_) => return Err("`vars` must be an object".into()),
        None => obj,
    };
    let keys: Vec<String> = fields.keys().cloned().collect();
    let resolved = resolve(map, &keys).map_err(|e| e.to_string())?;
    case_from(fields, &resolved)
}

pub fn import_parquet(file: File, map: &ColumnMap) -> Result<ImportReport> {
    // The parquet reader is not meant to panic on malformed files, but a corrupt file must never
    // take Benchtop down: a panic becomes an error.
    let map = map.clone();
    std::panic::catch_unwind(move || parquet_rows(file, &map))
        .unwrap_or_else(|_| Err(ExportError::Invalid("the Parquet file is corrupt (the reader failed on it)".into())))
}

fn parquet_rows(file: File, map: &ColumnMap) -> Result<ImportReport> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type};
    use arrow_array::Array;
    use arrow_schema::DataType;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    let columns: Vec<String> = builder.schema().fields().iter().map(|f| f.name().clone()).collect();
    let resolved = resolve(map, &columns)?;
    let mut report = ImportReport::default();
    let mut row_number = 0u64;
    for batch in builder.build()? {
        let batch = batch?;
        for row in 0..batch.num_rows() {
            row_number += 1;
            let mut fields = Map::new();
            let mut bad = None;
            for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
                let value = if array.is_null(row) {
                    Value::Null
                } else {
                    match array.data_type() {
                        DataType::Utf8 => Value::from(array.as_string::<i32>().value(row)),
                        DataType::LargeUtf8 => Value::from(array.as_string::<i64>().value(row)),
                        DataType::Utf8View => Value::from(array.as_string_view().value(row)),
                        DataType::Int64 => Value::from(array.as_primitive::<Int64Type>().value(row)),
                        DataType::Int32 => Value::from(array.as_primitive::<Int32Type>().value(row)),
                        DataType::Float64 => Value::from(array.as_primitive::<Float64Type>().value(row)),
                        DataType::Float32 => Value::from(array.as_primitive::<Float32Type>().value(row)),
                        DataType::Boolean => Value::from(array.as_boolean().value(row)),
                        DataType::List(_) => {
                            let items = array.as_list::<i32>().value(row);
                            match items.data_type() {
                                DataType::Utf8 => {
                                    let strings = items.as_string::<i32>();
                                    Value::from(
                                        (0..strings.len())
                                            .filter(|i| !strings.is_null(*i))
                                            .map(|i| strings.value(i).to_string())
                                            .collect::<Vec<_>>(),
                                    )
                                }
                                other => {
                                    bad = Some(format!(
                                        "column `{}` is a list of {other}; only lists of strings are read",
                                        field.name()
                                    ));
                                    break;
                                }
                            }
                        }
                        other => {
                            bad = Some(format!(
                                "column `{}` has type {other}, which is not read (use strings, numbers or booleans)",
                                field.name()
                            ));
                            break;
                        }
                    }
                };
                fields.insert(field.name().clone(), value);
            }
            match bad.map(Err).unwrap_or_else(|| case_from(fields, &resolved)) {
                Ok(case) => report.cases.push(case),
                Err(reason) => report.rejected.push(Rejected { line: row_number, reason }),
            }
        }
    }
    Ok(report)
}
