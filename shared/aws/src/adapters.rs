//! Every port on AWS, wired from the environment a Lambda function gets
//! (Terraform sets it), read once at cold start.

use crate::{
    consumer_function_variable, AwsSettings, DynamoStateStore, GlueCatalog, LambdaConsumerSwitch,
    S3ObjectStore, SfnCallbacks, SfnWorkflows, SnsNotifier,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use tributary_core::config::Config;
use tributary_core::inference;
use tributary_core::ports::Workflow;
use tributary_core::services::{Ports, Services};

pub struct AwsAdapters {
    pub objects: S3ObjectStore,
    pub state: DynamoStateStore,
    pub catalog: GlueCatalog,
    pub workflows: SfnWorkflows,
    pub notifier: SnsNotifier,
    pub callbacks: SfnCallbacks,
    pub consumers: LambdaConsumerSwitch,
    pub approval_secret: Vec<u8>,
    pub approval_base_url: String,
    pub scratch: PathBuf,
}

/// What the functions read, and what each is for (the message when it is
/// missing).
pub const ENVIRONMENT: &[(&str, &str)] = &[
    ("TRIBUTARY_BUCKET", "the data bucket's name"),
    ("TRIBUTARY_TABLE", "the DynamoDB state table's name"),
    (
        "TRIBUTARY_GLUE_DATABASE",
        "the Glue database of the dataset tables",
    ),
    (
        "TRIBUTARY_STATE_MACHINE_ARN",
        "the partition pipeline state machine's ARN",
    ),
    (
        "TRIBUTARY_TOPIC_ARN",
        "the SNS topic for approval requests (and alerts, unless TRIBUTARY_ALERTS_TOPIC_ARN names their own)",
    ),
];

/// The state machines other than the partition pipeline, each started only
/// by the function that triggers it (start-downstream), so optional: a
/// function without one fails clearly when it tries.
pub const FEATURES_STATE_MACHINE_ARN: &str = "TRIBUTARY_FEATURES_STATE_MACHINE_ARN";
pub const LABELING_STATE_MACHINE_ARN: &str = "TRIBUTARY_LABELING_STATE_MACHINE_ARN";

/// The variable that holds the ARN of a workflow's state machine.
pub fn state_machine_variable(workflow: Workflow) -> &'static str {
    match workflow {
        Workflow::PartitionPipeline => "TRIBUTARY_STATE_MACHINE_ARN",
        Workflow::FeaturePipeline => FEATURES_STATE_MACHINE_ARN,
        Workflow::Labeling => LABELING_STATE_MACHINE_ARN,
    }
}

/// The SNS topic for operational alerts (failed runs, reconciliation), when
/// they go to other people than approval requests (Terraform deploys two
/// topics). Unset: alerts go to TRIBUTARY_TOPIC_ARN.
pub const ALERTS_TOPIC_ARN: &str = "TRIBUTARY_ALERTS_TOPIC_ARN";

/// The approval signing secret: the ARN of a Secrets Manager secret (how
/// Terraform deploys it: the value never appears in the function's
/// configuration), or the value itself (emulators and tests). Only the
/// functions that send or answer approvals get it (and the permission to
/// read it); the others have none, and signing or checking a link fails.
pub const APPROVAL_SECRET_ARN: &str = "TRIBUTARY_APPROVAL_SECRET_ARN";
pub const APPROVAL_SECRET: &str = "TRIBUTARY_APPROVAL_SECRET";
/// Where approval links point (the approval-callback function URL). Not
/// required: the approval callback itself cannot know its own URL without a
/// cycle, and needs none; functions that send links fail clearly without it.
pub const APPROVAL_BASE_URL: &str = "TRIBUTARY_APPROVAL_BASE_URL";

/// A variable that is not set, with what it should hold.
#[derive(Debug, thiserror::Error)]
#[error("environment variable(s) not set: {}", .0.iter().map(|(n, w)| format!("{n} ({w})")).collect::<Vec<_>>().join(", "))]
pub struct MissingEnvironment(pub Vec<(&'static str, &'static str)>);

/// Why the adapters could not be wired at cold start.
#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    #[error(transparent)]
    Missing(#[from] MissingEnvironment),
    #[error("reading the approval signing secret {arn}: {source}")]
    Secret {
        arn: String,
        #[source]
        source: tributary_core::ports::PortError,
    },
}

