//! Reading results out for export: one pass over the results (filtered in SQL where possible),
//! merged with one ordered pass over their feedback, so memory stays constant however many rows.

use rusqlite::types::Value as SqlValue;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Answer, Choice, Feedback, Id, LabelSource, Result, Store, StoreError};

/// Which results to export. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExportFilter {
    pub run_id: Option<Id>,
    /// Target names.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Results carrying any of these tags (feedback tags in force, or the case's tags).
    #[serde(default)]
    pub tags: Vec<String>,
    pub min_rating: Option<u8>,
    pub max_rating: Option<u8>,
    /// Results with feedback of this kind in force (`thumb`, `rating`, `correction`, `tag`, `note`).
    pub has_feedback: Option<String>,
    /// `true`: passed their assertions (an assertion thumb up); `false`: failed.
    pub passed: Option<bool>,
    /// Unix milliseconds, inclusive.
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Full-text query over input and output.
    pub query: Option<String>,
}

/// A label and who gave it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sourced<T> {
    pub value: T,
    pub source: LabelSource,
    pub annotator: Option<String>,
}

/// One result with its context and the feedback in force on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportRow {
    pub result_id: Id,
    pub run_id: Id,
    pub run: String,
    pub target: String,
    pub target_kind: String,
    pub case_id: Option<Id>,
    pub vars: Option<Map<String, Value>>,
    pub expected: Option<String>,
    pub case_tags: Vec<String>,
    pub input: String,
    pub input_hash: String,
    #[serde(flatten)]
    pub answer: Answer,
    pub created_at: i64,
    pub thumb: Option<Sourced<bool>>,
    pub rating: Option<Sourced<u8>>,
    pub correction_text: Option<Sourced<String>>,
    pub correction_label: Option<Sourced<String>>,
    pub tags: Vec<String>,
    pub note: Option<String>,
    /// An assertion's verdict, if one was recorded (a thumb whose source is `assertion`).
    pub passed: Option<bool>,
}

impl ExportRow {
    /// The label to train or evaluate on: a correction's label, else the expected label, else
    /// the model's own.
    pub fn gold_label(&self) -> Option<&str> {
        self.correction_label
            .as_ref()
            .map(|c| c.value.as_str())
            .or(self.expected.as_deref())
            .or(self.answer.label.as_deref())
    }
}

/// A human (or judge) preference between two results to the same input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PreferencePair {
    pub feedback_id: Id,
    pub input: String,
    pub input_hash: String,
    pub chosen: String,
    pub rejected: String,
    pub chosen_target: String,
    pub rejected_target: String,
    pub source: LabelSource,
    pub annotator: Option<String>,
    pub blind: bool,
    pub created_at: i64,
}

struct Event {
    id: Id,
    feedback: Feedback,
    source: LabelSource,
    annotator: Option<String>,
}

impl Store {
    /// Call `each` for every result matching `filter`, in id order.
    pub fn for_each_export_row(
        &self,
        filter: &ExportFilter,
        mut each: impl FnMut(ExportRow) -> Result<()>,
    ) -> Result<()> {
        self.read(|conn| {
            let (sql, args) = results_query(filter);
            let mut results = conn.prepare(&sql)?;
            let mut rows = results.query(rusqlite::params_from_iter(args))?;
            let mut feedback = conn.prepare(
                "SELECT result_id, id, value, source, annotator FROM feedback WHERE kind <> 'preference' ORDER BY result_id, id",
            )?;
            let mut events = feedback.query([])?;
            let mut pending: Option<(Id, Event)> = next_event(&mut events)?;
            while let Some(r) = rows.next()? {
                let result_id: Id = r.get(0)?;
                // Merge: skip feedback of results filtered out, gather this result's events.
                let mut mine = Vec::new();
                while let Some((owner, _)) = &pending {
                    if *owner > result_id {
                        break;
                    }
                    if let Some((owner, event)) = pending.take() {
                        if owner == result_id {
                            mine.push(event);
                        }
                    }
                    pending = next_event(&mut events)?;
                }
                let mut row = base_row(r)?;
                apply_feedback(&mut row, mine);
                if keep(&row, filter) {
                    each(row)?;
                }
            }
            Ok(())
        })
    }

