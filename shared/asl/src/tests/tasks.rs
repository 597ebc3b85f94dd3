//! Tasks: Lambda payloads, task tokens and their callbacks, timeouts and
//! heartbeats, nested executions.

use super::*;

#[test]
fn lambda_invoke_wraps_the_payload() {
    let state = json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true,
        "Parameters": {"FunctionName": "tributary-clean-partition", "Payload": {"date.$": "$.date"}},
        "ResultSelector": {"stats.$": "$.Payload", "code.$": "$.StatusCode"}});
    let mut host = Canned::default().answer("S", ok(json!({"kept": 10})));
    let e = exec(single(state), json!({"date": "2026-01-01"}), &mut host);
    assert_eq!(output(&e), &json!({"stats": {"kept": 10}, "code": 200}));
    assert_eq!(
        host.calls[0].1.as_deref(),
        Some("tributary-clean-partition")
    );
    assert_eq!(host.calls[0].2, json!({"date": "2026-01-01"}));
}

fn approval() -> Value {
    json!({"StartAt": "Approve", "States": {"Approve": {
        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {"FunctionName": "notify", "Payload": {"token.$": "$$.Task.Token", "date.$": "$.date"}},
        "TimeoutSeconds": 172800, "HeartbeatSeconds": 86400, "ResultPath": "$.decision", "End": true}}})
}

#[test]
fn task_token_callbacks_succeed_fail_time_out_or_pause() {
    let arrived = Callback::Arrived {
        result: Ok(json!({"approved": true, "by": "ana"})),
        after_ms: 3_600_000,
        heartbeats_ms: vec![],
    };
    let mut host = Canned::default().callback("Approve", arrived);
    let e = exec(approval(), json!({"date": "2026-01-01"}), &mut host);
    assert_eq!(
        output(&e)["decision"],
        json!({"approved": true, "by": "ana"})
    );
    let token = host.calls[0].2["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("run-1-"), "{token}");
    assert_eq!(e.stop_ms, Some(START + 3_600_000));

    let rejected = Callback::Arrived {
        result: Err(Failure::new("Rejected", "not today")),
        after_ms: 1000,
        heartbeats_ms: vec![],
    };
    let e = exec(
        approval(),
        json!({"date": "d"}),
        &mut Canned::default().callback("Approve", rejected),
    );
    assert_eq!(e.error.as_deref(), Some("Rejected"));

    // Heartbeats every 20 h keep a 40-hour wait alive; a 30-hour gap kills it.
    let late_ok = Callback::Arrived {
        result: Ok(json!("ok")),
        after_ms: 40 * 3_600_000,
        heartbeats_ms: vec![20 * 3_600_000],
    };
    let e = exec(
        approval(),
        json!({"date": "d"}),
        &mut Canned::default().callback("Approve", late_ok),
    );
    assert_eq!(e.status, Status::Succeeded, "{:?} {:?}", e.error, e.cause);
    let gap = Callback::Arrived {
        result: Ok(json!("ok")),
        after_ms: 40 * 3_600_000,
        heartbeats_ms: vec![10 * 3_600_000],
    };
    let e = exec(
        approval(),
        json!({"date": "d"}),
        &mut Canned::default().callback("Approve", gap),
    );
    assert_eq!(e.error.as_deref(), Some("States.HeartbeatTimeout"));
    assert_eq!(e.stop_ms, Some(START + 34 * 3_600_000));

    // Nobody answers: the heartbeat deadline passes in virtual time.
    let e = exec(approval(), json!({"date": "d"}), &mut Canned::default());
    assert_eq!(e.error.as_deref(), Some("States.HeartbeatTimeout"));

    // Someone may answer later: the execution pauses, naming its token.
    let e = exec(
        approval(),
        json!({"date": "d"}),
        &mut Canned::default().callback("Approve", Callback::Pending),
    );
    assert_eq!(e.status, Status::Running);
    let waiting = e.waiting.unwrap();
    assert_eq!(waiting.state, "Approve");
    assert_eq!(waiting.deadline_ms, Some(START + 172_800_000));
}

#[test]
fn timeout_and_heartbeat_can_come_from_the_input() {
    let def = single(
        json!({"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:F", "End": true,
        "TimeoutSecondsPath": "$.limits.timeout", "HeartbeatSecondsPath": "$.limits.heartbeat"}),
    );
    let slow = TaskOutcome {
        result: Ok(json!("x")),
        elapsed_ms: 90_000,
    };
    let mut host = Canned::default().answer("S", vec![slow]);
    let e = exec(
        def.clone(),
        json!({"limits": {"timeout": 60, "heartbeat": 30}}),
        &mut host,
    );
    assert_eq!(e.error.as_deref(), Some("States.Timeout"));
    assert_eq!(e.stop_ms, Some(START + 60_000));
    let e = exec(
        def,
        json!({"limits": {"timeout": "soon", "heartbeat": 30}}),
        &mut Canned::default().echo(),
    );
    assert_eq!(e.error.as_deref(), Some("States.Runtime"));
}

#[test]
fn nested_execution_sync() {
    let child = load(&json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"got.$": "$.x"}, "End": true}}}).to_string()).unwrap();
    let mut host = Canned::default();
    host.machines.insert(
        "arn:aws:states:us-east-1:123456789012:stateMachine:child".into(),
        child,
    );
    let def = single(
        json!({"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2",
        "Parameters": {"StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:child", "Input": {"x.$": "$.v"}},
        "OutputPath": "$.Output", "End": true}),
    );
    let e = exec(def, json!({"v": 7}), &mut host);
    assert_eq!(output(&e), &json!({"got": 7}));
}
