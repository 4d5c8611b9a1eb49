//! Feeds arbitrary text to the config parser, as a mistyped or malicious
//! config file would: it must give a config or an error naming at least
//! one problem, one line per problem, never panic.
#![no_main]

use std::path::Path;

use laggmond::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(error) = Config::parse(text, Path::new("fuzz.yml")) {
        let shown = error.to_string();
        assert!(!shown.is_empty());
        assert!(!error.problems().is_empty());
        for problem in error.problems() {
            assert!(!problem.message.is_empty());
        }
        assert_eq!(
            shown.lines().count(),
            error.problems().len(),
            "one line per problem: {shown}"
        );
    }
});
