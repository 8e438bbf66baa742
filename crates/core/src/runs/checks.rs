//! Checks around a model call: validation rules on a case's variables before (a failing case never
//! reaches a model), assertions on the answer after.

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::store::Answer;

/// Rules every case of a run must satisfy before any target sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// A JSON Schema the case variables (one object) must match.
    #[serde(default)]
    pub schema: Option<Value>,
    /// Variables that must be present and not blank.
    #[serde(default)]
    pub required: Vec<String>,
    /// No text variable may be longer than this many characters.
    #[serde(default)]
    pub max_length: Option<usize>,
    /// Regular expressions no text variable may match (e.g. `(?i)password`, card numbers).
    #[serde(default)]
    pub forbidden: Vec<String>,
}

/// [`Rules`], compiled once per run.
pub struct Validator {
    schema: Option<jsonschema::Validator>,
    required: Vec<String>,
    max_length: Option<usize>,
    forbidden: Vec<Regex>,
}

impl Validator {
    pub fn new(rules: &Rules) -> Result<Validator, String> {
        let schema = match &rules.schema {
            Some(schema) => Some(
                jsonschema::validator_for(schema)
                    .map_err(|e| format!("validate.schema is not a valid JSON Schema: {e}"))?,
            ),
            None => None,
        };
        let forbidden = rules
            .forbidden
            .iter()
            .map(|p| Regex::new(p).map_err(|e| format!("validate.forbidden pattern `{p}` is not a valid regex: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Validator { schema, required: rules.required.clone(), max_length: rules.max_length, forbidden })
    }

    /// Every problem with `vars`, worded for the cell that shows it; empty if the case is fine.
    pub fn check(&self, vars: &Map<String, Value>) -> Vec<String> {
        let mut problems = Vec::new();
        for name in &self.required {
            match vars.get(name) {
                None | Some(Value::Null) => problems.push(format!("`{name}` is required")),
                Some(Value::String(s)) if s.trim().is_empty() => problems.push(format!("`{name}` is empty")),
                _ => {}
            }
        }
        for (name, value) in vars {
            let Value::String(text) = value else { continue };
            if let Some(max) = self.max_length {
                let len = text.chars().count();
                if len > max {
                    problems.push(format!("`{name}` is {len} characters; at most {max} are allowed"));
                }
            }
            for pattern in &self.forbidden {
                if pattern.is_match(text) {
                    problems.push(format!("`{name}` matches the forbidden pattern `{}`", pattern.as_str()));
                }
            }
        }
        if let Some(schema) = &self.schema {
            let value = Value::Object(vars.clone());
            for error in schema.iter_errors(&value) {
                let at = error.instance_path().to_string();
                problems.push(if at.is_empty() { error.to_string() } else { format!("{at}: {error}") });
            }
        }
        problems
    }
}

/// A check on an answer. In YAML: `- type: contains` `value: refund` `ignore_case: true`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Assertion {
    /// The answer (trimmed) is exactly `value`, or the case's expected output when `value` is left out.
    Equals {
        #[serde(default)]
        value: Option<String>,
        #[serde(default)]
        ignore_case: bool,
    },
    Contains {
        value: String,
        #[serde(default)]
        ignore_case: bool,
    },
    NotContains {
        value: String,
        #[serde(default)]
        ignore_case: bool,
    },
    Regex {
        pattern: String,
    },
    IsJson,
    JsonSchema {
        schema: Value,
    },
    /// The label (a classifier's, or an LLM's answer read as one) is the case's expected label.
    LabelEqualsExpected,
    /// Cosine similarity of the answer and `value` (default: the expected output), with the local
    /// embedding model, is at least `threshold`.
    Similar {
        #[serde(default)]
        value: Option<String>,
        threshold: f32,
    },
    LatencyMs {
        max: f64,
    },
    Cost {
        max: f64,
    },
}

/// One assertion's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub assertion: String,
    pub passed: bool,
    /// Why it failed (empty when it passed).
    pub reason: String,
}

/// Embeds texts (for `similar`): one vector per text, or why it cannot.
pub type Embed<'a> = &'a dyn Fn(&[&str]) -> Result<Vec<Vec<f32>>, String>;

/// What an assertion needs besides the answer: the case's expected value, and a way to embed text.
pub struct Context<'a> {
    pub expected: Option<&'a str>,
    pub embed: Embed<'a>,
}

