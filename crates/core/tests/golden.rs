//! The engine agrees with an independent Python implementation (onnxruntime + tokenizers) to
//! 1e-4, on ordinary text, empty and whitespace-only input, emoji, CJK, right-to-left scripts and a
//! 100,000-character text, whether the texts run one by one or together (padded, or packed into
//! one row for the default models).

mod common;

use benchtop_core::engine::EngineOptions;
use common::*;
use serde_json::Value;

const TOLERANCE: f32 = 1e-4;

fn cases(golden: &Value) -> Vec<(&str, &Value)> {
    golden["cases"].as_array().expect("cases").iter().map(|c| (c["text"].as_str().expect("text"), c)).collect()
}

fn check_embeddings(name: &str) {
    let golden = golden(name);
    let cases = cases(&golden);
    let model = model(name);
    let texts: Vec<&str> = cases.iter().map(|(t, _)| *t).collect();
    let batched = model.embed(&texts).expect("batch embeds");
    for ((text, case), got) in cases.iter().zip(&batched) {
        let single = model.embed(&[text]).expect("single embeds").remove(0);
        let want = floats(&case["embedding"]);
        let label = text.chars().take(30).collect::<String>();
        assert!(
            max_abs_diff(&got.vector, &want) < TOLERANCE,
            "{name} batched {label:?}: differs from Python by {}",
            max_abs_diff(&got.vector, &want)
        );
        assert!(max_abs_diff(&single.vector, &want) < TOLERANCE, "{name} single {label:?}");
        assert_eq!(got.tokens as u64, case["tokens"].as_u64().expect("tokens"), "{name} {label:?} token count");
        assert_eq!(got.truncated, case["truncated"].as_bool().expect("truncated"), "{name} {label:?} truncated");
    }
}

fn check_logits(name: &str) {
    let golden = golden(name);
    let cases = cases(&golden);
    let model = model(name);
    let texts: Vec<&str> = cases.iter().map(|(t, _)| *t).collect();
    for ((text, case), got) in cases.iter().zip(model.classify(&texts).expect("classifies")) {
        let want = floats(&case["logits"]);
        let label = text.chars().take(30).collect::<String>();
        assert!(
            max_abs_diff(&got.logits, &want) < TOLERANCE,
            "{name} {label:?}: logits differ by {}",
            max_abs_diff(&got.logits, &want)
        );
        assert_eq!(got.tokens as u64, case["tokens"].as_u64().expect("tokens"), "{name} {label:?} token count");
        assert_eq!(got.truncated, case["truncated"].as_bool().expect("truncated"));
    }
}

#[test]
fn minilm_embeddings_match_python() {
    check_embeddings("minilm-l6-v2");
}

#[test]
fn support_triage_logits_match_python() {
    check_logits("support-triage");
}

#[test]
fn fixture_multilabel_logits_match_python() {
    check_logits("tiny-multilabel");
}

#[test]
fn fixture_cls_embeddings_match_python() {
    check_embeddings("tiny-cls-embed");
}

#[test]
fn long_input_is_truncated_at_the_models_limit() {
    let text = "word ".repeat(20_000);
    let minilm = model("minilm-l6-v2").embed(&[&text]).expect("embeds").remove(0);
    assert!(minilm.truncated);
    assert_eq!(minilm.tokens, 256, "benchtop.json sets max_length 256");
    // The fixture's tokenizer.json allows 512 tokens; its model has 64 positions and must not
    // be fed more.
    let fixture = model("tiny-multilabel").classify(&[&text]).expect("classifies").remove(0);
    assert!(fixture.truncated);
    assert_eq!(fixture.tokens, 64);
}

#[test]
fn fixed_padding_in_tokenizer_json_is_overridden() {
    // The fixture tokenizer pins padding to 16: a 3-token input must run as 3 tokens, and a
    // batch pads only to its longest member.
    let model = model("tiny-multilabel");
    let batch = model
        .encode(&["hi", "a somewhat longer sentence with quite a few more tokens in it than sixteen"])
        .expect("encodes")
        .remove(0);
    let short = batch.tokens[0];
    assert!(short < 16, "the short text runs unpadded: {short} tokens");
    assert!(batch.tokens[1] > 16, "and the long one is not cut at 16");
    assert_eq!(batch.seq, batch.tokens[1], "the batch pads to its longest member");
    let first_row_mask: Vec<i64> = (0..batch.seq).map(|i| i64::from(i < short)).collect();
    assert_eq!(batch.attention_mask[..batch.seq], first_row_mask[..]);
}

