use std::path::PathBuf;

use kube::CustomResourceExt;
use serde_json::{Value, json};

use super::*;
use crate::contract::condition;
use crate::fleet::Fleet;
use crate::model::{ModelError, ParamCount};
use crate::planner::SpotPolicy;
use crate::precision::{Precision, PrecisionChoice};

fn workspace_file(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// Fails when the committed CRD and the types differ. `UPDATE_CRDS=1 cargo
/// test` rewrites the file instead, like insta's `INSTA_UPDATE`.
#[test]
fn committed_crd_matches_the_rust_types() {
    let path = workspace_file(CRD_PATH);
    if std::env::var_os("UPDATE_CRDS").is_some() {
        std::fs::write(&path, crd_yaml()).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == crd_yaml(),
        "{} is missing or out of date with core/src/crd; regenerate it with\n  \
         cargo run -- crd > {CRD_PATH}\n(or UPDATE_CRDS=1 cargo test) and commit the result",
        path.display()
    );
}

/// The `openAPIV3Schema` as JSON, to look into.
fn schema() -> Value {
    let crd = ModelDeployment::crd();
    let version = &crd.spec.versions[0];
    serde_json::to_value(
        version
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

/// The schema of a field, by a dotted path of property names.
fn field(path: &str) -> Value {
    let mut node = schema();
    for part in path.split('.') {
        node = node["properties"][part].clone();
        assert!(!node.is_null(), "no field {part} in {path}");
    }
    node
}

fn rules(node: &Value) -> Vec<(String, String)> {
    node["x-kubernetes-validations"]
        .as_array()
        .unwrap_or_else(|| panic!("no CEL rules in {node}"))
        .iter()
        .map(|r| {
            (
                r["rule"].as_str().unwrap().to_owned(),
                r["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_resource_is_namespaced_md_with_status_and_scale() {
    let crd = ModelDeployment::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("modeldeployments.modelfleet.io")
    );
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.short_names, Some(vec!["md".to_owned()]));
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    let subresources = version.subresources.as_ref().unwrap();
    assert!(subresources.status.is_some());
    assert_eq!(
        subresources.scale.as_ref().unwrap().spec_replicas_path,
        ".spec.replicas"
    );
    let columns: Vec<_> = version
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .filter(|c| c.priority.unwrap_or(0) == 0)
        .map(|c| (c.name.as_str(), c.json_path.as_str()))
        .collect();
    assert_eq!(
        columns,
        [
            ("Model", ".spec.model"),
            ("Accelerator", ".status.plan.accelerator"),
            ("Devices", ".status.plan.devicesPerReplica"),
            ("Ready", ".status.readyReplicas"),
            ("Phase", ".status.phase"),
            ("Age", ".metadata.creationTimestamp"),
        ]
    );
}

#[test]
fn the_schema_refuses_what_can_never_work() {
    assert_eq!(field("spec.replicas")["minimum"].as_f64(), Some(0.0));
    assert_eq!(field("spec.replicas")["default"], json!(1));
    assert_eq!(field("spec.model")["minLength"], json!(1));
    assert_eq!(
        field("spec.serving.precision")["enum"],
        json!(["auto", "bf16", "fp8", "int8", "int4"])
    );
    assert_eq!(
        field("spec.serving.runtime")["enum"],
        json!(["auto", "vllm", "vllm-ascend"])
    );
    assert_eq!(
        field("spec.placement.spot")["enum"],
        json!(["never", "allowed", "preferred"])
    );
    let utilization = field("spec.serving.gpuMemoryUtilization");
    assert_eq!(
        (
            utilization["minimum"].as_f64(),
            utilization["maximum"].as_f64()
        ),
        (Some(0.05), Some(1.0))
    );
    assert_eq!(
        field("spec.serving.maxModelLen")["minimum"].as_f64(),
        Some(1.0)
    );
    assert_eq!(
        field("spec.serving.tensorParallelSize")["minimum"].as_f64(),
        Some(1.0)
    );
    let accelerators = field("spec.placement.accelerators")["items"]["enum"].clone();
    assert!(
        accelerators
            .as_array()
            .unwrap()
            .contains(&json!("ascend-910b"))
    );
    assert_eq!(
        field("spec.placement.clouds")["items"]["enum"],
        json!(["aws", "aliyun", "tencentcloud", "huaweicloud", "generic"])
    );
    let required = schema()["properties"]["spec"]["required"].clone();
    assert_eq!(required, json!(["model", "source"]));
}

#[test]
fn cel_rules_carry_messages_a_user_understands() {
    let (rule, message) = &rules(&field("spec.source"))[0];
    for scheme in SOURCE_SCHEMES {
        assert!(rule.contains(scheme), "{rule}");
        assert!(message.contains(&format!("{scheme}://")), "{message}");
    }
    assert_eq!(
        field("spec.source")["maxLength"],
        json!(2048),
        "bounds the CEL cost"
    );
    let (rule, message) = &rules(&schema())[0];
    assert!(rule.contains("self.metadata.name"), "{rule}");
    assert!(rule.contains(&format!("<= {MAX_NAME_LEN}")), "{rule}");
    assert!(
        message.contains(&format!("at most {MAX_NAME_LEN}")),
        "{message}"
    );
    assert!(message.contains("Service"), "{message}");
    let (rule, message) = &rules(&field("spec"))[0];
    assert!(
        rule.contains("self.architecture.id == self.model"),
        "{rule}"
    );
    assert!(
        message.starts_with("architecture.id must equal model"),
        "{message}"
    );
    let (_, message) = &rules(&field("spec.placement.pool"))[0];
    assert!(message.contains("cluster/pool"), "{message}");
    let (_, message) = &rules(&field("spec.model"))[0];
    assert!(message.contains("llama-3.1-70b"), "{message}");
}

#[test]
fn descriptions_make_kubectl_explain_useful() {
    let serving = field("spec.serving");
    for name in [
        "runtime",
        "precision",
        "maxModelLen",
        "concurrency",
        "gpuMemoryUtilization",
        "tensorParallelSize",
        "pipelineParallelSize",
        "extraArgs",
        "image",
    ] {
        let description = serving["properties"][name]["description"].as_str();
        assert!(
            description.is_some_and(|d| d.len() > 20),
            "spec.serving.{name} has no useful description"
        );
    }
    assert!(
        field("spec.architecture.layers")["description"]
            .as_str()
            .unwrap()
            .contains("num_hidden_layers")
    );
    assert_eq!(
        field("spec.architecture.totalParams")["x-kubernetes-int-or-string"],
        json!(true)
    );
    assert_eq!(
        field("status.conditions")["x-kubernetes-list-map-keys"],
        json!(["type"])
    );
}

#[test]
fn a_catalog_spec_becomes_planner_inputs() {
    let md = ModelDeployment::test("chat")
        .model("llama-3.1-70b")
        .on("h100-80gb")
        .precision("bf16")
        .concurrency(32)
        .gpu_memory_utilization(0.92)
        .spot(SpotPolicy::Allowed)
        .replicas(0);
    let inputs = md.spec.planner_inputs().unwrap();
    assert_eq!(inputs.model.id, "llama-3.1-70b");
    assert_eq!(
        inputs.request.precision,
        PrecisionChoice::Fixed(Precision::Bf16)
    );
    assert_eq!(inputs.request.concurrency, 32);
    assert_eq!(inputs.request.gpu_memory_utilization.basis_points(), 9200);
    assert_eq!(inputs.request.replicas, 1, "scaled to 0 is planned as one");
    assert_eq!(inputs.constraints.accelerators, ["h100-80gb"]);
    assert_eq!(inputs.constraints.spot, SpotPolicy::Allowed);
}

#[test]
fn an_inline_architecture_is_validated_and_must_match_model() {
    let mut arch = crate::model::ModelArch::find("llama-3.1-8b")
        .unwrap()
        .clone();
    arch.id = "my-8b".to_owned();
    let md = ModelDeployment::test("mine").architecture(arch.clone());
    assert_eq!(md.spec.resolve_model().unwrap(), arch);

    let mut mismatched = md.clone();
    mismatched.spec.model = "other".to_owned();
    let err = mismatched.spec.resolve_model().unwrap_err();
    assert!(
        err.to_string().contains("must equal spec.model \"other\""),
        "{err}"
    );

    let mut broken = arch;
    broken.layers = 0;
    let err = ModelDeployment::test("bad")
        .architecture(broken)
        .spec
        .resolve_model()
        .unwrap_err();
    assert!(
        matches!(err, SpecError::Model(ModelError::Invalid(_))),
        "{err}"
    );
    assert!(
        err.to_string().contains("layers must be at least 1"),
        "{err}"
    );
}

#[test]
fn an_unknown_model_names_the_catalog() {
    let err = ModelDeployment::test("x")
        .model("llama-9")
        .spec
        .planner_inputs()
        .unwrap_err();
    assert_eq!(err.metric_label(), "model");
    assert!(err.to_string().contains("llama-3.1-70b"), "{err}");
}

#[test]
fn a_fixed_runtime_narrows_the_accelerators() {
    let ascend_only = ModelDeployment::test("a").runtime(RuntimeChoice::VllmAscend);
    let accelerators = ascend_only.spec.constraints().unwrap().accelerators;
    assert!(
        accelerators.iter().all(|id| id.starts_with("ascend-")),
        "{accelerators:?}"
    );
    assert!(accelerators.contains(&"ascend-910b".to_owned()));

    let conflict = ascend_only.on("h100-80gb");
    let err = conflict.spec.constraints().unwrap_err();
    assert!(
        err.to_string()
            .contains("vllm-ascend runs on none of spec.placement.accelerators (h100-80gb)"),
        "{err}"
    );
}

#[test]
fn gpu_memory_utilization_out_of_range_is_refused() {
    let err = ModelDeployment::test("x")
        .gpu_memory_utilization(1.5)
        .spec
        .serving_request()
        .unwrap_err();
    assert!(err.to_string().contains("between 0.05 and 1.0"), "{err}");
}

#[test]
fn sources_parse_by_scheme() {
    // ModelScope and HTTPS sources have forms of their own (below).
    for scheme in SOURCE_SCHEMES
        .into_iter()
        .filter(|s| !matches!(*s, "modelscope" | "https"))
    {
        let source = ModelSource::parse(&format!("{scheme}://bucket/a/b/")).unwrap();
        assert_eq!(source.scheme.name(), scheme);
        assert_eq!(
            (source.root.as_str(), source.path.as_str()),
            ("bucket", "a/b")
        );
        assert_eq!(source.to_string(), format!("{scheme}://bucket/a/b"));
    }
    let claim = ModelSource::parse("pvc://weights").unwrap();
    assert_eq!((claim.scheme, claim.path.as_str()), (SourceScheme::Pvc, ""));
    for bad in [
        "ftp://host/x",
        "s3://",
        "s3:///key",
        "/models/x",
        "hf://my org/x",
    ] {
        let err = ModelSource::parse(bad).unwrap_err();
        assert!(err.to_string().contains("s3://, oss://"), "{bad}: {err}");
    }
}

#[test]
fn a_modelscope_source_is_org_model_and_an_optional_revision() {
    for (uri, root, path) in [
        ("modelscope://Qwen/Qwen3-8B", "Qwen", "Qwen3-8B"),
        ("modelscope://Qwen/Qwen3-8B@v1.0", "Qwen", "Qwen3-8B@v1.0"),
        (
            "modelscope://LLM-Research/Meta-Llama-3.1-8B-Instruct@release/v2",
            "LLM-Research",
            "Meta-Llama-3.1-8B-Instruct@release/v2",
        ),
    ] {
        let source = ModelSource::parse(uri).unwrap();
        assert_eq!(
            (source.scheme, source.root.as_str(), source.path.as_str()),
            (SourceScheme::ModelScope, root, path)
        );
        assert_eq!(
            source.to_string(),
            uri,
            "round-trips to the fetch's --source"
        );
    }
    for (bad, why) in [
        ("modelscope://Qwen", "names no model"),
        ("modelscope://Qwen/", "names no model"),
        ("modelscope://Qwen/Qwen3-8B/extra", "more than org/model"),
        ("modelscope://Qwen/Qwen3 8B", "letters, digits"),
        ("modelscope://Qw*n/Qwen3-8B", "letters, digits"),
        ("modelscope://Qwen/..", "letters, digits"),
        ("modelscope://Qwen/Qwen3-8B@", "no revision after @"),
        ("modelscope://Qwen/Qwen3-8B@v1 0", "revision"),
    ] {
        let err = ModelSource::parse(bad).unwrap_err().to_string();
        assert!(err.contains(why), "{bad}: {err}");
        assert!(
            err.contains("modelscope://org/model or modelscope://org/model@revision"),
            "says what a right one looks like: {err}"
        );
    }
}

#[test]
fn an_https_source_names_one_file_on_a_host() {
    for (uri, root, path) in [
        (
            "https://models.example.com/llama/model.gguf",
            "models.example.com",
            "llama/model.gguf",
        ),
        (
            "https://mirror.corp:8443/w.bin",
            "mirror.corp:8443",
            "w.bin",
        ),
        ("https://[::1]:8443/a/w.bin", "[::1]:8443", "a/w.bin"),
        (
            "https://10.0.0.7/w.safetensors",
            "10.0.0.7",
            "w.safetensors",
        ),
    ] {
        let source = ModelSource::parse(uri).unwrap();
        assert_eq!(
            (source.scheme, source.root.as_str(), source.path.as_str()),
            (SourceScheme::Https, root, path)
        );
        assert_eq!(
            source.to_string(),
            uri,
            "round-trips to the fetch's --source"
        );
    }
    for (bad, why) in [
        ("https://models.example.com", "names a directory"),
        ("https://models.example.com/", "names a directory"),
        ("https://models.example.com/llama/", "names a directory"),
        (
            "https://models.example.com//w.bin",
            "empty, '.' or '..' part",
        ),
        (
            "https://models.example.com/a/../w.bin",
            "empty, '.' or '..' part",
        ),
        (
            "https://h.example/w.bin?X-Amz-Signature=abc",
            "query or fragment",
        ),
        ("https://h.example/w.bin#part", "query or fragment"),
        ("https://user:pw@h.example/w.bin", "carries credentials"),
        ("https://h_x!/w.bin", "no valid host name"),
        ("https://h.example:0/w.bin", "not 1 to 65535"),
        ("https://h.example:99999/w.bin", "not 1 to 65535"),
        ("https://[zz]/w.bin", "no valid host name"),
        ("http://h.example/w.bin", "plain HTTP"),
    ] {
        let err = ModelSource::parse(bad).unwrap_err().to_string();
        assert!(err.contains(why), "{bad}: {err}");
        assert!(
            err.contains("https://host/path/to/file"),
            "says what a right one looks like: {err}"
        );
        assert!(!err.contains("pw@"), "never repeats credentials: {err}");
    }
}

#[test]
fn an_inline_model_reads_from_yaml_with_friendly_units() {
    let md: ModelDeployment = serde_yaml::from_str(
        "apiVersion: modelfleet.io/v1alpha1\nkind: ModelDeployment\nmetadata: {name: my-13b}\n\
         spec:\n  model: my-13b\n  source: pvc://weights/my-13b\n  architecture:\n    id: my-13b\n\
         \x20   layers: 40\n    hiddenSize: 5120\n    attentionHeads: 40\n    kvHeads: 40\n\
         \x20   headDim: 128\n    ffnSize: 13824\n    vocabSize: 32000\n    totalParams: \"13.02B\"\n\
         \x20   maxContext: 4096\n",
    )
    .unwrap();
    assert_eq!(md.spec.replicas, 1, "replicas default to one");
    let model = md.spec.resolve_model().unwrap();
    assert_eq!(model.total_params, ParamCount(13_020_000_000));
}

/// The examples in manifests/examples, with what each should plan to on the
/// example fleet: accelerator, nodes per replica, devices per replica.
const EXAMPLES: [(&str, &str, u32, u32); 4] = [
    ("llama-3.1-8b-l40s.yaml", "l40s", 1, 1),
    ("llama-3.1-70b-h100.yaml", "h100-80gb", 1, 4),
    ("gpt3-175b-h100-two-nodes.yaml", "h100-80gb", 2, 16),
    ("llama-3.1-70b-ascend-910b.yaml", "ascend-910b", 1, 4),
];

#[test]
fn every_example_parses_and_plans_on_the_example_fleet() {
    let fleet = Fleet::example();
    let dir = workspace_file("manifests/examples");
    let mut on_disk: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    let mut expected: Vec<_> = EXAMPLES.iter().map(|e| e.0.to_owned()).collect();
    expected.sort();
    assert_eq!(on_disk, expected, "every example is checked here");

    for (file, accelerator, nodes, devices) in EXAMPLES {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let md: ModelDeployment =
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let name = md.metadata.name.clone().unwrap();
        assert!(
            name.len() <= MAX_NAME_LEN && crate::fleet::is_dns_label(&name),
            "{file}: {name}"
        );
        md.spec
            .model_source()
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let report = md.spec.planner_inputs().unwrap().plan(&fleet).unwrap();
        let best = report
            .best()
            .unwrap_or_else(|| panic!("{file}: no plan: {:#?}", report.rejections));
        assert_eq!(
            (
                best.accelerator.as_str(),
                best.nodes_per_replica,
                best.devices_per_replica
            ),
            (accelerator, nodes, devices),
            "{file}"
        );
        let status = PlanStatus::from(best);
        assert!(
            status.cost_per_hour.is_some(),
            "{file}: the example fleet prices every pool"
        );
    }
}

#[test]
fn status_serializes_in_kubernetes_words() {
    let status = ModelDeploymentStatus {
        phase: Some(Phase::Loading),
        observed_generation: Some(3),
        ready_replicas: Some(0),
        ..ModelDeploymentStatus::default()
    };
    assert_eq!(
        serde_json::to_value(&status).unwrap(),
        json!({"phase": "Loading", "observedGeneration": 3, "readyReplicas": 0})
    );
    assert_eq!(
        field("status.phase")["enum"].as_array().unwrap().len(),
        Phase::ALL.len()
    );
    assert_eq!(condition::PLANNED, "Planned");
}
