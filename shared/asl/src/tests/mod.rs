//! Conformance tests, most of them the worked examples of the AWS Step
//! Functions documentation (input and output processing, error handling,
//! Map, Parallel, task tokens), run through the whole engine.

mod validation;

use crate::engine::{iso_ms, Callback, Failure, Host, RunOptions, Status, TaskCall, TaskOutcome};
use crate::{load, run, Execution, StateMachine};
use serde_json::{json, Value};
use std::collections::HashMap;

/// Answers per state name, consumed in order (the last one repeats).
#[derive(Default)]
struct Canned {
    answers: HashMap<String, Vec<TaskOutcome>>,
    callbacks: HashMap<String, Callback>,
    machines: HashMap<String, StateMachine>,
    items: Vec<Value>,
    /// (state, function, payload) of every invocation.
    calls: Vec<(String, Option<String>, Value)>,
    /// Echo the payload back when a state has no answer.
    echo: bool,
}

impl Canned {
    fn answer(mut self, state: &str, outcomes: Vec<TaskOutcome>) -> Self {
        self.answers.insert(state.into(), outcomes);
        self
    }
    fn callback(mut self, state: &str, cb: Callback) -> Self {
        self.callbacks.insert(state.into(), cb);
        self
    }
    fn echo(mut self) -> Self {
        self.echo = true;
        self
    }
    fn calls_to(&self, state: &str) -> Vec<&Value> {
        self.calls
            .iter()
            .filter(|c| c.0 == state)
            .map(|c| &c.2)
            .collect()
    }
}

impl Host for Canned {
    fn invoke(&mut self, call: &TaskCall<'_>) -> TaskOutcome {
        self.calls.push((
            call.state_name.to_string(),
            call.function.map(str::to_string),
            call.payload.clone(),
        ));
        if call.token.is_some() {
            return TaskOutcome::ok(json!({}));
        }
        match self.answers.get_mut(call.state_name) {
            Some(list) if list.len() > 1 => list.remove(0),
            Some(list) if list.len() == 1 => list[0].clone(),
            _ if self.echo => TaskOutcome::ok(call.payload.clone()),
            _ => TaskOutcome::failed("Test.NoAnswer", call.state_name),
        }
    }
    fn callback(&mut self, _token: &str, call: &TaskCall<'_>) -> Callback {
        self.callbacks
            .get(call.state_name)
            .cloned()
            .unwrap_or(Callback::Silent)
    }
    fn state_machine(&mut self, arn: &str) -> Option<StateMachine> {
        self.machines.get(arn).cloned()
    }
    fn list_objects(&mut self, _bucket: &str, prefix: &str) -> Result<Vec<Value>, Failure> {
        Ok(self
            .items
            .iter()
            .filter(|i| i["Key"].as_str().is_some_and(|k| k.starts_with(prefix)))
            .cloned()
            .collect())
    }
}

const START: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn exec(definition: Value, input: Value, host: &mut Canned) -> Execution {
    let machine = load(&definition.to_string()).unwrap_or_else(|e| panic!("{e}"));
    run(
        &machine,
        input,
        &RunOptions::new("test", "run-1", START),
        host,
    )
}

fn output(e: &Execution) -> &Value {
    assert_eq!(e.status, Status::Succeeded, "{:?} {:?}", e.error, e.cause);
    e.output.as_ref().unwrap()
}

fn task(resource: &str) -> Value {
    json!({"Type": "Task", "Resource": resource, "End": true})
}

fn single(state: Value) -> Value {
    json!({"StartAt": "S", "States": {"S": state}})
}

fn ok(v: Value) -> Vec<TaskOutcome> {
    vec![TaskOutcome::ok(v)]
}

