//! The config parser (`Config::from_toml_str`, the file layer of `Config::load`):
//! arbitrary text never panics, and gives either a config that validates or an error
//! of one non-empty line (what the daemon prints when it refuses to start).
#![no_main]
use claudeflare::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A config file that is not UTF-8 is refused when it is read, before parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_toml_str(text) {
        Ok(config) => assert!(config.validate().is_ok(), "{text:?}"),
        Err(e) => {
            let message = e.to_string();
            assert!(!message.trim().is_empty(), "{text:?}");
            assert!(
                !message.contains(['\n', '\r']),
                "{text:?} gives several lines: {message:?}"
            );
        }
    }
});
