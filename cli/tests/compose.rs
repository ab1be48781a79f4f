//! compose/docker-compose.yml and the Dockerfile stay in step with the code. The binary's own
//! parser (`--check-config`) accepts the command line and environment of every service that
//! runs `aurora`, and the command reads every AURORA_* variable the service sets. Each such
//! service runs the binary the Dockerfile builds. No Docker engine is needed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_yaml::Value;

const AURORA: &str = env!("CARGO_BIN_EXE_aurora");

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the cli crate is inside the repository")
        .to_path_buf()
}

fn compose_path() -> PathBuf {
    repository().join("compose/docker-compose.yml")
}

/// One service of the compose file, as far as these tests read it.
#[derive(Debug)]
struct Service {
    name: String,
    definition: Value,
}

impl Service {
    fn text(&self, key: &str) -> Option<String> {
        self.definition.get(key).and_then(scalar)
    }

    fn list(&self, key: &str) -> Vec<String> {
        match self.definition.get(key) {
            Some(Value::Sequence(items)) => items.iter().filter_map(scalar).collect(),
            Some(other) => panic!(
                "service {}: {key} must be a list (exec form), not {other:?}",
                self.name
            ),
            None => Vec::new(),
        }
    }

    /// Variables the service sets, from the map or the KEY=VALUE list form; a key without a
    /// value is passed through from the host and left out.
    fn environment(&self) -> BTreeMap<String, String> {
        match self.definition.get("environment") {
            Some(Value::Mapping(map)) => map
                .iter()
                .filter_map(|(key, value)| Some((scalar(key)?, scalar(value)?)))
                .collect(),
            Some(Value::Sequence(items)) => items
                .iter()
                .filter_map(scalar)
                .filter_map(|item| {
                    let (key, value) = item.split_once('=')?;
                    Some((key.to_string(), value.to_string()))
                })
                .collect(),
            Some(other) => panic!("service {}: unexpected environment {other:?}", self.name),
            None => BTreeMap::new(),
        }
    }

