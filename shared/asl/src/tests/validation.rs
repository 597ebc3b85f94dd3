//! Every kind of definition error names the state and the field.

use crate::load;
use serde_json::{json, Value};

fn errors_of(def: Value) -> Vec<String> {
    match load(&def.to_string()) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

fn assert_error(def: Value, fragments: &[&str]) {
    let errors = errors_of(def.clone());
    assert!(
        errors
            .iter()
            .any(|e| fragments.iter().all(|f| e.contains(f))),
        "expected an error containing {fragments:?}, got {errors:?} for {def}"
    );
}

fn one(state: Value) -> Value {
    json!({"StartAt": "S", "States": {"S": state}})
}

#[test]
fn a_valid_definition_loads() {
    assert!(errors_of(one(json!({"Type": "Pass", "End": true}))).is_empty());
}

#[test]
fn structural_errors() {
    assert_error(
        json!({"States": {"S": {"Type": "Succeed"}}}),
        &["StartAt", "missing"],
    );
    assert_error(
        json!({"StartAt": "X", "States": {"S": {"Type": "Succeed"}}}),
        &["StartAt", "'X' is not one of the states"],
    );
    assert_error(
        one(json!({"Type": "Pass"})),
        &["state 'S'", "Next", "missing"],
    );
    assert_error(
        one(json!({"Type": "Pass", "Next": "S", "End": true})),
        &["state 'S'", "End", "not both"],
    );
    assert_error(
        json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}, "B": {"Type": "Succeed"}}}),
        &["state 'A'", "Next", "'Nowhere' is not a state"],
    );
    assert_error(
        json!({"StartAt": "A", "States": {"A": {"Type": "Succeed"}, "Orphan": {"Type": "Succeed"}}}),
        &["state 'Orphan'", "unreachable"],
    );
    assert_error(
        json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "A"}}}),
        &["no terminal state"],
    );
    assert_error(
        one(json!({"Type": "Sleep", "End": true})),
        &["state 'S'", "Type", "'Sleep' is not a state type"],
    );
    assert_error(
        json!({"StartAt": "S", "States": {"S": {"Type": "Succeed"}}, "Bogus": 1}),
        &["field 'Bogus'", "unknown field"],
    );
    assert_error(
        json!({"StartAt": "S", "QueryLanguage": "JSONata", "States": {"S": {"Type": "Succeed"}}}),
        &["QueryLanguage", "not supported"],
    );
}

