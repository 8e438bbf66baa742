//! Text generation on the decoder fixtures (tiny-gpt2: MHA, fp32 KV cache, no position_ids;
//! tiny-qwen2: GQA, RoPE from position_ids, fp16 KV cache, ChatML template), checked against the
//! Python reference loop of `models/golden_generate.py`, and the behaviours around decoding:
//! seeds, stop sequences, limits, cancellation, streaming of partial UTF-8, broken configs.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use benchtop_core::engine::generate::{KvType, Layout, TextStream};
use benchtop_core::engine::{
    Catalog, Engine, EngineError, EngineOptions, ErrorKind, FinishReason, GenerateParams, Generation, Generator,
    Message, ModelFolder, Prompt, Role,
};
use common::*;
use serde_json::Value;

fn generator(name: &str) -> Arc<Generator> {
    let engine = Engine::new(runtime(), Catalog::new(vec![repo().join("models/fixtures")]), EngineOptions::default());
    engine.generator(name).unwrap_or_else(|e| panic!("{e}"))
}

fn greedy(max_new_tokens: usize) -> GenerateParams {
    GenerateParams { max_new_tokens: Some(max_new_tokens), temperature: Some(0.0), ..GenerateParams::default() }
}

/// Generate, collecting the streamed pieces too.
fn run(g: &Generator, prompt: &Prompt, params: &GenerateParams) -> (Generation, Vec<String>) {
    let mut pieces = Vec::new();
    let out = g
        .generate(prompt, params, &AtomicBool::new(false), &mut |piece| pieces.push(piece.to_string()))
        .unwrap_or_else(|e| panic!("{e}"));
    (out, pieces)
}

fn text(s: &str) -> Prompt {
    Prompt::Text(s.to_string())
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().expect("ids").iter().map(|x| x.as_u64().expect("id") as u32).collect()
}

#[test]
fn layouts_are_read_from_the_graphs() {
    let gpt2 = generator("tiny-gpt2");
    let l: &Layout = gpt2.layout();
    assert_eq!((l.layers, l.kv_heads, l.head_dim, l.kv_type, l.position_ids), (2, 4, 16, KvType::F32, false));
    let qwen = generator("tiny-qwen2");
    let l = qwen.layout();
    assert_eq!((l.layers, l.kv_heads, l.head_dim, l.kv_type, l.position_ids), (2, 2, 16, KvType::F16, true));
    assert_eq!(l.kv_bytes_per_token(), 2 * 2 * 2 * 16 * 2);
    assert_eq!(qwen.context(), 2048);
    assert_eq!(qwen.defaults().eos_token_ids.len(), 2);
}

#[test]
fn greedy_decoding_matches_the_python_reference_with_and_without_the_cache() {
    for name in ["tiny-gpt2", "tiny-qwen2"] {
        let g = generator(name);
        let reference = golden(&format!("generate-{name}"));
        let cases = reference["cases"].as_array().expect("cases");
        assert!(cases.len() >= 8);
        for case in cases {
            let label = format!("{name}/{}", case["name"].as_str().unwrap_or_default());
            let prompt = match case.get("messages") {
                Some(messages) => Prompt::Chat(serde_json::from_value(messages.clone()).expect("messages")),
                None => text(case["prompt"].as_str().expect("prompt")),
            };
            if let Prompt::Chat(messages) = &prompt {
                assert_eq!(g.render_chat(messages).expect("renders"), case["rendered"].as_str().unwrap(), "{label}");
            }
            assert_eq!(g.prompt_ids(&prompt).expect("tokenises"), ids(&case["prompt_ids"]), "{label}: prompt ids");
            let mut params = greedy(case["max_new_tokens"].as_u64().unwrap() as usize);
            params.repetition_penalty = Some(case["repetition_penalty"].as_f64().unwrap() as f32);
            let (cached, pieces) = run(&g, &prompt, &params);
            assert_eq!(cached.token_ids, ids(&case["ids"]), "{label}: token ids (KV cache)");
            assert_eq!(cached.finish_reason.name(), case["finish"].as_str().unwrap(), "{label}");
            assert_eq!(cached.text, case["text"].as_str().unwrap(), "{label}: text");
            assert_eq!(pieces.concat(), cached.text, "{label}: streamed pieces add up to the text");
            assert!(pieces.iter().all(|p| !p.is_empty()));
            assert_eq!(cached.usage.prompt_tokens, ids(&case["prompt_ids"]).len());
            assert_eq!(cached.usage.completion_tokens, cached.token_ids.len());
            assert!(!cached.sampled);

            params.no_cache = true;
            let (uncached, _) = run(&g, &prompt, &params);
            assert_eq!(uncached.token_ids, cached.token_ids, "{label}: recomputing agrees with the cache");
        }
    }
}

