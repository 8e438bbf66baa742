//! A loaded model: one shared ONNX Runtime session plus its tokenizer, for one task.

use std::borrow::Cow;
use std::sync::Mutex;

use ort::session::{Session, SessionInputValue};
use ort::value::TensorRef;
use serde::Serialize;

use super::postprocess::{activate, cls_pool, l2_normalize, mean_pool};
use super::tokenize::{EncodedBatch, TextEncoder};
use super::{Activation, EngineError, EngineOptions, ModelFolder, Pooling, Result, Runtime, Task};

/// One text's embedding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Embedding {
    pub vector: Vec<f32>,
    /// Tokens the model saw (special tokens included, after truncation).
    pub tokens: usize,
    /// Whether the text was cut at the model's `max_length`.
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelScore {
    pub label: String,
    pub score: f32,
}

/// One text's classification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    /// Every label with its score, best first.
    pub scores: Vec<LabelScore>,
    /// Raw logits in the model's label order.
    pub logits: Vec<f32>,
    pub activation: Activation,
    pub tokens: usize,
    pub truncated: bool,
}

impl Classification {
    /// The best label (a classifier always has at least one label).
    pub fn top(&self) -> &LabelScore {
        &self.scores[0]
    }
}

/// The tensors a graph takes, as named in Hugging Face exports. Other inputs are refused at load.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Input {
    TokenIds,
    AttentionMask,
    TokenTypeIds,
    PositionIds,
}

/// A model ready to run. Cheap to share (`Arc<Model>`); calls may come from many threads, and
/// runs are serialised on the one session, whose intra-op threads use the cores.
pub struct Model {
    folder: ModelFolder,
    encoder: TextEncoder,
    session: Mutex<Session>,
    inputs: Vec<(String, Input)>,
    output: String,
    max_batch: usize,
}

impl Model {
    pub fn load(runtime: &Runtime, folder: ModelFolder, options: &EngineOptions) -> Result<Model> {
        Model::load_with(runtime, folder, options, false)
    }

    /// [`Model::load`] with a single-threaded session of its own (see [`crate::engine::Engine::replicas`]).
    pub fn load_single_threaded(runtime: &Runtime, folder: ModelFolder, options: &EngineOptions) -> Result<Model> {
        Model::load_with(runtime, folder, options, true)
    }

    fn load_with(runtime: &Runtime, folder: ModelFolder, options: &EngineOptions, single: bool) -> Result<Model> {
        if folder.task == Task::Generation {
            return Err(EngineError::invalid(
                &folder.dir,
                "it is a text-generation model; use it with `generate` (embed and predict take embedding and classification models)",
            ));
        }
        let encoder = TextEncoder::load(&folder)?;
        let session = if single {
            runtime.single_threaded_session(&folder.model_path())?
        } else {
            runtime.session(&folder.model_path())?
        };
        let mut inputs = Vec::new();
        for input in session.inputs() {
            let kind = match input.name() {
                "input_ids" => Input::TokenIds,
                "attention_mask" => Input::AttentionMask,
                "token_type_ids" => Input::TokenTypeIds,
                "position_ids" => Input::PositionIds,
                other => {
                    return Err(EngineError::invalid(
                        &folder.dir,
                        format!("model.onnx takes an input `{other}`; Benchtop feeds input_ids, attention_mask, token_type_ids and position_ids"),
                    ))
                }
            };
            inputs.push((input.name().to_string(), kind));
        }
        let names: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
        let preferred: &[&str] = match folder.task {
            Task::Classification { .. } => &["logits"],
            _ => &["sentence_embedding", "last_hidden_state"],
        };
        let output = match &folder.output {
            Some(name) if names.contains(&name.as_str()) => name.clone(),
            Some(name) => {
                return Err(EngineError::invalid(
                    &folder.dir,
                    format!("benchtop.json names output `{name}`, but model.onnx has {}", names.join(", ")),
                ))
            }
            None => preferred
                .iter()
                .find(|p| names.contains(p))
                .or(names.first())
                .map(|s| s.to_string())
                .ok_or_else(|| EngineError::invalid(&folder.dir, "model.onnx has no outputs"))?,
        };
        tracing::debug!(model = %folder.name, ?inputs, %output, "loaded");
        Ok(Model { folder, encoder, session: Mutex::new(session), inputs, output, max_batch: options.max_batch.max(1) })
    }

    pub fn folder(&self) -> &ModelFolder {
        &self.folder
    }

    pub fn name(&self) -> &str {
        &self.folder.name
    }