    /// Returns whether the service runs the image of the repository's Dockerfile.
    fn runs_aurora(&self) -> bool {
        self.definition.get("build").is_some()
            || self
                .text("image")
                .is_some_and(|image| image.starts_with("aurorapress"))
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// Reads the services with YAML anchors and merge keys resolved, as Docker Compose does.
fn services() -> Vec<Service> {
    let text = std::fs::read_to_string(compose_path()).expect("compose/docker-compose.yml exists");
    let mut document: Value = serde_yaml::from_str(&text).expect("the compose file is YAML");
    document
        .apply_merge()
        .expect("the compose file's merge keys resolve");
    let Some(Value::Mapping(services)) = document.get("services") else {
        panic!("the compose file has no services map");
    };
    services
        .iter()
        .map(|(name, definition)| Service {
            name: scalar(name).expect("service names are strings"),
            definition: definition.clone(),
        })
        .collect()
}

fn aurora_services() -> Vec<Service> {
    services()
        .into_iter()
        .filter(Service::runs_aurora)
        .collect()
}

/// Runs `aurora ARGS --check-config` with exactly `environment`, as a container would.
fn check_config(args: &[String], environment: &BTreeMap<String, String>) -> Output {
    Command::new(AURORA)
        .args(args)
        .arg("--check-config")
        .env_clear()
        .envs(environment)
        .output()
        .expect("aurora starts")
}

/// Returns the AURORA_* variables in `environment` that the checked command does not read.
fn unknown_variables(
    checked: &serde_json::Value,
    environment: &BTreeMap<String, String>,
) -> Vec<String> {
    let known: BTreeSet<String> = checked["environment"]
        .as_array()
        .expect("--check-config prints the variables")
        .iter()
        .filter_map(|name| name.as_str().map(str::to_string))
        .collect();
    environment
        .keys()
        .filter(|key| key.starts_with("AURORA_") && !known.contains(*key))
        .cloned()
        .collect()
}

#[test]
fn every_aurora_service_passes_the_parser() {
    let services = aurora_services();
    assert!(
        services.len() >= 10,
        "too few aurora services: {services:?}"
    );
    let mut checked = 0;
    for service in &services {
        let command = service.list("command");
        assert!(
            !command.is_empty(),
            "service {} has no command",
            service.name
        );
        let environment = service.environment();
        let output = check_config(&command, &environment);
        assert!(
            output.status.success(),
            "service {}: `aurora {}` was rejected: {}",
            service.name,
            command.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        let parsed: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("--check-config prints JSON");
        let path: Vec<&str> = parsed["command"]
            .as_array()
            .expect("--check-config prints the command")
            .iter()
            .filter_map(serde_json::Value::as_str)
            .collect();
        assert!(
            command.starts_with(&path.iter().map(|word| word.to_string()).collect::<Vec<_>>()),
            "service {}: parsed as {path:?}",
            service.name
        );
        let unknown = unknown_variables(&parsed, &environment);
        assert!(
            unknown.is_empty(),
            "service {}: `aurora {}` reads no {unknown:?}",
            service.name,
            path.join(" ")
        );
        checked += 1;
    }
    assert!(checked >= 10, "checked only {checked} services");
}

#[test]
fn every_component_has_a_service() {
    let commands: BTreeSet<String> = aurora_services()
        .iter()
        .map(|service| service.list("command").join(" "))
        .collect();
    for expected in [
        "topics create",
        "router",
        "deliverer",
        "retry",
        "ingest",
        "api",
        "listen",
    ] {
        assert!(
            commands.contains(expected),
            "no service runs `aurora {expected}`: {commands:?}"
        );
    }
    assert!(
        commands
            .iter()
            .any(|command| command.starts_with("endpoint add")),
        "no service registers the demo endpoint: {commands:?}"
    );
    let bridges = ["bridge sqs-in", "bridge sns-out"];
    for bridge in bridges {
        assert!(
            commands.iter().any(|command| command.starts_with(bridge)),
            "no service runs `aurora {bridge}`: {commands:?}"
        );
    }
    let images: BTreeSet<String> = services()
        .iter()
        .filter_map(|service| service.text("image"))
        .collect();
    assert!(
        images
            .iter()
            .any(|image| image.starts_with("apache/kafka:")),
        "no Apache Kafka service: {images:?}"
    );
    assert!(
        images
            .iter()
            .any(|image| image.starts_with("motoserver/moto:")),
        "no SNS/SQS emulator: {images:?}"
    );
}

#[test]
fn renamed_flag_or_variable_is_caught() {
    let mut environment = BTreeMap::new();
    environment.insert(
        "AURORA_METRICS_ADDR".to_string(),
        "0.0.0.0:9464".to_string(),
    );
    let accepted = check_config(&["router".to_string()], &environment);
    assert!(accepted.status.success(), "{accepted:?}");

    let renamed_flag = check_config(
        &[
            "router".to_string(),
            "--metrics-address".to_string(),
            "0.0.0.0:9464".to_string(),
        ],
        &BTreeMap::new(),
    );
    assert!(!renamed_flag.status.success(), "{renamed_flag:?}");

    let mut renamed = environment.clone();
    renamed.insert(
        "AURORA_METRICS_ADDRESS".to_string(),
        "0.0.0.0:9464".to_string(),
    );
    let output = check_config(&["router".to_string()], &renamed);
    let parsed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        unknown_variables(&parsed, &renamed),
        vec!["AURORA_METRICS_ADDRESS".to_string()]
    );

    let bad_value = check_config(&["ingest".to_string()], &{
        let mut bad = BTreeMap::new();
        bad.insert(
            "AURORA_INGEST_LISTEN".to_string(),
            "not-an-address".to_string(),
        );
        bad
    });
    assert!(!bad_value.status.success(), "{bad_value:?}");
}

/// Returns the stages of the Dockerfile, each as its FROM line and its instructions.
fn dockerfile_stages() -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(repository().join("Dockerfile")).expect("Dockerfile exists");
    let mut stages: Vec<(String, Vec<String>)> = Vec::new();
    let mut instruction = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && instruction.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(continued) => {
                instruction.push_str(continued);
                instruction.push(' ');
                continue;
            }
            None => instruction.push_str(line),
        }
        let complete = std::mem::take(&mut instruction);
        if complete.to_ascii_uppercase().starts_with("FROM ") {
            stages.push((complete, Vec::new()));
        } else if let Some((_, instructions)) = stages.last_mut() {
            instructions.push(complete);
        }
    }
    stages
}

