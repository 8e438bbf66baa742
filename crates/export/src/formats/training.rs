//! Formats for training and evaluation tools: OpenAI chat fine-tuning, KTO, promptfoo, DPO.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use benchtop_core::store::{ExportRow, PreferencePair};
use serde_json::{json, Value};

use super::{close, create, Digest, Out, PairSink, RowSink};
use crate::{ExportError, Result};

fn line(out: &mut Out, path: &Path, value: &Value) -> Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n").map_err(|e| ExportError::write(path, e))
}

/// Whether a person, a judge or an assertion said this output is bad.
fn judged_bad(row: &ExportRow) -> bool {
    row.thumb.as_ref().is_some_and(|t| !t.value)
        || row.rating.as_ref().is_some_and(|r| r.value <= 2)
        || row.passed == Some(false)
}

pub(crate) struct Chat {
    path: PathBuf,
    out: Out,
    system: Option<String>,
}

impl Chat {
    pub(crate) fn new(path: &Path, system: Option<&str>) -> Result<Chat> {
        Ok(Chat { path: path.to_path_buf(), out: create(path)?, system: system.map(str::to_string) })
    }
}

impl RowSink for Chat {
    fn write(&mut self, row: &ExportRow, _split: &str) -> Result<bool> {
        let answer = match (&row.correction_text, &row.answer.output) {
            (Some(correction), _) => correction.value.clone(),
            (None, Some(output)) if row.answer.error.is_none() && !judged_bad(row) => output.clone(),
            _ => return Ok(false),
        };
        let mut messages = Vec::new();
        if let Some(system) = &self.system {
            messages.push(json!({ "role": "system", "content": system }));
        }
        messages.push(json!({ "role": "user", "content": row.input }));
        messages.push(json!({ "role": "assistant", "content": answer }));
        line(&mut self.out, &self.path, &json!({ "messages": messages }))?;
        Ok(true)
    }

    fn finish(self: Box<Self>) -> Result<Digest> {
        close(self.out, &self.path)
    }
}

pub(crate) struct Kto {
    path: PathBuf,
    out: Out,
}

impl Kto {
    pub(crate) fn new(path: &Path) -> Result<Kto> {
        Ok(Kto { path: path.to_path_buf(), out: create(path)? })
    }
}

impl RowSink for Kto {
    fn write(&mut self, row: &ExportRow, _split: &str) -> Result<bool> {
        let (Some(thumb), Some(output)) = (&row.thumb, &row.answer.output) else { return Ok(false) };
        let value = json!({
            "prompt": row.input,
            "completion": output,
            "label": thumb.value,
            "source": thumb.source.as_str(),
            "annotator": thumb.annotator,
            "target": row.target,
        });
        line(&mut self.out, &self.path, &value)?;
        Ok(true)
    }

    fn finish(self: Box<Self>) -> Result<Digest> {
        close(self.out, &self.path)
    }
}

/// promptfoo tests: one per distinct input, `vars` from the case (or `{input}`), an `equals`
/// assertion when a corrected or expected value is known.
pub(crate) struct Promptfoo {
    path: PathBuf,
    out: Out,
    seen: HashSet<String>,
    written: usize,
}

impl Promptfoo {
    pub(crate) fn new(path: &Path) -> Result<Promptfoo> {
        let mut out = create(path)?;
        writeln!(out, "# promptfoo tests exported by Benchtop: use as `tests: file://<this file>`")
            .map_err(|e| ExportError::write(path, e))?;
        Ok(Promptfoo { path: path.to_path_buf(), out, seen: HashSet::new(), written: 0 })
    }
}

impl RowSink for Promptfoo {
    fn write(&mut self, row: &ExportRow, _split: &str) -> Result<bool> {
        if !self.seen.insert(row.input_hash.clone()) {
            return Ok(false);
        }
        let vars = match &row.vars {
            Some(vars) if !vars.is_empty() => Value::Object(vars.clone()),
            _ => json!({ "input": row.input }),
        };
        let expected = row
            .correction_text
            .as_ref()
            .map(|c| c.value.clone())
            .or_else(|| row.correction_label.as_ref().map(|c| c.value.clone()))
            .or_else(|| row.expected.clone());
        let mut test = json!({ "vars": vars });
        if let Some(expected) = expected {
            test["assert"] = json!([{ "type": "equals", "value": expected }]);
        }
        let mut tags = row.case_tags.clone();
        tags.extend(row.tags.iter().cloned());
        if !tags.is_empty() {
            test["metadata"] = json!({ "tags": tags });
        }
        // A one-item YAML list per test; concatenated, they form the whole list.
        self.out
            .write_all(serde_norway::to_string(&[test])?.as_bytes())
            .map_err(|e| ExportError::write(&self.path, e))?;
        self.written += 1;
        Ok(true)
    }

    fn finish(mut self: Box<Self>) -> Result<Digest> {
        if self.written == 0 {
            writeln!(self.out, "[]").map_err(|e| ExportError::write(&self.path, e))?;
        }
        close(self.out, &self.path)
    }
}

/// Preference pairs: TRL's `{prompt, chosen, rejected}` (plus where the label came from), or
/// OpenAI's preference fine-tuning format (exactly its three keys).
pub(crate) struct Dpo {
    path: PathBuf,
    out: Out,
    openai: bool,
}

impl Dpo {
    pub(crate) fn new(path: &Path, openai: bool) -> Result<Dpo> {
        Ok(Dpo { path: path.to_path_buf(), out: create(path)?, openai })
    }
}

impl PairSink for Dpo {
    fn write(&mut self, pair: &PreferencePair) -> Result<()> {
        let value = if self.openai {
            json!({
                "input": { "messages": [{ "role": "user", "content": pair.input }] },
                "preferred_output": [{ "role": "assistant", "content": pair.chosen }],
                "non_preferred_output": [{ "role": "assistant", "content": pair.rejected }],
            })
        } else {
            json!({
                "prompt": pair.input,
                "chosen": pair.chosen,
                "rejected": pair.rejected,
                "source": pair.source.as_str(),
                "annotator": pair.annotator,
                "blind": pair.blind,
                "chosen_target": pair.chosen_target,
                "rejected_target": pair.rejected_target,
            })
        };
        line(&mut self.out, &self.path, &value)
    }

    fn finish(self: Box<Self>) -> Result<Digest> {
        close(self.out, &self.path)
    }
}
