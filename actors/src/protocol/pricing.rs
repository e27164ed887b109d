//! What tokens cost, per model family, in USD per million tokens.

use super::usage::Usage;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

/// Prices of one model family, USD per million tokens.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "PriceSpec")]
pub struct Price {
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    /// Cache writes that live 5 minutes (also used when the usage does not say which).
    pub cache_write_5m: f64,
    pub cache_write_1h: f64,
}

/// A price as written in the config file: input and output are required, the cache
/// prices default to Anthropic's multiples of the input price.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceSpec {
    input: f64,
    output: f64,
    cache_read: Option<f64>,
    cache_write_5m: Option<f64>,
    cache_write_1h: Option<f64>,
}

impl From<PriceSpec> for Price {
    fn from(s: PriceSpec) -> Self {
        let base = Price::new(s.input, s.output);
        Price {
            cache_read: s.cache_read.unwrap_or(base.cache_read),
            cache_write_5m: s.cache_write_5m.unwrap_or(base.cache_write_5m),
            cache_write_1h: s.cache_write_1h.unwrap_or(base.cache_write_1h),
            ..base
        }
    }
}

impl Price {
    pub const fn new(input: f64, output: f64) -> Self {
        Price {
            input,
            output,
            cache_read: input * 0.1,
            cache_write_5m: input * 1.25,
            cache_write_1h: input * 2.0,
        }
    }

    /// The same price with a cache-read rate that is not the usual 0.1x.
    const fn cache_read(self, per_mtok: f64) -> Self {
        Price {
            cache_read: per_mtok,
            ..self
        }
    }

    /// The cost of one request's usage.
    pub fn cost(&self, usage: &Usage) -> f64 {
        let per = |tokens: Option<i64>, price: f64| tokens.unwrap_or(0) as f64 * price;
        let writes = match usage.cache_creation {
            Some(split)
                if split.ephemeral_5m_input_tokens.is_some()
                    || split.ephemeral_1h_input_tokens.is_some() =>
            {
                per(split.ephemeral_5m_input_tokens, self.cache_write_5m)
                    + per(split.ephemeral_1h_input_tokens, self.cache_write_1h)
            }
            _ => per(usage.cache_creation_input_tokens, self.cache_write_5m),
        };
        (per(usage.input_tokens, self.input)
            + per(usage.output_tokens, self.output)
            + per(usage.cache_read_input_tokens, self.cache_read)
            + writes)
            / 1_000_000.0
    }
}

/// Bundled list prices of the Claude families, from Anthropic's pricing page as of
/// November 2026. Cache reads are 0.1x input, 5-minute writes 1.25x and 1-hour writes
/// 2x unless a family says otherwise. Haiku 5.5 is priced at its base tier (prompts up
/// to 100k tokens); longer prompts cost more and need a config override to be exact.
const BUNDLED: &[(&str, Price)] = &[
    ("claude-fable-5-1", Price::new(10.0, 50.0).cache_read(0.25)),
    ("claude-mythos-5-1", Price::new(10.0, 50.0).cache_read(0.25)),
    ("claude-fable", Price::new(10.0, 50.0).cache_read(1.0)),
    ("claude-mythos", Price::new(10.0, 50.0).cache_read(1.0)),
    ("claude-opus-5-5", Price::new(4.0, 20.0).cache_read(0.2)),
    ("claude-opus-5", Price::new(5.0, 25.0)),
    ("claude-opus-4-8", Price::new(5.0, 25.0)),
    ("claude-opus-4-7", Price::new(5.0, 25.0)),
    ("claude-opus-4-6", Price::new(5.0, 25.0)),
    ("claude-opus-4-5", Price::new(5.0, 25.0)),
    ("claude-opus-4-1", Price::new(15.0, 75.0)),
    ("claude-opus-4", Price::new(15.0, 75.0)),
    ("claude-sonnet-5-5", Price::new(2.0, 10.0).cache_read(0.1)),
    ("claude-sonnet-5", Price::new(2.0, 10.0)),
    ("claude-sonnet-4", Price::new(3.0, 15.0)),
    ("claude-3-7-sonnet", Price::new(3.0, 15.0)),
    ("claude-3-5-sonnet", Price::new(3.0, 15.0)),
    ("claude-haiku-5-5", Price::new(0.1, 0.5)),
    ("claude-haiku-4-5", Price::new(1.0, 5.0)),
    ("claude-3-5-haiku", Price::new(0.8, 4.0)),
    ("claude-3-haiku", Price::new(0.25, 1.25)),
    ("claude-3-opus", Price::new(15.0, 75.0)),
    ("claude-opus", Price::new(5.0, 25.0)),
    ("claude-sonnet", Price::new(3.0, 15.0)),
    ("claude-haiku", Price::new(1.0, 5.0)),
];

