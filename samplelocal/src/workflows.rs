//! The state machines of `statemachines/`, built into the binary so
//! `tributary` runs the same files Terraform deploys from any directory, with
//! their `${name_function}` placeholders pointing at the in-process
//! functions.

use anyhow::{anyhow, Result};
use std::collections::BTreeMap;
use std::path::Path;

pub const PARTITION_PIPELINE: &str =
    include_str!("../../statemachines/partition_pipeline.asl.json");

/// `${clean_partition_function}` → `tributary-clean-partition`, for every
/// function (Terraform substitutes the deployed function names).
/// An embedded definition with its function placeholders filled in.
fn embedded(text: &str, file: &str) -> Result<String> {
    substitute(text, &function_vars(), Path::new(file))
}

pub fn function_vars() -> BTreeMap<String, String> {
    let mut vars: BTreeMap<String, String> = tributary_handlers::function_names()
        .map(|f| {
            (
                format!("{}_function", f.replace('-', "_")),
                format!("tributary-{f}"),
            )
        })
        .collect();
    // The workspace is one bucket; child machines are found by name.
    vars.insert("data_bucket".into(), "tributary-local".into());
    // One process runs one clean at a time locally; slots only matter on AWS.
    vars.insert("clean_slots".into(), "4".into());
    vars.insert(
        "distributed_clean_arn".into(),
        format!("tributary-{DISTRIBUTED_CLEAN_NAME}"),
    );
    vars
}

/// The distributed clean, started by the partition pipeline for large dates.
pub const DISTRIBUTED_CLEAN_NAME: &str = "distributed_clean";
pub const DISTRIBUTED_CLEAN: &str = include_str!("../../statemachines/distributed_clean.asl.json");

pub fn distributed_clean() -> Result<String> {
    embedded(
        DISTRIBUTED_CLEAN,
        "statemachines/distributed_clean.asl.json",
    )
}

/// Fill `${NAME}` placeholders as Terraform's templatefile does; a
/// placeholder without a value is an error that names it.
pub fn substitute(text: &str, vars: &BTreeMap<String, String>, file: &Path) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| anyhow!("{}: unterminated ${{ placeholder", file.display()))?;
        let name = &after[..end];
        let value = vars.get(name).ok_or_else(|| {
            anyhow!(
                "{}: placeholder ${{{name}}} has no value; pass --var {name}=VALUE",
                file.display()
            )
        })?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

pub const LABELING: &str = include_str!("../../statemachines/labeling.asl.json");

pub fn labeling() -> Result<String> {
    embedded(LABELING, "statemachines/labeling.asl.json")
}

pub const FEATURE_PIPELINE: &str = include_str!("../../statemachines/feature_pipeline.asl.json");

pub fn feature_pipeline() -> Result<String> {
    embedded(FEATURE_PIPELINE, "statemachines/feature_pipeline.asl.json")
}

pub const CATCHUP: &str = include_str!("../../statemachines/catchup.asl.json");

pub fn catchup() -> Result<String> {
    embedded(CATCHUP, "statemachines/catchup.asl.json")
}

/// The definition of a state machine a handler starts.
pub fn definition(workflow: tributary_core::ports::Workflow) -> Result<String> {
    use tributary_core::ports::Workflow;
    match workflow {
        Workflow::PartitionPipeline => partition_pipeline(),
        Workflow::FeaturePipeline => feature_pipeline(),
        Workflow::Labeling => labeling(),
    }
}

pub fn partition_pipeline() -> Result<String> {
    embedded(
        PARTITION_PIPELINE,
        "statemachines/partition_pipeline.asl.json",
    )
}

#[cfg(test)]
mod tests {
    use super::substitute;
    use std::collections::BTreeMap;
    use std::path::Path;

