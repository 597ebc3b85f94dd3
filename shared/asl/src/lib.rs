//! Amazon States Language (JSONPath query language) for tributary: load and
//! validate definitions, and run them with the semantics AWS documents, on a
//! virtual clock. The same `statemachines/*.asl.json` files Terraform
//! deploys run here, so every branch, retry, timeout and approval path can
//! be tested on a laptop, deterministically.

pub mod choice;
pub mod definition;
pub mod engine;
pub mod errors;
mod hash;
pub mod intrinsics;
pub mod journal;
pub mod path;
pub mod template;

pub use definition::{load, DefinitionError, DefinitionErrors, StateMachine};
pub use engine::{
    run, Callback, ClockMode, Execution, Failure, HistoryEvent, Host, RunOptions, Status, TaskCall,
    TaskOutcome, Waiting,
};
pub use journal::{Journal, JournalHost, RecordedCall, TokenAnswer};

#[cfg(test)]
mod tests;
