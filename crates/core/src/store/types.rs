//! What goes into the feedback log and comes back out (see shared/DESIGN.md, "Concepts").

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub type Id = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    Local,
    Remote,
}

/// What produces an output: a local model or a remote one. `fingerprint` identifies it stably
/// (model file sha256, or provider + model id + parameters); recording the same fingerprint again
/// reuses the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTarget {
    pub kind: TargetKind,
    pub name: String,
    pub fingerprint: String,
    #[serde(default)]
    pub config: Value,
}

/// One case of a test set: its variables, an optional expected output or label, tags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct NewCase {
    pub vars: Map<String, Value>,
    #[serde(default)]
    pub expected: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    pub id: Id,
    pub test_set_id: Id,
    pub position: i64,
    pub vars: Map<String, Value>,
    pub expected: Option<String>,
    pub tags: Vec<String>,
    pub content_hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestSet {
    pub id: Id,
    pub name: String,
    pub description: Option<String>,
    pub cases: i64,
}

/// How adding cases went: new ones, and ones already present (same content), skipped.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AddCasesReport {
    pub inserted: usize,
    pub duplicates: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    Batch,
    Adhoc,
    Traffic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Pending,
    Running,
    Done,
    Cancelled,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewRun {
    pub kind: RunKind,
    pub name: String,
    #[serde(default)]
    pub test_set_id: Option<Id>,
    #[serde(default)]
    pub config: Value,
}

/// What a target answered and what it took: a classifier fills `label` + `scores`, a generator
/// `output`, a failure `error`; all of it optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Answer {
    pub output: Option<String>,
    pub label: Option<String>,
    pub scores: Option<Value>,
    pub error: Option<String>,
    pub latency_ms: Option<f64>,
    /// Time to first token, for streamed answers.
    pub ttft_ms: Option<f64>,
    pub tokens_in: Option<i64>,
    pub tokens_out: Option<i64>,
    pub cost_usd: Option<f64>,
}

impl Answer {
    /// The answer as text: the output, or for a classifier its label.
    pub fn text(&self) -> Option<&str> {
        self.output.as_deref().or(self.label.as_deref())
    }
}

/// One target's answer to one input, to record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct NewResult {
    pub run_id: Id,
    pub case_id: Option<Id>,
    pub target_id: Id,
    pub input: String,
    #[serde(flatten)]
    pub answer: Answer,
    pub cache_key: Option<String>,
    /// The inference API's id for the call this result answers (see [`crate::store::Store::call_results`]).
    #[serde(default)]
    pub call_id: Option<String>,
    /// Execution provider, threads, quantisation, parameters: whatever traces the figure back.
    pub meta: Option<Value>,
}

/// Who gave a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LabelSource {
    #[default]
    Human,
    Assertion,
    Judge,
}

impl LabelSource {
    /// The name stored in the log and written to exports.
    pub fn as_str(self) -> &'static str {
        match self {
            LabelSource::Human => "human",
            LabelSource::Assertion => "assertion",
            LabelSource::Judge => "judge",
        }
    }

    /// The source a stored name stands for (the log's CHECK constraint admits no other names).
    pub fn from_name(name: &str) -> Option<LabelSource> {
        [LabelSource::Human, LabelSource::Assertion, LabelSource::Judge].into_iter().find(|s| s.as_str() == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Choice {
    A,
    B,
    Tie,
    BothBad,
}

/// A feedback event. Events are appended, never changed; an `Undo` takes an earlier one back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Feedback {
    Thumb {
        up: bool,
    },
    Rating {
        stars: u8,
    },
    /// `result_id` of the event is A; `other` is B.
    Preference {
        other: Id,
        choice: Choice,
        blind: bool,
        shown_left: Id,
    },
    Correction {
        text: Option<String>,
        label: Option<String>,
    },
    Tag {
        tag: String,
        present: bool,
    },
    Note {
        text: String,
    },
    Undo {
        feedback_id: Id,
    },
}

impl Feedback {
    pub fn kind(&self) -> &'static str {
        match self {
            Feedback::Thumb { .. } => "thumb",
            Feedback::Rating { .. } => "rating",
            Feedback::Preference { .. } => "preference",
            Feedback::Correction { .. } => "correction",
            Feedback::Tag { .. } => "tag",
            Feedback::Note { .. } => "note",
            Feedback::Undo { .. } => "undo",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewFeedback {
    pub result_id: Id,
    #[serde(flatten)]
    pub feedback: Feedback,
    #[serde(default)]
    pub source: LabelSource,
    #[serde(default)]
    pub annotator: Option<String>,
}

/// A stored feedback event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackEvent {
    pub id: Id,
    pub result_id: Id,
    #[serde(flatten)]
    pub feedback: Feedback,
    pub source: LabelSource,
    pub annotator: Option<String>,
    pub created_at: i64,
}
