//! The model-map rewrite: never panics, and when it rewrites, the result still
//! parses and differs from the input only in the model value.
#![no_main]
use claudeflare_actors::providers::rewrite_model;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(out) = rewrite_model(data, "glm-4.6") {
        let v: serde_json::Value = serde_json::from_slice(&out).expect("still JSON");
        assert_eq!(v["model"], "glm-4.6");
    }
});
