//! The model-map rewrite: never panics, and a body that was valid JSON stays valid
//! JSON carrying the new model. (A body serde_json cannot represent, e.g. with an
//! out-of-range number, is still rewritten byte-wise: the upstream judges it.)
#![no_main]
use claudeflare_actors::providers::rewrite_model;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(out) = rewrite_model(data, "glm-4.6") else {
        return;
    };
    if let Ok(serde_json::Value::Object(_)) = serde_json::from_slice::<serde_json::Value>(data) {
        let v: serde_json::Value = serde_json::from_slice(&out).expect("still JSON");
        assert_eq!(v["model"], "glm-4.6");
    }
});