#[test]
fn input_path_parameters_result_selector_result_path_output_path() {
    // The documentation's worked example of all five fields on one Task.
    let mut state = task("arn:aws:lambda:us-east-1:123456789012:function:HelloFunction");
    state["InputPath"] = json!("$.library");
    state["Parameters"] =
        json!({"staticValue": "Just a string", "catalog": {"myFavoriteItem.$": "$.items[0]"}});
    state["ResultSelector"] = json!({"modifiedPayload": {"body.$": "$.body", "statusCode.$": "$.statusCode", "requestId.$": "$.requestId"}});
    state["ResultPath"] = json!("$.TaskResult");
    state["OutputPath"] = json!("$.TaskResult.modifiedPayload");
    let mut host = Canned::default().answer(
        "S",
        ok(json!({"body": "hello", "statusCode": 200, "requestId": "r-1", "ignored": true})),
    );
    let e = exec(
        single(state),
        json!({"library": {"items": ["Book1", "Book2"], "location": "Seattle"}}),
        &mut host,
    );
    assert_eq!(
        output(&e),
        &json!({"body": "hello", "statusCode": 200, "requestId": "r-1"})
    );
    assert_eq!(
        host.calls[0],
        (
            "S".to_string(),
            Some("HelloFunction".to_string()),
            json!({"staticValue": "Just a string", "catalog": {"myFavoriteItem": "Book1"}})
        )
    );
}

#[test]
fn result_path_variants() {
    let input =
        json!({"comment": "a test", "details": "Default example", "who": "AWS Step Functions"});
    let result = json!("Hello, AWS Step Functions!");
    let cases = [
        (json!("$"), result.clone()),
        (json!(null), input.clone()),
        (json!("$.taskresult"), {
            let mut v = input.clone();
            v["taskresult"] = result.clone();
            v
        }),
        (json!("$.details.nested"), Value::Null), // blocked: details is a string
        (json!("$.a.b.c"), {
            let mut v = input.clone();
            v["a"] = json!({"b": {"c": result.clone()}});
            v
        }),
    ];
    for (path, expected) in cases {
        let mut state = task("arn:aws:lambda:us-east-1:1:function:F");
        state["ResultPath"] = path.clone();
        let mut host = Canned::default().answer("S", ok(result.clone()));
        let e = exec(single(state), input.clone(), &mut host);
        if expected.is_null() {
            assert_eq!(e.status, Status::Failed);
            assert_eq!(e.error.as_deref(), Some("States.ResultPathMatchFailure"));
        } else {
            assert_eq!(output(&e), &expected, "ResultPath {path}");
        }
    }
}

#[test]
fn pass_state_result_and_null_paths() {
    let def = json!({"StartAt": "P1", "States": {
        "P1": {"Type": "Pass", "Result": {"x-datum": 0.381018, "y-datum": 622.2269926397355}, "ResultPath": "$.coords", "Next": "P2"},
        "P2": {"Type": "Pass", "InputPath": null, "Parameters": {"empty.$": "$"}, "ResultPath": "$.p2", "Next": "P3"},
        "P3": {"Type": "Pass", "OutputPath": null, "End": true}
    }});
    let e = exec(
        def.clone(),
        json!({"georefOf": "Home"}),
        &mut Canned::default(),
    );
    assert_eq!(output(&e), &json!({}));
    let def2 = {
        let mut d = def;
        d["States"]["P3"] = json!({"Type": "Pass", "End": true});
        d
    };
    let e = exec(def2, json!({"georefOf": "Home"}), &mut Canned::default());
    assert_eq!(
        output(&e),
        &json!({"georefOf": "Home", "coords": {"x-datum": 0.381018, "y-datum": 622.2269926397355}, "p2": {"empty": {}}})
    );
}

#[test]
fn parameters_path_failure_and_intrinsics_in_parameters() {
    let mut state = json!({"Type": "Pass", "Parameters": {"greeting.$": "States.Format('Hello {} of {}', $.name, $$.Execution.Name)", "id.$": "States.UUID()", "n.$": "States.MathAdd($.n, 1)"}, "End": true});
    let e = exec(
        single(state.clone()),
        json!({"name": "Ada", "n": 41}),
        &mut Canned::default(),
    );
    let out = output(&e);
    assert_eq!(out["greeting"], json!("Hello Ada of run-1"));
    assert_eq!(out["n"], json!(42));
    assert_eq!(out["id"].as_str().unwrap().len(), 36);
    state["Parameters"] = json!({"x.$": "$.missing"});
    let e = exec(single(state), json!({}), &mut Canned::default());
    assert_eq!(e.status, Status::Failed);
    // As AWS reports it: States.Runtime, naming the path and the field.
    assert_eq!(e.error.as_deref(), Some("States.Runtime"));
    assert!(
        e.cause
            .as_deref()
            .unwrap()
            .contains("The JSONPath '$.missing' specified for the field 'x.$' could not be found in the input '{}'"),
        "{:?}",
        e.cause
    );
}