impl Assertion {
    pub fn name(&self) -> &'static str {
        match self {
            Assertion::Equals { .. } => "equals",
            Assertion::Contains { .. } => "contains",
            Assertion::NotContains { .. } => "not-contains",
            Assertion::Regex { .. } => "regex",
            Assertion::IsJson => "is-json",
            Assertion::JsonSchema { .. } => "json-schema",
            Assertion::LabelEqualsExpected => "label-equals-expected",
            Assertion::Similar { .. } => "similar",
            Assertion::LatencyMs { .. } => "latency-ms",
            Assertion::Cost { .. } => "cost",
        }
    }

    /// Problems found before the run starts (bad regex, bad schema), so no cell fails for them.
    pub fn check_definition(&self) -> Result<(), String> {
        match self {
            Assertion::Regex { pattern } => {
                Regex::new(pattern).map(|_| ()).map_err(|e| format!("regex `{pattern}` is not valid: {e}"))
            }
            Assertion::JsonSchema { schema } => {
                jsonschema::validator_for(schema).map(|_| ()).map_err(|e| format!("json-schema is not valid: {e}"))
            }
            Assertion::Similar { threshold, .. } if !(-1.0..=1.0).contains(threshold) => {
                Err(format!("similar: threshold {threshold} must be between -1 and 1"))
            }
            _ => Ok(()),
        }
    }

    pub fn check(&self, answer: &Answer, cx: &Context<'_>) -> Verdict {
        let text = answer.text().unwrap_or("").trim();
        let fold = |s: &str, ignore: bool| if ignore { s.to_lowercase() } else { s.to_string() };
        let result: Result<(), String> = match self {
            Assertion::Equals { value, ignore_case } => match value.as_deref().or(cx.expected) {
                None => Err("no value given and the case has no expected output".into()),
                Some(want) if fold(text, *ignore_case) == fold(want.trim(), *ignore_case) => Ok(()),
                Some(want) => Err(format!("expected {:?}, got {:?}", want.trim(), short(text))),
            },
            Assertion::Contains { value, ignore_case } => {
                if fold(text, *ignore_case).contains(&fold(value, *ignore_case)) {
                    Ok(())
                } else {
                    Err(format!("{:?} does not contain {value:?}", short(text)))
                }
            }
            Assertion::NotContains { value, ignore_case } => {
                if fold(text, *ignore_case).contains(&fold(value, *ignore_case)) {
                    Err(format!("contains {value:?}"))
                } else {
                    Ok(())
                }
            }
            Assertion::Regex { pattern } => match Regex::new(pattern) {
                Ok(re) if re.is_match(text) => Ok(()),
                Ok(_) => Err(format!("{:?} does not match /{pattern}/", short(text))),
                Err(e) => Err(format!("invalid regex: {e}")),
            },
            Assertion::IsJson => json_of(text).map(|_| ()),
            Assertion::JsonSchema { schema } => json_of(text).and_then(|value| {
                let validator = jsonschema::validator_for(schema).map_err(|e| format!("invalid schema: {e}"))?;
                let errors: Vec<String> = validator.iter_errors(&value).map(|e| e.to_string()).take(3).collect();
                if errors.is_empty() {
                    Ok(())
                } else {
                    Err(errors.join("; "))
                }
            }),
            Assertion::LabelEqualsExpected => match cx.expected {
                None => Err("the case has no expected label".into()),
                Some(want) => {
                    let got = answer_label(answer);
                    if got.as_deref().is_some_and(|g| normalise_label(g) == normalise_label(want)) {
                        Ok(())
                    } else {
                        Err(format!("expected label {want:?}, got {:?}", got.unwrap_or_default()))
                    }
                }
            },
            Assertion::Similar { value, threshold } => match value.as_deref().or(cx.expected) {
                None => Err("no value given and the case has no expected output".into()),
                Some(want) => (cx.embed)(&[text, want]).and_then(|v| match v.as_slice() {
                    [a, b] => {
                        let similarity = cosine(a, b);
                        if similarity >= *threshold {
                            Ok(())
                        } else {
                            Err(format!("similarity {similarity:.3} is below {threshold}"))
                        }
                    }
                    _ => Err("the embedding model returned no vectors".into()),
                }),
            },
            Assertion::LatencyMs { max } => match answer.latency_ms {
                Some(ms) if ms <= *max => Ok(()),
                Some(ms) => Err(format!("took {ms:.0} ms, more than {max} ms")),
                None => Err("no latency was measured".into()),
            },
            Assertion::Cost { max } => match answer.cost_usd {
                Some(cost) if cost <= *max => Ok(()),
                Some(cost) => Err(format!("cost ${cost:.6}, more than ${max}")),
                None => Err("no cost is known for this target (add its model to prices.json)".into()),
            },
        };
        Verdict { assertion: self.name().into(), passed: result.is_ok(), reason: result.err().unwrap_or_default() }
    }
}

