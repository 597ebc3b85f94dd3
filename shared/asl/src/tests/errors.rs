//! Errors: Retry back-off and precedence, Catch, Fail states, intrinsic
//! failures, jitter.

use super::*;

#[test]
fn retry_backoff_max_attempts_and_precedence() {
    let def = json!({"StartAt": "S", "States": {"S": {
        "Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:F", "End": true,
        "Retry": [
            {"ErrorEquals": ["Tributary.BadInput"], "MaxAttempts": 0},
            {"ErrorEquals": ["Tributary.Retryable"], "IntervalSeconds": 2, "BackoffRate": 3, "MaxAttempts": 3, "MaxDelaySeconds": 10},
            {"ErrorEquals": ["States.ALL"], "MaxAttempts": 1}
        ]
    }}});
    // Three retryable failures, then success: delays 2 s, 6 s, 10 s (capped).
    let mut host = Canned::default().answer(
        "S",
        vec![
            TaskOutcome::failed("Tributary.Retryable", "busy"),
            TaskOutcome::failed("Tributary.Retryable", "busy"),
            TaskOutcome::failed("Tributary.Retryable", "busy"),
            TaskOutcome::ok(json!("done")),
        ],
    );
    let e = exec(def.clone(), json!({}), &mut host);
    assert_eq!(output(&e), &json!("done"));
    assert_eq!(host.calls_to("S").len(), 4);
    assert_eq!(e.stop_ms, Some(START + 18_000));
    // A fourth retryable failure exhausts the retrier: the execution fails.
    let mut host = Canned::default().answer(
        "S",
        vec![TaskOutcome::failed("Tributary.Retryable", "busy")],
    );
    let e = exec(def.clone(), json!({}), &mut host);
    assert_eq!(e.error.as_deref(), Some("Tributary.Retryable"));
    assert_eq!(host.calls_to("S").len(), 4);
    // MaxAttempts 0: the first matching retrier wins, so no retry at all,
    // even though States.ALL below would allow one.
    let mut host =
        Canned::default().answer("S", vec![TaskOutcome::failed("Tributary.BadInput", "bad")]);
    let e = exec(def.clone(), json!({}), &mut host);
    assert_eq!(e.error.as_deref(), Some("Tributary.BadInput"));
    assert_eq!(host.calls_to("S").len(), 1);
    // Anything else: one retry through States.ALL.
    let mut host = Canned::default().answer("S", vec![TaskOutcome::failed("Other", "x")]);
    exec(def, json!({}), &mut host);
    assert_eq!(host.calls_to("S").len(), 2);
}

#[test]
fn catch_places_error_and_cause_and_task_failed_skips_timeouts() {
    let def = json!({"StartAt": "S", "States": {
        "S": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:F", "Next": "Done",
              "TimeoutSeconds": 5,
              "Catch": [
                  {"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.error", "Next": "Failed"},
                  {"ErrorEquals": ["States.Timeout"], "ResultPath": "$.timeout", "Next": "TimedOut"}
              ]},
        "Failed": {"Type": "Pass", "End": true},
        "TimedOut": {"Type": "Pass", "End": true},
        "Done": {"Type": "Succeed"}
    }});
    let mut host =
        Canned::default().answer("S", vec![TaskOutcome::failed("CustomError", "it broke")]);
    let e = exec(def.clone(), json!({"keep": 1}), &mut host);
    assert_eq!(
        output(&e),
        &json!({"keep": 1, "error": {"Error": "CustomError", "Cause": "it broke"}})
    );
    let slow = TaskOutcome {
        result: Ok(json!("late")),
        elapsed_ms: 6_000,
    };
    let mut host = Canned::default().answer("S", vec![slow]);
    let e = exec(def, json!({"keep": 1}), &mut host);
    let out = output(&e);
    assert_eq!(out["timeout"]["Error"], json!("States.Timeout"));
    assert_eq!(e.stop_ms, Some(START + 5_000));
    assert!(e.history.iter().any(|h| h.event_type == "TaskTimedOut"));
}

#[test]
fn fail_state_error_and_cause_paths() {
    let def = single(json!({"Type": "Fail", "ErrorPath": "$.code", "CausePath": "$.why"}));
    let e = exec(
        def,
        json!({"code": "Tributary.BadData", "why": "quality 0.42 < 0.9"}),
        &mut Canned::default(),
    );
    assert_eq!(e.status, Status::Failed);
    assert_eq!(e.error.as_deref(), Some("Tributary.BadData"));
    assert_eq!(e.cause.as_deref(), Some("quality 0.42 < 0.9"));
}

#[test]
fn intrinsic_failures_are_catchable_by_name() {
    let def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:F",
              "Parameters": {"first.$": "States.ArrayGetItem($.xs, 5)"}, "Next": "Done",
              "Catch": [{"ErrorEquals": ["States.IntrinsicFailure"], "ResultPath": "$.err", "Next": "Done"}]},
        "Done": {"Type": "Succeed"}}});
    let e = exec(def, json!({"xs": [1]}), &mut Canned::default().echo());
    let err = &output(&e)["err"];
    assert_eq!(err["Error"], "States.IntrinsicFailure");
    assert!(
        err["Cause"].as_str().unwrap().contains("out of bounds"),
        "{err}"
    );
}

#[test]
fn full_jitter_stays_within_the_backoff_and_replays_identically() {
    let def = single(
        json!({"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:F", "End": true,
        "Retry": [{"ErrorEquals": ["Busy"], "IntervalSeconds": 10, "BackoffRate": 1.0, "MaxAttempts": 5, "JitterStrategy": "FULL"}]}),
    );
    let run_once = || {
        let mut host = Canned::default().answer("S", vec![TaskOutcome::failed("Busy", "")]);
        exec(def.clone(), json!({}), &mut host)
    };
    let (a, b) = (run_once(), run_once());
    let waited = a.stop_ms.unwrap() - START;
    assert!(
        waited <= 50_000,
        "five jittered delays of at most 10 s: {waited}"
    );
    assert!(waited < 50_000, "FULL jitter shortens at least one delay");
    assert_eq!(a.stop_ms, b.stop_ms, "same execution name, same jitter");
}