#[test]
fn input_path_matching_nothing_is_an_uncatchable_runtime_error() {
    let mut state = task("arn:aws:lambda:us-east-1:1:function:F");
    state["InputPath"] = json!("$.nope");
    state["Catch"] = json!([{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]);
    state.as_object_mut().unwrap().remove("End");
    state["Next"] = json!("Done");
    let def = json!({"StartAt": "S", "States": {
        "S": state,
        "Caught": {"Type": "Pass", "End": true},
        "Done": {"Type": "Succeed"}
    }});
    let e = exec(def, json!({}), &mut Canned::default().echo());
    assert_eq!(e.status, Status::Failed);
    assert_eq!(e.error.as_deref(), Some("States.Runtime"));
}

/// Every place a path is resolved fails the way AWS reports it:
/// States.Runtime, which neither Retry nor a States.ALL Catch handles.
#[test]
fn a_path_matching_nothing_anywhere_is_an_uncatchable_runtime_error() {
    let caught = |state: Value| {
        if state.get("Catch").is_some() {
            json!({"StartAt": "S", "States": {
                "S": state,
                "Caught": {"Type": "Pass", "End": true}
            }})
        } else {
            json!({"StartAt": "S", "States": {"S": state}})
        }
    };
    let catch_all = json!([{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]);
    let retry_all = json!([{"ErrorEquals": ["States.ALL"], "MaxAttempts": 2}]);
    let cases = [
        (
            "ResultSelector",
            json!({"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:F",
                   "ResultSelector": {"v.$": "$.nope"}, "Retry": retry_all, "Catch": catch_all, "End": true}),
            "specified for the field 'v.$'",
        ),
        (
            "Parameters from the context object",
            json!({"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:F",
                   "Parameters": {"v.$": "$$.Execution.Nope"}, "Catch": catch_all, "End": true}),
            "could not be found in the context object",
        ),
        (
            "ItemSelector",
            json!({"Type": "Map", "ItemsPath": "$.items",
                   "ItemSelector": {"v.$": "$$.Map.Item.Value.nope"},
                   "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}},
                   "Catch": catch_all, "End": true}),
            "specified for the field 'v.$'",
        ),
        (
            "an intrinsic's argument",
            json!({"Type": "Pass", "Parameters": {"v.$": "States.MathAdd($.nope, 1)"}, "End": true}),
            "The JSONPath '$.nope'",
        ),
        (
            "Fail ErrorPath",
            json!({"Type": "Fail", "ErrorPath": "$.nope", "Cause": "x"}),
            "The JSONPath '$.nope'",
        ),
        (
            "Fail CausePath",
            json!({"Type": "Fail", "Error": "E", "CausePath": "$.nope"}),
            "The JSONPath '$.nope'",
        ),
    ];
    for (what, state, fragment) in cases {
        let e = exec(
            caught(state),
            json!({"items": [{"a": 1}]}),
            &mut Canned::default().answer("S", vec![TaskOutcome::ok(json!({"x": 1}))]),
        );
        assert_eq!(e.status, Status::Failed, "{what}: {e:?}");
        assert_eq!(e.error.as_deref(), Some("States.Runtime"), "{what}: {e:?}");
        assert!(
            e.cause.as_deref().unwrap_or_default().contains(fragment),
            "{what}: {:?}",
            e.cause
        );
    }
}

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
fn choice_rules_cover_every_operator() {
    let rules = json!([
        {"Not": {"Variable": "$.type", "StringEquals": "Private"}, "Next": "Public"},
        {"And": [{"Variable": "$.value", "IsPresent": true}, {"Variable": "$.value", "IsNumeric": true},
                 {"Variable": "$.value", "NumericGreaterThanEquals": 20}, {"Variable": "$.value", "NumericLessThan": 30}],
         "Next": "ValueInTwenties"},
        {"Or": [{"Variable": "$.ts", "TimestampGreaterThan": "2026-06-01T00:00:00Z"}, {"Variable": "$.flag", "BooleanEquals": true}],
         "Next": "LateOrFlagged"},
        {"Variable": "$.name", "StringMatches": "log-*.txt", "Next": "Log"},
        {"Variable": "$.a", "NumericEqualsPath": "$.b", "Next": "Same"},
        {"Variable": "$.nothing", "IsNull": true, "Next": "Null"},
        {"Variable": "$.when", "IsTimestamp": true, "Next": "Stamp"}
    ]);
    let mut states = json!({"C": {"Type": "Choice", "Choices": rules, "Default": "Other"}});
    for n in [
        "Public",
        "ValueInTwenties",
        "LateOrFlagged",
        "Log",
        "Same",
        "Null",
        "Stamp",
        "Other",
    ] {
        states[n] = json!({"Type": "Pass", "Result": n, "End": true});
    }
    let def = json!({"StartAt": "C", "States": states});
    let base = json!({"type": "Private", "value": 0, "ts": "2026-01-01T00:00:00Z", "flag": false,
                      "name": "x", "a": 1, "b": 2, "nothing": 0, "when": "no"});
    let with = |k: &str, v: Value| {
        let mut i = base.clone();
        i[k] = v;
        i
    };
    let cases = [
        (with("type", json!("Public")), "Public"),
        (with("value", json!(25)), "ValueInTwenties"),
        (with("value", json!(30)), "Other"),
        (with("value", json!("25")), "Other"),
        (
            with("ts", json!("2026-07-01T00:00:00+02:00")),
            "LateOrFlagged",
        ),
        (with("flag", json!(true)), "LateOrFlagged"),
        (with("name", json!("log-2026.txt")), "Log"),
        (with("b", json!(1.0)), "Same"),
        (with("nothing", Value::Null), "Null"),
        (with("when", json!("2026-01-01T10:00:00.5Z")), "Stamp"),
        (base.clone(), "Other"),
    ];
    for (input, expected) in cases {
        let e = exec(def.clone(), input.clone(), &mut Canned::default());
        assert_eq!(output(&e), &json!(expected), "input {input}");
    }
    // A variable that is not there fails the execution (IsPresent asks safely).
    let mut missing = base.clone();
    missing.as_object_mut().unwrap().remove("type");
    let e = exec(def.clone(), missing, &mut Canned::default());
    assert_eq!(e.error.as_deref(), Some("States.Runtime"));
    // No match and no Default.
    let def = json!({"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.x", "StringEquals": "y", "Next": "E"}]},
        "E": {"Type": "Succeed"}}});
    let e = exec(def, json!({"x": "z"}), &mut Canned::default());
    assert_eq!(e.error.as_deref(), Some("States.NoChoiceMatched"));
}

