//! A second opinion on the workflows: each `statemachines/*.asl.json` runs
//! in moto's Step Functions (an independent ASL implementation, on
//! 127.0.0.1) and in our interpreter, on the same canned Lambda results and
//! the same task-token answers, and the paths taken (the states entered,
//! in order) and the outcomes are compared.
//!
//! Token answers go through `SfnCallbacks`, the adapter the approval
//! callback answers with.
//!
//! Where moto is known to differ from AWS, the scenario says so and asserts
//! the difference exactly, so a fix on either side shows up here.

use serde_json::{json, Value};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tributary_asl::{Callback, Failure, Host, RunOptions, TaskCall, TaskOutcome};
use tributary_aws::SfnCallbacks;
use tributary_core::ports::{TaskAnswer, TaskCallbacks};
use tributary_testing::Moto;

/// `${clean_partition_function}` → `tributary-clean-partition`: what
/// Terraform's templatefile does with the deployed names.
fn substitute(text: &str) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut functions = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = start + rest[start..].find('}').expect("closed placeholder");
        let name = &rest[start + 2..end];
        let function = format!(
            "tributary-{}",
            name.trim_end_matches("_function").replace('_', "-")
        );
        if !functions.contains(&function) {
            functions.push(function.clone());
        }
        out.push_str(&function);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    (out, functions)
}

fn definition(file: &str) -> (String, Vec<String>) {
    let path = format!("{}/../statemachines/{file}", env!("CARGO_MANIFEST_DIR"));
    substitute(&std::fs::read_to_string(&path).expect("state machine file"))
}

/// How a task token is answered.
#[derive(Clone)]
enum Answer {
    Success(Value),
    Failure(&'static str, &'static str),
}

struct Scenario {
    name: &'static str,
    file: &'static str,
    input: Value,
    /// What each Lambda invocation returns, in invocation order.
    results: Vec<Value>,
    /// What each task token gets, in order.
    answers: Vec<Answer>,
}

#[derive(Debug, PartialEq)]
struct Run {
    status: String,
    error: Option<String>,
    path: Vec<String>,
}

struct CannedHost {
    results: VecDeque<Value>,
    answers: VecDeque<Answer>,
}

impl Host for CannedHost {
    fn invoke(&mut self, call: &TaskCall<'_>) -> TaskOutcome {
        match self.results.pop_front() {
            Some(v) => TaskOutcome::ok(v),
            None => TaskOutcome::failed(
                "Test.NoCannedResult",
                &format!("{} has no canned result left", call.state_name),
            ),
        }
    }

    fn callback(&mut self, _token: &str, _call: &TaskCall<'_>) -> Callback {
        match self.answers.pop_front() {
            Some(answer) => Callback::Arrived {
                result: match answer {
                    Answer::Success(v) => Ok(v),
                    Answer::Failure(e, c) => Err(Failure::new(e, c)),
                },
                after_ms: 1_000,
                heartbeats_ms: vec![],
            },
            None => Callback::Silent,
        }
    }
}

fn ours(s: &Scenario) -> Run {
    let (text, _) = definition(s.file);
    let machine = tributary_asl::load(&text).expect("valid definition");
    let mut host = CannedHost {
        results: s.results.clone().into(),
        answers: s.answers.clone().into(),
    };
    let options = RunOptions::new(s.file, s.name, 1_764_756_000_000);
    let execution = tributary_asl::run(&machine, s.input.clone(), &options, &mut host);
    Run {
        status: execution.status.as_str().to_string(),
        error: execution.error.clone(),
        path: execution
            .history
            .iter()
            .filter(|e| e.event_type.ends_with("StateEntered"))
            .filter_map(|e| e.details["name"].as_str().map(str::to_string))
            .collect(),
    }
}

