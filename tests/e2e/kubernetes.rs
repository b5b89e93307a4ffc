//! Proves `deploy/kubernetes/` offline, with the tools an operator's pipeline would use: `kubectl kustomize` builds
//! each directory, `kubernetes-validate --strict` checks every built resource against the Kubernetes 1.29 schemas
//! and the newest it ships, `@kubernetes-models/prometheus-operator` checks the ServiceMonitors and PrometheusRules
//! against the operator's CRD schemas, and `promtool` checks the PrometheusRule's groups. The exporter's own
//! `check-config` reads each shipped config with its token files in place, laid out as the pod mounts them.
//!
//! The rest reads the built YAML: the hardened pod (security contexts, probes, resources, the pinned image, tokens
//! from a 0400 Secret volume and never from env values, a writable state volume), the Service, ServiceMonitor and
//! NetworkPolicy wired to each other, the PodDisruptionBudgets, and the sharded StatefulSet's shard. The README's
//! "Kubernetes" steps run as written, up to the first command that needs a cluster.
//!
//! Every tool is required (`bash scripts/install-test-deps.sh` installs them); a missing one fails these tests.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{LazyLock, Mutex};

use serde_json::{Value, json};

use crate::support::process::EXE;
use crate::support::prometheus::require_program;

/// The kustomization directories, relative to the repository.
const DIRS: [&str; 3] = [
    "deploy/kubernetes/base",
    "deploy/kubernetes/overlays/ha",
    "deploy/kubernetes/overlays/sharded",
];
/// The oldest Kubernetes the manifests support: the pod-index label the sharded overlay reads exists since 1.28.
const OLDEST_KUBERNETES: &str = "1.29";
/// The API group of the Prometheus Operator's resources.
const OPERATOR_API: &str = "monitoring.coreos.com/v1";
/// Where the exporter keeps its state in the image (`VOLUME` in the Dockerfile).
const STATE_DIR: &str = "/var/lib/onprem-agent-exporter";
/// The label kube-prometheus-stack's Prometheus selects ServiceMonitors and PrometheusRules by.
const RELEASE_LABEL: &str = "release";
/// The label Grafana's dashboard sidecar (as kube-prometheus-stack configures it) loads ConfigMaps by.
const DASHBOARD_LABEL: &str = "grafana_dashboard";

// ---------------------------------------------------------------------------------------------------------------
// The tools.
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn every_directory_builds_with_kubectl_kustomize() {
    for dir in DIRS {
        let resources = build(dir);
        let kinds: BTreeSet<&str> = resources.iter().map(kind).collect();
        for wanted in ["ConfigMap", "Service", "ServiceMonitor", "NetworkPolicy"] {
            assert!(
                kinds.contains(wanted),
                "{dir} builds no {wanted}: {kinds:?}"
            );
        }
        assert_eq!(
            workloads(&resources).len(),
            1,
            "{dir} must build exactly one Deployment or StatefulSet: {kinds:?}"
        );
    }
}

#[test]
fn every_resource_passes_strict_schema_validation_for_kubernetes_1_29_and_the_newest() {
    let newest = newest_kubernetes_schema();
    assert!(
        version_key(&newest) > version_key(OLDEST_KUBERNETES),
        "kubernetes-validate's newest schema ({newest}) must be newer than {OLDEST_KUBERNETES}"
    );
    let dir = tempfile::tempdir().expect("a temporary directory");
    for tree in DIRS {
        let core: Vec<Value> = build(tree)
            .into_iter()
            .filter(|r| r["apiVersion"] != OPERATOR_API)
            .collect();
        let file = dir.path().join(format!("{}.json", tree.replace('/', "_")));
        write_json_stream(&file, &core);
        for version in [OLDEST_KUBERNETES, newest.as_str()] {
            let output = kubernetes_validate(&file, version);
            assert_success(
                &format!("kubernetes-validate --strict -k {version} {tree}"),
                &output,
            );
            // A kind without a schema is only a warning to the tool; here it is a resource nobody checked.
            let text = describe(&output);
            assert!(
                !text.contains("WARN") && text.matches("passed").count() == core.len(),
                "kubernetes-validate -k {version} did not pass each of the {} resources of {tree}:\n{text}",
                core.len()
            );
        }
    }
}

#[test]
fn strict_schema_validation_refuses_a_field_kubernetes_does_not_know() {
    let mut deployment = workloads(&build(DIRS[0]))[0].clone();
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContex"] = json!({});
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("typo.json");
    write_json_stream(&file, &[deployment]);
    let output = kubernetes_validate(&file, OLDEST_KUBERNETES);
    assert!(
        !output.status.success() && describe(&output).contains("securityContex"),
        "kubernetes-validate --strict accepted an unknown field:\n{}",
        describe(&output)
    );
}