#[test]
fn wait_states_advance_the_virtual_clock() {
    let def = json!({"StartAt": "W1", "States": {
        "W1": {"Type": "Wait", "Seconds": 3600, "Next": "W2"},
        "W2": {"Type": "Wait", "SecondsPath": "$.pause", "Next": "W3"},
        "W3": {"Type": "Wait", "TimestampPath": "$.until", "Next": "Stamp"},
        "Stamp": {"Type": "Pass", "Parameters": {"entered.$": "$$.State.EnteredTime", "started.$": "$$.Execution.StartTime"}, "End": true}
    }});
    let e = exec(
        def,
        json!({"pause": 60, "until": "2026-01-02T00:00:00Z"}),
        &mut Canned::default(),
    );
    assert_eq!(
        output(&e),
        &json!({"entered": "2026-01-02T00:00:00.000Z", "started": iso_ms(START)})
    );
}

#[test]
fn a_year_of_daily_waits_in_a_map() {
    let def = json!({"StartAt": "Days", "States": {"Days": {
        "Type": "Map", "ItemsPath": "$.days", "MaxConcurrency": 1, "End": true,
        "ItemSelector": {"day.$": "$$.Map.Item.Value", "index.$": "$$.Map.Item.Index"},
        "ItemProcessor": {"StartAt": "Wait", "States": {
            "Wait": {"Type": "Wait", "Seconds": 86400, "Next": "Done"},
            "Done": {"Type": "Pass", "Parameters": {"day.$": "$.day", "at.$": "$$.State.EnteredTime"}, "End": true}
        }}
    }}});
    let days: Vec<Value> = (0..365).map(|d| json!(format!("d{d}"))).collect();
    let e = exec(def, json!({"days": days}), &mut Canned::default());
    let out = output(&e).as_array().unwrap();
    assert_eq!(out.len(), 365);
    assert_eq!(out[364]["day"], json!("d364"));
    assert_eq!(e.stop_ms, Some(START + 365 * 86_400_000));
}