#[test]
fn same_seed_same_output_and_the_seed_is_reported() {
    let g = generator("tiny-qwen2");
    // The fixture's generation_config samples (do_sample, temperature 0.7, top_p 0.8, top_k 20).
    assert!(g.defaults().do_sample);
    let params = GenerateParams { max_new_tokens: Some(30), seed: Some(1234), ..GenerateParams::default() };
    let prompt = text("Refund my order");
    let (a, _) = run(&g, &prompt, &params);
    let (b, _) = run(&g, &prompt, &params);
    assert!(a.sampled);
    assert_eq!(a.seed, 1234);
    assert_eq!(a.token_ids, b.token_ids);
    let others: Vec<Vec<u32>> = (0..4)
        .map(|seed| run(&g, &prompt, &GenerateParams { seed: Some(seed), ..params.clone() }).0.token_ids)
        .collect();
    assert!(others.iter().any(|o| *o != a.token_ids), "different seeds should sample differently");
    // Without a seed one is drawn, and passing it back repeats the generation.
    let (drawn, _) = run(&g, &prompt, &GenerateParams { seed: None, ..params.clone() });
    let (again, _) = run(&g, &prompt, &GenerateParams { seed: Some(drawn.seed), ..params });
    assert_eq!(drawn.token_ids, again.token_ids);
}

#[test]
fn stop_sequences_spanning_tokens_end_the_text_before_them() {
    let g = generator("tiny-gpt2");
    let prompt = text("The app crashes when");
    let (full, _) = run(&g, &prompt, &greedy(40));
    // Pick a stop sequence that straddles the boundary between the 6th and 7th tokens' text.
    let tok = g.tokenizer();
    let before = tok.decode(&full.token_ids[..6], true).unwrap();
    let after = tok.decode(&full.token_ids[..7], true).unwrap();
    assert!(after.len() > before.len() + 1 && before.len() > 2, "fixture output changed: {after:?}");
    let split = before.char_indices().last().map(|(i, _)| i).unwrap();
    let end = after.char_indices().map(|(i, _)| i).find(|&i| i > before.len()).unwrap_or(after.len());
    let stop = after[split..end].to_string();
    assert!(!before[..split].contains(&stop));
    let params = GenerateParams { stop: vec!["never appears ✗".into(), stop.clone()], ..greedy(40) };
    let (stopped, pieces) = run(&g, &prompt, &params);
    assert_eq!(stopped.finish_reason, FinishReason::Stop);
    assert_eq!(stopped.text, full.text[..full.text.find(&stop).unwrap()]);
    assert_eq!(pieces.concat(), stopped.text, "nothing of the stop sequence was streamed");
    assert!(stopped.token_ids.len() <= 7);
}

#[test]
fn max_new_tokens_and_the_context_window_bound_the_output() {
    let g = generator("tiny-gpt2");
    let (out, _) = run(&g, &text("The app crashes when"), &greedy(5));
    assert_eq!((out.token_ids.len(), out.finish_reason), (5, FinishReason::Length));
    let (none, pieces) = run(&g, &text("The app crashes when"), &greedy(0));
    assert_eq!((none.token_ids.len(), none.text.as_str(), pieces.len()), (0, "", 0));

    // A prompt that fills the context is refused, saying how long it is and what fits.
    let long = "support ".repeat(3000);
    let err = g.generate(&text(&long), &greedy(5), &AtomicBool::new(false), &mut |_| {}).expect_err("too long");
    assert_eq!(err.kind(), ErrorKind::Input);
    let message = err.to_string();
    assert!(message.contains("context of 2048 tokens") && message.contains("shorten"), "{message}");
    // A prompt that leaves less room than asked for stops at the end of the context.
    let prompt_ids = g.prompt_ids(&text(&long)).unwrap();
    let room = &prompt_ids[..2048 - 3];
    let out = g
        .generate_ids(room, &greedy(50), &AtomicBool::new(false), &mut |_| {}, std::time::Instant::now())
        .expect("fits");
    assert_eq!((out.token_ids.len(), out.finish_reason), (3, FinishReason::Length));
}

