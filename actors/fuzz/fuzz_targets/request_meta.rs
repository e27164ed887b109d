//! Reading model, stream flag and session from a request body: never panics.
#![no_main]
use claudeflare_actors::protocol::RequestMeta;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let meta = RequestMeta::from_body(data);
    if let Some(model) = &meta.model {
        assert!(!model.is_empty() || data.windows(2).any(|w| w == b"\"\""));
    }
});