#[test]
fn map_item_selector_context_and_concurrency() {
    // The documentation's example: $$.Map.Item.Index / Value in ItemSelector.
    let def = json!({"StartAt": "Map", "States": {"Map": {
        "Type": "Map", "ItemsPath": "$.shipped", "MaxConcurrency": 2, "End": true,
        "ItemSelector": {"ContextIndex.$": "$$.Map.Item.Index", "ContextValue.$": "$$.Map.Item.Value", "partner.$": "$.delivery-partner"},
        "ItemProcessor": {"StartAt": "Ship", "States": {"Ship": {"Type": "Wait", "Seconds": 10, "End": true}}}
    }}});
    let input = json!({"delivery-partner": "UQS", "shipped": [
        {"prod": "R31", "dest-code": 9511, "quantity": 1344},
        {"prod": "S39", "dest-code": 9511, "quantity": 40},
        {"prod": "R31", "dest-code": 9833, "quantity": 12}
    ]});
    let e = exec(def, input, &mut Canned::default());
    let out = output(&e);
    assert_eq!(
        out[1],
        json!({"ContextIndex": 1, "ContextValue": {"prod": "S39", "dest-code": 9511, "quantity": 40}, "partner": "UQS"})
    );
    // Two slots, three 10-second items: 20 seconds.
    assert_eq!(e.stop_ms, Some(START + 20_000));
}

#[test]
fn legacy_iterator_and_parameters_still_work() {
    let def = json!({"StartAt": "Map", "States": {"Map": {
        "Type": "Map", "ItemsPath": "$.xs", "Parameters": {"v.$": "$$.Map.Item.Value"}, "End": true,
        "Iterator": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}
    }}});
    let e = exec(def, json!({"xs": [1, 2]}), &mut Canned::default());
    assert_eq!(output(&e), &json!([{"v": 1}, {"v": 2}]));
}

#[test]
fn map_failures_propagate_or_are_tolerated() {
    let processor = json!({"StartAt": "Check", "States": {
        "Check": {"Type": "Choice", "Choices": [{"Variable": "$", "NumericGreaterThan": 2, "Next": "Bad"}], "Default": "Good"},
        "Bad": {"Type": "Fail", "Error": "TooBig", "Cause": "over two"},
        "Good": {"Type": "Succeed"}
    }});
    let inline = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true, "ItemProcessor": processor}}});
    let e = exec(inline, json!([1, 2, 3, 4]), &mut Canned::default());
    assert_eq!(e.error.as_deref(), Some("TooBig"));
    let mut distributed = processor.clone();
    distributed["ProcessorConfig"] = json!({"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"});
    for (tolerance, expect_ok) in [
        (json!({"ToleratedFailureCount": 2}), true),
        (json!({"ToleratedFailurePercentage": 25}), false),
    ] {
        let mut m = json!({"Type": "Map", "End": true, "ItemProcessor": distributed});
        for (k, v) in tolerance.as_object().unwrap() {
            m[k] = v.clone();
        }
        let e = exec(single(m), json!([1, 2, 3, 4]), &mut Canned::default());
        if expect_ok {
            assert_eq!(
                output(&e)[2],
                json!({"Error": "TooBig", "Cause": "over two"})
            );
        } else {
            assert_eq!(
                e.error.as_deref(),
                Some("States.ExceedToleratedFailureThreshold")
            );
        }
    }
}