impl AwsAdapters {
    /// All variables are checked before anything connects, so one cold
    /// start names every one that is missing.
    pub async fn from_env(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<AwsAdapters, WiringError> {
        let set = |name: &str| get(name).filter(|v| !v.is_empty());
        let missing: Vec<_> = ENVIRONMENT
            .iter()
            .filter(|(name, _)| set(name).is_none())
            .copied()
            .collect();
        if !missing.is_empty() {
            return Err(MissingEnvironment(missing).into());
        }
        let var = |name: &str| get(name).unwrap_or_default();
        let settings = AwsSettings {
            endpoint_url: get("AWS_ENDPOINT_URL").filter(|v| !v.is_empty()),
            region: get("AWS_REGION").filter(|v| !v.is_empty()),
        };
        let config = settings.sdk_config().await;
        let bucket = var("TRIBUTARY_BUCKET");
        Ok(AwsAdapters {
            objects: S3ObjectStore::new(&config, &bucket, settings.endpoint_url.is_some()),
            state: DynamoStateStore::new(&config, &var("TRIBUTARY_TABLE")),
            catalog: GlueCatalog::new(&config, &var("TRIBUTARY_GLUE_DATABASE"), &bucket),
            workflows: [Workflow::FeaturePipeline, Workflow::Labeling]
                .into_iter()
                .fold(
                    SfnWorkflows::new(&config, &var("TRIBUTARY_STATE_MACHINE_ARN")),
                    |workflows, workflow| match set(state_machine_variable(workflow)) {
                        Some(arn) => workflows.with_machine(workflow, &arn),
                        None => workflows,
                    },
                ),
            notifier: SnsNotifier::new(&config, {
                let mut topics = BTreeMap::from([("*".to_string(), var("TRIBUTARY_TOPIC_ARN"))]);
                if let Some(alerts) = set(ALERTS_TOPIC_ARN) {
                    topics.insert("alerts".to_string(), alerts);
                }
                topics
            }),
            callbacks: SfnCallbacks::new(&config),
            // Only the functions that switch or check the inference
            // consumer are told its function's name (Terraform).
            consumers: match set(&consumer_function_variable(inference::CONSUMER)) {
                Some(function) => {
                    LambdaConsumerSwitch::new(&config).with_function(inference::CONSUMER, &function)
                }
                None => LambdaConsumerSwitch::new(&config),
            },
            approval_secret: match set(APPROVAL_SECRET_ARN) {
                Some(arn) => crate::secrets::secret_string(&config, &arn)
                    .await
                    .map_err(|source| WiringError::Secret { arn, source })?
                    .into_bytes(),
                None => var(APPROVAL_SECRET).into_bytes(),
            },
            approval_base_url: var(APPROVAL_BASE_URL),
            // Lambda's writable scratch space.
            scratch: std::env::temp_dir().join("tributary"),
        })
    }

    pub fn services<'a>(&'a self, config: &'a Config) -> Services<'a> {
        self.granted_services::<{ Ports::ALL.bits() }>(config)
    }

    /// Services with only the ports in `PORTS` (bits of a [`Ports`]): a
    /// Lambda binary links the adapters of its own ports only.
    pub fn granted_services<'a, const PORTS: u8>(&'a self, config: &'a Config) -> Services<'a> {
        tributary_core::services_from_adapters!(self, config, Ports::from_bits(PORTS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_cold_start_names_every_missing_variable() {
        let env = |name: &str| (name == "TRIBUTARY_BUCKET").then(|| "data".to_string());
        let Err(WiringError::Missing(missing)) = AwsAdapters::from_env(env).await else {
            panic!("wired without a table, a database, …");
        };
        let message = missing.to_string();
        assert!(
            message.contains("TRIBUTARY_TABLE (the DynamoDB state table's name)"),
            "{message}"
        );
        assert!(!message.contains(APPROVAL_SECRET), "optional: {message}");
        assert!(!message.contains("TRIBUTARY_BUCKET"), "{message}");
        assert!(!message.contains(APPROVAL_BASE_URL), "optional: {message}");
        assert_eq!(missing.0.len(), ENVIRONMENT.len() - 1);
    }
}
