//! Input and output processing: InputPath, Parameters, ResultSelector,
//! ResultPath, OutputPath, and paths that match nothing.

use super::*;

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
