//! The labeling state machine's functions (statemachines/labeling).

use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::Value;
use tributary_core::labeling::{self, ReviewAnswer};
use tributary_core::services::Services;

use crate::error::HandlerError;
use crate::wire::{self, decode, encode};

/// `{labeling, date, run_id}`: what every step of a labeling run receives.
#[derive(Debug, Deserialize)]
struct LabelRun {
    labeling: String,
    #[serde(deserialize_with = "wire::date")]
    date: NaiveDate,
    #[serde(deserialize_with = "wire::run_id")]
    run_id: String,
}

const RUN_SHAPE: &str = "{labeling, date, run_id}";

pub async fn auto_label(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: LabelRun = decode(event, RUN_SHAPE)?;
    encode(&labeling::auto_label(svc, &i.labeling, i.date, &i.run_id).await?)
}

#[derive(Debug, Deserialize)]
struct ReviewRequestInput {
    #[serde(flatten)]
    run: LabelRun,
    #[serde(flatten)]
    waiting: wire::Waiting,
    round: u32,
}

pub async fn request_label_review(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let ReviewRequestInput {
        run: i,
        waiting,
        round,
    } = decode(event, "{token, execution, labeling, date, run_id, round}")?;
    Ok(labeling::request_review(
        svc,
        &waiting.token,
        &waiting.execution,
        &i.labeling,
        i.date,
        &i.run_id,
        round,
    )
    .await?)
}

#[derive(Debug, Deserialize)]
struct ApplyReviewInput {
    #[serde(flatten)]
    run: LabelRun,
    round: u32,
    answer: ReviewAnswer,
}

pub async fn apply_label_review(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let ApplyReviewInput {
        run: i,
        round,
        answer,
    } = decode(event, "{labeling, date, run_id, round, answer}")?;
    encode(&labeling::apply_review(svc, &i.labeling, i.date, &i.run_id, round, &answer).await?)
}

pub async fn merge_labels(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let i: LabelRun = decode(event, RUN_SHAPE)?;
    Ok(labeling::merge(svc, &i.labeling, i.date, &i.run_id).await?)
}