/// The label an answer stands for: a classifier's label, else the text's first line.
pub fn answer_label(answer: &Answer) -> Option<String> {
    answer.label.clone().or_else(|| answer.output.as_deref().and_then(|t| t.trim().lines().next()).map(str::to_string))
}

/// Labels compared without case, surrounding punctuation or quotes (`"Billing."` is `billing`).
pub fn normalise_label(label: &str) -> String {
    label.trim().trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase()
}

fn json_of(text: &str) -> Result<Value, String> {
    // Models often wrap JSON in a Markdown code fence.
    let inner = text
        .strip_prefix("```json")
        .or_else(|| text.strip_prefix("```"))
        .and_then(|t| t.strip_suffix("```"))
        .unwrap_or(text);
    serde_json::from_str(inner.trim()).map_err(|e| format!("not JSON: {e}"))
}

fn short(text: &str) -> String {
    if text.chars().count() <= 80 {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(79).collect::<String>())
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let denominator = norm(a) * norm(b);
    if denominator == 0.0 {
        0.0
    } else {
        dot / denominator
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(text: &str) -> Answer {
        Answer { output: Some(text.into()), latency_ms: Some(120.0), cost_usd: Some(0.002), ..Answer::default() }
    }

    fn no_embed(_: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        Err("no embedding model".into())
    }

    #[test]
    fn assertions_pass_and_fail_with_reasons() {
        let cx = Context { expected: Some("Billing"), embed: &no_embed };
        let a = answer("  billing.  ");
        let check = |yaml: Value, a: &Answer| {
            let assertion: Assertion = serde_json::from_value(yaml).expect("parses");
            assertion.check(a, &cx)
        };
        assert!(check(json!({"type": "label-equals-expected"}), &a).passed);
        assert!(!check(json!({"type": "equals"}), &a).passed);
        assert!(check(json!({"type": "equals", "value": "billing."}), &a).passed);
        assert!(check(json!({"type": "contains", "value": "BILL", "ignore_case": true}), &a).passed);
        let v = check(json!({"type": "not-contains", "value": "bill"}), &a);
        assert!(!v.passed && v.reason.contains("contains"));
        assert!(check(json!({"type": "regex", "pattern": "^bill"}), &a).passed);
        assert!(!check(json!({"type": "is-json"}), &a).passed);
        let j = answer("```json\n{\"label\": \"billing\", \"score\": 0.9}\n```");
        assert!(check(json!({"type": "is-json"}), &j).passed);
        let schema = json!({"type": "json-schema", "schema": {"type": "object", "required": ["label", "reason"]}});
        let v = check(schema, &j);
        assert!(!v.passed && v.reason.contains("reason"), "{}", v.reason);
        assert!(check(json!({"type": "latency-ms", "max": 200}), &a).passed);
        assert!(!check(json!({"type": "latency-ms", "max": 100}), &a).passed);
        assert!(!check(json!({"type": "cost", "max": 0.001}), &a).passed);
        let v = check(json!({"type": "similar", "threshold": 0.5}), &a);
        assert!(!v.passed && v.reason.contains("no embedding model"));
        let close = |_: &[&str]| Ok(vec![vec![1.0, 0.0], vec![0.8, 0.6]]);
        let cx = Context { expected: Some("x"), embed: &close };
        let assertion = Assertion::Similar { value: None, threshold: 0.75 };
        assert!(assertion.check(&a, &cx).passed);
        assert!(serde_json::from_value::<Assertion>(json!({"type": "contains"})).is_err(), "value is required");
        assert!(Assertion::Regex { pattern: "(".into() }.check_definition().is_err());
    }

    #[test]
    fn rules_name_every_problem() {
        let rules = Rules {
            schema: Some(json!({"type": "object", "properties": {"priority": {"type": "integer"}}})),
            required: vec!["text".into()],
            max_length: Some(10),
            forbidden: vec!["(?i)password".into()],
        };
        let v = Validator::new(&rules).expect("compiles");
        let vars = |v: Value| v.as_object().expect("object").clone();
        assert!(v.check(&vars(json!({"text": "hello", "priority": 2}))).is_empty());
        let problems = v.check(&vars(json!({"text": "my PASSWORD is hunter2", "priority": "high"})));
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("at most 10")));
        assert!(problems.iter().any(|p| p.contains("forbidden")));
        assert!(problems.iter().any(|p| p.contains("/priority")));
        assert_eq!(v.check(&vars(json!({"text": "  "}))), ["`text` is empty"]);
        assert!(Validator::new(&Rules { forbidden: vec!["(".into()], ..Rules::default() }).is_err());
    }
}