#[test]
fn cancelling_mid_stream_keeps_what_was_generated() {
    let g = generator("tiny-gpt2");
    let cancel = AtomicBool::new(false);
    let mut pieces = 0;
    let out = g
        .generate(&text("The app crashes when"), &greedy(40), &cancel, &mut |_| {
            pieces += 1;
            if pieces == 3 {
                cancel.store(true, Ordering::Relaxed);
            }
        })
        .expect("cancelled, not failed");
    assert_eq!(out.finish_reason, FinishReason::Cancelled);
    assert!(out.token_ids.len() >= 3 && out.token_ids.len() < 40, "{}", out.token_ids.len());

    // Cancelled from another thread while streaming.
    let g2 = Arc::clone(&g);
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cancel);
    let (tx, rx) = std::sync::mpsc::channel();
    let (ack_tx, ack) = std::sync::mpsc::channel::<()>();
    let worker = std::thread::spawn(move || {
        g2.generate(
            &text("The app crashes when"),
            &GenerateParams { no_cache: true, ..greedy(2000) },
            &flag,
            &mut |p| {
                let _ = tx.send(p.to_string());
                // Hold the first piece until the other thread has cancelled, so the next step sees
                // the flag whatever the scheduling (and before the model could emit its EOS).
                let _ = ack.recv();
            },
        )
    });
    rx.recv().expect("first piece");
    cancel.store(true, Ordering::Relaxed);
    drop(ack_tx);
    let out = worker.join().expect("no panic").expect("no error");
    assert_eq!(out.finish_reason, FinishReason::Cancelled);
}

#[test]
fn streaming_never_splits_a_character_across_byte_pieces() {
    let g = generator("tiny-qwen2");
    let tok = g.tokenizer();
    let sample = "Grüße 🙂 こんにちは 🚀";
    let encoded = tok.encode(sample, false).unwrap();
    let pieces_of = |ids: &[u32]| {
        let mut stream = TextStream::new(tok);
        let mut out: Vec<String> = ids.iter().filter_map(|&id| stream.push(id).unwrap()).collect();
        out.extend(stream.finish().unwrap());
        out
    };
    let pieces = pieces_of(encoded.get_ids());
    // Some tokens hold part of a character (else this test proves nothing)…
    assert!(encoded.get_ids().iter().any(|&id| tok.decode(&[id], true).unwrap().contains('\u{FFFD}')));
    // …but no streamed piece does, and together they are the text.
    assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')), "{pieces:?}");
    assert_eq!(pieces.concat(), sample);

    // Invalid byte sequences (a lone continuation byte; a start byte that never completes) come
    // out as U+FFFD rather than stalling the stream or failing.
    let byte = |b: u8| tok.token_to_id(&byte_level_char(b).to_string()).expect("every byte is in the vocabulary");
    let ok = tok.encode("ok", false).unwrap().get_ids().to_vec();
    let broken =
        [vec![byte(0x9F)], ok.clone(), vec![byte(0xF0), byte(0x9F)], ok.clone(), ok.clone(), ok.clone()].concat();
    let pieces = pieces_of(&broken);
    assert_eq!(pieces.concat(), "\u{FFFD}ok\u{FFFD}okokok");
    let dangling = [ok.clone(), vec![byte(0xE2), byte(0x82)]].concat();
    assert_eq!(pieces_of(&dangling).concat(), "ok\u{FFFD}");
}