#[test]
fn services_run_the_binary_the_dockerfile_builds() {
    let stages = dockerfile_stages();
    assert!(
        stages.len() >= 2,
        "the Dockerfile is not multi-stage: {stages:?}"
    );
    let (builder_from, builder) = &stages[0];
    let builder_name = builder_from
        .split_whitespace()
        .last()
        .expect("FROM names an image");
    assert!(
        builder
            .iter()
            .any(|line| line.starts_with("RUN cargo build")
                && line.contains("--release")
                && line.contains("--locked")
                && line.contains("--bin aurora")),
        "the builder stage does not build the aurora binary: {builder:?}"
    );

    let (_, runtime) = stages.last().expect("a runtime stage");
    let copy = format!("COPY --from={builder_name} ");
    let installed = runtime
        .iter()
        .find_map(|line| {
            let paths = line.strip_prefix(&copy)?;
            let (source, target) = paths.split_once(' ')?;
            source
                .ends_with("/target/release/aurora")
                .then(|| target.trim().to_string())
        })
        .unwrap_or_else(|| {
            panic!("the runtime stage copies no target/release/aurora: {runtime:?}")
        });
    let entrypoint = runtime
        .iter()
        .rev()
        .find_map(|line| line.strip_prefix("ENTRYPOINT "))
        .expect("the runtime stage has an ENTRYPOINT");
    let entrypoint: Vec<String> =
        serde_json::from_str(entrypoint).expect("ENTRYPOINT is in exec (JSON) form");
    assert!(
        entrypoint == [installed.clone()]
            || (entrypoint == ["aurora"] && installed.starts_with("/usr/local/bin/")),
        "ENTRYPOINT {entrypoint:?} does not run the copied binary {installed}"
    );

    for service in aurora_services() {
        let build = service
            .definition
            .get("build")
            .unwrap_or_else(|| panic!("service {} has no build section", service.name));
        let context = build
            .get("context")
            .and_then(scalar)
            .expect("build has a context");
        let dockerfile = build
            .get("dockerfile")
            .and_then(scalar)
            .unwrap_or_else(|| "Dockerfile".into());
        let resolved = repository()
            .join("compose")
            .join(&context)
            .join(&dockerfile);
        assert_eq!(
            resolved.canonicalize().ok(),
            repository().join("Dockerfile").canonicalize().ok(),
            "service {} builds {context}/{dockerfile}, not the repository's Dockerfile",
            service.name
        );
        assert!(
            service.definition.get("entrypoint").is_none(),
            "service {} replaces the image's aurora entrypoint",
            service.name
        );
    }
}

/// Parses "1.85" or "1.94.1" into comparable numbers.
fn version(text: &str) -> Vec<u32> {
    text.split('.')
        .filter_map(|part| part.parse().ok())
        .collect()
}

#[test]
fn dockerfile_rust_meets_every_rust_version() {
    let stages = dockerfile_stages();
    let image = stages[0].0.split_whitespace().nth(1).unwrap_or_default();
    let tag = image
        .strip_prefix("rust:")
        .unwrap_or_else(|| panic!("the builder is not an official rust image: {image}"));
    let builder = version(tag.split('-').next().unwrap_or_default());

    let mut manifests = vec![repository().join("Cargo.toml")];
    for entry in std::fs::read_dir(repository()).unwrap().flatten() {
        let manifest = entry.path().join("Cargo.toml");
        if manifest.is_file() {
            manifests.push(manifest);
        }
    }
    for manifest in manifests {
        let text = std::fs::read_to_string(&manifest).unwrap();
        for line in text.lines() {
            let Some(value) = line.trim().strip_prefix("rust-version = ") else {
                continue;
            };
            let required = version(value.trim_matches('"'));
            assert!(
                builder >= required,
                "{} requires Rust {value}, the Dockerfile builds with {tag}",
                manifest.display()
            );
        }
    }
}
