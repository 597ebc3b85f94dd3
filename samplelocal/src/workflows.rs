//! The state machines of `statemachines/`, built into the binary so
//! `tributary` runs the same files Terraform deploys from any directory, with
//! their `${name_function}` placeholders pointing at the in-process
//! functions.

use anyhow::Result;
use std::collections::BTreeMap;
use std::path::Path;

pub const PARTITION_PIPELINE: &str =
    include_str!("../../statemachines/partition_pipeline.asl.json");

/// `${clean_partition_function}` → `tributary-clean-partition`, for every
/// function (Terraform substitutes the deployed function names).
pub fn function_vars() -> BTreeMap<String, String> {
    tributary_handlers::FUNCTIONS
        .iter()
        .map(|f| {
            (
                format!("{}_function", f.replace('-', "_")),
                format!("tributary-{f}"),
            )
        })
        .collect()
}

pub fn partition_pipeline() -> Result<String> {
    crate::commands::asl::substitute(
        PARTITION_PIPELINE,
        &function_vars(),
        Path::new("statemachines/partition_pipeline.asl.json"),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_embedded_state_machines_load() {
        let text = super::partition_pipeline().unwrap();
        tributary_asl::load(&text).unwrap_or_else(|e| panic!("{e}"));
        assert!(!text.contains("${"));
    }
}
