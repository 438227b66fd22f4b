//! Hostile and malformed tenant specs (`tests/hostile/refused.yaml`) on the whole stack
//! (KubeVirt + CDI, LINSTOR, Kube-OVN, MetalLB on the test doubles): each is refused when
//! planned, through the library (an invalid-input error naming the field) and through the
//! `kubecloud` tool (exit 2, the field in its message), and the doubles see nothing written.
//! The legitimate specs next to them (`tests/hostile/accepted.yaml`: IPv6, YAML anchors, JSON,
//! a UTF-8 byte-order mark...) still plan.
#![cfg(feature = "kubernetes")]

mod common {
    pub mod stack;
}

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use common::stack::stack;
use kubecloud::{ApplyOptions, Error, TenantSpec};
use kubecloud_testkit::Latency;
use serde::Deserialize;

/// One spec of the corpus.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    /// The field the error must name (the path the parser was at, for a document that does not parse).
    #[serde(default)]
    field: String,
    /// The tenant to plan for (`hostile`, empty, unless `acme`, seeded).
    #[serde(default)]
    tenant: Option<String>,
    /// A text the error must also contain.
    #[serde(default)]
    message: Option<String>,
    /// Tokens replaced by a character repeated N times.
    #[serde(default)]
    expand: BTreeMap<String, (String, usize)>,
    spec: String,
}

impl Case {
    fn text(&self) -> String {
        self.expand
            .iter()
            .fold(self.spec.clone(), |text, (token, (c, n))| {
                text.replace(token, &c.repeat(*n))
            })
    }

    fn tenant(&self) -> &str {
        self.tenant.as_deref().unwrap_or("hostile")
    }
}

fn corpus(file: &str) -> Vec<Case> {
    let path = format!("{}/tests/hostile/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("corpus readable");
    serde_saphyr::from_str(&text).expect("corpus parses")
}

/// What the seeded tenant `acme` has: the cases with `tenant: acme` refer to it.
const SEED: &str = r#"
vpcs: [{ name: main }]
subnets: [{ name: web, vpc: main, cidr: 10.1.0.0/24, exclude: ["10.1.0.200..10.1.0.210"] }]
"#;

/// How long an error message may be: a megabyte of input is quoted by a prefix.
const MAX_MESSAGE: usize = 2_000;

/// The library's verdict on a case: the error, from parsing or planning.
async fn refusal(cloud: &kubecloud::Cloud, case: &Case) -> Option<Error> {
    let spec = match TenantSpec::from_yaml(&case.text()) {
        Ok(spec) => spec,
        Err(err) => return Some(err),
    };
    let tenant = cloud.tenant(case.tenant()).expect("tenant");
    tenant.plan(&spec).await.err()
}

fn check_refusal(case: &Case, err: &Error) -> Result<(), String> {
    let text = err.to_string();
    let field = err.invalid_field().unwrap_or_default();
    if !err.is_invalid_input() || !field.starts_with(&case.field) {
        return Err(format!(
            "{}: expected invalid {}, got {}",
            case.name,
            case.field,
            &text[..text.len().min(MAX_MESSAGE)]
        ));
    }
    if text.len() > MAX_MESSAGE {
        return Err(format!("{}: message of {} bytes", case.name, text.len()));
    }
    if let Some(message) = &case.message
        && !text.contains(message.as_str())
    {
        return Err(format!("{}: {message:?} missing in {text}", case.name));
    }
    Ok(())
}

/// `cargo test` builds the examples next to the test binaries: target/<profile>/examples.
fn tool() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .join("examples")
        .join(format!("kubecloud{}", std::env::consts::EXE_SUFFIX))
}

fn kubeconfig(dir: &std::path::Path, server_url: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    let yaml = format!(
        "apiVersion: v1\nkind: Config\n\
         clusters: [{{name: double, cluster: {{server: \"{server_url}\"}}}}]\n\
         users: [{{name: me, user: {{}}}}]\n\
         contexts: [{{name: lab, context: {{cluster: double, user: me, namespace: default}}}}]\n\
         current-context: lab\n"
    );
    std::fs::write(&path, yaml).expect("kubeconfig written");
    path
}

