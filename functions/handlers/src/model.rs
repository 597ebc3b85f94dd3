//! The feature pipeline's model steps (statemachines/feature_pipeline):
//! training set, training, deploy approval, activation.

use serde::Deserialize;
use serde_json::Value;
use tributary_core::model::{self, Evaluation};
use tributary_core::services::Services;

use crate::error::HandlerError;
use crate::features::{FeatureRun, RUN_SHAPE};
use crate::wire::{decode, encode, Waiting};

pub async fn build_training_set(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: FeatureRun = decode(event, RUN_SHAPE)?;
    let lookback = svc
        .config
        .features
        .get(&i.features)
        .and_then(|f| f.windows_days.iter().max().copied())
        .unwrap_or(30);
    encode(&model::build_training_set(svc, &i.features, i.date, &i.run_id, lookback).await?)
}

pub async fn train_model(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: FeatureRun = decode(event, RUN_SHAPE)?;
    encode(&model::train(svc, &i.features, i.date, &i.run_id).await?)
}

#[derive(Debug, Deserialize)]
struct DeployApprovalInput {
    #[serde(flatten)]
    run: FeatureRun,
    #[serde(flatten)]
    waiting: Waiting,
    evaluation: Evaluation,
}

pub async fn request_deploy_approval(
    svc: &Services<'_>,
    event: Value,
) -> Result<Value, HandlerError> {
    let i: DeployApprovalInput = decode(
        event,
        "{token, execution, features, date, run_id, evaluation}",
    )?;
    encode(
        &model::request_deploy_approval(
            svc,
            i.waiting.asking(),
            &i.run.features,
            i.run.date,
            &i.evaluation,
        )
        .await?,
    )
}

#[derive(Debug, Deserialize)]
struct ActivateInput {
    features: String,
    version: String,
    /// The deploy approval's answer; its `decider` is recorded.
    approval: Value,
}

pub async fn activate_model(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: ActivateInput = decode(event, "{features, version, approval}")?;
    let by = i.approval["decider"].as_str().unwrap_or("the pipeline");
    Ok(model::activate(svc, &i.features, &i.version, by).await?)
}
