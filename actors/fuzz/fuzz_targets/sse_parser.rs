//! The SSE usage parser, fed arbitrary bytes split at arbitrary points: never
//! panics, and the split does not change what it finds.
#![no_main]
use claudeflare_actors::protocol::SseUsageParser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut_seed, stream)) = data.split_first() else {
        return;
    };
    let mut whole = SseUsageParser::new();
    whole.feed(stream);
    let mut pieces = SseUsageParser::new();
    let step = usize::from(cut_seed).max(1);
    for chunk in stream.chunks(step) {
        pieces.feed(chunk);
    }
    assert_eq!(whole.usage(), pieces.usage());
    assert_eq!(whole.model(), pieces.model());
    assert_eq!(whole.is_complete(), pieces.is_complete());
    assert_eq!(whole.error(), pieces.error());
});
