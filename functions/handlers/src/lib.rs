//! Lambda handler logic: an AWS event (as JSON) in, a use case called, a
//! JSON response or a typed error out. No Lambda runtime and no SDK here, so
//! the `tributary` CLI calls exactly these functions in-process.
//!
//! [`FUNCTIONS`] is the one list of functions: [`invoke`], the Lambda
//! binaries, the CLI's Step Functions host and the infra checks all read it.
//! Each function decodes its own input type (every field it needs
//! required) and calls one use case of `tributary-core`.

pub mod approval_callback;
pub mod catchup;
pub mod distributed;
pub mod downstream;
pub mod error;
pub mod features;
pub mod http;
pub mod inference;
pub mod labeling;
pub mod metrics;
pub mod model;
pub mod partition;
pub mod retention;
pub mod stream;
pub mod wire;

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;
use tributary_core::services::{Ports, Services};
pub use tributary_process::Workload;

pub use error::HandlerError;

/// What a handler returns: boxed so that every function has one type and
/// fits the table.
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, HandlerError>> + Send + 'a>>;

/// A function's entry point: its raw event in, its response out.
pub type Handler = for<'a> fn(&'a Services<'a>, Value) -> HandlerFuture<'a>;

/// One deployable function.
pub struct Function {
    /// The name its binary (functions/src/bin/<name>.rs), its Lambda and its
    /// state-machine placeholder (`${<name with _>_function}`) use.
    pub name: &'static str,
    /// How a process serving it sets itself up.
    pub workload: Workload,
    pub handler: Handler,
    /// The handler's path in this crate (`partition::mark_failed`): the
    /// Lambda binary names it, so that it links only what it reaches.
    pub handler_path: &'static str,
    /// The ports it may use, as its IAM policy grants (the others refuse,
    /// wherever it runs).
    pub ports: Ports,
}

macro_rules! function {
    ($name:literal, $workload:ident, $handler:path, $($port:ident)|+) => {{
        fn handler<'a>(svc: &'a Services<'a>, event: Value) -> HandlerFuture<'a> {
            Box::pin($handler(svc, event))
        }
        Function {
            name: $name,
            workload: Workload::$workload,
            handler,
            handler_path: stringify!($handler),
            ports: Ports::NONE$(.union(Ports::$port))+,
        }
    }};
}

