//! Engine behaviour on real models: tasks, scores, sharing, threads, and clear errors for broken
//! model folders and runtimes.

mod common;

use std::sync::Arc;

use benchtop_core::engine::{locate_library, Activation, Catalog, EngineError, ErrorKind, ModelFolder, Runtime, Task};
use common::*;

#[test]
fn classifier_scores_are_a_distribution_best_first() {
    let results = model("support-triage")
        .classify(&["I was charged twice for my subscription", "The app crashes when I open the settings page"])
        .expect("classifies");
    assert_eq!(results[0].top().label, "billing");
    assert_eq!(results[1].top().label, "technical");
    for r in &results {
        assert_eq!(r.activation, Activation::Softmax);
        assert_eq!(r.scores.len(), 6);
        assert!((r.scores.iter().map(|s| s.score).sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(r.scores.windows(2).all(|w| w[0].score >= w[1].score));
    }
}

#[test]
fn multilabel_scores_are_independent_sigmoids() {
    let model = model("tiny-multilabel");
    let Task::Classification { activation, .. } = &model.folder().task else { panic!("classifier") };
    assert_eq!(*activation, Activation::Sigmoid);
    let r = model.classify(&["urgent: refund the double charge now"]).expect("classifies").remove(0);
    for s in &r.scores {
        let i = ["urgent", "money", "bug", "positive"].iter().position(|l| *l == s.label).expect("known label");
        assert!((s.score - 1.0 / (1.0 + (-r.logits[i]).exp())).abs() < 1e-6);
    }
}

#[test]
fn embeddings_are_unit_length_and_related_texts_are_closer() {
    let v = model("minilm-l6-v2")
        .embed(&["How do I reset my password?", "I forgot my password and cannot log in", "Do you sell gift cards?"])
        .expect("embeds");
    for e in &v {
        assert_eq!(e.vector.len(), 384);
        assert!((e.vector.iter().map(|x| x * x).sum::<f32>().sqrt() - 1.0).abs() < 1e-4);
    }
    let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    assert!(cos(&v[0].vector, &v[1].vector) > cos(&v[0].vector, &v[2].vector) + 0.2);
}

#[test]
fn wrong_task_is_refused_with_a_clear_error() {
    let err = model("minilm-l6-v2").classify(&["hello"]).expect_err("embedding model cannot classify");
    assert_eq!(err.kind(), ErrorKind::Input);
    assert_eq!(err.to_string(), "model `minilm-l6-v2` is an embedding model; this needs a classification model");
    assert!(model("support-triage").embed(&["hello"]).is_err());
}

#[test]
fn a_model_is_loaded_once_and_shared_across_threads() {
    let engine = Arc::new(engine_with(Default::default()));
    let first = engine.model("support-triage").expect("loads");
    assert!(Arc::ptr_eq(&first, &engine.model("support-triage").expect("loads")));
    let by_path = engine.model(first.folder().dir.to_str().expect("utf8 path")).expect("loads by path");
    assert!(Arc::ptr_eq(&first, &by_path), "a path to the same folder shares the loaded model");
    let texts = ["refund my money", "the page is blank", "add a dark mode please", "are you hiring?"];
    let sequential: Vec<String> =
        texts.iter().map(|t| first.classify(&[t]).expect("ok").remove(0).top().label.clone()).collect();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let engine = Arc::clone(&engine);
            std::thread::spawn(move || {
                let model = engine.model("support-triage").expect("loads");
                (0..5)
                    .map(|_| {
                        model
                            .classify(&texts)
                            .expect("ok")
                            .into_iter()
                            .map(|c| c.top().label.clone())
                            .collect::<Vec<_>>()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for handle in handles {
        for labels in handle.join().expect("thread did not panic") {
            assert_eq!(labels, sequential);
        }
    }
}

#[test]
fn missing_files_are_named_with_the_fix() {
    for (file, needle) in [
        ("model.onnx", "model.onnx is missing"),
        ("tokenizer.json", "tokenizer.json is missing"),
        ("config.json", "config.json is missing"),
    ] {
        let (_tmp, dir) = scratch_copy("tiny-multilabel");
        std::fs::remove_file(dir.join(file)).expect("remove");
        let err = ModelFolder::open(&dir).expect_err("incomplete folder");
        assert_eq!(err.kind(), ErrorKind::InvalidModel);
        let msg = err.to_string();
        assert!(msg.contains(needle) && msg.contains(&dir.display().to_string()), "{msg}");
        assert!(msg.contains("Optimum"), "says what a folder needs: {msg}");
    }
}

#[test]
fn corrupt_model_onnx_is_reported_with_its_path() {
    let (_tmp, dir) = scratch_copy("tiny-multilabel");
    let bytes = std::fs::read(dir.join("model.onnx")).expect("read");
    std::fs::write(dir.join("model.onnx"), &bytes[..bytes.len() / 3]).expect("truncate");
    let engine = engine_with(Default::default());
    let err = engine.model(dir.to_str().expect("utf8 path")).err().expect("truncated model fails");
    assert!(matches!(err, EngineError::ModelLoad { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&dir.join("model.onnx").display().to_string()) && msg.contains("corrupt"), "{msg}");

    std::fs::write(dir.join("model.onnx"), b"this is not a protobuf").expect("write");
    assert!(matches!(engine.model(dir.to_str().expect("utf8")).err(), Some(EngineError::ModelLoad { .. })));
}

#[test]
fn corrupt_tokenizer_and_config_are_reported() {
    let (_tmp, dir) = scratch_copy("tiny-multilabel");
    std::fs::write(dir.join("tokenizer.json"), b"{\"version\": \"1.0\", \"model\": ").expect("write");
    let err = engine_with(Default::default()).model(dir.to_str().expect("utf8")).err().expect("bad tokenizer");
    assert!(matches!(err, EngineError::TokenizerLoad { .. }), "{err:?}");
    assert!(err.to_string().contains("tokenizer.json"));

    let (_tmp2, dir) = scratch_copy("tiny-multilabel");
    std::fs::write(dir.join("config.json"), b"{not json").expect("write");
    assert!(ModelFolder::open(&dir).expect_err("bad config").to_string().contains("config.json is not valid JSON"));

    std::fs::write(dir.join("config.json"), br#"{"architectures": ["BertForSequenceClassification"]}"#).expect("write");
    assert!(ModelFolder::open(&dir).expect_err("no labels").to_string().contains("no `id2label`"));

    std::fs::write(dir.join("config.json"), br#"{"architectures": ["BertModel"]}"#).expect("write");
    std::fs::write(dir.join("benchtop.json"), br#"{"task": "embedding", "poolin": "cls"}"#).expect("write");
    assert!(ModelFolder::open(&dir).expect_err("typo in manifest").to_string().contains("unknown field `poolin`"));
}

#[test]
fn manifest_overrides_config() {
    let folder = ModelFolder::open(&fixture("tiny-cls-embed")).expect("opens");
    assert_eq!(
        folder.task,
        Task::Embedding { pooling: benchtop_core::engine::Pooling::Cls, normalize: false, dimensions: Some(32) }
    );
    assert_eq!(folder.max_length, 64);
    let (_tmp, dir) = scratch_copy("tiny-cls-embed");
    std::fs::write(dir.join("benchtop.json"), br#"{"max_length": 65}"#).expect("write");
    assert!(ModelFolder::open(&dir)
        .expect_err("beyond positions")
        .to_string()
        .contains("between 1 and the model's 64 positions"));
}

#[test]
fn catalog_lists_valid_and_invalid_folders_and_names_what_exists() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(tmp.path().join("broken")).expect("mkdir");
    std::fs::write(tmp.path().join("broken/config.json"), b"{}").expect("write");
    let catalog = Catalog::new(vec![tmp.path().to_path_buf(), repo().join("models/fixtures")]);
    let entries = catalog.list();
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["broken", "tiny-cls-embed", "tiny-gpt2", "tiny-multilabel", "tiny-qwen2"]);
    assert!(entries[0].folder.is_err() && entries[1].folder.is_ok());
    let err = catalog.find("nope").expect_err("unknown");
    assert_eq!(err.kind(), ErrorKind::ModelNotFound);
    assert!(
        err.to_string().contains("available: broken, tiny-cls-embed, tiny-gpt2, tiny-multilabel, tiny-qwen2"),
        "{err}"
    );
    // A name in an earlier directory shadows the same name later on.
    let (_shadow, dir) = scratch_copy("tiny-multilabel");
    let catalog = Catalog::new(vec![dir.parent().expect("parent").to_path_buf(), repo().join("models/fixtures")]);
    assert_eq!(catalog.find("tiny-multilabel").expect("found").dir, dir);
}

#[test]
fn runtime_location_errors_name_the_paths_and_the_fix() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let err = locate_library(Some(&tmp.path().join("nope.so")), &dirs()).expect_err("missing");
    assert_eq!(err.kind(), ErrorKind::Runtime);
    let msg = err.to_string();
    assert!(msg.contains("nope.so") && msg.contains("./dev start") && msg.contains("BENCHTOP_ORT_LIB"), "{msg}");
    // An empty folder given explicitly is an error too, not a reason to look elsewhere.
    assert!(locate_library(Some(tmp.path()), &dirs()).is_err());
    // A folder holding the library is accepted.
    let found = locate_library(None, &dirs()).expect("the test setup fetched ONNX Runtime");
    assert_eq!(locate_library(found.parent(), &dirs()).expect("found in folder"), found);
}

#[test]
fn one_runtime_per_process() {
    let first = runtime();
    assert_eq!(runtime().library(), first.library());
    assert_eq!(first.version(), "1.32.0");
    let other = dirs().runtimes().join("1.20.1/libonnxruntime.so.1.20.1");
    let err = Runtime::load(&other, &Default::default()).err().expect("a second library is refused");
    assert!(err.to_string().contains("already loaded"), "{err}");
}

#[test]
fn fingerprints_are_remembered_until_the_model_file_changes() {
    let (_tmp, dir) = scratch_copy("tiny-cls-embed");
    let folder = ModelFolder::open(&dir).expect("folder");
    let first = folder.fingerprint().expect("fingerprint");
    assert!(first.starts_with("sha256:") && first.len() == 7 + 64, "{first}");
    assert_eq!(folder.fingerprint().expect("again"), first, "asked again: the same");
    // A replaced model file (other content, so another size) gets its own fingerprint.
    let mut bytes = std::fs::read(dir.join("model.onnx")).expect("read");
    bytes.extend_from_slice(b"\0");
    std::fs::write(dir.join("model.onnx"), &bytes).expect("write");
    let changed = folder.fingerprint().expect("changed");
    assert_ne!(changed, first);
    use sha2::Digest;
    let want =
        format!("sha256:{}", sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect::<String>());
    assert_eq!(changed, want, "the digest of the file as it is now");
}