/// Runs `kubecloud plan` on each case's spec (a few at a time, off the runtime's threads so the
/// doubles keep serving); returns each case's exit code and stderr.
async fn plan_with_the_tool(
    dir: &std::path::Path,
    config: &std::path::Path,
    cases: &[Case],
) -> Vec<(Option<i32>, String)> {
    let mut out = Vec::with_capacity(cases.len());
    for (chunk_at, chunk) in cases.chunks(4).enumerate() {
        let runs = chunk.iter().enumerate().map(|(i, case)| {
            let file = dir.join(format!("case-{}.yaml", chunk_at * 4 + i));
            std::fs::write(&file, case.text()).expect("spec written");
            let (config, tenant) = (config.to_path_buf(), case.tenant().to_string());
            tokio::task::spawn_blocking(move || {
                std::process::Command::new(tool())
                    .arg("--kubeconfig")
                    .arg(&config)
                    .args(["plan", "--tenant", &tenant, "-f"])
                    .arg(&file)
                    .output()
                    .expect("the tool runs")
            })
        });
        for run in futures::future::join_all(runs).await {
            let output = run.expect("the tool ran");
            out.push((
                output.status.code(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_spec_is_refused_at_plan_naming_its_field_and_nothing_is_sent() {
    let refused = corpus("refused.yaml");
    assert!(refused.len() >= 200, "{} cases", refused.len());
    let s = stack(Latency::None, 7).await;
    let acme = s.cloud.tenant("acme").expect("tenant");
    let seed = TenantSpec::from_yaml(SEED).expect("seed");
    let options = ApplyOptions {
        timeout: Duration::from_secs(60),
        ..ApplyOptions::default()
    };
    let report = acme
        .apply(&acme.plan(&seed).await.expect("plan"), options)
        .await
        .expect("apply");
    assert!(report.is_complete(), "{report:?}");
    s.kube.requests().reset();
    s.linstor.reset_requests();

    // Through the library.
    let mut failures = Vec::new();
    for case in &refused {
        match refusal(&s.cloud, case).await {
            None => failures.push(format!("{}: accepted", case.name)),
            Some(err) => failures.extend(check_refusal(case, &err).err()),
        }
        let writes = s.kube.requests().writes();
        if !writes.is_empty() {
            failures.push(format!("{}: sent {writes:?}", case.name));
            s.kube.requests().reset();
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Through the tool, against the same doubles.
    let dir = tempfile::tempdir().expect("temp dir");
    let config = kubeconfig(dir.path(), s.kube.url());
    let results = plan_with_the_tool(dir.path(), &config, &refused).await;
    for (case, (code, stderr)) in refused.iter().zip(&results) {
        if *code != Some(2) || !stderr.contains(&case.field) || stderr.len() > MAX_MESSAGE {
            failures.push(format!(
                "{}: exit {code:?}, expected 2 naming {}: {}",
                case.name,
                case.field,
                &stderr[..stderr.len().min(MAX_MESSAGE)]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    assert_eq!(s.kube.requests().writes(), [], "nothing written");
    let linstor_writes: Vec<_> = s
        .linstor
        .requests()
        .into_iter()
        .filter(|r| r.is_write())
        .collect();
    assert!(linstor_writes.is_empty(), "{linstor_writes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legitimate_specs_next_to_the_hostile_ones_still_plan() {
    let accepted = corpus("accepted.yaml");
    let s = stack(Latency::None, 8).await;
    for case in &accepted {
        let spec =
            TenantSpec::from_yaml(&case.text()).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let plan = s
            .cloud
            .tenant(case.tenant())
            .expect("tenant")
            .plan(&spec)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(plan.steps.len(), spec.len(), "{}: {plan}", case.name);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let config = kubeconfig(dir.path(), s.kube.url());
    let results = plan_with_the_tool(dir.path(), &config, &accepted).await;
    for (case, (code, stderr)) in accepted.iter().zip(&results) {
        assert_eq!(*code, Some(0), "{}: {stderr}", case.name);
    }
    assert_eq!(s.kube.requests().writes(), [], "planning writes nothing");
}

/// An operator's import policy lets a lab's image server on loopback through; the default
/// refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_can_allow_more_import_hosts() {
    let s = stack(Latency::None, 9).await;
    let spec = TenantSpec::from_yaml(
        r#"volumes: [{ name: image, size: 1Gi, source: { import: { url: "http://127.0.0.1:8080/os.img" } } }]"#,
    )
    .expect("spec");
    let err = s
        .cloud
        .tenant("lab")
        .unwrap()
        .plan(&spec)
        .await
        .unwrap_err();
    assert_eq!(err.invalid_field(), Some("volumes[0].source.url"));
    let lab = s.cloud.clone().with_import_policy(
        kubecloud::ImportPolicy::default().allow("127.0.0.0/8".parse().unwrap()),
    );
    let plan = lab.tenant("lab").unwrap().plan(&spec).await.expect("plan");
    assert_eq!(plan.steps.len(), 1);
}