/// When an iteration fails, the iterations already started beside it run
/// the states they entered by then (a Lambda already invoked is not
/// recalled) and stop; iterations waiting for a slot never start.
#[test]
fn siblings_started_beside_a_failure_stop_at_its_time() {
    let processor = json!({"StartAt": "Work", "States": {
        "Work": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:work", "Next": "Check"},
        "Check": {"Type": "Choice", "Choices": [{"Variable": "$.bad", "BooleanEquals": true, "Next": "Bad"}], "Default": "Later"},
        "Bad": {"Type": "Fail", "Error": "Broken", "Cause": "item 0"},
        "Later": {"Type": "Wait", "Seconds": 10, "Next": "After"},
        "After": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:after", "End": true}
    }});
    let items = json!([{"bad": true}, {"bad": false}, {"bad": false}]);
    for (max_concurrency, works) in [(2, 2), (1, 1), (0, 3)] {
        let def = single(
            json!({"Type": "Map", "End": true, "MaxConcurrency": max_concurrency,
            "ItemProcessor": processor}),
        );
        let mut host = Canned::default().echo();
        let e = exec(def, items.clone(), &mut host);
        assert_eq!(e.error.as_deref(), Some("Broken"), "{max_concurrency}");
        assert_eq!(
            host.calls_to("Work").len(),
            works,
            "MaxConcurrency {max_concurrency}"
        );
        // The Wait of a sibling ends after the failure: nothing after it runs.
        assert!(
            host.calls_to("After").is_empty(),
            "MaxConcurrency {max_concurrency}"
        );
    }
    // Parallel: every branch starts with the state.
    let def = single(json!({"Type": "Parallel", "End": true, "Branches": [
        {"StartAt": "Fails", "States": {"Fails": {"Type": "Fail", "Error": "Broken", "Cause": "branch 0"}}},
        {"StartAt": "Work", "States": {"Work": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:work", "End": true}}}
    ]}));
    let mut host = Canned::default().echo();
    let e = exec(def, json!({}), &mut host);
    assert_eq!(e.error.as_deref(), Some("Broken"));
    assert_eq!(host.calls_to("Work").len(), 1);
}

#[test]
fn distributed_map_reads_items_and_batches_them() {
    let def = single(json!({"Type": "Map", "End": true,
        "ItemReader": {"Resource": "arn:aws:states:::s3:listObjectsV2", "Parameters": {"Bucket": "b", "Prefix.$": "$.prefix"}},
        "ItemBatcher": {"MaxItemsPerBatch": 2, "BatchInput": {"run.$": "$.run"}},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"}, "StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"n.$": "States.ArrayLength($.Items)", "run.$": "$.BatchInput.run"}, "End": true}}}}));
    let mut host = Canned {
        items: (0..5)
            .map(|i| json!({"Key": format!("raw/{i}.csv")}))
            .collect(),
        ..Default::default()
    };
    let e = exec(def, json!({"prefix": "raw/", "run": "r1"}), &mut host);
    assert_eq!(
        output(&e),
        &json!([{"n": 2, "run": "r1"}, {"n": 2, "run": "r1"}, {"n": 1, "run": "r1"}])
    );
}

#[test]
fn parallel_joins_branches_and_fails_as_a_whole() {
    let def = json!({"StartAt": "Fan", "States": {
        "Fan": {"Type": "Parallel", "Next": "Join", "ResultSelector": {"a.$": "$[0]", "b.$": "$[1].v"},
                "ResultPath": "$.joined",
                "Catch": [{"ErrorEquals": ["BranchBroke"], "ResultPath": "$.err", "Next": "Recover"}],
                "Branches": [
                    {"StartAt": "A", "States": {"A": {"Type": "Wait", "Seconds": 30, "Next": "A2"}, "A2": {"Type": "Pass", "Result": "a", "End": true}}},
                    {"StartAt": "B", "States": {"B": {"Type": "Choice", "Choices": [{"Variable": "$.breakB", "BooleanEquals": true, "Next": "BFail"}], "Default": "BOk"},
                                                "BFail": {"Type": "Fail", "Error": "BranchBroke", "CausePath": "States.Format('branch B on {}', $.day)"},
                                                "BOk": {"Type": "Wait", "Seconds": 90, "Next": "BOut"},
                                                "BOut": {"Type": "Pass", "Parameters": {"v.$": "$.day"}, "End": true}}}
                ]},
        "Join": {"Type": "Succeed"},
        "Recover": {"Type": "Pass", "End": true}
    }});
    let e = exec(
        def.clone(),
        json!({"day": "2026-01-05", "breakB": false}),
        &mut Canned::default(),
    );
    assert_eq!(output(&e)["joined"], json!({"a": "a", "b": "2026-01-05"}));
    assert_eq!(
        e.stop_ms,
        Some(START + 90_000),
        "the join waits for the slowest branch"
    );
    let e = exec(
        def,
        json!({"day": "2026-01-05", "breakB": true}),
        &mut Canned::default(),
    );
    assert_eq!(
        output(&e)["err"],
        json!({"Error": "BranchBroke", "Cause": "branch B on 2026-01-05"})
    );
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
fn execution_timeout_stops_everything() {
    let def = json!({"TimeoutSeconds": 100, "StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 500, "End": true}}});
    let e = exec(def, json!({}), &mut Canned::default());
    assert_eq!(e.status, Status::TimedOut);
    assert_eq!(e.error.as_deref(), Some("States.Timeout"));
    assert_eq!(e.stop_ms, Some(START + 100_000));
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
