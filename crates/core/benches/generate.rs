//! Generation loop overhead: the engine's per-token decode time against the bare `session.run`
//! of the same decode steps (same session, same tokens, same sequence lengths, the KV cache handed
//! on the same way), plus time to first token and tokens/s, for prompts of 16, 256 and 1024
//! tokens on the decoder fixtures.
//!
//! Each repetition runs the engine's `generate_ids` (greedy) and then replays exactly its tokens
//! through raw `session.run` calls, timing only the calls: the pair shares the machine's state at
//! that moment, so drift on a shared VM cancels out. Medians over the repetitions.
//!
//! Run with `./dev bench` (or `cargo bench -p benchtop-core --bench generate`); figures are in
//! docs/benchmarks.md.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use ort::session::SessionInputValue;
use ort::value::{DynValue, Tensor, TensorRef};

use benchtop_core::dirs::Dirs;
use benchtop_core::engine::generate::KvType;
use benchtop_core::engine::{FinishReason, GenerateParams, Generator, ModelFolder, Runtime, RuntimeOptions};

const NEW_TOKENS: usize = 64;

fn main() {
    // `cargo bench` passes `--bench`; a name filters the models.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let runtime = Runtime::locate_and_load(None, &Dirs::resolve(None), &RuntimeOptions::default())
        .expect("ONNX Runtime (run ./dev setup)");
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/fixtures");
    println!("Per-token decode: Benchtop's generation loop vs raw session.run of the same steps (medians)");
    println!();
    println!(
        "| model | prompt tokens | new tokens | raw session.run, µs/token | Benchtop, µs/token | ratio (target ≤ 1.10) | time to first token, ms | tokens/s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for name in ["tiny-qwen2", "tiny-gpt2"] {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let folder = ModelFolder::open(&fixtures.join(name)).expect("fixture");
        let generator = Generator::load(&runtime, folder).expect("loads");
        for prompt_len in [16usize, 256, 1024] {
            let prompt = prompt_ids(&generator, prompt_len);
            let reps = if prompt_len >= 1024 { 15 } else { 31 };
            let (mut raw, mut engine, mut ttft, mut tps) = (vec![], vec![], vec![], vec![]);
            let mut new_tokens = 0;
            for rep in 0..=reps {
                let params = GenerateParams {
                    max_new_tokens: Some(NEW_TOKENS),
                    temperature: Some(0.0),
                    repetition_penalty: Some(1.0),
                    ..GenerateParams::default()
                };
                let g = generator
                    .generate_ids(&prompt, &params, &AtomicBool::new(false), &mut |_| {}, Instant::now())
                    .expect("generates");
                // Decode steps after the prefill: one per token but the first, plus one that produced
                // the end-of-sequence token if generation stopped on it. The raw loop replays them all.
                let mut replay = g.token_ids.clone();
                if g.finish_reason == FinishReason::Stop {
                    replay.push(0); // the step after the last token, whose output was EOS
                }
                assert!(replay.len() >= 8, "too few tokens to time ({})", replay.len());
                let steps = raw_decode(&generator, &prompt, &replay);
                if rep == 0 {
                    continue; // warm-up
                }
                let decode = g.total_time - g.time_to_first_token;
                new_tokens = g.token_ids.len();
                engine.push(decode.as_secs_f64() / steps.len() as f64);
                raw.push(steps.iter().sum::<Duration>().as_secs_f64() / steps.len() as f64);
                ttft.push(g.time_to_first_token.as_secs_f64());
                tps.push(1.0 / (decode.as_secs_f64() / steps.len() as f64));
            }
            let (raw, engine) = (median(&mut raw), median(&mut engine));
            println!(
                "| {name} | {prompt_len} | {new_tokens} | {:.1} | {:.1} | {:.3} | {:.2} | {:.0} |",
                raw * 1e6,
                engine * 1e6,
                engine / raw,
                median(&mut ttft) * 1e3,
                median(&mut tps)
            );
        }
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// `len` token ids of ordinary text (support messages, repeated).
fn prompt_ids(generator: &Generator, len: usize) -> Vec<u32> {
    let text = "I was charged twice for my subscription this month and support has not answered yet. ".repeat(200);
    let ids = generator.tokenizer().encode(text.as_str(), false).expect("tokenizes").get_ids().to_vec();
    assert!(ids.len() >= len, "the text is long enough");
    ids[..len].to_vec()
}

/// Prefill `prompt`, then run one decode step per token of `tokens` but the last, as a bare loop
/// would: each step's `present.*` moved in as the next `past_key_values.*`. Returns the time of
/// each decode step's `session.run` alone.
fn raw_decode(generator: &Generator, prompt: &[u32], tokens: &[u32]) -> Vec<Duration> {
    let layout = generator.layout().clone();
    assert!(!layout.use_cache_branch, "merged decoders are not part of this benchmark");
    let mut ids: Vec<i64> = prompt.iter().map(|&t| i64::from(t)).collect();
    let ones = vec![1i64; prompt.len() + tokens.len()];
    let mut past: Vec<DynValue> = Vec::new();
    let mut times = Vec::with_capacity(tokens.len());
    generator.with_session(|session| {
        for (step, &token) in tokens.iter().enumerate() {
            let (start, prefill) = if step == 0 { (0, true) } else { (ids.len() - 1, false) };
            let seq = ids.len() - start;
            let positions: Vec<i64> = (start as i64..ids.len() as i64).collect();
            let mut feeds: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::new();
            feeds
                .push(("input_ids".into(), TensorRef::from_array_view(([1, seq], &ids[start..])).expect("ids").into()));
            feeds.push((
                "attention_mask".into(),
                TensorRef::from_array_view(([1, ids.len()], &ones[..ids.len()])).expect("mask").into(),
            ));
            if layout.position_ids {
                feeds.push((
                    "position_ids".into(),
                    TensorRef::from_array_view(([1, seq], &positions[..])).expect("pos").into(),
                ));
            }
            let mut cache = std::mem::take(&mut past).into_iter();
            for name in layout.past_names.iter().flatten() {
                let value: SessionInputValue<'_> = if prefill {
                    let shape = [1usize, layout.kv_heads, 0, layout.head_dim];
                    match layout.kv_type {
                        KvType::F32 => Tensor::<f32>::from_array((shape, Vec::new())).expect("empty").into(),
                        KvType::F16 => Tensor::<half::f16>::from_array((shape, Vec::new())).expect("empty").into(),
                    }
                } else {
                    cache.next().expect("cache").into()
                };
                feeds.push((Cow::Borrowed(name.as_str()), value));
            }
            let started = Instant::now();
            let mut outputs = session.run(feeds).expect("runs");
            let elapsed = started.elapsed();
            if !prefill {
                times.push(elapsed);
            }
            std::hint::black_box(outputs.get("logits").expect("logits"));
            for name in layout.present_names.iter().flatten() {
                past.push(outputs.remove(name).expect("present"));
            }
            drop(outputs);
            ids.push(i64::from(token));
        }
    });
    times
}
