//! What several load tests share: the kubeguard binary they run as a child process, its RSS,
//! and the seconds-per-phase argument. Included with `#[path = "support.rs"] mod support;`.
#![allow(dead_code)]

use std::path::PathBuf;

/// The `kubeguard` binary beside `target/<profile>/examples/` (or `$KUBEGUARD_BIN`); panics
/// with what to do when it has not been built.
pub fn kubeguard_bin() -> PathBuf {
    let bin: PathBuf = std::env::var_os("KUBEGUARD_BIN").map_or_else(
        || {
            // target/<profile>/examples/NAME → target/<profile>/kubeguard
            let exe = std::env::current_exe().expect("the example's own path");
            exe.parent()
                .and_then(|p| p.parent())
                .expect("an example runs from target/<profile>/examples")
                .join("kubeguard")
        },
        Into::into,
    );
    assert!(
        bin.exists(),
        "{} missing: cargo build --release first",
        bin.display()
    );
    bin
}

/// Resident memory of process `pid` in KiB (0 when it cannot be read).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The first command-line argument as seconds, `default` when absent, kept within `min..=max`.
pub fn seconds_arg(default: u64, min: u64, max: u64) -> u64 {
    std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
        .clamp(min, max)
}