    /// Embed `texts`, in order. Long lists are split into batches of similar length.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Embedding>> {
        let Task::Embedding { pooling, normalize, .. } = self.folder.task else {
            return Err(self.wrong_task("embedding"));
        };
        self.batched(texts, |batch, out, shape| {
            let rows = match shape {
                [b, dim] if *b == batch.batch => (0..*b).map(|r| out[r * dim..(r + 1) * dim].to_vec()).collect(),
                [b, seq, dim] if *b == batch.batch && *seq == batch.seq => match pooling {
                    Pooling::Mean => mean_pool(out, &batch.attention_mask, *b, *seq, *dim),
                    Pooling::Cls => cls_pool(out, *b, *seq, *dim),
                },
                _ => return Err(self.bad_shape(shape, "[batch, dim] or [batch, seq, dim]")),
            };
            Ok(rows
                .into_iter()
                .enumerate()
                .map(|(r, mut vector)| {
                    if normalize {
                        l2_normalize(&mut vector);
                    }
                    Embedding { vector, tokens: batch.tokens[r], truncated: batch.truncated[r] }
                })
                .collect())
        })
    }

    /// Classify `texts`, in order, every label scored.
    pub fn classify(&self, texts: &[&str]) -> Result<Vec<Classification>> {
        let Task::Classification { ref labels, activation } = self.folder.task else {
            return Err(self.wrong_task("classification"));
        };
        self.batched(texts, |batch, out, shape| {
            let [b, n] = shape else {
                return Err(self.bad_shape(shape, "[batch, labels]"));
            };
            if *b != batch.batch || *n != labels.len() {
                return Err(self.bad_shape(
                    shape,
                    &format!("[{}, {}] (config.json has {} labels)", batch.batch, labels.len(), labels.len()),
                ));
            }
            Ok((0..*b)
                .map(|r| {
                    let logits = out[r * n..(r + 1) * n].to_vec();
                    let mut scores: Vec<LabelScore> = activate(&logits, activation)
                        .into_iter()
                        .zip(labels)
                        .map(|(score, label)| LabelScore { label: label.clone(), score })
                        .collect();
                    scores.sort_by(|a, b| b.score.total_cmp(&a.score));
                    Classification {
                        scores,
                        logits,
                        activation,
                        tokens: batch.tokens[r],
                        truncated: batch.truncated[r],
                    }
                })
                .collect())
        })
    }

    /// Run `f` on the model's own ONNX Runtime session, for benchmarks that compare the engine
    /// with raw `session.run` calls on the same session. Not for general use: it bypasses the
    /// engine's input handling.
    #[doc(hidden)]
    pub fn with_session<T>(&self, f: impl FnOnce(&mut Session) -> T) -> T {
        f(&mut self.session.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The padded tensors `texts` would be run as, in one batch (for benchmarks and tests).
    pub fn encode(&self, texts: &[&str]) -> Result<EncodedBatch> {
        let encodings = self.encoder.tokenize(texts)?;
        Ok(self.encoder.pad(&encodings.iter().collect::<Vec<_>>()))
    }

    /// Tokenise all texts, group them by length into batches of at most `max_batch`, run each
    /// batch, and put the answers back in the callers' order.
    fn batched<T>(
        &self,
        texts: &[&str],
        per_batch: impl Fn(&EncodedBatch, &[f32], &[usize]) -> Result<Vec<T>>,
    ) -> Result<Vec<T>> {
        let encodings = self.encoder.tokenize(texts)?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        if texts.len() > self.max_batch {
            order.sort_by_key(|&i| encodings[i].len());
        }
        let mut answers: Vec<Option<T>> = (0..texts.len()).map(|_| None).collect();
        for chunk in order.chunks(self.max_batch) {
            let batch = self.encoder.pad(&chunk.iter().map(|&i| &encodings[i]).collect::<Vec<_>>());
            let results = self.run(&batch, &per_batch)?;
            for (&i, answer) in chunk.iter().zip(results) {
                answers[i] = Some(answer);
            }
        }
        Ok(answers.into_iter().flatten().collect())
    }

    fn run<T>(
        &self,
        batch: &EncodedBatch,
        per_batch: &impl Fn(&EncodedBatch, &[f32], &[usize]) -> Result<Vec<T>>,
    ) -> Result<Vec<T>> {
        let fail = |reason: String| EngineError::Inference { model: self.folder.name.clone(), reason };
        let shape = [batch.batch, batch.seq];
        let position_ids: Vec<i64> = if self.inputs.iter().any(|(_, kind)| *kind == Input::PositionIds) {
            (0..batch.batch).flat_map(|_| 0..batch.seq as i64).collect()
        } else {
            Vec::new()
        };
        // Views over the batch's buffers: nothing is copied on the way into ONNX Runtime.
        let mut feeds: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::with_capacity(self.inputs.len());
        for (name, kind) in &self.inputs {
            let data: &[i64] = match kind {
                Input::TokenIds => &batch.input_ids,
                Input::AttentionMask => &batch.attention_mask,
                Input::TokenTypeIds => &batch.type_ids,
                Input::PositionIds => &position_ids,
            };
            let tensor = TensorRef::from_array_view((shape, data)).map_err(|e| fail(e.to_string()))?;
            feeds.push((Cow::Borrowed(name.as_str()), tensor.into()));
        }
        // A panic inside ort while holding the lock would poison it; the session itself is
        // still usable, so recover the guard rather than failing every later call.
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session.run(feeds).map_err(|e| fail(e.to_string()))?;
        let value =
            outputs.get(&self.output).ok_or_else(|| fail(format!("the model produced no `{}` output", self.output)))?;
        let (out_shape, data) = value
            .try_extract_tensor::<f32>()
            .map_err(|e| fail(format!("output `{}` is not a float32 tensor: {e}", self.output)))?;
        let dims: Vec<usize> = out_shape.iter().map(|&d| usize::try_from(d).unwrap_or(0)).collect();
        if dims.iter().product::<usize>() != data.len() {
            return Err(fail(format!("output `{}` has shape {dims:?} but {} values", self.output, data.len())));
        }
        per_batch(batch, data, &dims)
    }

    fn wrong_task(&self, wanted: &'static str) -> EngineError {
        EngineError::WrongTask { model: self.folder.name.clone(), actual: self.folder.task.name(), wanted }
    }

    fn bad_shape(&self, shape: &[usize], expected: &str) -> EngineError {
        EngineError::Inference {
            model: self.folder.name.clone(),
            reason: format!("output `{}` has shape {shape:?}, expected {expected}", self.output),
        }
    }
}
