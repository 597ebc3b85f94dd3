//! Every sample event of samplelocal/events/, run in the order a pipeline
//! calls the functions: on a workspace (`tributary invoke`) or on a stack
//! (`tributary --stack … invoke`, each function with its own credentials).

use super::json_of;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;

pub fn event(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("events")
        .join(name)
}

/// Runs `tributary` with `--config CONFIG` and these arguments (`invoke
/// FUNCTION --event FILE`), wherever the caller runs it.
pub type Runner<'a> = dyn FnMut(&Path, &[&str]) -> Output + 'a;

/// Runs every function on its sample event after `tributary demo` made
/// `ws`, checking what each answers; returns the functions invoked.
/// `scratch` holds the edited events (dates, jobs, buckets).
pub fn run_every_sample_event(ws: &Path, scratch: &Path, runner: &mut Runner) -> BTreeSet<String> {
    // The sample's orders of the 1st are plain CSV (8 KB); with one worker
    // cleaning at most 1 KB they take the distributed clean's path.
    let config = ws.join("pipeline.toml");
    let scaled_config = scratch.join("scaled.toml");
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str(
        "\n[datasets.orders.scale]\nmax_single_bytes = 1024\nrange_bytes = \"4KiB\"\nbuckets = 2\n",
    );
    std::fs::write(&scaled_config, toml).unwrap();
    let mut invoked = BTreeSet::new();
    let mut run = |function: &str, file: &str, scaled: Option<&Path>, edits: &[(&str, &str)]| {
        let mut text = std::fs::read_to_string(event(file)).unwrap();
        for (from, to) in edits {
            assert!(text.contains(from), "{file} has no {from}");
            text = text.replace(from, to);
        }
        let edited = scratch.join(format!("{function}-{}.json", invoked.len()));
        std::fs::write(&edited, text).unwrap();
        invoked.insert(function.to_string());
        let args = ["invoke", function, "--event", edited.to_str().unwrap()];
        json_of(&runner(scaled.unwrap_or(&config), &args))
    };
    let answer = |out: &serde_json::Value| out.get("response").cloned().unwrap_or(out.clone());
    let has = |out: &serde_json::Value, key: &str| {
        assert!(answer(out).get(key).is_some(), "no {key} in {out}");
    };

    // The partition pipeline, on a run of its own of orders 2025-12-01.
    has(
        &run("plan-partition", "plan-partition.json", None, &[]),
        "datasets",
    );
    let slot = run("acquire-slot", "acquire-slot.json", None, &[]);
    assert_eq!(slot["held"], 1, "{slot}");
    has(
        &run("clean-partition", "clean-partition.json", None, &[]),
        "stats",
    );
    let report = run("validate-partition", "validate-partition.json", None, &[]);
    has(&report, "score");
    let released = run("release-slot", "release-slot.json", None, &[]);
    assert_eq!(released["held"], 0, "{released}");
    has(
        &run("request-approval", "request-approval.json", None, &[]),
        "approval_id",
    );
    has(
        &run("publish-partition", "publish-partition.json", None, &[]),
        "manifest",
    );
    // Failure paths on a run that is not the partition's current one:
    // nothing to mark, and said so.
    let other_run = [("manual-1", "manual-0")];
    has(
        &run(
            "quarantine-partition",
            "quarantine-partition.json",
            None,
            &other_run,
        ),
        "quarantined",
    );
    has(
        &run("mark-failed", "mark-failed.json", None, &other_run),
        "failed",
    );

    // The distributed clean of the same date, step by step.
    let scaled = Some(scaled_config.as_path());
    let route = run("plan-clean", "plan-clean.json", scaled, &[]);
    assert_eq!(route["path"], "distributed", "{route}");
    has(
        &run("clean-range", "clean-range.json", scaled, &[]),
        "ranges",
    );
    let checked = run("check-ranges", "check-ranges.json", scaled, &[]);
    assert_eq!(checked["done"], true, "{checked}");
    for bucket in ["0", "1"] {
        let edit = [("\"bucket\": 0", &*format!("\"bucket\": {bucket}"))];
        has(
            &run("resolve-bucket", "resolve-bucket.json", scaled, &edit),
            "kept",
        );
        let edit = [("\"shard\": 0", &*format!("\"shard\": {bucket}"))];
        let shard = run("count-unique", "count-unique.json", scaled, &edit);
        assert_eq!(shard["unexpected"], 0, "{shard}");
    }
    let finished = run("finish-clean", "finish-clean.json", scaled, &[]);
    assert_eq!(finished["stats"]["kept"], 124, "{finished}");

    // The nightly catchup's steps.
    has(
        &run("plan-catchup", "plan-catchup.json", None, &[]),
        "dates",
    );
    has(&run("check-date", "check-date.json", None, &[]), "ready");
    has(
        &run("start-partition-run", "start-partition-run.json", None, &[]),
        "status",
    );
    has(
        &run("catchup-report", "catchup-report.json", None, &[]),
        "no_data",
    );

    // Labeling: rules, a person's review of one page with a correction,
    // the merge.
    let auto = run("auto-label", "auto-label.json", None, &[]);
    assert!(auto["low_confidence"].as_u64().unwrap() > 0, "{auto}");
    has(
        &run(
            "request-label-review",
            "request-label-review.json",
            None,
            &[],
        ),
        "approval_id",
    );
    let applied = run("apply-label-review", "apply-label-review.json", None, &[]);
    assert_eq!(applied["corrected"], 1, "{applied}");
    has(
        &run("merge-labels", "merge-labels.json", None, &[]),
        "by_source",
    );

    // Features for three days (the training set joins each order with the
    // day before's snapshot), then the model and its consumer.
    for date in ["2025-12-01", "2025-12-02", "2025-12-03"] {
        let day = [("2025-12-03", date)];
        for job in ["user", "item", "behaviour"] {
            let edit = [("2025-12-03", date), ("\"user\"", &*format!("\"{job}\""))];
            has(
                &run("compute-features", "compute-features.json", None, &edit),
                "entities",
            );
        }
        has(
            &run("merge-features", "merge-features.json", None, &day),
            "score",
        );
        has(
            &run("publish-features", "publish-features.json", None, &day),
            "location",
        );
    }
    has(
        &run(
            "request-feature-approval",
            "request-feature-approval.json",
            None,
            &[],
        ),
        "approval_id",
    );
    let training = run("build-training-set", "build-training-set.json", None, &[]);
    assert!(training["rows"].as_u64().unwrap() > 0, "{training}");
    let model = run("train-model", "train-model.json", None, &[]);
    assert_eq!(model["version"], "2025-12-03-sample-1", "{model}");
    has(
        &run(
            "request-deploy-approval",
            "request-deploy-approval.json",
            None,
            &[],
        ),
        "approval_id",
    );
    let active = run("activate-model", "activate-model.json", None, &[]);
    assert_eq!(active["active"], "2025-12-03-sample-1", "{active}");
    let consumer = run("start-inference", "start-inference.json", None, &[]);
    assert_eq!(consumer["status"], "running", "{consumer}");
    has(
        &run("inference-health", "inference-health.json", None, &[]),
        "healthy",
    );
    let clicks = run("click-inference", "kinesis-clicks.json", None, &[]);
    assert_eq!(clicks["consumers"][0]["processed"], 2, "{clicks}");
    assert_eq!(clicks["dead_lettered"], 1, "{clicks}");
    // Healthy once it has processed clicks since it started.
    let health = run("inference-health", "inference-health.json", None, &[]);
    assert_eq!(health["healthy"], true, "{health}");
    assert_eq!(health["mapping_enabled"], true, "{health}");
    // A second version replaces it; an operator rolls back to the first,
    // then stops the consumer: its mapping is disabled, and a batch
    // delivered a moment too late goes back to the stream.
    let second = [("sample-1", "sample-2")];
    run(
        "build-training-set",
        "build-training-set.json",
        None,
        &second,
    );
    run("train-model", "train-model.json", None, &second);
    run("activate-model", "activate-model.json", None, &second);
    let restarted = run("start-inference", "start-inference.json", None, &second);
    assert_eq!(
        restarted["model_version"], "2025-12-03-sample-2",
        "{restarted}"
    );
    let rolled = run("rollback-model", "rollback-model.json", None, &[]);
    assert_eq!(
        rolled["activated"]["active"], "2025-12-03-sample-1",
        "{rolled}"
    );
    assert_eq!(
        rolled["consumer"]["model_version"], "2025-12-03-sample-1",
        "{rolled}"
    );
    let stopped = run("stop-inference", "stop-inference.json", None, &[]);
    assert_eq!(stopped["consumer"]["status"], "stopped", "{stopped}");
    let health = run("inference-health", "inference-health.json", None, &[]);
    assert_eq!(health["mapping_enabled"], false, "{health}");
    assert_eq!(health["healthy"], false, "{health}");
    let held = run("click-inference", "kinesis-clicks.json", None, &[]);
    assert_eq!(held["held"], true, "{held}");
    assert_eq!(
        held["batchItemFailures"].as_array().map(Vec::len),
        Some(1),
        "{held}"
    );

    // Triggers, schedules, the stream and the function URLs.
    has(&run("object-created", "s3-put.json", None, &[]), "objects");
    has(
        &run("stream-aggregate", "kinesis-batch.json", None, &[]),
        "streams",
    );
    has(&run("replay-dlq", "replay-dlq.json", None, &[]), "replayed");
    has(
        &run("build-views", "scheduler-build-views.json", None, &[]),
        "built",
    );
    has(
        &run("reconcile", "scheduler-reconcile.json", None, &[]),
        "reports",
    );
    has(
        &run(
            "retention-sweep",
            "scheduler-retention-sweep.json",
            None,
            &[],
        ),
        "dry_run",
    );
    has(
        &run(
            "start-downstream",
            "scheduler-start-downstream.json",
            None,
            &[],
        ),
        "started",
    );
    has(
        &run("query-api", "function-url-get.json", None, &[]),
        "statusCode",
    );
    let forged = run("approval-callback", "function-url-post.json", None, &[]);
    assert_eq!(forged["statusCode"], 403, "{forged}");

    invoked
}

/// The functions invoked are exactly the function table.
pub fn assert_is_the_function_table(ws: &Path, invoked: &BTreeSet<String>) {
    let table = String::from_utf8(super::tributary(ws, &["infra", "functions"]).stdout).unwrap();
    let functions: BTreeSet<String> = table
        .lines()
        .filter_map(|l| l.split('\t').next())
        .map(str::to_string)
        .collect();
    assert_eq!(
        invoked, &functions,
        "a function without a sample event run here"
    );
}
