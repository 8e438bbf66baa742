//! The one flat shape of an exported result, shared by JSONL, CSV and Parquet so the three
//! always carry the same columns.

use benchtop_core::store::{ExportRow, LabelSource};
use serde_json::Value;

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

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Int(Option<i64>),
    Float(Option<f64>),
    Bool(Option<bool>),
    Text(Option<String>),
    Json(Option<Value>),
    List(Vec<String>),
}

pub(crate) const COLUMNS: &[(&str, Kind)] = &[
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

fn source(s: LabelSource) -> Option<String> {
    Some(
        match s {
            LabelSource::Human => "human",
            LabelSource::Assertion => "assertion",
            LabelSource::Judge => "judge",
        }
        .to_string(),
    )
}

/// The cells of `row`, in [`COLUMNS`] order.
pub(crate) fn cells(row: &ExportRow, split: &str) -> Vec<Cell> {
    vec![
        Cell::Int(Some(row.result_id)),
        Cell::Text(Some(split.to_string())),
        Cell::Text(Some(row.run.clone())),
        Cell::Text(Some(row.target.clone())),
        Cell::Text(Some(row.target_kind.clone())),
        Cell::Int(row.case_id),
        Cell::Text(Some(row.input.clone())),
        Cell::Json(row.vars.clone().map(Value::Object)),
        Cell::Text(row.output.clone()),
        Cell::Text(row.label.clone()),
        Cell::Json(row.scores.clone()),
        Cell::Text(row.expected.clone()),
        Cell::Text(row.gold_label().map(str::to_string)),
        Cell::Text(row.error.clone()),
        Cell::Float(row.latency_ms),
        Cell::Float(row.ttft_ms),
        Cell::Int(row.tokens_in),
        Cell::Int(row.tokens_out),
        Cell::Float(row.cost_usd),
        Cell::Bool(row.thumb.as_ref().map(|t| t.value)),
        Cell::Text(row.thumb.as_ref().and_then(|t| source(t.source))),
        Cell::Int(row.rating.as_ref().map(|r| i64::from(r.value))),
        Cell::Text(row.rating.as_ref().and_then(|r| source(r.source))),
        Cell::Text(row.correction_text.as_ref().map(|c| c.value.clone())),
        Cell::Text(row.correction_label.as_ref().map(|c| c.value.clone())),
        Cell::Text(row.correction_text.as_ref().or(row.correction_label.as_ref()).and_then(|c| source(c.source))),
        Cell::List(row.tags.clone()),
        Cell::List(row.case_tags.clone()),
        Cell::Text(row.note.clone()),
        Cell::Bool(row.passed),
        Cell::Text(Some(row.input_hash.clone())),
        Cell::Int(Some(row.created_at)),
    ]
}