async fn moto_run(
    moto: &Moto,
    sfn: &aws_sdk_sfn::Client,
    callbacks: &SfnCallbacks,
    s: &Scenario,
) -> Run {
    let (text, _) = definition(s.file);
    let machine = sfn
        .create_state_machine()
        .name(s.name)
        .definition(text)
        .role_arn("arn:aws:iam::123456789012:role/tributary-test")
        .send()
        .await
        .expect("moto accepts the definition");
    moto.queue_lambda_results(&s.results)
        .expect("queue results");
    let execution = sfn
        .start_execution()
        .state_machine_arn(machine.state_machine_arn())
        .name(s.name)
        .input(s.input.to_string())
        .send()
        .await
        .unwrap();
    let arn = execution.execution_arn();
    let mut answers: VecDeque<Answer> = s.answers.clone().into();
    let mut answered = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let described = loop {
        let d = sfn
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .unwrap();
        if d.status().as_str() != "RUNNING" {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "{}: still running after 60 s",
            s.name
        );
        // Tokens appear in the scheduled Lambda's parameters.
        let history = sfn
            .get_execution_history()
            .execution_arn(arn)
            .send()
            .await
            .unwrap();
        for event in history.events() {
            let Some(params) = event
                .task_scheduled_event_details()
                .and_then(|d| serde_json::from_str::<Value>(d.parameters()).ok())
            else {
                continue;
            };
            let Some(token) = params["Payload"]["token"].as_str() else {
                continue;
            };
            if !answered.insert(token.to_string()) {
                continue;
            }
            // Answered through the adapter the approval callback uses.
            let answer = match answers.pop_front() {
                Some(Answer::Success(v)) => TaskAnswer::Success(v),
                Some(Answer::Failure(error, cause)) => TaskAnswer::Failure {
                    error: error.into(),
                    cause: cause.into(),
                },
                None => continue,
            };
            // (moto accepts a second answer to a spent token, where AWS
            // refuses it; approvals never send one: a decision is a
            // conditional write from pending.)
            callbacks.answer(token, answer).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let history = sfn
        .get_execution_history()
        .execution_arn(arn)
        .max_results(1000)
        .send()
        .await
        .unwrap();
    Run {
        status: described.status().as_str().to_string(),
        error: described.error().map(str::to_string),
        path: history
            .events()
            .iter()
            .filter_map(|e| e.state_entered_event_details())
            .map(|d| d.name().to_string())
            .collect(),
    }
}

/// One answer for every function of the partition pipeline, so the order
/// in which concurrent Map iterations take answers from moto's single queue
/// does not matter: each Task's ResultSelector picks its own fields.
fn partition_answer(datasets: &[&str], quality_passed: bool) -> Value {
    json!({
        "datasets": datasets,
        // plan-clean's: every date here is small enough for one function.
        "path": "single", "raw_bytes": 100, "files": 1,
        "stats": {"input": 3, "kept": 2, "rejected_total": 1, "duplicates": 0},
        "dataset": "orders", "date": "2025-12-03", "run_id": "r1", "rows": 2,
        "score": if quality_passed { 1.0 } else { 0.5 }, "threshold": 0.9,
        "passed": quality_passed, "expectations": [],
        "manifest": {"location": "published/orders/date=2025-12-03/run=r1/"},
        "watermarks": [],
        "quarantined": datasets,
    })
}

fn partition_pipeline(
    name: &'static str,
    datasets: &[&str],
    quality_passed: bool,
    answers: Vec<Answer>,
) -> Scenario {
    Scenario {
        name,
        file: "partition_pipeline.asl.json",
        input: json!({"pipeline": "orders_daily", "date": "2025-12-03", "run_id": "r1"}),
        results: vec![partition_answer(datasets, quality_passed); 6 * datasets.len() + 3],
        answers,
    }
}

/// A scenario in a fresh moto (its Lambda answer queue is global) and in
/// our interpreter.
async fn both(s: &Scenario) -> (Run, Run) {
    let moto = Moto::start();
    moto.execute_state_machines().unwrap();
    moto.create_lambda_functions(&definition(s.file).1).unwrap();
    let config = moto.sdk_config().await;
    let sfn = aws_sdk_sfn::Client::new(&config);
    let theirs = moto_run(&moto, &sfn, &SfnCallbacks::new(&config), s).await;
    (ours(s), theirs)
}

/// The states entered and how often: concurrent Map iterations and
/// Parallel branches interleave differently from run to run in moto.
fn entered(run: &Run) -> Vec<String> {
    let mut path = run.path.clone();
    path.sort();
    path
}

fn assert_same(s: &Scenario, ours: &Run, theirs: &Run) {
    assert_eq!(
        (&ours.status, &ours.error, entered(ours)),
        (&theirs.status, &theirs.error, entered(theirs)),
        "{}: our path {:?}, moto's {:?}",
        s.name,
        ours.path,
        theirs.path
    );
}

#[tokio::test]
async fn partition_pipeline_publishes_when_quality_passes() {
    let s = partition_pipeline("quality-passes", &["orders", "customers"], true, vec![]);
    let (ours, theirs) = both(&s).await;
    assert_eq!(ours.status, "SUCCEEDED");
    assert!(ours.path.contains(&"QualityPassed".to_string()));
    assert_same(&s, &ours, &theirs);
}

#[tokio::test]
async fn partition_pipeline_publishes_a_held_run_once_approved() {
    let s = partition_pipeline(
        "held-then-approved",
        &["orders", "customers"],
        false,
        vec![Answer::Success(
            json!({"decision": "approve", "decider": "Ana"}),
        )],
    );
    let (ours, theirs) = both(&s).await;
    assert!(ours.path.contains(&"Approved".to_string()), "{ours:?}");
    assert_same(&s, &ours, &theirs);
}

#[tokio::test]
async fn partition_pipeline_quarantines_a_rejected_run() {
    let s = partition_pipeline(
        "held-then-rejected",
        &["orders", "customers"],
        false,
        vec![Answer::Failure("Tributary.Rejected", "not today")],
    );
    let (ours, theirs) = both(&s).await;
    assert_eq!(ours.error.as_deref(), Some("Tributary.Quarantined"));
    assert_same(&s, &ours, &theirs);
}

/// Known difference: for a wildcard path with a single match, moto passes
/// the value itself where AWS (Jayway JsonPath: an indefinite path always
/// yields a list) passes a one-element list, so moto's
/// States.ArrayContains fails on a pipeline of one dataset.
#[tokio::test]
async fn known_difference_moto_unwraps_a_single_wildcard_match() {
    let s = partition_pipeline("one-dataset", &["orders"], true, vec![]);
    let (ours, theirs) = both(&s).await;
    assert_eq!(ours.status, "SUCCEEDED", "{ours:?}");
    assert_eq!(
        (
            theirs.status.as_str(),
            theirs.error.as_deref(),
            theirs.path.last().map(String::as_str)
        ),
        ("FAILED", Some("States.Runtime"), Some("FindHeld")),
        "moto now agrees with AWS: turn this into a compared scenario"
    );
}

fn catchup(name: &'static str, dates: &[&str]) -> Scenario {
    let answer = json!({
        "dates": dates, "skipped": [], "execution_date": "2025-12-04", "force": false,
        "ready": true, "missing": [], "waiting_for": {}, "any_data": true,
        "date": "2025-12-03", "execution_name": "orders_daily-2025-12-03-abc", "newly_started": true,
        "status": "started", "reason": null,
        "started": dates, "running": [], "published": [], "failed": [], "quarantined": [],
        "waiting_for_data": [], "no_data": [],
    });
    Scenario {
        name,
        file: "catchup.asl.json",
        input: json!({"pipeline": "orders_daily", "scheduled_time": "2025-12-05T02:00:00Z"}),
        results: vec![answer; 2 * dates.len() + 2],
        answers: vec![],
    }
}

#[tokio::test]
async fn catchup_starts_a_run_for_every_ready_date() {
    let s = catchup("three-dates", &["2025-12-01", "2025-12-02", "2025-12-03"]);
    let (ours, theirs) = both(&s).await;
    assert_eq!(ours.path.iter().filter(|p| *p == "StartRun").count(), 3);
    assert_same(&s, &ours, &theirs);
}

#[tokio::test]
async fn catchup_with_nothing_to_do_reports_nothing() {
    let s = catchup("up-to-date", &[]);
    let (ours, theirs) = both(&s).await;
    assert!(!ours.path.contains(&"CheckDate".to_string()), "{ours:?}");
    assert_same(&s, &ours, &theirs);
}

fn labeling(name: &'static str, low_confidence: u64, answers: Vec<Answer>) -> Scenario {
    let answer = json!({
        "rows": 40, "accepted": 40 - low_confidence, "low_confidence": low_confidence,
        "external": false, "review_seconds": 3600, "max_rounds": 3,
        "corrected": 1, "confirmed": low_confidence.saturating_sub(1), "remaining": 0, "next_round": 2,
        "key": "labeled/clicks/date=2025-12-03/run=r1/labeled.jsonl", "by_source": {"rules": 40},
    });
    Scenario {
        name,
        file: "labeling.asl.json",
        input: json!({"labeling": "clicks", "date": "2025-12-03", "run_id": "r1"}),
        results: vec![answer; 6],
        answers,
    }
}

#[tokio::test]
async fn labeling_accepts_confident_labels_without_review() {
    let s = labeling("all-confident", 0, vec![]);
    let (ours, theirs) = both(&s).await;
    assert!(!ours.path.contains(&"Review".to_string()), "{ours:?}");
    assert_same(&s, &ours, &theirs);
}

#[tokio::test]
async fn labeling_applies_a_review_then_merges() {
    let s = labeling(
        "reviewed",
        3,
        vec![Answer::Success(
            json!({"confirm": ["r1", "r2"], "relabel": {"r3": "buyer"}}),
        )],
    );
    let (ours, theirs) = both(&s).await;
    assert!(ours.path.contains(&"ApplyReview".to_string()), "{ours:?}");
    assert_same(&s, &ours, &theirs);
}

#[tokio::test]
async fn labeling_fails_when_the_reviewer_rejects() {
    let s = labeling(
        "rejected",
        3,
        vec![Answer::Failure("Tributary.Rejected", "labels are wrong")],
    );
    let (ours, theirs) = both(&s).await;
    assert_eq!(ours.error.as_deref(), Some("Tributary.LabelsRejected"));
    assert_same(&s, &ours, &theirs);
}

fn feature_pipeline(name: &'static str, quality_passed: bool, answers: Vec<Answer>) -> Scenario {
    let answer = json!({
        "job": "features/shop/date=2025-12-03/run=r1/", "entities": 12, "dates_missing": [],
        "score": if quality_passed { 0.95 } else { 0.6 }, "threshold": 0.9, "passed": quality_passed,
        "location": "features/shop/date=2025-12-03/run=r1/", "counts": {"users": 12}, "online_updates": 12,
        "rows": 30, "without_snapshot": 2,
        "hit_rate_at_5": 0.28, "baseline_hit_rate_at_5": 0.16, "version": "v1",
        "active": "v1", "previous": null,
        "status": "running", "model_version": "v1", "restarts": 0,
        "healthy": true, "error_rate": 0.0,
    });
    Scenario {
        name,
        file: "feature_pipeline.asl.json",
        input: json!({"features": "shop", "date": "2025-12-03", "run_id": "r1"}),
        results: vec![answer; 14],
        answers,
    }
}

#[tokio::test]
async fn feature_pipeline_auto_publishes_trains_and_activates() {
    let s = feature_pipeline(
        "auto-publish",
        true,
        vec![Answer::Success(
            json!({"decision": "approve", "decider": "Ana"}),
        )],
    );
    let (ours, theirs) = both(&s).await;
    assert!(ours.path.contains(&"AutoPublish".to_string()), "{ours:?}");
    assert!(
        ours.path.contains(&"StartInference".to_string()),
        "{ours:?}"
    );
    assert_same(&s, &ours, &theirs);
}

#[tokio::test]
async fn feature_pipeline_asks_for_low_quality_and_keeps_the_model_on_rejection() {
    let s = feature_pipeline(
        "approval-then-deploy-rejected",
        false,
        vec![
            Answer::Success(json!({"decision": "approve", "decider": "Ana"})),
            Answer::Failure("Tributary.Rejected", "the old model stays"),
        ],
    );
    let (ours, theirs) = both(&s).await;
    assert!(
        ours.path.contains(&"RequestApproval".to_string()),
        "{ours:?}"
    );
    assert!(
        ours.path.contains(&"KeepPreviousModel".to_string()),
        "{ours:?}"
    );
    assert_same(&s, &ours, &theirs);
}

/// A function result without the field a ResultSelector needs: AWS fails
/// the execution with States.Runtime, which no Catch catches (not even
/// States.ALL), and so do we. Known difference: moto names it
/// States.Runtime too but its States.ALL catches it, so its run goes on to
/// MarkFailed. Both have started the second dataset's iteration beside the
/// first (Map MaxConcurrency 4).
#[tokio::test]
async fn known_difference_on_a_malformed_result() {
    let mut s = partition_pipeline("malformed-result", &["orders", "customers"], true, vec![]);
    s.results = vec![json!({"datasets": ["orders", "customers"]}); 10];
    let (ours, theirs) = both(&s).await;
    assert_eq!(ours.status, "FAILED", "{ours:?}");
    assert_eq!(ours.error.as_deref(), Some("States.Runtime"), "{ours:?}");
    assert!(
        !ours.path.contains(&"MarkFailed".to_string()),
        "States.ALL must not catch States.Runtime: {ours:?}"
    );
    assert_eq!(
        theirs.error.as_deref(),
        Some("States.Runtime"),
        "moto changed: compare this scenario in full: {theirs:?}"
    );
    assert!(
        theirs.path.contains(&"MarkFailed".to_string()),
        "moto no longer catches States.Runtime: compare this scenario in full: {theirs:?}"
    );
}

/// Known difference: moto's Step Functions (5.2) cannot take the
/// distributed clean: its ASL grammar has no `ItemBatcher`, so it refuses
/// the definition (and its ItemReader reads CSV and JSON objects, not the
/// JSON Lines of the ranges manifest). The file runs in our interpreter in
/// samplelocal/tests/scale.rs; this pins moto's refusal, so a moto that
/// takes the definition shows up here.
#[tokio::test]
async fn known_difference_moto_refuses_the_distributed_clean() {
    let moto = Moto::start();
    // With executions on, moto parses a definition when it is created.
    moto.execute_state_machines().unwrap();
    let (text, functions) = definition("distributed_clean.asl.json");
    moto.create_lambda_functions(&functions).unwrap();
    let config = moto.sdk_config().await;
    let sfn = aws_sdk_sfn::Client::new(&config);
    let created = sfn
        .create_state_machine()
        .name("distributed-clean")
        .definition(text)
        .role_arn("arn:aws:iam::123456789012:role/tributary-test")
        .send()
        .await;
    let refusal = match created {
        Ok(_) => String::new(),
        Err(e) => aws_sdk_sfn::error::DisplayErrorContext(e).to_string(),
    };
    assert!(
        refusal.contains("ASLParserException") && refusal.contains("at \\\"ItemBatcher"),
        "moto now takes the distributed clean: compare it there ({})",
        &refusal[..refusal.len().min(400)]
    );
}