    /// Every preference in force (latest per pair, not undone) between two results, with the
    /// chosen and rejected outputs. Ties and both-bad give no pair.
    pub fn for_each_preference_pair(&self, mut each: impl FnMut(PreferencePair) -> Result<()>) -> Result<()> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT f.id, f.value, f.source, f.annotator, f.blind, f.created_at,
                        a.input, a.input_hash, a.output, ta.name, b.output, tb.name, a.label, b.label
                 FROM feedback_current f
                 JOIN results a ON a.id = f.result_id JOIN targets ta ON ta.id = a.target_id
                 JOIN results b ON b.id = f.other_result_id JOIN targets tb ON tb.id = b.target_id
                 WHERE f.kind = 'preference' ORDER BY f.id",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let value: String = r.get(1)?;
                let Feedback::Preference { choice, .. } = serde_json::from_str(&value)? else { continue };
                // A classifier's answer is its label.
                let (a_out, b_out): (Option<String>, Option<String>) = (r.get(8)?, r.get(10)?);
                let (a_label, b_label): (Option<String>, Option<String>) = (r.get(12)?, r.get(13)?);
                let (a_out, b_out) = (a_out.or(a_label), b_out.or(b_label));
                let (a_target, b_target): (String, String) = (r.get(9)?, r.get(11)?);
                let (chosen, rejected, chosen_target, rejected_target) = match (choice, a_out, b_out) {
                    (Choice::A, Some(a), Some(b)) => (a, b, a_target, b_target),
                    (Choice::B, Some(a), Some(b)) => (b, a, b_target, a_target),
                    _ => continue,
                };
                let source: String = r.get(2)?;
                each(PreferencePair {
                    feedback_id: r.get(0)?,
                    input: r.get(6)?,
                    input_hash: r.get(7)?,
                    chosen,
                    rejected,
                    chosen_target,
                    rejected_target,
                    source: super::stored_source(&source)?,
                    annotator: r.get(3)?,
                    blind: r.get::<_, Option<bool>>(4)?.unwrap_or(false),
                    created_at: r.get(5)?,
                })?;
            }
            Ok(())
        })
    }
}

fn results_query(filter: &ExportFilter) -> (String, Vec<SqlValue>) {
    let mut sql = String::from(
        "SELECT r.id, r.run_id, ru.name, t.name, t.kind, r.case_id, c.vars, c.expected, c.tags,
                r.input, r.input_hash, r.output, r.label, r.scores, r.error, r.latency_ms, r.ttft_ms,
                r.tokens_in, r.tokens_out, r.cost_usd, r.created_at
         FROM results r JOIN runs ru ON ru.id = r.run_id JOIN targets t ON t.id = r.target_id
         LEFT JOIN cases c ON c.id = r.case_id WHERE 1 = 1",
    );
    let mut args: Vec<SqlValue> = Vec::new();
    if let Some(run) = filter.run_id {
        sql.push_str(" AND r.run_id = ?");
        args.push(run.into());
    }
    if !filter.targets.is_empty() {
        sql.push_str(&format!(" AND t.name IN ({})", vec!["?"; filter.targets.len()].join(", ")));
        args.extend(filter.targets.iter().map(|t| SqlValue::from(t.clone())));
    }
    if let Some(since) = filter.since_ms {
        sql.push_str(" AND r.created_at >= ?");
        args.push(since.into());
    }
    if let Some(until) = filter.until_ms {
        sql.push_str(" AND r.created_at <= ?");
        args.push(until.into());
    }
    if let Some(query) = filter.query.as_deref().filter(|q| !q.trim().is_empty()) {
        sql.push_str(" AND r.id IN (SELECT rowid FROM results_fts WHERE results_fts MATCH ?)");
        args.push(super::fts_query(query).into());
    }
    sql.push_str(" ORDER BY r.id");
    (sql, args)
}

