use super::*;
use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

fn spec(nodes: usize, namespaces: usize, pods: usize) -> SeedSpec {
    SeedSpec {
        nodes,
        namespaces,
        pods,
    }
}

#[test]
fn namespaces_and_nodes_come_first() {
    let objs: Vec<SeedObject> = objects(spec(3, 5, 20)).collect();
    let ns: Vec<&str> = objs
        .iter()
        .filter(|o| o.1 == "namespaces")
        .map(|o| o.2["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(ns, ["default", "kube-system", "prod", "ns-1", "ns-2"]);
    assert!(objs[..5].iter().all(|o| o.1 == "namespaces"));
    assert!(objs[5..8].iter().all(|o| o.1 == "nodes"));
    // Every namespace gets its default ServiceAccount before workloads.
    let sa = objs.iter().filter(|o| o.1 == "serviceaccounts").count();
    assert_eq!(sa, 5);
    assert!(
        objs.iter()
            .any(|o| o.1 == "services" && o.2["metadata"]["name"] == "kubernetes")
    );
    let first_deploy = objs.iter().position(|o| o.1 == "deployments").unwrap();
    assert!(objs[..first_deploy].iter().all(|o| o.1 != "pods"));
    assert_eq!(
        objs[0].2["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "default"
    );
    // Fewer than three asked: the fixed ones are there anyway.
    assert_eq!(
        objects(spec(0, 0, 0))
            .filter(|o| o.1 == "namespaces")
            .count(),
        3
    );
}

#[test]
fn nodes_look_like_kubelet_reports() {
    let objs: Vec<SeedObject> = objects(spec(2, 3, 0)).collect();
    let node = &objs.iter().find(|o| o.1 == "nodes").unwrap().2;
    assert_eq!(node["metadata"]["name"], "node-1");
    assert_eq!(node["status"]["nodeInfo"]["kubeletVersion"], "v1.30.4");
    assert_eq!(node["status"]["capacity"]["pods"], "110");
    assert!(node["status"]["allocatable"]["cpu"].is_string());
    let ready = node["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "True");
    assert_eq!(node["status"]["addresses"][0]["type"], "InternalIP");
    assert!(node["metadata"].get("resourceVersion").is_none());
    assert!(node["metadata"].get("uid").is_none());
}

#[test]
fn exact_pod_count_with_owners_and_labels() {
    let objs: Vec<SeedObject> = objects(spec(4, 6, 250)).collect();
    let pods: Vec<&Value> = objs
        .iter()
        .filter(|o| o.1 == "pods")
        .map(|o| &o.2)
        .collect();
    assert_eq!(pods.len(), 250);
    let rs_names: HashSet<(String, String)> = objs
        .iter()
        .filter(|o| o.0 == "apps" && o.1 == "replicasets")
        .map(|o| {
            (
                o.2["metadata"]["namespace"].as_str().unwrap().to_string(),
                o.2["metadata"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let deploys = objs.iter().filter(|o| o.1 == "deployments").count();
    assert_eq!(deploys, rs_names.len());
    // One Service per deployment, plus default/kubernetes.
    let services = objs.iter().filter(|o| o.1 == "services").count();
    assert_eq!(services, deploys + 1);
    let events = objs.iter().filter(|o| o.1 == "events").count();
    assert_eq!(events, deploys);
    let mut names = HashSet::new();
    let mut per_ns: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for p in &pods {
        let m = &p["metadata"];
        let ns = m["namespace"].as_str().unwrap().to_string();
        assert!(names.insert((ns.clone(), m["name"].as_str().unwrap().to_string())));
        let owner = &m["ownerReferences"][0];
        assert_eq!(owner["kind"], "ReplicaSet");
        assert!(rs_names.contains(&(ns.clone(), owner["name"].as_str().unwrap().to_string())));
        for l in ["app", "tier", "pod-template-hash"] {
            assert!(m["labels"][l].is_string(), "{l}");
        }
        let n = p["spec"]["containers"].as_array().unwrap().len();
        assert!((1..=3).contains(&n));
        assert_eq!(
            p["status"]["containerStatuses"].as_array().unwrap().len(),
            n
        );
        assert_eq!(p["status"]["phase"], "Running");
        assert!(p["status"]["podIP"].is_string());
        *per_ns.entry(ns).or_default() += 1;
        *per_node
            .entry(p["spec"]["nodeName"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(per_ns.len(), 6, "{per_ns:?}");
    assert_eq!(per_node.len(), 4, "{per_node:?}");
}

#[test]
fn pods_weigh_two_to_four_kilobytes() {
    let mut sizes: Vec<usize> = objects(spec(3, 4, 300))
        .filter(|o| o.1 == "pods")
        .map(|o| serde_json::to_vec(&o.2).unwrap().len())
        .collect();
    sizes.sort();
    let (min, max) = (sizes[0], sizes[sizes.len() - 1]);
    assert!(min >= 2048, "smallest pod {min} B");
    assert!(max <= 4096, "largest pod {max} B");
}

#[test]
fn generation_is_deterministic() {
    let a: Vec<Value> = objects(spec(2, 4, 40)).map(|o| o.2).collect();
    let b: Vec<Value> = objects(spec(2, 4, 40)).map(|o| o.2).collect();
    assert_eq!(a, b);
}

#[test]
fn pods_without_nodes_are_pending() {
    let p = objects(spec(0, 3, 1)).find(|o| o.1 == "pods").unwrap().2;
    assert_eq!(p["status"]["phase"], "Pending");
    assert!(p["spec"].get("nodeName").is_none());
}

#[test]
fn ten_thousand_pods_generate_quickly() {
    let start = Instant::now();
    let mut bytes = 0usize;
    let mut pods = 0usize;
    for (_, resource, obj) in objects(spec(50, 20, 10_000)) {
        if resource == "pods" {
            pods += 1;
            bytes += serde_json::to_vec(&obj).unwrap().len();
        }
    }
    let took = start.elapsed();
    assert_eq!(pods, 10_000);
    println!("10k pods ({bytes} bytes) generated and serialised in {took:?}");
    // Generous bound for a debug build on a shared 2-core machine.
    assert!(took.as_secs() < 20, "took {took:?}");
}

#[test]
fn version_and_start_time_are_the_callers() {
    let objs: Vec<SeedObject> =
        objects_at(spec(1, 3, 3), "v1.33.1", "2026-03-01T10:00:00Z").collect();
    let node = &objs.iter().find(|o| o.1 == "nodes").unwrap().2;
    assert_eq!(node["status"]["nodeInfo"]["kubeletVersion"], "v1.33.1");
    assert_eq!(
        node["status"]["conditions"][0]["lastHeartbeatTime"],
        "2026-03-01T10:00:00Z"
    );
    let pod = &objs.iter().find(|o| o.1 == "pods").unwrap().2;
    assert_eq!(pod["status"]["startTime"], "2026-03-01T10:00:00Z");
    assert_eq!(
        pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"],
        "2026-03-01T10:00:00Z"
    );
    let ev = &objs.iter().find(|o| o.1 == "events").unwrap().2;
    assert_eq!(ev["lastTimestamp"], "2026-03-01T10:00:00Z");
    let text = serde_json::to_string(&objs.iter().map(|o| &o.2).collect::<Vec<_>>()).unwrap();
    assert!(!text.contains(START_TIME));
}

#[test]
fn objects_decode_as_typed_kubernetes_objects() {
    use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
    use k8s_openapi::api::batch::v1::{CronJob, Job};
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::{
        Endpoints, Event, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, Service,
        ServiceAccount,
    };
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
    use k8s_openapi::api::storage::v1::StorageClass;
    fn decode<T: serde::de::DeserializeOwned>(o: &Value) {
        if let Err(e) = serde_json::from_value::<T>(o.clone()) {
            panic!("{e}: {o}");
        }
    }
    let mut seen = BTreeMap::new();
    for (_, resource, o) in objects(spec(2, 4, 30)) {
        *seen.entry(resource).or_insert(0) += 1;
        match resource {
            "namespaces" => decode::<Namespace>(&o),
            "nodes" => decode::<Node>(&o),
            "pods" => decode::<Pod>(&o),
            "services" => decode::<Service>(&o),
            "serviceaccounts" => decode::<ServiceAccount>(&o),
            "deployments" => decode::<Deployment>(&o),
            "replicasets" => decode::<ReplicaSet>(&o),
            "events" => decode::<Event>(&o),
            "endpoints" => decode::<Endpoints>(&o),
            "endpointslices" => decode::<EndpointSlice>(&o),
            "persistentvolumes" => decode::<PersistentVolume>(&o),
            "persistentvolumeclaims" => decode::<PersistentVolumeClaim>(&o),
            "storageclasses" => decode::<StorageClass>(&o),
            "leases" => decode::<Lease>(&o),
            "cronjobs" => decode::<CronJob>(&o),
            "jobs" => decode::<Job>(&o),
            "roles" => decode::<Role>(&o),
            "rolebindings" => decode::<RoleBinding>(&o),
            "clusterroles" => decode::<ClusterRole>(&o),
            "clusterrolebindings" => decode::<ClusterRoleBinding>(&o),
            other => panic!("unexpected resource {other}"),
        }
    }
    assert_eq!(seen.len(), 20, "{seen:?}");
}

#[test]
fn every_service_has_endpoints_and_a_slice_of_its_pods() {
    let objs: Vec<SeedObject> = objects(spec(3, 4, 40)).collect();
    let of = |resource: &str| -> Vec<&Value> {
        objs.iter()
            .filter(|o| o.1 == resource)
            .map(|o| &o.2)
            .collect()
    };
    let services = of("services");
    assert_eq!(of("endpoints").len(), services.len());
    assert_eq!(of("endpointslices").len(), services.len());
    let pod_ips: HashSet<&str> = of("pods")
        .iter()
        .map(|p| p["status"]["podIP"].as_str().unwrap())
        .collect();
    let mut listed = 0;
    for ep in of("endpoints") {
        let name = ep["metadata"]["name"].as_str().unwrap();
        let ns = ep["metadata"]["namespace"].as_str().unwrap();
        let slice = of("endpointslices")
            .into_iter()
            .find(|s| {
                s["metadata"]["labels"]["kubernetes.io/service-name"] == name
                    && s["metadata"]["namespace"] == ns
            })
            .unwrap_or_else(|| panic!("no slice for {ns}/{name}"));
        if name == "kubernetes" {
            continue;
        }
        for a in ep["subsets"][0]["addresses"].as_array().unwrap() {
            assert!(pod_ips.contains(a["ip"].as_str().unwrap()), "{a}");
            listed += 1;
        }
        assert_eq!(
            slice["endpoints"].as_array().unwrap().len(),
            ep["subsets"][0]["addresses"].as_array().unwrap().len()
        );
        assert_eq!(slice["metadata"]["ownerReferences"][0]["kind"], "Service");
    }
    // Every running pod backs its deployment's Service.
    assert_eq!(listed, 40);
}

#[test]
fn the_cluster_has_storage_rbac_leases_and_a_nightly_job() {
    let objs: Vec<SeedObject> = objects(spec(3, 3, 0)).collect();
    let names = |resource: &str| -> Vec<String> {
        objs.iter()
            .filter(|o| o.1 == resource)
            .map(|o| {
                let md = &o.2["metadata"];
                match md["namespace"].as_str() {
                    Some(ns) => format!("{ns}/{}", md["name"].as_str().unwrap()),
                    None => md["name"].as_str().unwrap().to_string(),
                }
            })
            .collect()
    };
    assert_eq!(names("storageclasses"), ["standard"]);
    assert_eq!(
        names("persistentvolumeclaims"),
        ["prod/postgres-data", "prod/uploads", "default/scratch"]
    );
    assert_eq!(names("persistentvolumes").len(), 4);
    assert!(names("persistentvolumes").contains(&"nfs-archive".to_string()));
    // Every claim is bound to a volume whose claimRef names it back.
    for (_, _, claim) in objs.iter().filter(|o| o.1 == "persistentvolumeclaims") {
        let volume = objs
            .iter()
            .find(|o| {
                o.1 == "persistentvolumes" && o.2["metadata"]["name"] == claim["spec"]["volumeName"]
            })
            .unwrap();
        assert_eq!(
            volume.2["spec"]["claimRef"]["name"],
            claim["metadata"]["name"]
        );
        assert_eq!(
            volume.2["spec"]["claimRef"]["uid"],
            claim["metadata"]["uid"]
        );
        assert_eq!(volume.2["status"]["phase"], "Bound");
    }
    assert_eq!(
        names("leases"),
        [
            "kube-system/kube-controller-manager",
            "kube-system/kube-scheduler",
            "kube-node-lease/node-1",
            "kube-node-lease/node-2",
            "kube-node-lease/node-3"
        ]
    );
    for role in ["cluster-admin", "admin", "edit", "view"] {
        assert!(names("clusterroles").contains(&role.to_string()), "{role}");
    }
    assert!(names("clusterrolebindings").contains(&"cluster-admin".to_string()));
    assert_eq!(names("cronjobs"), ["prod/nightly-report"]);
    let job = &objs.iter().find(|o| o.1 == "jobs").unwrap().2;
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    assert_eq!(job["status"]["succeeded"], 1);
}

#[test]
fn one_image_one_digest() {
    let mut digests: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    for (_, r, p) in objects(spec(2, 3, 60)) {
        if r != "pods" {
            continue;
        }
        for cs in p["status"]["containerStatuses"].as_array().unwrap() {
            let id = cs["imageID"].as_str().unwrap();
            let (image, _) = id.split_once('@').unwrap();
            digests
                .entry(image.to_string())
                .or_default()
                .insert(id.to_string());
        }
    }
    assert!(digests.len() > 2, "{digests:?}");
    assert!(digests.values().all(|d| d.len() == 1), "{digests:?}");
}

#[test]
fn owner_references_name_the_owners_uids() {
    let objs: Vec<SeedObject> = objects(spec(2, 3, 40)).collect();
    // Owners (deployments, replicasets, services, cronjobs, jobs) carry placeholder uids.
    let owners = |o: &&SeedObject| o.2["metadata"]["uid"].is_string();
    let uids: HashSet<(&str, String)> = objs
        .iter()
        .filter(owners)
        .map(|o| {
            let kind = o.2["kind"].as_str().unwrap();
            (kind, o.2["metadata"]["uid"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(
        uids.len(),
        objs.iter().filter(owners).count(),
        "uids are unique"
    );
    assert!(objs.iter().filter(|o| o.0 == "apps").all(|o| owners(&o)));
    for (_, _, o) in &objs {
        if let Some(refs) = o["metadata"]["ownerReferences"].as_array() {
            for r in refs {
                let key = (
                    r["kind"].as_str().unwrap(),
                    r["uid"].as_str().unwrap().to_string(),
                );
                assert!(uids.contains(&key), "{key:?}");
            }
        }
    }
}
