//! Seeded, label-stratified train/test splits keyed by input, so one input never lands in two
//! splits (no leakage), and the same seed always gives the same split.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitSpec {
    /// Fraction of inputs in `train` (the rest go to `test`), 0 < train < 1.
    pub train: f64,
    pub seed: u64,
}

/// Collects (input hash, label) in a first pass, then assigns each distinct input to a split:
/// within each label, inputs are ordered by a seeded hash and the first `train` share goes to
/// train. An input seen with several labels is stratified by the first.
#[derive(Default)]
pub(crate) struct Splitter {
    labels: HashMap<String, Option<String>>,
    assigned: HashMap<String, &'static str>,
}

impl Splitter {
    pub(crate) fn observe(&mut self, input_hash: &str, label: Option<&str>) {
        self.labels.entry(input_hash.to_string()).or_insert_with(|| label.map(str::to_string));
    }

    pub(crate) fn assign(&mut self, spec: SplitSpec) {
        let mut by_label: HashMap<Option<String>, Vec<(u64, String)>> = HashMap::new();
        for (hash, label) in self.labels.drain() {
            let key = seeded(spec.seed, &hash);
            by_label.entry(label).or_default().push((key, hash));
        }
        for (_, mut inputs) in by_label {
            inputs.sort();
            let train = ((inputs.len() as f64) * spec.train).round() as usize;
            for (i, (_, hash)) in inputs.into_iter().enumerate() {
                self.assigned.insert(hash, if i < train { "train" } else { "test" });
            }
        }
    }

    pub(crate) fn split_of(&self, input_hash: &str) -> &'static str {
        self.assigned.get(input_hash).copied().unwrap_or("test")
    }
}

fn seeded(seed: u64, input_hash: &str) -> u64 {
    let digest = Sha256::new().chain_update(seed.to_le_bytes()).chain_update(input_hash.as_bytes()).finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(bytes)
}
