//! The `tributary` command-line tool: the local runtime and operations.

pub mod cli;
pub mod commands;
pub mod integrations;
pub mod local;
pub mod mappings;
pub mod sample;
pub mod stepfunctions;
pub mod workflows;