#[test]
fn the_operator_resources_pass_the_prometheus_operator_crd_schemas() {
    for dir in DIRS {
        let operator: Vec<Value> = build(dir)
            .into_iter()
            .filter(|r| r["apiVersion"] == OPERATOR_API)
            .collect();
        assert!(!operator.is_empty(), "{dir} builds no operator resource");
        let output = validate_operator_resources(&operator);
        assert_success(&format!("validate.mjs on {dir}"), &output);
        assert_eq!(
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .filter(|l| l.starts_with("ok "))
                .count(),
            operator.len(),
            "every operator resource of {dir} must be validated:\n{}",
            describe(&output)
        );
    }
}

#[test]
fn the_operator_schemas_refuse_a_service_monitor_with_a_numeric_port() {
    let mut monitor = find(&build(DIRS[0]), "ServiceMonitor").clone();
    monitor["spec"]["endpoints"][0]["port"] = json!(9877);
    let output = validate_operator_resources(&[monitor]);
    assert!(
        !output.status.success() && describe(&output).contains("/spec/endpoints/0/port"),
        "the operator's schema accepted a numeric endpoint port:\n{}",
        describe(&output)
    );
}

#[test]
fn promtool_accepts_the_prometheus_rule_groups() {
    let promtool = require_program("promtool");
    let dir = tempfile::tempdir().expect("a temporary directory");
    for tree in DIRS {
        let resources = build(tree);
        let Some(rule) = resources.iter().find(|r| kind(r) == "PrometheusRule") else {
            continue;
        };
        // JSON is YAML: the rule file promtool reads is the PrometheusRule's spec as it is.
        let file = dir
            .path()
            .join(format!("{}.rules.json", tree.replace('/', "_")));
        std::fs::write(&file, rule["spec"].to_string()).expect("the rule file is written");
        let output = run(Command::new(&promtool).arg("check").arg("rules").arg(&file));
        assert_success(&format!("promtool check rules ({tree})"), &output);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// One copy of the truth.
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn the_prometheus_rule_groups_are_exactly_those_of_the_alerts_file() {
    let alerts = yaml_value(&read(&repo().join("alerts/onprem-agents.rules.yml")));
    for dir in [DIRS[0], DIRS[2]] {
        let resources = build(dir);
        let rule = find(&resources, "PrometheusRule");
        assert_eq!(
            rule["spec"], alerts,
            "the PrometheusRule of {dir} differs from alerts/onprem-agents.rules.yml: run scripts/generate-kubernetes.sh"
        );
        assert_eq!(
            rule["metadata"]["labels"][RELEASE_LABEL], "kube-prometheus-stack",
            "{dir}: the PrometheusRule needs the `release` label kube-prometheus-stack selects on"
        );
    }
}

#[test]
fn the_generated_files_are_up_to_date() {
    let output = run(Command::new("bash")
        .arg(repo().join("scripts/generate-kubernetes.sh"))
        .arg("--check"));
    assert_success("scripts/generate-kubernetes.sh --check", &output);
}

#[test]
fn the_dashboard_config_map_is_the_dashboard_byte_for_byte() {
    let dashboard = read(&repo().join("dashboards/onprem-agents.json"));
    for dir in DIRS {
        let resources = build(dir);
        let maps: Vec<&Value> = resources
            .iter()
            .filter(|r| kind(r) == "ConfigMap" && r["metadata"]["labels"][DASHBOARD_LABEL] == "1")
            .collect();
        assert_eq!(maps.len(), 1, "{dir} must build one dashboard ConfigMap");
        let data = maps[0]["data"].as_object().expect("the ConfigMap has data");
        assert_eq!(
            data.len(),
            1,
            "{dir}: the dashboard ConfigMap holds one file"
        );
        assert!(
            data.get("onprem-agents.json").and_then(Value::as_str) == Some(dashboard.as_str()),
            "{dir}: the dashboard ConfigMap is not dashboards/onprem-agents.json byte for byte: run \
             scripts/generate-kubernetes.sh"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The shipped configs.
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn every_shipped_config_passes_check_config_with_its_token_files_in_place() {
    for dir in DIRS {
        let resources = build(dir);
        let layout = PodLayout::of(&resources, dir);
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let config = layout.materialize(tmp.path());
        let output = run(Command::new(EXE).arg("check-config").arg(&config));
        assert_success(&format!("check-config of {dir}'s config"), &output);
    }
}

#[test]
fn every_token_file_the_config_names_is_in_the_token_secret_volume() {
    for dir in DIRS {
        let layout = PodLayout::of(&build(dir), dir);
        let files = layout.secret_files();
        assert!(!files.is_empty(), "{dir}: the config names no token file");
        for (key, in_pod) in files {
            assert!(
                in_pod.starts_with(&layout.tokens_mount),
                "{dir}: {key} resolves to {} in the pod, outside the token Secret at {}",
                in_pod.display(),
                layout.tokens_mount.display()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The pods.
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn every_pod_is_hardened() {
    for dir in DIRS {
        let resources = build(dir);
        let pod = &workloads(&resources)[0]["spec"]["template"]["spec"];
        let security = &pod["securityContext"];
        assert_eq!(security["runAsNonRoot"], true, "{dir}: runAsNonRoot");
        assert_eq!(
            security["seccompProfile"]["type"], "RuntimeDefault",
            "{dir}: seccompProfile"
        );
        assert_eq!(
            pod["automountServiceAccountToken"], false,
            "{dir}: automountServiceAccountToken"
        );
        let containers = pod["containers"].as_array().expect("containers");
        assert!(
            pod["initContainers"].is_null(),
            "{dir}: unexpected init containers"
        );
        for container in containers {
            let name = container["name"].as_str().unwrap_or_default();
            let context = &container["securityContext"];
            assert_eq!(
                context["allowPrivilegeEscalation"], false,
                "{dir}/{name}: allowPrivilegeEscalation"
            );
            assert_eq!(
                context["readOnlyRootFilesystem"], true,
                "{dir}/{name}: readOnlyRootFilesystem"
            );
            assert_eq!(
                context["capabilities"]["drop"],
                json!(["ALL"]),
                "{dir}/{name}: capabilities.drop"
            );
            assert!(
                context["capabilities"]["add"].is_null() && context["privileged"] != true,
                "{dir}/{name}: no capability may be added"
            );
        }
    }
}

#[test]
fn every_pod_has_probes_resources_and_the_release_image() {
    let image = format!("onprem-agent-exporter:{}", env!("CARGO_PKG_VERSION"));
    for dir in DIRS {
        let resources = build(dir);
        let container = exporter_container(&resources);
        assert_eq!(
            container["image"],
            image.as_str(),
            "{dir}: the image must be pinned to the release"
        );
        let port = container["ports"][0]["name"]
            .as_str()
            .expect("a named port");
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            assert_eq!(container[probe]["httpGet"]["path"], path, "{dir}: {probe}");
            assert_eq!(
                container[probe]["httpGet"]["port"], port,
                "{dir}: {probe} port"
            );
        }
        let limits = &container["resources"];
        for (field, resource) in [
            ("requests", "cpu"),
            ("requests", "memory"),
            ("limits", "memory"),
        ] {
            assert!(
                limits[field][resource].is_string(),
                "{dir}: resources.{field}.{resource} must be set: {limits}"
            );
        }
    }
}

#[test]
fn tokens_come_from_a_0400_secret_volume_and_never_from_env_values() {
    for dir in DIRS {
        let resources = build(dir);
        let workload = workloads(&resources)[0];
        let pod = &workload["spec"]["template"]["spec"];
        let container = exporter_container(&resources);
        let layout = PodLayout::of(&resources, dir);
        let volume = volume(pod, &layout.tokens_volume);
        assert_eq!(
            volume["secret"]["defaultMode"], 0o400,
            "{dir}: the token Secret's defaultMode"
        );
        assert_eq!(
            mount(container, &layout.tokens_volume)["readOnly"],
            true,
            "{dir}: tokens mounted read-only"
        );
        for env in container["env"].as_array().into_iter().flatten() {
            let name = env["name"].as_str().unwrap_or_default();
            let secret_like = ["TOKEN", "PASSWORD", "SECRET", "KEY", "WEBHOOK"]
                .iter()
                .any(|word| name.to_ascii_uppercase().contains(word));
            assert!(
                !(secret_like && env.get("value").is_some()),
                "{dir}: env {name} carries a literal value"
            );
            assert!(
                env["valueFrom"]["secretKeyRef"].is_null(),
                "{dir}: env {name} reads a Secret; tokens come from the Secret volume"
            );
        }
        // Nor through the config: it names files only.
        let config = layout.config();
        assert!(
            !config.contains("token_env"),
            "{dir}: the shipped config must read tokens from files"
        );
    }
}

#[test]
fn the_state_directory_is_a_writable_volume() {
    for dir in DIRS {
        let resources = build(dir);
        let workload = workloads(&resources)[0];
        let container = exporter_container(&resources);
        let mounts = container["volumeMounts"].as_array().expect("volume mounts");
        let state = mounts
            .iter()
            .find(|m| m["mountPath"] == STATE_DIR)
            .unwrap_or_else(|| panic!("{dir}: nothing is mounted at {STATE_DIR}"));
        assert_ne!(
            state["readOnly"], true,
            "{dir}: the state volume must be writable"
        );
        let name = state["name"].as_str().expect("a volume name");
        let pod = &workload["spec"]["template"]["spec"];
        let claimed = workload["spec"]["volumeClaimTemplates"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|claim| claim["metadata"]["name"] == name);
        assert!(
            claimed || volume(pod, name).get("emptyDir").is_some(),
            "{dir}: the state volume must be an emptyDir or a claim"
        );
        // Where the config keeps its state, if it has any, is inside that volume.
        let config = yaml_value(&PodLayout::of(&resources, dir).config());
        if let Some(file) = config["alerting"]["state_file"].as_str() {
            assert!(
                file.starts_with(STATE_DIR),
                "{dir}: state_file {file} is outside {STATE_DIR}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The Prometheus Operator's wiring and the network.
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn the_service_monitor_selects_the_service_by_its_named_port() {
    for dir in DIRS {
        let resources = build(dir);
        let service = find(&resources, "Service");
        let monitor = find(&resources, "ServiceMonitor");
        assert_eq!(
            monitor["metadata"]["labels"][RELEASE_LABEL], "kube-prometheus-stack",
            "{dir}: the ServiceMonitor needs the `release` label kube-prometheus-stack selects on"
        );
        assert!(
            selects(
                &monitor["spec"]["selector"]["matchLabels"],
                &service["metadata"]["labels"]
            ),
            "{dir}: the ServiceMonitor's selector does not match the Service"
        );
        let port_names: BTreeSet<&str> = service["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["name"].as_str())
            .collect();
        let endpoints = monitor["spec"]["endpoints"].as_array().expect("endpoints");
        for endpoint in endpoints {
            let port = endpoint["port"]
                .as_str()
                .expect("the endpoint names its port");
            assert!(
                port_names.contains(port),
                "{dir}: the Service has no port named {port}"
            );
        }
        // And the Service reaches the pods, on the container's port of that name.
        let workload = workloads(&resources)[0];
        let pod_labels = &workload["spec"]["template"]["metadata"]["labels"];
        assert!(
            selects(&service["spec"]["selector"], pod_labels),
            "{dir}: the Service selects no pod"
        );
        let container_ports: BTreeSet<&str> = exporter_container(&resources)["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["name"].as_str())
            .collect();
        for port in service["spec"]["ports"].as_array().into_iter().flatten() {
            let target = port["targetPort"].as_str().expect("a named targetPort");
            assert!(
                container_ports.contains(target),
                "{dir}: no container port named {target}"
            );
        }
    }
}

#[test]
fn the_network_policy_admits_only_the_metrics_port_and_lets_out_what_the_config_needs() {
    for dir in DIRS {
        let resources = build(dir);
        let policy = find(&resources, "NetworkPolicy");
        let workload = workloads(&resources)[0];
        let pod_labels = &workload["spec"]["template"]["metadata"]["labels"];
        assert!(
            selects(&policy["spec"]["podSelector"]["matchLabels"], pod_labels),
            "{dir}: the NetworkPolicy does not select the exporter's pods"
        );
        assert_eq!(
            policy["spec"]["policyTypes"],
            json!(["Ingress", "Egress"]),
            "{dir}: both directions must be restricted"
        );

        let container = exporter_container(&resources);
        let metrics = &container["ports"][0];
        let ingress: BTreeSet<(String, String)> = policy["spec"]["ingress"]
            .as_array()
            .expect("ingress rules")
            .iter()
            .flat_map(|rule| port_pairs(rule, container))
            .collect();
        let expected = BTreeSet::from([(metrics["containerPort"].to_string(), "TCP".to_owned())]);
        assert_eq!(
            ingress, expected,
            "{dir}: ingress must admit the metrics port and nothing else"
        );

        let egress: BTreeSet<(String, String)> = policy["spec"]["egress"]
            .as_array()
            .expect("egress rules")
            .iter()
            .flat_map(|rule| port_pairs(rule, container))
            .collect();
        let config = yaml_value(&PodLayout::of(&resources, dir).config());
        assert_eq!(
            egress,
            needed_egress(&config),
            "{dir}: egress must be exactly DNS and what the config talks to"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The overlays.
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn the_base_runs_one_exporter_without_a_disruption_budget() {
    let resources = build(DIRS[0]);
    let workload = workloads(&resources)[0];
    assert_eq!(kind(workload), "Deployment");
    assert_eq!(workload["spec"]["replicas"], 1);
    assert!(resources.iter().all(|r| kind(r) != "PodDisruptionBudget"));
}

#[test]
fn the_ha_overlay_runs_a_spread_pair_with_a_disruption_budget_pushing_to_every_alertmanager() {
    let resources = build(DIRS[1]);
    let workload = workloads(&resources)[0];
    assert_eq!(kind(workload), "Deployment");
    assert_eq!(workload["spec"]["replicas"], 2);
    let pod = &workload["spec"]["template"]["spec"];
    let spread = pod["topologySpreadConstraints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        spread
            .iter()
            .any(|c| c["topologyKey"] == "kubernetes.io/hostname"
                && c["whenUnsatisfiable"] == "DoNotSchedule"
                && selects(
                    &c["labelSelector"]["matchLabels"],
                    &workload["spec"]["template"]["metadata"]["labels"]
                ))
            || !pod["affinity"]["podAntiAffinity"].is_null(),
        "the pair must be kept on two nodes: {pod}"
    );
    assert_disruption_budget(&resources, workload, 2);

    let config = yaml_value(&PodLayout::of(&resources, DIRS[1]).config());
    let alertmanagers = config["alerting"]["alertmanagers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        !alertmanagers.is_empty(),
        "the HA config must push to the Alertmanagers"
    );
    assert!(
        config["alerting"]["email"].is_null() && config["alerting"]["receivers"].is_null(),
        "two replicas with their own channels would notify twice; Alertmanager notifies"
    );
    assert!(
        resources.iter().all(|r| kind(r) != "PrometheusRule"),
        "with two replicas scraped, every PrometheusRule alert would fire twice"
    );
}

#[test]
fn the_sharded_overlay_takes_each_pods_shard_from_its_index_and_the_total_from_replicas() {
    let resources = build(DIRS[2]);
    let workload = workloads(&resources)[0];
    assert_eq!(kind(workload), "StatefulSet");
    let replicas = workload["spec"]["replicas"].as_u64().expect("replicas");
    assert!(replicas >= 2, "a sharded set of {replicas}");
    assert_disruption_budget(&resources, workload, replicas);

    let container = exporter_container(&resources);
    let env: BTreeMap<&str, &Value> = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| (e["name"].as_str().unwrap_or_default(), e))
        .collect();
    let index = env.get("POD_INDEX").expect("POD_INDEX is set");
    assert_eq!(
        index["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.labels['apps.kubernetes.io/pod-index']",
        "the index comes from the pod-index label"
    );
    let shard = env
        .get("ONPREM_AGENT_EXPORTER_SHARD")
        .and_then(|e| e["value"].as_str())
        .expect("ONPREM_AGENT_EXPORTER_SHARD is set");
    assert_eq!(
        shard,
        format!("$(POD_INDEX)/{replicas}"),
        "the total must equal replicas"
    );

    // Each pod, as the kubelet expands its env, owns a part of the sources, and together they own each once.
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let layout = PodLayout::of(&resources, DIRS[2]);
    let config = layout.materialize(tmp.path());
    let mut owned = Vec::new();
    for pod_index in 0..replicas {
        let value = shard.replace("$(POD_INDEX)", &pod_index.to_string());
        let output = run(Command::new(EXE)
            .arg("check-config")
            .arg(&config)
            .env("ONPREM_AGENT_EXPORTER_SHARD", &value));
        assert_success(
            &format!("check-config with ONPREM_AGENT_EXPORTER_SHARD={value}"),
            &output,
        );
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let listed = stdout
            .lines()
            .skip_while(|l| !l.starts_with(&format!("shard {value} owns")))
            .skip(1)
            .map(|l| l.trim().to_owned());
        owned.extend(listed);
    }
    let sources: Vec<String> = yaml_value(&layout.config())["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .map(|s| s["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    owned.sort();
    let mut expected = sources.clone();
    expected.sort();
    assert_eq!(
        owned, expected,
        "the shards must own each source exactly once"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// The README's "Kubernetes" section, as written.
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn the_readme_builds_an_overlay_of_your_own_as_written() {
    let blocks = readme_kubernetes_blocks();
    let steps = blocks
        .iter()
        .find(|(lang, body)| lang == "sh" && body.contains("mkdir my-exporter"))
        .map(|(_, body)| body)
        .expect("the README's Kubernetes section has the steps that make my-exporter");
    let work = readme_workspace();
    let output = run(Command::new("bash")
        .arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(steps)
        .current_dir(work.path()));
    assert_success("the README's steps", &output);

    let overlay = work.path().join("my-exporter");
    let resources = kustomize_at(&overlay);
    let container = exporter_container(&resources);
    assert_eq!(
        container["image"], "registry.example.com/onprem-agent-exporter:0.1.0",
        "the README's images: entry must take effect"
    );
    let layout = PodLayout::of(&resources, "my-exporter");
    assert_eq!(
        layout.config(),
        read(&repo().join("deploy/kubernetes/base/config.yaml")),
        "the overlay's config must replace the base's"
    );
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let output = run(Command::new(EXE)
        .arg("check-config")
        .arg(layout.materialize(tmp.path())));
    assert_success("check-config of the README's overlay", &output);
}

#[test]
fn the_readme_patches_rename_the_release_label_and_scale_the_shards_together() {
    let blocks = readme_kubernetes_blocks();
    let yaml: Vec<&String> = blocks
        .iter()
        .filter(|(lang, _)| lang == "yaml")
        .map(|(_, b)| b)
        .collect();
    let labels = yaml
        .iter()
        .find(|b| b.starts_with("labels:"))
        .expect("the README's labels block");
    let scale = yaml
        .iter()
        .find(|b| b.starts_with("patches:"))
        .expect("the README's scaling block");

    let work = readme_workspace();
    let overlay = work.path().join("my-exporter");
    std::fs::create_dir(&overlay).expect("the overlay folder");
    std::fs::write(
        overlay.join("kustomization.yaml"),
        format!("resources:\n  - ../deploy/kubernetes/overlays/sharded\n{labels}{scale}"),
    )
    .expect("the kustomization is written");
    let resources = kustomize_at(&overlay);

    for kind_name in ["ServiceMonitor", "PrometheusRule"] {
        assert_eq!(
            find(&resources, kind_name)["metadata"]["labels"][RELEASE_LABEL],
            "my-release-name",
            "the README's labels block must relabel the {kind_name}"
        );
    }
    let workload = workloads(&resources)[0];
    let replicas = workload["spec"]["replicas"].as_u64().expect("replicas");
    assert_ne!(replicas, 3, "the README's patch must change the replicas");
    let shard = exporter_container(&resources)["env"]
        .as_array()
        .and_then(|env| {
            env.iter()
                .find(|e| e["name"] == "ONPREM_AGENT_EXPORTER_SHARD")
        })
        .and_then(|e| e["value"].as_str())
        .expect("ONPREM_AGENT_EXPORTER_SHARD")
        .to_owned();
    assert_eq!(
        shard,
        format!("$(POD_INDEX)/{replicas}"),
        "the README's patch must keep the total equal to replicas"
    );
    let pod = &workload["spec"]["template"]["spec"];
    assert!(
        pod["containers"][0]["env"]
            .as_array()
            .is_some_and(|env| env.iter().any(|e| e["name"] == "POD_INDEX")),
        "the patch must keep POD_INDEX"
    );
}

/// The fenced blocks (language, body) of the README's "Kubernetes" section.
fn readme_kubernetes_blocks() -> Vec<(String, String)> {
    let readme = read(&repo().join("README.md"));
    let start = readme
        .find("\n## Kubernetes\n")
        .expect("the README has a Kubernetes section");
    let section = &readme[start + 1..];
    let section = &section[..section[1..]
        .find("\n## ")
        .map_or(section.len(), |end| end + 1)];
    let mut blocks = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if let Some(lang) = line.strip_prefix("```").filter(|l| !l.is_empty()) {
            let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            blocks.push((lang.to_owned(), body.join("\n") + "\n"));
        }
    }
    blocks
}

/// A folder where `deploy/` is the repository's, as it is where the README's commands run.
fn readme_workspace() -> tempfile::TempDir {
    let work = tempfile::tempdir().expect("a temporary directory");
    std::os::unix::fs::symlink(repo().join("deploy"), work.path().join("deploy"))
        .expect("the deploy link");
    work
}

fn assert_disruption_budget(resources: &[Value], workload: &Value, replicas: u64) {
    let budget = find(resources, "PodDisruptionBudget");
    assert!(
        selects(
            &budget["spec"]["selector"]["matchLabels"],
            &workload["spec"]["template"]["metadata"]["labels"]
        ),
        "the PodDisruptionBudget selects no exporter pod"
    );
    let spec = &budget["spec"];
    let may_go = match (
        spec["minAvailable"].as_u64(),
        spec["maxUnavailable"].as_u64(),
    ) {
        (Some(min), None) => replicas.saturating_sub(min),
        (None, Some(max)) => max,
        _ => panic!(
            "the PodDisruptionBudget needs a number in minAvailable or maxUnavailable: {spec}"
        ),
    };
    assert_eq!(
        may_go, 1,
        "a drain must take exactly one exporter pod at a time: {spec}"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------------------------------------

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `kubectl kustomize DIR` (relative to the repository), as resources; each directory is built once per test run.
fn build(dir: &str) -> Vec<Value> {
    static BUILT: LazyLock<Mutex<BTreeMap<String, Vec<Value>>>> = LazyLock::new(Mutex::default);
    let mut built = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    built
        .entry(dir.to_owned())
        .or_insert_with(|| kustomize(dir))
        .clone()
}

fn kustomize(dir: &str) -> Vec<Value> {
    kustomize_at(&repo().join(dir))
}

fn kustomize_at(dir: &Path) -> Vec<Value> {
    let kubectl = require_program("kubectl");
    let output = run(Command::new(kubectl).arg("kustomize").arg(dir));
    let dir = dir.display();
    assert_success(&format!("kubectl kustomize {dir}"), &output);
    let text = String::from_utf8(output.stdout).expect("kustomize prints UTF-8");
    let resources: Vec<Value> = serde_saphyr::from_multiple(&text)
        .unwrap_or_else(|e| panic!("the output of kubectl kustomize {dir} is not YAML: {e}"));
    assert!(
        !resources.is_empty(),
        "kubectl kustomize {dir} built nothing"
    );
    resources
}

fn yaml_value(text: &str) -> Value {
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("not YAML: {e}\n{text}"))
}

fn kind(resource: &Value) -> &str {
    resource["kind"].as_str().unwrap_or_default()
}

/// The one resource of `kind`.
fn find<'a>(resources: &'a [Value], wanted: &str) -> &'a Value {
    let found: Vec<&Value> = resources.iter().filter(|r| kind(r) == wanted).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {wanted}, found {}",
        found.len()
    );
    found[0]
}

fn workloads(resources: &[Value]) -> Vec<&Value> {
    resources
        .iter()
        .filter(|r| matches!(kind(r), "Deployment" | "StatefulSet"))
        .collect()
}

fn exporter_container(resources: &[Value]) -> &Value {
    let workload = workloads(resources)[0];
    workload["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "exporter"))
        .expect("a container named exporter")
}

fn volume<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["volumes"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["name"] == name))
        .unwrap_or_else(|| panic!("no volume {name}"))
}

fn mount<'a>(container: &'a Value, volume: &str) -> &'a Value {
    container["volumeMounts"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == volume))
        .unwrap_or_else(|| panic!("volume {volume} is not mounted"))
}

/// True if and only if every label of `selector` is on `labels` with the same value (and there is at least one).
fn selects(selector: &Value, labels: &Value) -> bool {
    let Some(selector) = selector.as_object() else {
        return false;
    };
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The (port, protocol) pairs of a NetworkPolicy rule, with named ports resolved against the container's.
fn port_pairs(rule: &Value, container: &Value) -> Vec<(String, String)> {
    let ports = rule["ports"].as_array().cloned().unwrap_or_default();
    assert!(
        !ports.is_empty(),
        "a rule without ports admits every port: {rule}"
    );
    ports
        .iter()
        .map(|p| {
            let port = match &p["port"] {
                Value::String(name) => container["ports"]
                    .as_array()
                    .and_then(|ports| ports.iter().find(|c| c["name"] == name.as_str()))
                    .map(|c| c["containerPort"].to_string())
                    .unwrap_or_else(|| panic!("no container port named {name}")),
                number => number.to_string(),
            };
            (port, p["protocol"].as_str().unwrap_or("TCP").to_owned())
        })
        .collect()
}

/// DNS, plus the port of every address the config talks to: the vendor APIs (443 unless `base_url` says otherwise),
/// the Alertmanagers and the SMTP server.
fn needed_egress(config: &Value) -> BTreeSet<(String, String)> {
    let mut ports = BTreeSet::from([
        ("53".to_owned(), "UDP".to_owned()),
        ("53".to_owned(), "TCP".to_owned()),
    ]);
    let url_port = |url: &str| {
        url::Url::parse(url)
            .unwrap_or_else(|e| panic!("{url}: {e}"))
            .port_or_known_default()
            .expect("an http(s) URL has a port")
            .to_string()
    };
    for source in config["sources"].as_array().expect("sources") {
        let port = source["base_url"]
            .as_str()
            .map_or("443".to_owned(), url_port);
        ports.insert((port, "TCP".to_owned()));
    }
    for alertmanager in config["alerting"]["alertmanagers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let url = alertmanager["url"].as_str().expect("an Alertmanager url");
        ports.insert((url_port(url), "TCP".to_owned()));
    }
    if let Some(smtp) = config["alerting"]["email"]["smtp"].as_object() {
        let port = smtp.get("port").map_or("587".to_owned(), |p| p.to_string());
        ports.insert((port, "TCP".to_owned()));
    }
    ports
}

/// Where the pod finds its config and its tokens, read from the built resources.
struct PodLayout {
    /// The config file's content, from the ConfigMap.
    config_text: String,
    /// The config file's path in the pod (the `--config` argument).
    config_path: PathBuf,
    /// Where the token Secret is mounted.
    tokens_mount: PathBuf,
    /// The token Secret's volume name.
    tokens_volume: String,
}

impl PodLayout {
    fn of(resources: &[Value], dir: &str) -> PodLayout {
        let workload = workloads(resources)[0];
        let pod = &workload["spec"]["template"]["spec"];
        let container = exporter_container(resources);
        let args: Vec<&str> = container["args"]
            .as_array()
            .expect("args")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let at = args
            .iter()
            .position(|a| *a == "--config")
            .expect("run --config PATH");
        let config_path = PathBuf::from(args[at + 1]);

        // The ConfigMap mounted at the config's folder, and the file in it.
        let volumes = pod["volumes"].as_array().expect("volumes");
        let mounts = container["volumeMounts"].as_array().expect("volume mounts");
        let config_mount = mounts
            .iter()
            .find(|m| {
                Some(Path::new(m["mountPath"].as_str().unwrap_or_default())) == config_path.parent()
            })
            .unwrap_or_else(|| panic!("{dir}: nothing is mounted at the config's folder"));
        let map_name = volumes
            .iter()
            .find(|v| v["name"] == config_mount["name"])
            .and_then(|v| v["configMap"]["name"].as_str())
            .expect("the config volume is a ConfigMap");
        let map = resources
            .iter()
            .find(|r| kind(r) == "ConfigMap" && r["metadata"]["name"] == map_name)
            .unwrap_or_else(|| panic!("{dir}: no ConfigMap {map_name}"));
        let file = config_path
            .file_name()
            .and_then(|f| f.to_str())
            .expect("a file name");
        let config_text = map["data"][file]
            .as_str()
            .unwrap_or_else(|| panic!("{dir}: ConfigMap {map_name} has no {file}"))
            .to_owned();

        let secrets: Vec<&Value> = volumes.iter().filter(|v| v["secret"].is_object()).collect();
        assert_eq!(
            secrets.len(),
            1,
            "{dir}: one Secret volume holds the tokens"
        );
        let tokens_volume = secrets[0]["name"]
            .as_str()
            .expect("a volume name")
            .to_owned();
        let tokens_mount = PathBuf::from(
            mount(container, &tokens_volume)["mountPath"]
                .as_str()
                .expect("a mount path"),
        );
        PodLayout {
            config_text,
            config_path,
            tokens_mount,
            tokens_volume,
        }
    }

    fn config(&self) -> String {
        self.config_text.clone()
    }

    /// Every `*_file` key of the config, with the path it resolves to in the pod.
    fn secret_files(&self) -> Vec<(String, PathBuf)> {
        let mut found = Vec::new();
        collect_files(&yaml_value(&self.config_text), "", &mut found);
        let folder = self.config_path.parent().expect("the config has a folder");
        found
            .into_iter()
            .filter(|(key, _)| !key.ends_with("state_file"))
            .map(|(key, path)| (key, normalize(&folder.join(path))))
            .collect()
    }

    /// Lays the pod's files out under `root` (the config, and a token in each file the config names) and returns
    /// the config's path there.
    fn materialize(&self, root: &Path) -> PathBuf {
        let inside = |path: &Path| root.join(path.strip_prefix("/").expect("an absolute path"));
        let config = inside(&self.config_path);
        std::fs::create_dir_all(config.parent().expect("a folder")).expect("the config folder");
        std::fs::write(&config, &self.config_text).expect("the config is written");
        for (_, path) in self.secret_files() {
            let file = inside(&path);
            std::fs::create_dir_all(file.parent().expect("a folder")).expect("the token folder");
            std::fs::write(&file, "k8s-test-token-0123456789\n").expect("the token is written");
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400))
                .expect("the token's mode");
        }
        config
    }
}

fn collect_files(value: &Value, path: &str, found: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                let here = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match value.as_str() {
                    Some(file) if key.ends_with("_file") => found.push((here, file.to_owned())),
                    _ => collect_files(value, &here, found),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_files(item, &format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}

/// `a/b/../c` as `a/c`, without touching the file system (the pod's paths do not exist here).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn k8s_validate_dir() -> PathBuf {
    repo().join("scripts/k8s-validate")
}

fn require_file(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is required by these tests and was not found. Install the test dependencies (as root): bash \
         scripts/install-test-deps.sh",
        path.display()
    );
    path
}

fn kubernetes_validate(file: &Path, version: &str) -> Output {
    let tool = require_file(k8s_validate_dir().join(".venv/bin/kubernetes-validate"));
    run(Command::new(tool)
        .arg("--strict")
        .arg("--kubernetes-version")
        .arg(version)
        .arg(file))
}

/// The newest Kubernetes version whose schemas kubernetes-validate ships, as `1.37`.
fn newest_kubernetes_schema() -> String {
    let python = require_file(k8s_validate_dir().join(".venv/bin/python"));
    let output = run(Command::new(python)
        .arg("-c")
        .arg("from kubernetes_validate.utils import latest_version; print(latest_version())"));
    assert_success("kubernetes_validate.utils.latest_version()", &output);
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn version_key(version: &str) -> Vec<u32> {
    version.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// Runs scripts/k8s-validate/validate.mjs on `resources`.
fn validate_operator_resources(resources: &[Value]) -> Output {
    let node = require_program("node");
    let dir = k8s_validate_dir();
    require_file(dir.join("node_modules/@kubernetes-models/prometheus-operator/package.json"));
    let mut child = Command::new(node)
        .arg(dir.join("validate.mjs"))
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts");
    let input = serde_json::to_vec(resources).expect("resources serialize");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), &input)
        .expect("node reads stdin");
    child.wait_with_output().expect("node finishes")
}

/// One JSON document per resource: kubernetes-validate reads a stream of them (JSON is YAML).
fn write_json_stream(file: &Path, resources: &[Value]) {
    let text: Vec<String> = resources.iter().map(Value::to_string).collect();
    std::fs::write(file, text.join("\n---\n")).expect("the resources are written");
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("{command:?} does not start: {e}"))
}

fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed:\n{}",
        describe(output)
    );
}

fn describe(output: &Output) -> String {
    format!(
        "{}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