#[test]
fn default_models_run_batches_as_packed_rows() {
    // benchtop.json declares `packed_batches`: several texts run as one unpadded row, each marked
    // in the mask by its number and counted from position 0; a lone text runs as usual.
    let texts = ["short one", "How do I enable two-factor authentication?", "ok"];
    for name in ["minilm-l6-v2", "support-triage"] {
        let model = model(name);
        assert!(model.folder().packed_batches, "{name}");
        let batches = model.encode(&texts).expect("encodes");
        assert_eq!(batches.len(), 1, "{name}: three short texts fit one row");
        let row = &batches[0];
        assert!(row.packed());
        assert_eq!((row.batch, row.seq), (1, row.tokens.iter().sum::<usize>()), "{name}: no padding");
        let numbers: Vec<i64> = row.tokens.iter().enumerate().flat_map(|(k, &n)| vec![k as i64 + 1; n]).collect();
        assert_eq!(row.attention_mask, numbers);
        let positions: Vec<i64> = row.tokens.iter().flat_map(|&n| 0..n as i64).collect();
        assert_eq!(row.position_ids, positions);
        let alone = model.encode(&texts[..1]).expect("encodes").remove(0);
        assert!(!alone.packed() && alone.attention_mask.iter().all(|&m| m == 1));
    }
    // Long lists run as batches of at most max_batch (32) texts, one run each, laid out in rows
    // that end within one text of each other.
    let long: Vec<String> = (0..40).map(|i| format!("message number {i} about a billing problem")).collect();
    let long: Vec<&str> = long.iter().map(String::as_str).collect();
    let batches = model("support-triage").encode(&long).expect("encodes");
    assert_eq!(batches.iter().map(|b| b.texts()).collect::<Vec<_>>(), vec![32, 8]);
    for batch in &batches {
        assert!(batch.packed());
        let longest = batch.tokens.iter().max().unwrap();
        let padding = batch.attention_mask.iter().filter(|&&m| m == 0).count();
        assert!(padding < batch.batch * longest, "rows {} × {} tokens, {padding} padding", batch.batch, batch.seq);
    }
    assert!(batches[0].batch > 1, "32 texts are not one long row");
}

#[test]
fn packed_rows_answer_as_texts_run_alone() {
    // Classification pools inside the graph (one output row per row and text number);
    // embeddings pool here. Either way a text's answer must not depend on the texts packed next
    // to it — in its own row or in another row of the same run.
    let texts = [
        "My card was charged twice",
        "",
        "The app crashes when I upload a photo",
        "日本語のテキスト",
        "ok",
        "How do I export my invoices for the last financial year as a spreadsheet?",
        "The dashboard takes more than a minute to load since yesterday's update",
        "Please cancel my subscription at the end of this billing period",
        "Can I add a second admin to our workspace?",
        "two-factor codes never arrive by SMS",
    ];
    let triage = model("support-triage");
    let batches = triage.encode(&texts).expect("encodes");
    assert!(batches.len() == 1 && batches[0].packed() && batches[0].batch > 1, "one run of several packed rows");
    let together = triage.classify(&texts).expect("classifies");
    for (text, got) in texts.iter().zip(&together) {
        let alone = triage.classify(&[text]).expect("classifies").remove(0);
        let diff = max_abs_diff(&got.logits, &alone.logits);
        assert!(diff < 1e-5, "{text:?}: packed with others, logits moved by {diff}");
        assert_eq!(got.top().label, alone.top().label);
        assert_eq!(got.tokens, alone.tokens);
    }
    let minilm = model("minilm-l6-v2");
    let together = minilm.embed(&texts).expect("embeds");
    for (text, got) in texts.iter().zip(&together) {
        let alone = minilm.embed(&[text]).expect("embeds").remove(0);
        let diff = max_abs_diff(&got.vector, &alone.vector);
        assert!(diff < 1e-5, "{text:?}: packed with others, embedding moved by {diff}");
    }
}

#[test]
fn results_do_not_depend_on_batch_company_or_size() {
    let long = "The export to PDF produces a blank document whenever the report has more than twenty pages of charts. "
        .repeat(3);
    let texts = ["short one", long.as_str(), "How do I enable two-factor authentication?", "", "ok"];
    for name in ["minilm-l6-v2", "tiny-cls-embed"] {
        let alone: Vec<Vec<f32>> =
            texts.iter().map(|t| model(name).embed(&[t]).expect("embeds").remove(0).vector).collect();
        for max_batch in [1, 2, 32] {
            let engine = engine_with(EngineOptions { max_batch });
            let together = engine.model(name).expect("loads").embed(&texts).expect("embeds");
            for (i, got) in together.iter().enumerate() {
                let diff = max_abs_diff(&got.vector, &alone[i]);
                assert!(diff < 1e-5, "{name} text {i} at max_batch {max_batch}: padding changed the answer by {diff}");
            }
        }
    }
}
