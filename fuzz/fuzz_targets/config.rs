//! Config loading on arbitrary input: a user file's text, then `STREAMREC__…=value` lines after a NUL byte as
//! the environment. Settings load or are refused naming the key; settings that load build an engine.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamrec_settings::Config;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else { return };
    let (file, env) = text.split_once('\0').unwrap_or((text, ""));
    let vars = env.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (format!("STREAMREC__{k}"), v.to_string()));
    if let Ok(cfg) = Config::from_sources(Some(("fuzz.toml", file)), vars) {
        let core = cfg.core();
        core.check().expect("loaded settings pass the engine's check");
        engine::pipeline::Pipeline::new(&core).expect("settings that load build an engine");
    }
});