/// Every function, by state machine or trigger. Only the cleaner handles
/// bulk data (object-created starts an execution, it does not clean).
pub static FUNCTIONS: &[Function] = &[
    function!(
        "object-created",
        Light,
        partition::object_created,
        OBJECTS | STATE | WORKFLOWS
    ),
    function!(
        "plan-partition",
        Light,
        partition::plan_partition,
        OBJECTS | STATE
    ),
    function!(
        "clean-partition",
        Bulk,
        partition::clean_partition,
        OBJECTS | STATE
    ),
    function!("acquire-slot", Light, partition::acquire_slot, STATE),
    function!("release-slot", Light, partition::release_slot, STATE),
    function!(
        "plan-clean",
        Light,
        distributed::plan_clean,
        OBJECTS | STATE
    ),
    function!(
        "clean-range",
        Bulk,
        distributed::clean_range,
        OBJECTS | STATE
    ),
    function!(
        "check-ranges",
        Light,
        distributed::check_ranges,
        OBJECTS | STATE
    ),
    function!(
        "resolve-bucket",
        Bulk,
        distributed::resolve_bucket,
        OBJECTS | STATE
    ),
    function!("count-unique", Light, distributed::count_unique, OBJECTS),
    function!(
        "finish-clean",
        Light,
        distributed::finish_clean,
        OBJECTS | STATE
    ),
    function!(
        "validate-partition",
        Light,
        partition::validate_partition,
        OBJECTS | STATE
    ),
    function!(
        "publish-partition",
        Light,
        partition::publish_partition,
        OBJECTS | STATE | CATALOG
    ),
    function!(
        "request-approval",
        Light,
        partition::request_approval,
        OBJECTS | STATE | NOTIFIER
    ),
    function!(
        "quarantine-partition",
        Light,
        partition::quarantine_partition,
        STATE | NOTIFIER
    ),
    function!(
        "mark-failed",
        Light,
        partition::mark_failed,
        STATE | NOTIFIER
    ),
    function!(
        "approval-callback",
        Light,
        approval_callback::approval_callback,
        STATE | CALLBACKS
    ),
    function!(
        "plan-catchup",
        Light,
        catchup::plan_catchup,
        OBJECTS | STATE
    ),
    function!(
        "check-date",
        Light,
        catchup::check_date,
        OBJECTS | STATE | WORKFLOWS
    ),
    function!(
        "start-partition-run",
        Light,
        catchup::start_partition_run,
        OBJECTS | STATE | WORKFLOWS
    ),
    function!(
        "catchup-report",
        Light,
        catchup::catchup_report,
        STATE | NOTIFIER
    ),
    function!("auto-label", Light, labeling::auto_label, OBJECTS | STATE),
    function!(
        "request-label-review",
        Light,
        labeling::request_label_review,
        OBJECTS | STATE | NOTIFIER
    ),
    function!(
        "apply-label-review",
        Light,
        labeling::apply_label_review,
        OBJECTS | STATE
    ),
    function!(
        "merge-labels",
        Light,
        labeling::merge_labels,
        OBJECTS | STATE
    ),
    function!(
        "compute-features",
        Light,
        features::compute_features,
        OBJECTS | STATE
    ),
    function!(
        "merge-features",
        Light,
        features::merge_features,
        OBJECTS | STATE
    ),
    function!(
        "request-feature-approval",
        Light,
        features::request_feature_approval,
        OBJECTS | STATE | NOTIFIER
    ),
    function!(
        "publish-features",
        Light,
        features::publish_features,
        OBJECTS | STATE
    ),
    function!(
        "build-training-set",
        Light,
        model::build_training_set,
        OBJECTS | STATE
    ),
    function!("train-model", Light, model::train_model, OBJECTS | STATE),
    function!(
        "request-deploy-approval",
        Light,
        model::request_deploy_approval,
        OBJECTS | STATE | NOTIFIER
    ),
    function!(
        "activate-model",
        Light,
        model::activate_model,
        OBJECTS | STATE
    ),
    function!(
        "start-inference",
        Light,
        inference::start_inference,
        STATE | CONSUMERS
    ),
    function!(
        "inference-health",
        Light,
        inference::inference_health,
        STATE | CONSUMERS
    ),
    function!(
        "click-inference",
        Light,
        inference::click_inference,
        OBJECTS | STATE
    ),
    function!(
        "stop-inference",
        Light,
        inference::stop_inference,
        STATE | CONSUMERS
    ),
    function!(
        "rollback-model",
        Light,
        inference::rollback_model,
        OBJECTS | STATE | CONSUMERS
    ),
    function!(
        "stream-aggregate",
        Light,
        stream::stream_aggregate,
        OBJECTS | STATE
    ),
    function!(
        "build-views",
        Light,
        stream::build_views,
        OBJECTS | STATE | CATALOG
    ),
    function!("query-api", Light, stream::query_api, OBJECTS | STATE),
    function!(
        "reconcile",
        Light,
        stream::reconcile_streams,
        OBJECTS | STATE | NOTIFIER
    ),
    function!("replay-dlq", Light, stream::replay_dlq, OBJECTS | STATE),
    function!(
        "retention-sweep",
        Light,
        retention::retention_sweep,
        OBJECTS | STATE | CATALOG
    ),
    function!(
        "start-downstream",
        Light,
        downstream::start_downstream,
        STATE | WORKFLOWS
    ),
];

/// The function of that name.
pub fn function(name: &str) -> Option<&'static Function> {
    FUNCTIONS.iter().find(|f| f.name == name)
}

/// Every function's name, in table order.
pub fn function_names() -> impl Iterator<Item = &'static str> {
    FUNCTIONS.iter().map(|f| f.name)
}

/// Run a function by name on a raw event, with only the ports it is
/// granted.
pub async fn invoke(
    svc: &Services<'_>,
    function_name: &str,
    event: Value,
) -> Result<Value, HandlerError> {
    let Some(f) = function(function_name) else {
        return Err(error::bad_event(format!(
            "unknown function {function_name:?}; known: {}",
            function_names().collect::<Vec<_>>().join(", ")
        )));
    };
    (f.handler)(&svc.granted(f.ports), event).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_cleaner_is_a_bulk_workload() {
        let workload_of = |name| function(name).map(|f| f.workload);
        assert_eq!(workload_of("clean-partition"), Some(Workload::Bulk));
        for light in [
            "object-created",
            "publish-partition",
            "stream-aggregate",
            "query-api",
        ] {
            assert_eq!(workload_of(light), Some(Workload::Light), "{light}");
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = function_names().collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FUNCTIONS.len());
    }
}
