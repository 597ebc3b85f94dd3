//! Choice rules and Wait states on the virtual clock.

use super::*;

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