/// GPT-2's byte-to-character table, which byte-level BPE vocabularies are written in.
fn byte_level_char(b: u8) -> char {
    let printable = |b: u8| (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
    if printable(b) {
        return char::from(b);
    }
    let shift = (0..=255u8).filter(|&x| !printable(x)).position(|x| x == b).unwrap() as u32;
    char::from_u32(256 + shift).unwrap()
}

#[test]
fn chat_needs_a_template_and_template_errors_reach_the_user() {
    let gpt2 = generator("tiny-gpt2");
    let err = gpt2
        .generate(&Prompt::Chat(vec![Message::new(Role::User, "hi")]), &greedy(3), &AtomicBool::new(false), &mut |_| {})
        .expect_err("gpt2 fixture has no template");
    assert!(matches!(err, EngineError::NoChatTemplate { .. }));
    assert!(err.to_string().contains("--raw"), "{err}");

    let qwen = generator("tiny-qwen2");
    let messages = vec![
        Message::new(Role::User, "hi"),
        Message::new(Role::System, "late system message"),
        Message::new(Role::User, "x"),
    ];
    let err = qwen.render_chat(&messages).expect_err("template raises");
    assert!(err.to_string().contains("Only the first message may be a system message"), "{err}");
    let out = qwen.render_chat(&[Message::new(Role::System, "Be brief."), Message::new(Role::User, "hi")]).unwrap();
    assert_eq!(out, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}

#[test]
fn invalid_settings_and_broken_folders_get_clear_errors() {
    let g = generator("tiny-gpt2");
    for (params, words) in [
        (GenerateParams { temperature: Some(-1.0), ..GenerateParams::default() }, "temperature"),
        (GenerateParams { top_p: Some(0.0), ..GenerateParams::default() }, "top_p"),
        (GenerateParams { repetition_penalty: Some(0.0), ..GenerateParams::default() }, "repetition_penalty"),
    ] {
        let err = g.generate(&text("hi"), &params, &AtomicBool::new(false), &mut |_| {}).expect_err(words);
        assert!(matches!(err, EngineError::InvalidParams(_)) && err.to_string().contains(words), "{err}");
    }

    // A malformed generation_config.json names the file and the fix.
    let (_tmp, dir) = scratch_copy("tiny-qwen2");
    std::fs::write(dir.join("generation_config.json"), "{\"eos_token_id\": \"not an id\"").unwrap();
    let err = Generator::load(&runtime(), ModelFolder::open(&dir).unwrap()).expect_err("malformed");
    assert_eq!(err.kind(), ErrorKind::InvalidModel);
    assert!(err.to_string().contains("generation_config.json is not valid"), "{err}");
    std::fs::write(dir.join("generation_config.json"), "{\"top_p\": 3}").unwrap();
    let err = Generator::load(&runtime(), ModelFolder::open(&dir).unwrap()).expect_err("out of range");
    assert!(err.to_string().contains("top_p 3 must be in (0, 1]"), "{err}");

    // A template that does not compile: plain prompts still work, chats say why they cannot.
    std::fs::write(dir.join("generation_config.json"), "{}").unwrap();
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer_config.json")).unwrap()).unwrap();
    config["chat_template"] = "{% for m in messages %}".into();
    std::fs::write(dir.join("tokenizer_config.json"), config.to_string()).unwrap();
    let g = Generator::load(&runtime(), ModelFolder::open(&dir).unwrap()).expect("loads");
    assert!(g.generate(&text("hi"), &greedy(2), &AtomicBool::new(false), &mut |_| {}).is_ok());
    let err = g.render_chat(&[Message::new(Role::User, "hi")]).expect_err("broken template");
    assert!(err.to_string().contains("does not compile"), "{err}");

    // An embedding model is not a generator.
    let err = Generator::load(&runtime(), ModelFolder::open(&fixture("tiny-cls-embed")).unwrap()).expect_err("task");
    assert_eq!(err.to_string(), "model `tiny-cls-embed` is an embedding model; this needs a generation model");
}

#[test]
fn concurrent_generations_share_one_session() {
    let g = generator("tiny-qwen2");
    let expected = run(&g, &text("The app crashes when"), &greedy(20)).0.token_ids;
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let g = Arc::clone(&g);
            std::thread::spawn(move || run(&g, &text("The app crashes when"), &greedy(20)).0.token_ids)
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().expect("no panic"), expected);
    }
}
