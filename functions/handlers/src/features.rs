//! The feature pipeline's feature steps (statemachines/feature_pipeline):
//! compute the jobs, merge and score, ask for approval, publish.

use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::Value;
use tributary_core::features::{self, FeatureQuality, Job};
use tributary_core::services::Services;

use crate::error::{bad_event, HandlerError};
use crate::wire::{self, decode, encode};

/// `{features, date, run_id}`: what every step of a feature run receives
/// (the model steps too).
#[derive(Debug, Deserialize)]
pub(crate) struct FeatureRun {
    pub features: String,
    #[serde(deserialize_with = "wire::date")]
    pub date: NaiveDate,
    #[serde(deserialize_with = "wire::run_id")]
    pub run_id: String,
}

pub(crate) const RUN_SHAPE: &str = "{features, date, run_id}";

#[derive(Debug, Deserialize)]
struct ComputeInput {
    #[serde(flatten)]
    run: FeatureRun,
    job: String,
}

pub async fn compute_features(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let ComputeInput { run: i, job } = decode(event, "{features, date, run_id, job}")?;
    let job = Job::parse(&job)
        .ok_or_else(|| bad_event(format!("job {job:?} is not one of user, item, behaviour")))?;
    encode(&features::compute_job(svc, &i.features, job, i.date, &i.run_id).await?)
}

pub async fn merge_features(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: FeatureRun = decode(event, RUN_SHAPE)?;
    encode(&features::merge(svc, &i.features, i.date, &i.run_id).await?)
}

#[derive(Debug, Deserialize)]
struct PublishApprovalInput {
    #[serde(flatten)]
    waiting: wire::Waiting,
    quality: FeatureQuality,
}

pub async fn request_feature_approval(
    svc: &Services<'_>,
    event: Value,
) -> Result<Value, HandlerError> {
    let i: PublishApprovalInput =
        decode(event, "{token, execution, features, date, run_id, quality}")?;
    encode(&features::request_publish_approval(svc, i.waiting.asking(), &i.quality).await?)
}

pub async fn publish_features(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: FeatureRun = decode(event, RUN_SHAPE)?;
    Ok(features::publish(svc, &i.features, i.date, &i.run_id).await?)
}
