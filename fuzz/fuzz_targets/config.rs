//! Fuzz the config loader (`FileConfig::from_yaml`, the policy compiler) and hot reload.
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run config -- -max_total_time=60 -dict=fuzz/config.dict`
//! from the repository root (seed corpus in `fuzz/corpus/config/`: the shipped configs and
//! fragments of them).
//!
//! Beyond "never panics" it checks what `serve`, `check-config` and reload rely on: a config
//! that loads has a policy that compiles and describes itself, and reloading any input through
//! the real `reload_now` either installs the new policy or leaves the running one in place,
//! untouched.

#![no_main]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use kubeguard::config::FileConfig;
use kubeguard::metrics::Metrics;
use kubeguard::policy::reload::reload_now;
use kubeguard::policy::{Policy, PolicySection, PolicyStore};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    path: PathBuf,
    store: PolicyStore,
    metrics: Metrics,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let path =
            std::env::temp_dir().join(format!("kubeguard-fuzz-config-{}.yaml", std::process::id()));
        Fixture {
            path,
            store: PolicyStore::new(Policy::compile(&PolicySection::default()).expect("compiles")),
            metrics: Metrics::new(),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(config) = FileConfig::from_yaml(text, "fuzz")
    {
        // Validated at load: the policy compiles, as check-config and serve then do.
        let policy = Policy::compile(&config.policy).expect("a loaded config's policy compiles");
        let _ = policy.describe();
    }

    // Reload: whatever the file holds, the store ends with either the running policy (the very
    // same Arc) or the file's.
    let before = f.store.load();
    if std::fs::write(&f.path, data).is_err() {
        return;
    }
    let replaced = reload_now(&f.path, &f.store, &f.metrics);
    let after = f.store.load();
    if replaced {
        assert!(
            !Arc::ptr_eq(&before, &after),
            "a reload that succeeded kept the old policy"
        );
        assert!(std::str::from_utf8(data).is_ok_and(|t| FileConfig::from_yaml(t, "x").is_ok()));
        // Back to the known running policy for the next input.
        f.store
            .store(Policy::compile(&PolicySection::default()).expect("compiles"));
    } else {
        assert!(
            Arc::ptr_eq(&before, &after),
            "a failed reload touched the running policy"
        );
    }
});
