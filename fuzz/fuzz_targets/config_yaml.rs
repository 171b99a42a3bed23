//! The configuration loader's YAML side: `serde_yaml` into `etagate::config::schema::ConfigFile`,
//! the position index (`config::locate::SpanIndex::build`) and the error rewriter
//! (`config::error::from_serde`) on failure. Input: the file text (non-UTF-8 input is skipped,
//! as `load_file` refuses it before parsing).
//!
//! Then the whole pure check, `config::parse` (schema to checked model: no DNS, no files; those
//! belong to `runtime::instantiate`, which is left out).
//!
//! Asserts: an error renders as `FILE:LINE:COL: message` or `FILE: message` with a non-empty
//! message, positions (the error's and the index's) are 1-based, a successful parse is
//! deterministic, describing any located path gives a non-empty text, and a config that passes
//! the check has listeners, routes, and an upstream for every route.
#![no_main]

use etagate::config::error::{describe_path, from_serde};
use etagate::config::locate::SpanIndex;
use etagate::config::schema::ConfigFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The whole check: a valid model or located errors, never a panic.
    match etagate::config::parse("fuzz.yaml", text, etagate::config::ConfigSource::QuickMode) {
        Ok(config) => {
            // A checked config has what a gateway needs, and no route names a missing upstream.
            assert!(!config.listeners.is_empty() && !config.routes.is_empty());
            for r in &config.routes {
                assert!(config.upstreams.contains_key(&r.upstream), "{}", r.upstream);
            }
        }
        Err(errors) => {
            for e in &errors.0 {
                assert!(e.to_string().starts_with("fuzz.yaml"), "{e}");
            }
        }
    }
    let index = SpanIndex::build(text);
    // Positions are 1-based. No upper bound is asserted: the line numbers come from the YAML
    // libraries, which count YAML 1.1 breaks (CR, NEL, U+2028, U+2029) their own ways (a lone
    // U+2029 is reported on line 5); etagate only relays them.
    for path in [
        "",
        "listeners",
        "listeners[0].address",
        "routes[0].name",
        "upstreams",
    ] {
        if let Some(p) = index.value(path) {
            assert!(p.line >= 1 && p.column >= 1, "{path} at {p:?}");
        }
        let _ = index.key(path);
        let _ = index.scalar(path);
        assert!(!describe_path(path, &index).is_empty());
    }
    match serde_yaml::from_str::<ConfigFile>(text) {
        Ok(file) => {
            // deserializing is deterministic
            let again: ConfigFile = serde_yaml::from_str(text).expect("parsed once");
            assert_eq!(again, file);
        }
        Err(e) => {
            let err = from_serde("fuzz.yaml", &e, &index);
            assert!(!err.message.is_empty(), "empty message for {e}");
            let shown = err.to_string();
            assert!(shown.starts_with("fuzz.yaml:"), "{shown}");
            if let Some(p) = err.position {
                assert!(p.line >= 1 && p.column >= 1, "error at {p:?}");
            }
        }
    }
});