fn next_event(rows: &mut rusqlite::Rows<'_>) -> Result<Option<(Id, Event)>> {
    let Some(r) = rows.next()? else { return Ok(None) };
    let value: String = r.get(2)?;
    let source: String = r.get(3)?;
    Ok(Some((
        r.get(0)?,
        Event {
            id: r.get(1)?,
            feedback: serde_json::from_str(&value)?,
            source: super::stored_source(&source)?,
            annotator: r.get(4)?,
        },
    )))
}

fn json_col<T: serde::de::DeserializeOwned>(text: Option<String>) -> Result<Option<T>> {
    text.map(|t| serde_json::from_str(&t)).transpose().map_err(StoreError::Json)
}

fn base_row(r: &rusqlite::Row<'_>) -> Result<ExportRow> {
    Ok(ExportRow {
        result_id: r.get(0)?,
        run_id: r.get(1)?,
        run: r.get(2)?,
        target: r.get(3)?,
        target_kind: r.get(4)?,
        case_id: r.get(5)?,
        vars: json_col(r.get(6)?)?,
        expected: r.get(7)?,
        case_tags: json_col(r.get(8)?)?.unwrap_or_default(),
        input: r.get(9)?,
        input_hash: r.get(10)?,
        answer: Answer {
            output: r.get(11)?,
            label: r.get(12)?,
            scores: json_col(r.get(13)?)?,
            error: r.get(14)?,
            latency_ms: r.get(15)?,
            ttft_ms: r.get(16)?,
            tokens_in: r.get(17)?,
            tokens_out: r.get(18)?,
            cost_usd: r.get(19)?,
        },
        created_at: r.get(20)?,
        thumb: None,
        rating: None,
        correction_text: None,
        correction_label: None,
        tags: Vec::new(),
        note: None,
        passed: None,
    })
}

/// Apply a result's events (id order): later events of a kind replace earlier ones, undone
/// events are skipped, tags are tracked one by one.
fn apply_feedback(row: &mut ExportRow, events: Vec<Event>) {
    let undone: Vec<Id> = events
        .iter()
        .filter_map(|e| if let Feedback::Undo { feedback_id } = e.feedback { Some(feedback_id) } else { None })
        .collect();
    let mut tags: Vec<(String, bool)> = Vec::new();
    for e in events.into_iter().filter(|e| !undone.contains(&e.id)) {
        let (source, annotator) = (e.source, e.annotator);
        match e.feedback {
            Feedback::Thumb { up } if source == LabelSource::Assertion => row.passed = Some(up),
            Feedback::Thumb { up } => row.thumb = Some(Sourced { value: up, source, annotator }),
            Feedback::Rating { stars } => row.rating = Some(Sourced { value: stars, source, annotator }),
            Feedback::Correction { text, label } => {
                row.correction_text = text.map(|value| Sourced { value, source, annotator: annotator.clone() });
                row.correction_label = label.map(|value| Sourced { value, source, annotator });
            }
            Feedback::Tag { tag, present } => match tags.iter_mut().find(|(t, _)| *t == tag) {
                Some(slot) => slot.1 = present,
                None => tags.push((tag, present)),
            },
            Feedback::Note { text } => row.note = Some(text),
            Feedback::Preference { .. } | Feedback::Undo { .. } => {}
        }
    }
    row.tags = tags.into_iter().filter(|(_, present)| *present).map(|(t, _)| t).collect();
}

fn keep(row: &ExportRow, f: &ExportFilter) -> bool {
    let rating = row.rating.as_ref().map(|r| r.value);
    if f.min_rating.is_some_and(|min| rating.is_none_or(|r| r < min))
        || f.max_rating.is_some_and(|max| rating.is_none_or(|r| r > max))
    {
        return false;
    }
    if !f.tags.is_empty() && !f.tags.iter().any(|t| row.tags.contains(t) || row.case_tags.contains(t)) {
        return false;
    }
    if let Some(passed) = f.passed {
        if row.passed != Some(passed) {
            return false;
        }
    }
    match f.has_feedback.as_deref() {
        None => true,
        Some("thumb") => row.thumb.is_some(),
        Some("rating") => row.rating.is_some(),
        Some("correction") => row.correction_text.is_some() || row.correction_label.is_some(),
        Some("tag") => !row.tags.is_empty(),
        Some("note") => row.note.is_some(),
        Some(_) => false,
    }
}