/// The price table: bundled families plus the config file's overrides, matched by the
/// longest family prefix so that dated ids (`claude-sonnet-4-5-20250929`) resolve.
#[derive(Debug)]
pub struct PriceTable {
    families: Vec<(String, Price)>,
    warned: Mutex<HashSet<String>>,
}

impl Default for PriceTable {
    fn default() -> Self {
        Self::with_overrides(&BTreeMap::new())
    }
}

impl PriceTable {
    /// The bundled table with `overrides` (family or exact id → price) on top.
    pub fn with_overrides(overrides: &BTreeMap<String, Price>) -> Self {
        let mut families: Vec<(String, Price)> = BUNDLED
            .iter()
            .filter(|(name, _)| !overrides.contains_key(*name))
            .map(|(name, price)| (name.to_string(), *price))
            .collect();
        families.extend(overrides.iter().map(|(n, p)| (n.clone(), *p)));
        // Longest prefix first, so the most specific family wins.
        families.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        Self {
            families,
            warned: Mutex::new(HashSet::new()),
        }
    }

    pub fn price(&self, model: &str) -> Option<&Price> {
        self.families
            .iter()
            .find(|(family, _)| model.starts_with(family.as_str()))
            .map(|(_, p)| p)
    }

    /// The cost in USD, or `None` for an unknown model (warned about once per model).
    pub fn cost(&self, model: &str, usage: &Usage) -> Option<f64> {
        match self.price(model) {
            Some(p) => Some(p.cost(usage)),
            None => {
                let first = self
                    .warned
                    .lock()
                    .map(|mut w| w.insert(model.to_string()))
                    .unwrap_or(false);
                if first {
                    tracing::warn!(
                        model,
                        "no price known for this model; its cost is recorded as null"
                    );
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::usage::CacheCreation;

    #[test]
    fn dated_ids_resolve_to_the_most_specific_family() {
        let t = PriceTable::default();
        assert_eq!(
            t.price("claude-opus-4-5-20251101").map(|p| p.input),
            Some(5.0)
        );
        assert_eq!(
            t.price("claude-opus-4-1-20250805").map(|p| p.input),
            Some(15.0)
        );
        assert_eq!(
            t.price("claude-sonnet-4-5-20250929").map(|p| p.output),
            Some(15.0)
        );
        assert_eq!(
            t.price("claude-3-5-haiku-20241022").map(|p| p.input),
            Some(0.8)
        );
        assert_eq!(t.price("claude-opus-5-5").map(|p| p.cache_read), Some(0.2));
        assert_eq!(
            t.price("claude-opus-5-20260724").map(|p| p.input),
            Some(5.0)
        );
        assert_eq!(t.price("claude-sonnet-4-6").map(|p| p.input), Some(3.0));
        assert_eq!(t.price("claude-sonnet-5-5").map(|p| p.output), Some(10.0));
        assert_eq!(
            t.price("claude-fable-5-1").map(|p| p.cache_read),
            Some(0.25)
        );
        assert_eq!(
            t.price("claude-mythos-preview").map(|p| p.input),
            Some(10.0)
        );
        assert!(t.price("gpt-4").is_none());
        assert_eq!(t.cost("gpt-4", &Usage::default()), None);
    }

    #[test]
    fn cache_writes_are_priced_by_lifetime() {
        let t = PriceTable::default();
        let usage = Usage {
            input_tokens: Some(1_000_000),
            output_tokens: Some(1_000_000),
            cache_read_input_tokens: Some(1_000_000),
            cache_creation_input_tokens: Some(2_000_000),
            cache_creation: Some(CacheCreation {
                ephemeral_5m_input_tokens: Some(1_000_000),
                ephemeral_1h_input_tokens: Some(1_000_000),
            }),
        };
        // Sonnet: 3 + 15 + 0.3 + 3.75 + 6
        let cost = t.cost("claude-sonnet-4-5", &usage).unwrap_or_default();
        assert!((cost - 28.05).abs() < 1e-9, "{cost}");
        let unsplit = Usage {
            cache_creation: None,
            ..usage
        };
        let cost = t.cost("claude-sonnet-4-5", &unsplit).unwrap_or_default();
        assert!((cost - (3.0 + 15.0 + 0.3 + 7.5)).abs() < 1e-9, "{cost}");
    }

    #[test]
    fn overrides_win() {
        let mut o = BTreeMap::new();
        o.insert("claude-sonnet-4-5".to_string(), Price::new(1.0, 2.0));
        o.insert("glm-4.6".to_string(), Price::new(0.5, 1.0));
        let t = PriceTable::with_overrides(&o);
        assert_eq!(
            t.price("claude-sonnet-4-5-20250929").map(|p| p.input),
            Some(1.0)
        );
        assert_eq!(t.price("glm-4.6").map(|p| p.output), Some(1.0));
    }
}
