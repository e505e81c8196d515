//! `kubeguard audit-report`: what kubeguard would have done with real traffic, from the
//! apiserver audit log a cluster already has (k8s-facts §6).
//!
//! - [`reader`]: audit.k8s.io/v1 Event JSON lines, plain or gzip, streamed line by line;
//! - [`analysis`]: each request through kubeguard's classifier, cost estimate, policy and
//!   limits; per-client totals in the gateway's own bounded ledger;
//! - [`windows`]: cost per client over time, bounded;
//! - [`counts`]: object counts per resource that price LISTs (`--object-counts`);
//! - [`report`]: the result as a terminal table or JSON; [`html`]: one self-contained page.
//!
//! Memory is flat in the size of the log: one line buffer, bounded per-client state.

pub mod analysis;
pub mod counts;
pub mod html;
pub mod reader;
pub mod report;
pub mod windows;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::config::FileConfig;

/// `kubeguard audit-report` flags.
#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// Audit log files (JSON lines, plain or gzip), read in order.
    #[arg(long = "audit-log", required = true, num_args = 1..)]
    pub audit_log: Vec<PathBuf>,
    /// kubeguard config whose policy and limits are replayed (default: the built-in defaults).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Objects per resource, to price LISTs: JSON (`{"pods": 12000}`) or
    /// `apiserver_storage_objects` lines from the apiserver's /metrics.
    #[arg(long)]
    pub object_counts: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Width of a time window (`30s`, `1m`, `1h`); widened automatically for long logs.
    #[arg(long, default_value = "1m", value_parser = parse_window)]
    pub window: Duration,
    /// The apiserver's version when the log was written: selects which LISTs etcd served
    /// (k8s-facts §1).
    #[arg(long, default_value = "v1.30")]
    pub server_version: String,
    /// Clients shown by name; the rest are summed in "other".
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Write the report here instead of stdout.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Html,
}

fn parse_window(s: &str) -> Result<Duration, String> {
    let d = crate::config::duration::parse(s)?;
    if d < Duration::from_secs(1) {
        return Err("the window must be at least 1s".into());
    }
    Ok(d)
}

/// Runs the report; errors are messages for the terminal.
pub fn run(args: &ReportArgs) -> Result<(), String> {
    // The guards log each decision for the live gateway; replaying a log would print one line
    // per rewritten LIST. The report says it all.
    let quiet = tracing::subscriber::NoSubscriber::default();
    let report = tracing::subscriber::with_default(quiet, || analyse(args))?;
    let text = match args.format {
        Format::Table => report.table(),
        Format::Json => serde_json::to_string_pretty(&report)
            .map_err(|e| format!("cannot encode the report: {e}"))?,
        Format::Html => html::render(&report),
    };
    match &args.output {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            // A closed pipe (`| head`) is not an error worth reporting.
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
    }
    Ok(())
}

/// Reads every file and builds the report.
pub fn analyse(args: &ReportArgs) -> Result<report::Report, String> {
    let config = match &args.config {
        Some(path) => FileConfig::load(path).map_err(|e| e.to_string())?,
        None => FileConfig::default(),
    };
    let policy =
        crate::policy::Policy::compile(&config.policy).map_err(|e| format!("policy: {e}"))?;
    let counts = match &args.object_counts {
        Some(p) => counts::ObjectCounts::load(p)?,
        None => counts::ObjectCounts::default(),
    };
    let minor = crate::guards::upstream_facts::minor_of(&args.server_version).ok_or_else(|| {
        format!(
            "--server-version {:?}: expected v1.MINOR",
            args.server_version
        )
    })?;
    let counts_given = !counts.is_empty();
    let mut analysis = analysis::Analysis::new(analysis::Settings {
        policy,
        limits: config.limits.clone(),
        max_clients: config.cost.max_clients,
        max_keys_per_client: config.cost.max_keys_per_client,
        minor,
        counts,
        window: args.window,
    });
    let mut reader = reader::Reader::new(&args.audit_log);
    for path in &args.audit_log {
        reader.read(path, |ev| analysis.event(ev))?;
    }
    reader.finish();
    Ok(report::Report::build(
        analysis,
        reader.stats,
        report::Context {
            top: args.top,
            minor,
            counts_given,
            limits_mode: config.limits.mode,
        },
    ))
}
