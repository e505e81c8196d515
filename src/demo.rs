//! `kubeguard demo`: the emulated apiserver with kubeguard in front of it, a kubeconfig to try,
//! and a few commands that show what kubeguard does. Runs until Ctrl-C, then cleans up.

use std::path::{Path, PathBuf};

use crate::config::FileConfig;
use crate::sim::{RunningSim, SimOptions};

/// The demo's gateway settings (config/demo.yaml, compiled in so the demo needs no files).
pub const DEMO_CONFIG: &str = include_str!("../config/demo.yaml");

/// The emulated cluster of the demo: 20 nodes, 2,000 pods in 10 namespaces including `prod`.
pub fn demo_sim_options() -> SimOptions {
    SimOptions {
        nodes: 20,
        namespaces: 10,
        pods: 2000,
        ..SimOptions::default()
    }
}

pub async fn run(kubeconfig_out: Option<PathBuf>) -> Result<(), String> {
    let out = kubeconfig_out.unwrap_or_else(|| PathBuf::from("kubeguard-demo.kubeconfig"));
    eprintln!("starting the emulated apiserver (20 nodes, 2,000 pods in 10 namespaces)…");
    let sim = crate::sim::start(demo_sim_options())
        .await
        .map_err(|e| format!("cannot start the emulated apiserver: {e}"))?;
    let config =
        FileConfig::from_yaml(DEMO_CONFIG, "config/demo.yaml").map_err(|e| e.to_string())?;
    let upstream = kube::Config::new(
        sim.url
            .parse()
            .map_err(|e| format!("emulator URL {}: {e}", sim.url))?,
    );
    let gateway = crate::serve::start(&config, upstream)
        .await
        .map_err(|e| format!("cannot start kubeguard: {e}"))?;
    // The emulator runs without authentication; the token only keeps kubectl from prompting for
    // a username (it does for an https server and a user without credentials).
    let mut kc = gateway.client_kubeconfig();
    for user in &mut kc.auth_infos {
        if let Some(auth) = &mut user.auth_info {
            auth.token = Some("kubeguard-demo".to_string().into());
        }
    }
    crate::kubeconfig::write(&out, &kc)
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    let out = std::fs::canonicalize(&out).unwrap_or(out);

    print_guide(&out, &gateway, &sim);
    crate::cli::wait_for_signal().await;
    eprintln!("\nstopping…");
    gateway.shutdown().await;
    sim.shutdown().await;
    if let Err(e) = std::fs::remove_file(&out) {
        eprintln!("could not remove {}: {e}", out.display());
    }
    Ok(())
}

fn print_guide(kubeconfig: &Path, gateway: &crate::serve::RunningServe, sim: &RunningSim) {
    let kc = kubeconfig.display();
    println!(
        "\n\
kubeguard demo is running.\n\
\n\
  kubeguard (the gateway)  {gw}\n\
  kubeguard admin          http://{admin}/metrics\n\
  emulated apiserver       {sim_url}   (admin: http://{sim_admin}/metrics)\n\
  kubeconfig               {kc}\n\
\n\
Try, in another terminal:\n\
\n\
  export KUBECONFIG={kc}\n\
  kubectl get nodes\n\
  kubectl get pods -A | head                 # every pod, through kubeguard\n\
  kubectl get pods -n prod -o wide\n\
  kubectl get pods -n prod -w                # a watch; in a third terminal:\n\
  kubectl -n prod delete pod $(kubectl -n prod get pods -o name | head -1 | cut -d/ -f2)\n\
  kubectl -n prod logs -f $(kubectl -n prod get pods -o name | head -1)\n\
  kubectl -n prod exec $(kubectl -n prod get pods -o name | head -1 | cut -d/ -f2) -- echo hello\n\
  kubectl -n prod debug -it $(kubectl -n prod get pods -o name | head -1) --image=busybox   # a shell\n\
  kubectl auth whoami                        # the emulator runs without authentication (AlwaysAllow)\n\
  # kubectl's unversioned LIST is served from the watch cache (resourceVersion=0) once kubeguard\n\
  # knows the collection is small enough; the decision is in a response header:\n\
  kubectl get pods -A -v=8 2>&1 | grep -i x-kubeguard-decision\n\
  curl -s http://{sim_admin}/metrics | grep -E 'sim_(etcd_objects_read|lists)'   # what the apiserver spent\n\
  {exe} top --once --admin http://{admin}     # who costs what (live without --once)\n\
  kubectl delete namespace prod              # refused: what it would delete and how to confirm\n\
  kubectl delete pv nfs-archive              # refused too: a volume's data may go with it\n\
  kubectl get all -n prod; kubectl get pv,pvc,sc,leases -A\n\
  curl -s http://{admin}/metrics | grep -E 'kubeguard_(requests|decisions)_total'\n\
\n\
Ctrl-C stops everything and removes {kc}.",
        gw = gateway.url(),
        admin = gateway.admin_addr,
        sim_url = sim.url,
        sim_admin = sim.admin_addr,
        exe = std::env::current_exe()
            .ok()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "kubeguard".into()),
    );
}
