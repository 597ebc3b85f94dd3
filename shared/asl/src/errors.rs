//! The predefined error names of the States Language.

pub const ALL: &str = "States.ALL";
pub const TASK_FAILED: &str = "States.TaskFailed";
pub const TIMEOUT: &str = "States.Timeout";
pub const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";
pub const RUNTIME: &str = "States.Runtime";
pub const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";
pub const RESULT_PATH_MATCH_FAILURE: &str = "States.ResultPathMatchFailure";
pub const PARAMETER_PATH_FAILURE: &str = "States.ParameterPathFailure";
pub const INTRINSIC_FAILURE: &str = "States.IntrinsicFailure";
pub const BRANCH_FAILED: &str = "States.BranchFailed";
pub const EXCEED_TOLERATED_FAILURE_THRESHOLD: &str = "States.ExceedToleratedFailureThreshold";
pub const ITEM_READER_FAILED: &str = "States.ItemReaderFailed";

/// Does a Retry/Catch `ErrorEquals` list match this error? `States.ALL`
/// matches every error but `States.Runtime` (which nothing catches), and
/// `States.TaskFailed` every error but `States.Timeout`.
pub fn matches(error_equals: &[String], error: &str) -> bool {
    if error == RUNTIME {
        return false;
    }
    error_equals
        .iter()
        .any(|e| e == error || e == ALL || (e == TASK_FAILED && error != TIMEOUT))
}
