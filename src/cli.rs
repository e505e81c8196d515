//! The command line: parses flags, sets up logging, and calls into the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::FileConfig;

#[derive(Parser, Debug)]
#[command(
    name = "kubeguard",
    version,
    about = "A Kubernetes API guardrail gateway: sits between clients and kube-apiserver, \
             rewrites unversioned LISTs, rate-limits by cost, guards destructive deletes and \
             records who costs what."
)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the gateway in front of an apiserver.
    Serve(ServeArgs),
    /// Run the emulated Kubernetes API server (for tests, load tests and trying kubeguard).
    Sim(SimArgs),
    /// The emulated apiserver with kubeguard in front and a kubeconfig to try.
    Demo(DemoArgs),
    /// Validate a config file and print the effective policy (defaults filled in).
    CheckConfig(CheckConfigArgs),
    /// Who costs what: a live table from a running kubeguard's admin listener.
    Top(TopArgs),
    /// Replay an apiserver audit log offline: who cost what, and what kubeguard's policy would
    /// have done (LISTs rewritten, requests throttled, deletes refused).
    AuditReport(crate::audit::ReportArgs),
}

#[derive(Args, Debug)]
struct CheckConfigArgs {
    /// The config file to check.
    file: PathBuf,
}

#[derive(Args, Debug)]
struct TopArgs {
    /// kubeguard's admin listener; repeat it (or separate with commas) to sum several replicas.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:9090")]
    admin: Vec<String>,
    /// Column to sort by, descending.
    #[arg(long, value_enum, default_value = "cost")]
    sort: crate::top::SortBy,
    /// Clients shown; the rest are summed in the "other" row.
    #[arg(long, default_value_t = 20)]
    rows: usize,
    /// Print one table and exit (for scripts).
    #[arg(long)]
    once: bool,
}

#[derive(Args, Debug)]
struct SimArgs {
    /// API listen address.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Admin listener (/metrics with the cost model's counters, /healthz).
    #[arg(long, default_value = "127.0.0.1:9091")]
    admin_listen: SocketAddr,
    /// Write a kubeconfig pointing at the emulator.
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    #[arg(long, default_value_t = 3)]
    namespaces: usize,
    #[arg(long, default_value_t = 30)]
    pods: usize,
    /// Version served at /version; selects the LIST semantics (v1.30 and older, 1.31–1.33, 1.34+).
    #[arg(long, default_value = "v1.30.4")]
    server_version: String,
    /// Users file: turns authentication and authorization on.
    #[arg(long)]
    users: Option<PathBuf>,
    /// Concurrent "etcd" reads; more wait in a queue.
    #[arg(long, default_value_t = 4)]
    etcd_concurrency: usize,
    /// Serve TLS with a self-signed certificate.
    #[arg(long)]
    tls: bool,
    /// Write an audit.k8s.io/v1 audit log (JSON lines, level Metadata) of every request.
    #[arg(long)]
    audit_log: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Where to write the demo kubeconfig.
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Configuration file (YAML; see config/kubeguard.yaml). Flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Listen address, repeatable: https://HOST:PORT (or HOST:PORT) for TLS,
    /// http://127.0.0.1:PORT for plain HTTP on loopback. Default https://127.0.0.1:8443.
    #[arg(long)]
    listen: Vec<String>,
    /// Admin listener for /healthz, /readyz and /metrics. Default 127.0.0.1:9090.
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Kubeconfig of the upstream apiserver. Default $KUBECONFIG, ~/.kube/config, or in-cluster.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Context of that kubeconfig. Default its current context.
    #[arg(long)]
    context: Option<String>,
    /// PEM serving certificate. Without it a self-signed one is generated.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Write a kubeconfig pointing at kubeguard (its URL, its certificate, the upstream user).
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kubeguard: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Sim(args) => sim(args).await,
            Command::Demo(args) => crate::demo::run(args.kubeconfig_out).await,
            Command::CheckConfig(args) => check_config(&args.file),
            Command::Top(a) => crate::top::run(&a.admin, a.sort, a.rows, a.once).await,
            Command::AuditReport(a) => crate::audit::run(&a),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("kubeguard: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// `kubeguard check-config FILE`: the whole file is validated (as `serve` would), then the
/// effective policy is printed.
fn check_config(path: &std::path::Path) -> Result<(), String> {
    FileConfig::load(path).map_err(|e| e.to_string())?;
    let policy = crate::policy::reload::load_policy(path)?;
    println!("# {}: valid\n{}", path.display(), policy.describe());
    Ok(())
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let mut config = match &args.config {
        Some(path) => FileConfig::load(path).map_err(|e| e.to_string())?,
        None => FileConfig::default(),
    };
    if !args.listen.is_empty() {
        config.server.listen = args.listen.clone();
    }
    if let Some(a) = args.admin_listen {
        config.server.admin_listen = a;
    }
    if args.tls_cert.is_some() {
        config.server.tls_cert = args.tls_cert.clone();
        config.server.tls_key = args.tls_key.clone();
    }
    if args.kubeconfig.is_some() {
        config.upstream.kubeconfig = args.kubeconfig.clone();
    }
    if args.context.is_some() {
        config.upstream.context = args.context.clone();
    }
    for (i, l) in config.server.listen.iter().enumerate() {
        crate::config::ListenAddr::parse(l).map_err(|m| format!("--listen #{}: {m}", i + 1))?;
    }

    let upstream_config = crate::upstream::load_config(
        config.upstream.kubeconfig.as_deref(),
        config.upstream.context.as_deref(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let running = crate::serve::start(&config, upstream_config)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(path) = &args.kubeconfig_out {
        crate::kubeconfig::write(path, &running.client_kubeconfig())
            .map_err(|e| format!("cannot write --kubeconfig-out {}: {e}", path.display()))?;
        tracing::info!(path = %path.display(), url = %running.url(), "wrote a kubeconfig for clients");
    }
    running.run_until_signal().await;
    Ok(())
}

async fn sim(args: SimArgs) -> Result<(), String> {
    if !args.tls && !args.listen.ip().is_loopback() {
        return Err(format!(
            "--listen {}: plain HTTP is only allowed on a loopback address; add --tls",
            args.listen
        ));
    }
    let audit = match &args.audit_log {
        Some(path) => Some(
            crate::sim::audit::AuditWriter::create(path)
                .map_err(|e| format!("--audit-log {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let opts = crate::sim::SimOptions {
        on_request: audit.as_ref().map(|w| w.hook()),
        listen: args.listen,
        admin_listen: args.admin_listen,
        tls: args.tls,
        server_version: args.server_version,
        nodes: args.nodes,
        namespaces: args.namespaces,
        pods: args.pods,
        users: args.users,
        etcd_concurrency: args.etcd_concurrency.max(1),
        ..crate::sim::SimOptions::default()
    };
    let sim = crate::sim::start(opts).await.map_err(|e| e.to_string())?;
    tracing::info!(url = %sim.url, admin = %sim.admin_addr, "emulated apiserver serving");
    if let Some(path) = &args.kubeconfig_out {
        std::fs::write(path, sim.kubeconfig_yaml(None))
            .map_err(|e| format!("cannot write --kubeconfig-out {}: {e}", path.display()))?;
        tracing::info!(path = %path.display(), "wrote a kubeconfig for the emulator");
    }
    wait_for_signal().await;
    sim.shutdown().await;
    if let Some(w) = audit {
        w.flush()
            .map_err(|e| format!("cannot write the audit log: {e}"))?;
    }
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