#[test]
fn unknown_and_misplaced_fields() {
    assert_error(
        one(json!({"Type": "Pass", "End": true, "Resource": "x"})),
        &["state 'S'", "field 'Resource'", "only in Task"],
    );
    assert_error(
        one(json!({"Type": "Succeed", "Next": "S"})),
        &["field 'Next'", "not allowed in a Succeed state"],
    );
    assert_error(
        one(json!({"Type": "Pass", "End": true, "Parameter": {}})),
        &["field 'Parameter'", "unknown field"],
    );
    assert_error(
        one(
            json!({"Type": "Map", "End": true, "ItemReader": {"Resource": "arn:aws:states:::s3:listObjectsV2"},
                   "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}}),
        ),
        &["ItemReader", "only a DISTRIBUTED Map"],
    );
}

#[test]
fn path_errors() {
    assert_error(
        one(json!({"Type": "Pass", "End": true, "InputPath": "foo"})),
        &["InputPath", "must start with '$'"],
    );
    assert_error(
        one(json!({"Type": "Pass", "End": true, "ResultPath": "$.a[*]"})),
        &["ResultPath", "reference path"],
    );
    assert_error(
        one(json!({"Type": "Pass", "End": true, "Parameters": {"x.$": "$.a["}})),
        &["Parameters", "'x.$'"],
    );
    assert_error(
        one(json!({"Type": "Pass", "End": true, "Parameters": {"x.$": 5}})),
        &["Parameters", "ends in '.$'"],
    );
    assert_error(
        one(json!({"Type": "Pass", "End": true, "Parameters": {"x.$": "States.Foo(1)"}})),
        &["Parameters", "unknown intrinsic"],
    );
    assert_error(
        one(
            json!({"Type": "Pass", "End": true, "Parameters": {"x.$": "States.ArrayLength(1, 2)"}}),
        ),
        &["Parameters", "takes 1 argument"],
    );
}

#[test]
fn retry_and_catch_ranges() {
    let with = |retry: Value| {
        one(
            json!({"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:F", "End": true, "Retry": retry}),
        )
    };
    assert_error(
        with(json!([{"ErrorEquals": ["X"], "BackoffRate": 0.5}])),
        &["Retry[0].BackoffRate", "≥ 1.0"],
    );
    assert_error(
        with(json!([{"ErrorEquals": ["X"], "IntervalSeconds": 0}])),
        &["Retry[0].IntervalSeconds"],
    );
    assert_error(
        with(json!([{"ErrorEquals": ["X"], "MaxAttempts": -1}])),
        &["Retry[0].MaxAttempts"],
    );
    assert_error(
        with(json!([{"ErrorEquals": ["X"], "JitterStrategy": "SOME"}])),
        &["JitterStrategy"],
    );
    assert_error(
        with(json!([{"ErrorEquals": []}])),
        &["Retry[0].ErrorEquals", "non-empty"],
    );
    assert_error(
        with(json!([{"ErrorEquals": ["States.ALL", "X"]}])),
        &["States.ALL must appear alone"],
    );
    assert_error(
        with(json!([{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}])),
        &["States.ALL must be in the last"],
    );
    assert_error(
        one(
            json!({"Type": "Task", "Resource": "r", "End": true, "Catch": [{"ErrorEquals": ["X"]}]}),
        ),
        &["Catch[0].Next", "missing"],
    );
    assert_error(
        one(
            json!({"Type": "Task", "Resource": "r", "End": true, "TimeoutSeconds": 10, "HeartbeatSeconds": 10}),
        ),
        &["HeartbeatSeconds", "less than TimeoutSeconds"],
    );
}

#[test]
fn choice_and_wait_errors() {
    let choice = |rule: Value| json!({"StartAt": "C", "States": {"C": {"Type": "Choice", "Choices": [rule], "Default": "E"}, "E": {"Type": "Succeed"}}});
    assert_error(
        choice(json!({"Variable": "$.x", "StringEquals": "a"})),
        &["Choices[0].Next", "missing"],
    );
    assert_error(
        choice(json!({"Variable": "$.x", "StringEqual": "a", "Next": "E"})),
        &["Choices[0].StringEqual"],
    );
    assert_error(
        choice(json!({"Variable": "$.x", "NumericEquals": "a", "Next": "E"})),
        &["NumericEquals", "not a valid operand"],
    );
    assert_error(
        choice(json!({"Not": {"Variable": "$.x", "IsNull": true, "Next": "E"}, "Next": "E"})),
        &["Choices[0].Not.Next", "only top-level"],
    );
    assert_error(
        choice(json!({"And": [], "Next": "E"})),
        &["Choices[0].And", "non-empty"],
    );
    assert_error(
        one(json!({"Type": "Wait", "End": true})),
        &["state 'S'", "exactly one of Seconds"],
    );
    assert_error(
        one(json!({"Type": "Wait", "Timestamp": "tomorrow", "End": true})),
        &["Timestamp", "RFC 3339"],
    );
}

#[test]
fn nested_scopes_are_named_and_separate() {
    let def = json!({"StartAt": "Fan", "States": {
        "Fan": {"Type": "Parallel", "End": true, "Branches": [
            {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Outside"}}}
        ]},
        "Outside": {"Type": "Succeed"}
    }});
    assert_error(
        def,
        &["Fan/Branches[0]/A", "Next", "'Outside' is not a state"],
    );
    let all = errors_of(json!({"StartAt": "S", "States": {
        "S": {"Type": "Pass", "Next": "T", "Bogus": 1},
        "T": {"Type": "Task", "End": true}
    }}));
    assert!(all.len() >= 2, "every error is reported at once: {all:?}");
}
