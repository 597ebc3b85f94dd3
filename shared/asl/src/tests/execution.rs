//! Whole executions: timeouts, history, determinism, resuming by replay.

use super::*;

#[test]
fn execution_timeout_stops_everything() {
    let def = json!({"TimeoutSeconds": 100, "StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 500, "End": true}}});
    let e = exec(def, json!({}), &mut Canned::default());
    assert_eq!(e.status, Status::TimedOut);
    assert_eq!(e.error.as_deref(), Some("States.Timeout"));
    assert_eq!(e.stop_ms, Some(START + 100_000));
}

#[test]
fn history_records_the_path_taken() {
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Next": "T"}, "T": task("arn:aws:lambda:us-east-1:1:function:F")}});
    let e = exec(def, json!({}), &mut Canned::default().echo());
    let types: Vec<&str> = e.history.iter().map(|h| h.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "ExecutionStarted",
            "PassStateEntered",
            "PassStateExited",
            "TaskStateEntered",
            "TaskScheduled",
            "TaskSucceeded",
            "TaskStateExited",
            "ExecutionSucceeded"
        ]
    );
    assert_eq!(e.transitions, 2);
    assert!(e.history.windows(2).all(|w| w[1].id == w[0].id + 1));
}

#[test]
fn runs_are_deterministic_for_the_same_name() {
    let def = single(
        json!({"Type": "Pass", "Parameters": {"u.$": "States.UUID()", "r.$": "States.MathRandom(0, 1000000)"}, "End": true}),
    );
    let a = exec(def.clone(), json!({}), &mut Canned::default());
    let b = exec(def, json!({}), &mut Canned::default());
    assert_eq!(a.output, b.output);
    assert_eq!(a.history, b.history);
}

#[test]
fn a_paused_execution_resumes_by_replay_without_rerunning_tasks() {
    use crate::{Journal, JournalHost, TokenAnswer};
    let def = json!({"StartAt": "Clean", "States": {
        "Clean": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:clean", "ResultPath": "$.clean", "Next": "Approve"},
        "Approve": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                    "Parameters": {"FunctionName": "notify", "Payload": {"token.$": "$$.Task.Token"}},
                    "TimeoutSeconds": 7200, "ResultPath": "$.decision", "End": true}}});
    let machine = load(&def.to_string()).unwrap();
    let options = RunOptions::new("test", "run-1", START);
    let mut inner = Canned::default()
        .answer("Clean", ok(json!({"kept": 3})))
        .callback("Approve", Callback::Pending);
    let mut host = JournalHost::new(&mut inner, Journal::default(), START);
    let paused = run(&machine, json!({}), &options, &mut host);
    assert_eq!(paused.status, Status::Running);
    let token = paused.waiting.clone().unwrap().token;
    let mut journal = host.journal;
    assert_eq!(journal.outcomes.len(), 2, "clean and the notification");

    // An hour later someone approves: the replay answers Clean from the
    // journal, so the function does not run again.
    journal.answers.insert(
        token.clone(),
        TokenAnswer {
            heartbeats_ms: vec![],
            result: Some(Ok(json!({"approved": true}))),
            answered_ms: Some(START + 3_600_000),
        },
    );
    let mut fresh = Canned::default().callback("Approve", Callback::Pending);
    let mut host = JournalHost::new(&mut fresh, journal.clone(), START + 3_600_000);
    let done = run(&machine, json!({}), &options, &mut host);
    assert_eq!(
        output(&done),
        &json!({"clean": {"kept": 3}, "decision": {"approved": true}})
    );
    assert!(fresh.calls.is_empty(), "{:?}", fresh.calls);
    assert_eq!(done.stop_ms, Some(START + 3_600_000));

    // Nobody answered and three hours passed: it timed out after two.
    journal.answers.clear();
    let mut fresh = Canned::default().callback("Approve", Callback::Pending);
    let mut host = JournalHost::new(&mut fresh, journal, START + 3 * 3_600_000);
    let late = run(&machine, json!({}), &options, &mut host);
    assert_eq!(late.error.as_deref(), Some("States.Timeout"));
    assert_eq!(late.stop_ms, Some(START + 7_200_000));
}
