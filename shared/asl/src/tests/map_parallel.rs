//! Map (inline and distributed) and Parallel: items, concurrency,
//! tolerated failures, siblings of a failure.

use super::*;

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