    #[test]
    fn placeholders_are_substituted_or_named() {
        let vars = BTreeMap::from([("clean_arn".to_string(), "arn:x".to_string())]);
        assert_eq!(
            substitute("{\"Resource\": \"${clean_arn}\"}", &vars, Path::new("f")).unwrap(),
            "{\"Resource\": \"arn:x\"}"
        );
        let err = substitute("${missing}", &vars, Path::new("f.asl.json")).unwrap_err();
        assert!(err.to_string().contains("--var missing=VALUE"), "{err}");
    }

    use serde_json::{json, Value};
    use tributary_asl::{Host, RunOptions, Status, TaskCall, TaskOutcome};

    #[test]
    fn the_embedded_state_machines_load() {
        let text = super::partition_pipeline().unwrap();
        tributary_asl::load(&text).unwrap_or_else(|e| panic!("{e}"));
        assert!(!text.contains("${"));
    }

    #[test]
    fn every_file_in_statemachines_is_valid() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../statemachines");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if !path.to_string_lossy().ends_with(".asl.json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let text =
                substitute(&text, &super::function_vars(), &path).unwrap_or_else(|e| panic!("{e}"));
            tributary_asl::load(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            checked += 1;
        }
        assert!(checked >= 1);
    }

    /// The functions, scripted: `clean_failures` lists the errors the
    /// clean function returns before it succeeds.
    struct Scripted {
        clean_failures: Vec<&'static str>,
        /// Times acquire-slot answers that every slot is held.
        slot_waits: usize,
        calls: Vec<(String, Value)>,
    }

    impl Host for Scripted {
        fn invoke(&mut self, call: &TaskCall<'_>) -> TaskOutcome {
            let f = call
                .function
                .unwrap_or_default()
                .trim_start_matches("tributary-")
                .to_string();
            self.calls.push((f.clone(), call.payload.clone()));
            let p = call.payload;
            match f.as_str() {
                "plan-partition" => TaskOutcome::ok(json!({"datasets": ["orders", "refunds"]})),
                "plan-clean" => {
                    TaskOutcome::ok(json!({"path": "single", "raw_bytes": 10, "files": 1}))
                }
                "acquire-slot" if self.slot_waits > 0 => {
                    self.slot_waits -= 1;
                    TaskOutcome::failed("Tributary.NoSlot", "all 4 clean slots are held")
                }
                "acquire-slot" => TaskOutcome::ok(json!({"held": 1, "limit": 4})),
                "release-slot" => TaskOutcome::ok(json!({"held": 0})),
                "clean-partition" if !self.clean_failures.is_empty() => {
                    TaskOutcome::failed(self.clean_failures.remove(0), "scripted")
                }
                "clean-partition" => TaskOutcome::ok(
                    json!({"stats": {"input": 3, "kept": 2, "rejected_total": 1, "duplicates": 0}}),
                ),
                "validate-partition" => {
                    TaskOutcome::ok(json!({"dataset": p["dataset"], "passed": true, "score": 1.0}))
                }
                "publish-partition" => TaskOutcome::ok(
                    json!({"manifest": {"location": format!("cleaned/{}/", p["dataset"].as_str().unwrap_or_default())}, "watermarks": {}}),
                ),
                "mark-failed" => TaskOutcome::ok(json!({"failed": ["orders"]})),
                other => TaskOutcome::failed("Test.Unexpected", other),
            }
        }
    }

    fn run(clean_failures: Vec<&'static str>) -> (tributary_asl::Execution, Vec<(String, Value)>) {
        run_waiting(clean_failures, 0)
    }

    fn run_waiting(
        clean_failures: Vec<&'static str>,
        slot_waits: usize,
    ) -> (tributary_asl::Execution, Vec<(String, Value)>) {
        let machine = tributary_asl::load(&super::partition_pipeline().unwrap()).unwrap();
        let mut host = Scripted {
            clean_failures,
            slot_waits,
            calls: vec![],
        };
        let input = json!({"pipeline": "p", "date": "2026-01-01", "run_id": "r1"});
        let exec = tributary_asl::run(
            &machine,
            input,
            &RunOptions::new("partition_pipeline", "t", 0),
            &mut host,
        );
        (exec, host.calls)
    }

    #[test]
    fn a_retryable_clean_failure_is_retried_then_the_run_publishes() {
        let (exec, calls) = run(vec!["Tributary.Retryable"]);
        assert_eq!(
            exec.status,
            Status::Succeeded,
            "{:?} {:?}",
            exec.error,
            exec.cause
        );
        let cleans = calls.iter().filter(|c| c.0 == "clean-partition").count();
        assert_eq!(cleans, 3, "orders twice (one retry), refunds once");
        assert!(exec
            .history
            .iter()
            .any(|e| e.event_type == "RetryScheduled"));
        let published: Vec<_> = exec.output.as_ref().unwrap()["published"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["location"].clone())
            .collect();
        assert_eq!(
            published,
            vec![json!("cleaned/orders/"), json!("cleaned/refunds/")]
        );
    }

    #[test]
    fn bad_data_is_not_retried_the_run_is_marked_failed_with_the_original_error() {
        let (exec, calls) = run(vec!["Tributary.BadData"]);
        assert_eq!(exec.status, Status::Failed);
        assert_eq!(exec.error.as_deref(), Some("Tributary.BadData"));
        // orders once (bad data is not retried); refunds too, because its
        // iteration started beside orders' (MaxConcurrency 4), as on AWS.
        let cleaned = |dataset: &str| {
            calls
                .iter()
                .filter(|c| c.0 == "clean-partition" && c.1["dataset"] == dataset)
                .count()
        };
        assert_eq!((cleaned("orders"), cleaned("refunds")), (1, 1), "{calls:?}");
        let marked = calls
            .iter()
            .find(|c| c.0 == "mark-failed")
            .expect("mark-failed ran");
        assert_eq!(marked.1["error"]["Error"], "Tributary.BadData");
        assert!(!calls.iter().any(|c| c.0 == "publish-partition"));
    }

    /// Back-pressure: with every clean slot held, a dataset waits and asks
    /// again (a NoSlot is retried, never a failed date), cleans once it has
    /// a slot, and gives it back after validating, before any approval.
    #[test]
    fn a_run_waits_for_a_clean_slot_and_gives_it_back() {
        let (exec, calls) = run_waiting(vec![], 5);
        assert_eq!(exec.status, Status::Succeeded, "{:?}", exec.error);
        let names: Vec<&str> = calls.iter().map(|c| c.0.as_str()).collect();
        let count = |f: &str| names.iter().filter(|n| **n == f).count();
        assert_eq!(count("acquire-slot"), 2 + 5, "{names:?}");
        assert_eq!(count("release-slot"), 2, "{names:?}");
        for dataset in ["orders", "refunds"] {
            let at = |f: &str| {
                calls
                    .iter()
                    .position(|c| c.0 == f && c.1["dataset"] == dataset)
                    .unwrap()
            };
            assert!(at("acquire-slot") < at("clean-partition"));
            assert!(at("validate-partition") < at("release-slot"));
            assert!(at("release-slot") < at("publish-partition"));
        }
        // A failed clean gives its slot back too.
        let (_, failed) = run(vec!["Tributary.BadData"]);
        let released: Vec<_> = failed
            .iter()
            .filter(|c| c.0 == "release-slot")
            .map(|c| c.1["dataset"].clone())
            .collect();
        assert!(released.contains(&json!("orders")), "{failed:?}");
    }

    #[test]
    fn retryable_failures_that_persist_end_in_mark_failed() {
        let (exec, calls) = run(vec!["Tributary.Retryable"; 5]);
        assert_eq!(exec.error.as_deref(), Some("Tributary.Retryable"));
        let orders = calls
            .iter()
            .filter(|c| c.0 == "clean-partition" && c.1["dataset"] == "orders")
            .count();
        assert_eq!(orders, 5, "1 try + 4 retries: {calls:?}");
        assert!(calls.iter().any(|c| c.0 == "mark-failed"));
    }
}
