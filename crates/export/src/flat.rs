//! The one flat shape of an exported result, shared by JSONL, CSV and Parquet so the three
//! always carry the same columns. Cells borrow from the row: nothing is copied per cell.

use benchtop_core::store::{ExportRow, LabelSource};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    Int,
    Float,
    Bool,
    Text,
    /// JSON kept as JSON in JSONL, as JSON text in CSV and Parquet.
    Json,
    List,
    TimeMs,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Cell<'a> {
    Int(Option<i64>),
    Float(Option<f64>),
    Bool(Option<bool>),
    Text(Option<&'a str>),
    Json(Option<&'a Value>),
    Object(Option<&'a Map<String, Value>>),
    List(&'a [String]),
}

pub(crate) const WIDTH: usize = 32;

pub(crate) const COLUMNS: [(&str, Kind); WIDTH] = [
    ("result_id", Kind::Int),
    ("split", Kind::Text),
    ("run", Kind::Text),
    ("target", Kind::Text),
    ("target_kind", Kind::Text),
    ("case_id", Kind::Int),
    ("input", Kind::Text),
    ("vars", Kind::Json),
    ("output", Kind::Text),
    ("label", Kind::Text),
    ("scores", Kind::Json),
    ("expected", Kind::Text),
    ("gold_label", Kind::Text),
    ("error", Kind::Text),
    ("latency_ms", Kind::Float),
    ("ttft_ms", Kind::Float),
    ("tokens_in", Kind::Int),
    ("tokens_out", Kind::Int),
    ("cost_usd", Kind::Float),
    ("thumb", Kind::Bool),
    ("thumb_source", Kind::Text),
    ("rating", Kind::Int),
    ("rating_source", Kind::Text),
    ("correction_text", Kind::Text),
    ("correction_label", Kind::Text),
    ("correction_source", Kind::Text),
    ("tags", Kind::List),
    ("case_tags", Kind::List),
    ("note", Kind::Text),
    ("passed", Kind::Bool),
    ("input_hash", Kind::Text),
    ("created_at", Kind::TimeMs),
];

/// The cells of `row`, in [`COLUMNS`] order.
pub(crate) fn cells<'a>(row: &'a ExportRow, split: &'a str) -> [Cell<'a>; WIDTH] {
    let correction = row.correction_text.as_ref().map(|c| c.source).or(row.correction_label.as_ref().map(|c| c.source));
    [
        Cell::Int(Some(row.result_id)),
        Cell::Text(Some(split)),
        Cell::Text(Some(&row.run)),
        Cell::Text(Some(&row.target)),
        Cell::Text(Some(&row.target_kind)),
        Cell::Int(row.case_id),
        Cell::Text(Some(&row.input)),
        Cell::Object(row.vars.as_ref()),
        Cell::Text(row.answer.output.as_deref()),
        Cell::Text(row.answer.label.as_deref()),
        Cell::Json(row.answer.scores.as_ref()),
        Cell::Text(row.expected.as_deref()),
        Cell::Text(row.gold_label()),
        Cell::Text(row.answer.error.as_deref()),
        Cell::Float(row.answer.latency_ms),
        Cell::Float(row.answer.ttft_ms),
        Cell::Int(row.answer.tokens_in),
        Cell::Int(row.answer.tokens_out),
        Cell::Float(row.answer.cost_usd),
        Cell::Bool(row.thumb.as_ref().map(|t| t.value)),
        Cell::Text(row.thumb.as_ref().map(|t| t.source.as_str())),
        Cell::Int(row.rating.as_ref().map(|r| i64::from(r.value))),
        Cell::Text(row.rating.as_ref().map(|r| r.source.as_str())),
        Cell::Text(row.correction_text.as_ref().map(|c| c.value.as_str())),
        Cell::Text(row.correction_label.as_ref().map(|c| c.value.as_str())),
        Cell::Text(correction.map(LabelSource::as_str)),
        Cell::List(&row.tags),
        Cell::List(&row.case_tags),
        Cell::Text(row.note.as_deref()),
        Cell::Bool(row.passed),
        Cell::Text(Some(&row.input_hash)),
        Cell::Int(Some(row.created_at)),
    ]
}

impl Serialize for Cell<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Cell::Int(v) => v.serialize(s),
            Cell::Float(v) => v.serialize(s),
            Cell::Bool(v) => v.serialize(s),
            Cell::Text(v) => v.serialize(s),
            Cell::Json(v) => v.serialize(s),
            Cell::Object(v) => v.serialize(s),
            Cell::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
        }
    }
}

/// A whole row as one JSON object, keys in [`COLUMNS`] order.
pub(crate) struct JsonRow<'a>(pub(crate) &'a [Cell<'a>; WIDTH]);

impl Serialize for JsonRow<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(WIDTH))?;
        for ((name, _), cell) in COLUMNS.iter().zip(self.0.iter()) {
            map.serialize_entry(name, cell)?;
        }
        map.end()
    }
}
