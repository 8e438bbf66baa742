//! Token prices, to turn usage into cost. The user's table (`prices.json` in the data directory)
//! replaces or adds models; the built-in one is only a starting point.
//!
//! ```json
//! {"gpt-4o-mini": {"input_per_mtok": 0.15, "output_per_mtok": 0.60}}
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::TokenUsage;

/// US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

/// Prices by model id. A model id matches its own entry, else the longest entry it starts with
/// (`gpt-4o-mini-2024-07-18` is priced as `gpt-4o-mini`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PriceTable(pub BTreeMap<String, Price>);

/// Published list prices as last known when this was written (2025); they could not be checked
/// from this machine, and prices change: `prices.json` overrides any of them.
const BUILT_IN: &[(&str, f64, f64)] = &[
    ("gpt-4o", 2.50, 10.00),
    ("gpt-4o-mini", 0.15, 0.60),
    ("gpt-4.1", 2.00, 8.00),
    ("gpt-4.1-mini", 0.40, 1.60),
    ("gpt-4.1-nano", 0.10, 0.40),
    ("claude-3-5-haiku", 0.80, 4.00),
    ("claude-haiku-4-5", 1.00, 5.00),
    ("claude-sonnet-4", 3.00, 15.00),
    ("claude-sonnet-4-5", 3.00, 15.00),
    ("claude-opus-4", 15.00, 75.00),
];

impl PriceTable {
    pub fn built_in() -> PriceTable {
        PriceTable(
            BUILT_IN
                .iter()
                .map(|&(model, input, output)| {
                    (model.to_string(), Price { input_per_mtok: input, output_per_mtok: output })
                })
                .collect(),
        )
    }

    /// The built-in table with `path`'s entries on top, if the file exists.
    pub fn load(path: &Path) -> Result<PriceTable, String> {
        let mut table = PriceTable::built_in();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(table),
            Err(e) => return Err(format!("{} cannot be read: {e}", path.display())),
        };
        let user: BTreeMap<String, Price> = serde_json::from_str(&text).map_err(|e| {
            format!(
                "{} is not a valid price table ({e}); it maps model ids to {{\"input_per_mtok\": …, \"output_per_mtok\": …}}",
                path.display()
            )
        })?;
        if let Some((model, _)) = user.iter().find(|(_, p)| !(p.input_per_mtok >= 0.0 && p.output_per_mtok >= 0.0)) {
            return Err(format!("{}: the price of `{model}` must not be negative", path.display()));
        }
        table.0.extend(user);
        Ok(table)
    }

    pub fn price(&self, model: &str) -> Option<Price> {
        if let Some(price) = self.0.get(model) {
            return Some(*price);
        }
        self.0
            .iter()
            .filter(|(name, _)| model.starts_with(name.as_str()) && model[name.len()..].starts_with(['-', '@', ':']))
            .max_by_key(|(name, _)| name.len())
            .map(|(_, price)| *price)
    }

    pub fn cost(&self, model: &str, usage: TokenUsage) -> Option<f64> {
        let price = self.price(model)?;
        Some((usage.input as f64 * price.input_per_mtok + usage.output as f64 * price.output_per_mtok) / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_take_their_family_price_and_the_user_table_wins() {
        let table = PriceTable::built_in();
        let usage = TokenUsage { input: 1_000_000, output: 500_000 };
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-9);
        assert!(close(table.cost("gpt-4o-mini-2024-07-18", usage), 0.45));
        assert!(close(table.cost("gpt-4o-2024-08-06", usage), 7.5));
        assert_eq!(table.cost("llama3.2", usage), None);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("prices.json");
        std::fs::write(&path, r#"{"llama3.2": {"input_per_mtok": 0, "output_per_mtok": 0}, "gpt-4o-mini": {"input_per_mtok": 1, "output_per_mtok": 1}}"#).expect("write");
        let table = PriceTable::load(&path).expect("loads");
        assert_eq!(table.cost("llama3.2", usage), Some(0.0));
        assert!(close(table.cost("gpt-4o-mini", usage), 1.5));
        std::fs::write(&path, r#"{"x": {"input_per_mtok": -1, "output_per_mtok": 0}}"#).expect("write");
        assert!(PriceTable::load(&path).expect_err("negative").contains("must not be negative"));
        std::fs::write(&path, "{").expect("write");
        assert!(PriceTable::load(&path).expect_err("bad JSON").contains("not a valid price table"));
        assert_eq!(PriceTable::load(&dir.path().join("none.json")).expect("missing is fine"), PriceTable::built_in());
    }
}
