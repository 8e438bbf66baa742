//! A loaded model: one shared ONNX Runtime session plus its tokenizer, for one task.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Mutex;

use ort::session::{Session, SessionInputValue};
use ort::value::TensorRef;
use serde::Serialize;
use tokenizers::Encoding;

use super::postprocess::{activate, cls_pool, l2_normalize, mean_pool};
use super::runtime::SubnormalsAsZero;
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

/// How a packed batch's texts are laid out in rows (models with `packed_batches`): the layout
/// with the least estimated work, a row of `L` tokens counting `L × (1 + L / ROW_ATTENTION_TOKENS)`
/// — the attention part of a row's work grows with its length, the rest with its tokens.
/// Measured on MiniLM, one thread, one run of 8 texts of 16 tokens: 0.251 ms/token as 8 rows of
/// 16, 0.261 as 2 rows of 64, 0.277 as one row of 128; a row of 256 costs 0.288 ms/token.
const ROW_ATTENTION_TOKENS: usize = 1024;

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
                [b, dim] if *b == batch.pooled_rows() && *dim > 0 => (0..batch.texts())
                    .map(|t| {
                        let row = batch.pooled_row(t);
                        out[row * dim..(row + 1) * dim].to_vec()
                    })
                    .collect(),
                [b, seq, dim] if *b == batch.batch && *seq == batch.seq && *dim > 0 => match pooling {
                    Pooling::Mean => mean_pool(out, batch, *dim),
                    Pooling::Cls => cls_pool(out, batch, *dim),
                },
                _ => return Err(self.bad_shape(shape, "[texts, dim] or [rows, seq, dim]")),
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
                return Err(self.bad_shape(shape, "[texts, labels]"));
            };
            if *b != batch.pooled_rows() || *n != labels.len() {
                return Err(self.bad_shape(
                    shape,
                    &format!("[{}, {}] (config.json has {} labels)", batch.pooled_rows(), labels.len(), labels.len()),
                ));
            }
            Ok((0..batch.texts())
                .map(|r| {
                    let row = batch.pooled_row(r);
                    let logits = out[row * n..(row + 1) * n].to_vec();
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
    /// with raw `session.run` calls on the same session (made the way the engine makes its runs:
    /// subnormals flushed, see [`SubnormalsAsZero`]). Not for general use: it bypasses the
    /// engine's input handling.
    #[doc(hidden)]
    pub fn with_session<T>(&self, f: impl FnOnce(&mut Session) -> T) -> T {
        let _flushed = SubnormalsAsZero::enable();
        f(&mut self.session.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The tensors the engine runs `texts` as, batch by batch, in the order it runs them (for
    /// benchmarks that replay them through raw `session.run`, and for tests).
    pub fn encode(&self, texts: &[&str]) -> Result<Vec<EncodedBatch>> {
        Ok(self.plan(texts)?.into_iter().map(|(_, batch)| batch).collect())
    }

    /// Tokenise all texts and group them by length into batches of at most `max_batch`, each one
    /// `session.run`: padded to its longest text, or — when the graph takes packed rows — laid
    /// out in rows by [`packed_rows`] and padded to the longest row. Each batch comes with the
    /// indices in `texts` of its members, in the batch's order.
    fn plan(&self, texts: &[&str]) -> Result<Vec<(Vec<usize>, EncodedBatch)>> {
        let encodings = self.encoder.tokenize(texts)?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        if texts.len() > self.max_batch {
            order.sort_by_key(|&i| encodings[i].len());
        }
        Ok(order
            .chunks(self.max_batch)
            .map(|chunk| {
                if self.folder.packed_batches && chunk.len() > 1 {
                    let rows = packed_rows(chunk, |i| encodings[i].len());
                    let members = rows.concat();
                    let rows: Vec<Vec<&Encoding>> =
                        rows.iter().map(|row| row.iter().map(|&i| &encodings[i]).collect()).collect();
                    (members, self.encoder.pack(&rows))
                } else {
                    let members: Vec<_> = chunk.iter().map(|&i| &encodings[i]).collect();
                    (chunk.to_vec(), self.encoder.pad(&members))
                }
            })
            .collect())
    }

    /// Run each batch of [`Model::plan`] and put the answers back in the callers' order.
    fn batched<T>(
        &self,
        texts: &[&str],
        per_batch: impl Fn(&EncodedBatch, &[f32], &[usize]) -> Result<Vec<T>>,
    ) -> Result<Vec<T>> {
        let mut answers: Vec<Option<T>> = (0..texts.len()).map(|_| None).collect();
        for (members, batch) in self.plan(texts)? {
            let results = self.run(&batch, &per_batch)?;
            for (i, answer) in members.into_iter().zip(results) {
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
        // Views over the batch's buffers: nothing is copied on the way into ONNX Runtime.
        let mut feeds: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::with_capacity(self.inputs.len());
        for (name, kind) in &self.inputs {
            let data: &[i64] = match kind {
                Input::TokenIds => &batch.input_ids,
                Input::AttentionMask => &batch.attention_mask,
                Input::TokenTypeIds => &batch.type_ids,
                Input::PositionIds => &batch.position_ids,
            };
            let tensor = TensorRef::from_array_view((shape, data)).map_err(|e| fail(e.to_string()))?;
            feeds.push((Cow::Borrowed(name.as_str()), tensor.into()));
        }
        // A panic inside ort while holding the lock would poison it; the session itself is
        // still usable, so recover the guard rather than failing every later call.
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let _flushed = SubnormalsAsZero::enable();
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

/// `items` laid out in rows for one packed run: for each row count, the longest text first into
/// the row holding the fewest tokens (rows end up within one text of each other); of those
/// layouts, the one with the least work by [`ROW_ATTENTION_TOKENS`]'s estimate. More rows than
/// the texts' tokens over the longest text's only add padding, so no more are tried.
fn packed_rows(items: &[usize], len: impl Fn(usize) -> usize) -> Vec<Vec<usize>> {
    let mut longest_first = items.to_vec();
    longest_first.sort_by_key(|&i| Reverse(len(i)));
    let total: usize = items.iter().map(|&i| len(i)).sum();
    let longest = longest_first.first().map_or(1, |&i| len(i).max(1));
    let layout = |rows: usize| {
        let mut layout = vec![Vec::new(); rows];
        let mut fill: BinaryHeap<Reverse<(usize, usize)>> = (0..rows).map(|r| Reverse((0, r))).collect();
        for &i in &longest_first {
            let Some(Reverse((tokens, r))) = fill.pop() else { break };
            layout[r].push(i);
            fill.push(Reverse((tokens + len(i), r)));
        }
        let seq = fill.into_iter().map(|Reverse((tokens, _))| tokens).max().unwrap_or(0);
        let work = rows * seq * (ROW_ATTENTION_TOKENS + seq);
        layout.retain(|row| !row.is_empty());
        (work, layout)
    };
    let most_rows = total.div_ceil(longest).clamp(1, items.len().max(1));
    (1..=most_rows).map(layout).min_by_key(|(work, _)| *work).map(|(_, layout)| layout).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::packed_rows;

    #[test]
    fn packed_rows_balance_rows_and_keep_them_short() {
        let rows_of = |lens: &[usize]| {
            let items: Vec<usize> = (0..lens.len()).collect();
            let rows = packed_rows(&items, |i| lens[i]);
            let mut all = rows.concat();
            all.sort_unstable();
            assert_eq!(all, items, "every text in exactly one row");
            rows.iter().map(|row| row.iter().map(|&i| lens[i]).collect::<Vec<_>>()).collect::<Vec<_>>()
        };
        // A few short texts: one row, no padding.
        assert_eq!(rows_of(&[4, 11, 3]), vec![vec![11, 4, 3]]);
        // Eight texts of 16 tokens: eight rows of 16 — no padding, and the shortest attention.
        assert_eq!(rows_of(&[16; 8]), vec![vec![16]; 8]);
        // Uneven texts: rows within one text of each other, none past the longest useful count.
        let lens = [23, 9, 17, 12, 20, 13, 15, 19, 11, 21, 14, 18];
        let rows = rows_of(&lens);
        let sums: Vec<usize> = rows.iter().map(|row| row.iter().sum()).collect();
        assert!(rows.len() > 1 && rows.len() <= lens.iter().sum::<usize>().div_ceil(23), "{rows:?}");
        assert!(sums.iter().max().unwrap() - sums.iter().min().unwrap() <= 23, "{sums:?}");
        // A second row would be padded to the long text: one row is less work.
        assert_eq!(rows_of(&[300, 10, 10]), vec![vec![300, 10, 10]]);
        assert_eq!(rows_of(&[]), Vec::<Vec<usize>>::new());
    }
}
