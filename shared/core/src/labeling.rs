//! The labeling workflow (scenario 4): rules propose a label with a
//! confidence for each row of a published partition; labels below the
//! accept threshold go to a person, who confirms them, corrects some and
//! asks for another round, or rejects the batch; an optional external
//! source (other annotators) is merged in; the labeled set is published.
//!
//! Everything lives under `labels/<labeling>/date=D/`: the run's stages as
//! JSON lines under `run=R/`, external labels under `external/`, and the
//! merged result in `labeled.jsonl` (one atomic put).

use crate::approvals::{self, ApprovalRequest};
use crate::config::{LabelRule, LabelingConfig};
use crate::error::{UseCaseError, UseCaseResult};
use crate::layout::{partition_prefix, Layer};
use crate::services::Services;
use chrono::{Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelItem {
    pub id: String,
    pub label: String,
    pub confidence: f64,
    /// rules, human, human-confirmed, external, rules-unreviewed
    pub source: String,
    /// The row's values of the columns the rules read: what a reviewer
    /// needs to judge the label.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, Option<String>>,
}

/// How many pending labels one review round shows: a round is one page,
/// and an approval confirms exactly the page it showed.
pub const REVIEW_PAGE: usize = 50;

fn labeling<'a>(svc: &'a Services<'_>, name: &str) -> UseCaseResult<&'a LabelingConfig> {
    svc.config.labeling.get(name).ok_or_else(|| {
        UseCaseError::BadRequest(format!(
            "labeling {name:?} is not defined in pipeline.toml (known: {})",
            svc.config
                .labeling
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

fn run_key(name: &str, date: NaiveDate, run_id: &str, stage: &str) -> String {
    format!(
        "{}run={run_id}/{stage}.jsonl",
        partition_prefix(Layer::Labels, name, date)
    )
}

async fn write_items(svc: &Services<'_>, key: &str, items: &[LabelItem]) -> UseCaseResult<()> {
    crate::jsonl::put(svc.objects, key, items).await
}

/// A stage's labels; none yet when the stage has not run.
async fn read_items(svc: &Services<'_>, key: &str) -> UseCaseResult<Vec<LabelItem>> {
    Ok(crate::jsonl::get(svc.objects, key)
        .await?
        .unwrap_or_default())
}

fn rule_matches(rule: &LabelRule, value: Option<&str>) -> bool {
    let Some(v) = value else { return false };
    let number = || v.trim().parse::<f64>().ok();
    rule.min.is_none_or(|m| number().is_some_and(|n| n >= m))
        && rule.max.is_none_or(|m| number().is_some_and(|n| n <= m))
        && rule
            .in_set
            .as_ref()
            .is_none_or(|set| set.iter().any(|s| s == v))
}

/// Label one row: the first rule whose conditions hold, else the default.
pub fn propose(config: &LabelingConfig, row: &crate::published::TextRow) -> (String, f64) {
    for rule in &config.rules {
        if rule_matches(
            rule,
            row.get(rule.column.as_str()).and_then(|v| v.as_deref()),
        ) {
            return (rule.label.clone(), rule.confidence);
        }
    }
    (config.default_label.clone(), config.default_confidence)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoLabels {
    pub labeling: String,
    pub date: NaiveDate,
    pub run_id: String,
    pub rows: usize,
    pub accepted: usize,
    pub low_confidence: usize,
    /// Whether other annotators' labels wait under external/ (an optional
    /// branch of the workflow).
    pub external: bool,
    pub review_seconds: u64,
    pub max_rounds: u32,
}

/// Propose labels for every row of the dataset's published partition.
pub async fn auto_label(
    svc: &Services<'_>,
    name: &str,
    date: NaiveDate,
    run_id: &str,
) -> UseCaseResult<AutoLabels> {
    let config = labeling(svc, name)?;
    let mut columns: Vec<&str> = config.rules.iter().map(|r| r.column.as_str()).collect();
    columns.push(&config.id_column);
    columns.sort();
    columns.dedup();
    let rows = crate::published::rows(svc, &config.dataset, date, &columns)
        .await?
        .ok_or_else(|| UseCaseError::WrongState {
            dataset: config.dataset.clone(),
            date,
            state: "unpublished".into(),
            what: format!(
                "labeling {name} reads the published partition; publish {} {date} first",
                config.dataset
            ),
        })?;
    let mut items = Vec::new();
    for row in &rows {
        let Some(Some(id)) = row.get(config.id_column.as_str()).cloned() else {
            continue;
        };
        let (label, confidence) = propose(config, row);
        let fields = config
            .rules
            .iter()
            .map(|r| {
                (
                    r.column.clone(),
                    row.get(r.column.as_str()).cloned().flatten(),
                )
            })
            .collect();
        items.push(LabelItem {
            id,
            label,
            confidence,
            source: "rules".into(),
            fields,
        });
    }
    write_items(svc, &run_key(name, date, run_id, "auto"), &items).await?;
    let low = items
        .iter()
        .filter(|i| i.confidence < config.accept_confidence)
        .count();
    let external = !svc
        .objects
        .list(&format!(
            "{}external/",
            partition_prefix(Layer::Labels, name, date)
        ))
        .await?
        .is_empty();
    Ok(AutoLabels {
        labeling: name.to_string(),
        date,
        run_id: run_id.to_string(),
        rows: items.len(),
        accepted: items.len() - low,
        low_confidence: low,
        external,
        review_seconds: config.review_hours * 3600,
        max_rounds: config.max_rounds,
    })
}

/// The page a review round shows: the first [`REVIEW_PAGE`] pending labels
/// (in id order, so the page asked about and the page answered are the
/// same: only an applied review changes what is pending).
pub async fn review_page(
    svc: &Services<'_>,
    name: &str,
    date: NaiveDate,
    run_id: &str,
) -> UseCaseResult<(Vec<LabelItem>, usize)> {
    let mut pending = pending_review(svc, name, date, run_id).await?;
    pending.sort_by(|a, b| a.id.cmp(&b.id));
    let total = pending.len();
    pending.truncate(REVIEW_PAGE);
    Ok((pending, total))
}

/// Low-confidence labels nobody has decided on yet in this run.
pub async fn pending_review(
    svc: &Services<'_>,
    name: &str,
    date: NaiveDate,
    run_id: &str,
) -> UseCaseResult<Vec<LabelItem>> {
    let config = labeling(svc, name)?;
    let decided: Vec<String> = read_items(svc, &run_key(name, date, run_id, "human"))
        .await?
        .into_iter()
        .map(|i| i.id)
        .collect();
    Ok(read_items(svc, &run_key(name, date, run_id, "auto"))
        .await?
        .into_iter()
        .filter(|i| i.confidence < config.accept_confidence && !decided.contains(&i.id))
        .collect())
}

/// Ask a person to review the pending labels (an approval whose answer may
/// carry corrections).
#[allow(clippy::too_many_arguments)]
pub async fn request_review(
    svc: &Services<'_>,
    token: &str,
    execution: &str,
    name: &str,
    date: NaiveDate,
    run_id: &str,
    round: u32,
) -> UseCaseResult<Value> {
    let config = labeling(svc, name)?;
    let (shown, pending) = review_page(svc, name, date, run_id).await?;
    let purpose = format!(
        "review {} of {pending} low-confidence {name} label(s) for {date} (round {round} of {})",
        shown.len(),
        config.max_rounds
    );
    let (approval, links) = approvals::request(
        svc.state,
        &svc.links,
        ApprovalRequest {
            token: token.to_string(),
            execution: execution.to_string(),
            purpose: purpose.clone(),
            summary: json!({"kind": "label_review", "labeling": name, "date": date, "run_id": run_id,
                            "round": round, "pending": pending, "items": shown}),
            ttl: Duration::hours(config.review_hours as i64),
        },
        Utc::now(),
    )
    .await?;
    let lines: Vec<String> = shown
        .iter()
        .map(|i| {
            let fields: Vec<String> = i
                .fields
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("null")))
                .collect();
            format!(
                "  {}: {} ({:.2}) {}",
                i.id,
                i.label,
                i.confidence,
                fields.join(" ")
            )
        })
        .collect();
    svc.notifier
        .notify(
            "approvals",
            &format!("Review {name} labels for {date}"),
            &format!(
                "{purpose}:\n{}\nConfirm (optionally with corrections): {}\nReject the batch: {}\nOr: tributary approvals approve {} --corrections FILE [--again]",
                lines.join("\n"),
                links.approve,
                links.reject,
                approval.id
            ),
        )
        .await?;
    Ok(json!({"approval_id": approval.id, "pending": pending, "shown": shown.len()}))
}

/// What a reviewer answered: corrections `{id: label}`, and whether they
/// want another round for the rest (else the rest is confirmed as proposed).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReviewAnswer {
    #[serde(default)]
    pub corrections: BTreeMap<String, String>,
    #[serde(default)]
    pub again: bool,
    #[serde(default)]
    pub decider: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewApplied {
    pub corrected: usize,
    pub confirmed: usize,
    pub remaining: usize,
    pub next_round: u32,
}

pub async fn apply_review(
    svc: &Services<'_>,
    name: &str,
    date: NaiveDate,
    run_id: &str,
    round: u32,
    answer: &ReviewAnswer,
) -> UseCaseResult<ReviewApplied> {
    // The reviewer saw one page: only its items are decided; the rest stay
    // pending for the next round.
    let (shown, pending) = review_page(svc, name, date, run_id).await?;
    let key = run_key(name, date, run_id, "human");
    let mut human = read_items(svc, &key).await?;
    let mut corrected = 0;
    for (id, label) in &answer.corrections {
        let Some(item) = shown.iter().find(|p| &p.id == id) else {
            return Err(UseCaseError::BadRequest(format!(
                "correction for {id:?}: no label on this review's page has that id in {name} {date}"
            )));
        };
        human.push(LabelItem {
            label: label.clone(),
            confidence: 1.0,
            source: "human".into(),
            ..item.clone()
        });
        corrected += 1;
    }
    let mut confirmed = 0;
    if !answer.again {
        for p in shown
            .iter()
            .filter(|p| !answer.corrections.contains_key(&p.id))
        {
            human.push(LabelItem {
                source: "human-confirmed".into(),
                confidence: 1.0,
                ..p.clone()
            });
            confirmed += 1;
        }
    }
    write_items(svc, &key, &human).await?;
    Ok(ReviewApplied {
        corrected,
        confirmed,
        remaining: pending - corrected - confirmed,
        // A round is a look again at what is left; the next page of the
        // same round is not a new round.
        next_round: if answer.again { round + 1 } else { round },
    })
}

/// A reviewer's corrections as `id,label` lines (a header line `id,label`
/// and blank lines are skipped).
pub fn parse_corrections(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.eq_ignore_ascii_case("id,label") {
            continue;
        }
        let (id, label) = line
            .split_once(',')
            .filter(|(i, l)| !i.trim().is_empty() && !l.trim().is_empty())
            .ok_or_else(|| format!("correction line {}: expected id,label, got {line:?}", n + 1))?;
        out.insert(id.trim().to_string(), label.trim().to_string());
    }
    Ok(out)
}

/// Refuse, before anything is decided, corrections for ids that are not
/// pending in the review an approval stands for.
pub async fn check_corrections(
    svc: &Services<'_>,
    review_summary: &Value,
    corrections: &BTreeMap<String, String>,
) -> UseCaseResult<()> {
    let (Some(name), Some(date), Some(run_id)) = (
        review_summary["labeling"].as_str(),
        review_summary["date"]
            .as_str()
            .and_then(crate::layout::parse_date),
        review_summary["run_id"].as_str(),
    ) else {
        return Err(UseCaseError::BadRequest(
            "this approval is not a label review".into(),
        ));
    };
    let (shown, _) = review_page(svc, name, date, run_id).await?;
    let unknown: Vec<&String> = corrections
        .keys()
        .filter(|id| !shown.iter().any(|p| &p.id == *id))
        .collect();
    if !unknown.is_empty() {
        return Err(UseCaseError::BadRequest(format!(
            "corrections for {unknown:?}: no {name} label for {date} on this review's page has that id; nothing was decided"
        )));
    }
    Ok(())
}

/// External annotators' labels: CSV `id,label` files under external/.
async fn external_items(
    svc: &Services<'_>,
    name: &str,
    date: NaiveDate,
) -> UseCaseResult<Vec<LabelItem>> {
    let mut items = Vec::new();
    for o in svc
        .objects
        .list(&format!(
            "{}external/",
            partition_prefix(Layer::Labels, name, date)
        ))
        .await?
    {
        let text = String::from_utf8_lossy(&svc.objects.get_bytes(&o.key).await?).into_owned();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || (n == 0 && line.eq_ignore_ascii_case("id,label")) {
                continue;
            }
            let (id, label) = line.split_once(',').ok_or_else(|| {
                UseCaseError::BadRequest(format!("{} line {}: expected id,label", o.key, n + 1))
            })?;
            items.push(LabelItem {
                id: id.trim().into(),
                label: label.trim().into(),
                confidence: 1.0,
                source: "external".into(),
                fields: BTreeMap::new(),
            });
        }
    }
    Ok(items)
}

/// Merge the sources — a person's decision over other annotators' labels
/// over the rules' — and publish the labeled set in one put.
pub async fn merge(
    svc: &Services<'_>,
    name: &str,
    date: NaiveDate,
    run_id: &str,
) -> UseCaseResult<Value> {
    let config = labeling(svc, name)?;
    let mut merged: BTreeMap<String, LabelItem> = BTreeMap::new();
    for mut item in read_items(svc, &run_key(name, date, run_id, "auto")).await? {
        if item.confidence < config.accept_confidence {
            item.source = "rules-unreviewed".into();
        }
        merged.insert(item.id.clone(), item);
    }
    let proposed: Vec<String> = merged.keys().cloned().collect();
    for item in external_items(svc, name, date)
        .await?
        .into_iter()
        .chain(read_items(svc, &run_key(name, date, run_id, "human")).await?)
    {
        merged.insert(item.id.clone(), item);
    }
    let items: Vec<LabelItem> = merged.into_values().collect();
    let key = format!(
        "{}labeled.jsonl",
        partition_prefix(Layer::Labels, name, date)
    );
    write_items(svc, &key, &items).await?;
    let mut by_source: BTreeMap<&str, usize> = BTreeMap::new();
    for i in &items {
        *by_source.entry(i.source.as_str()).or_default() += 1;
    }
    Ok(
        json!({"key": key, "rows": items.len(), "by_source": by_source,
              "external_only": items.iter().filter(|i| !proposed.contains(&i.id)).count()}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LabelingConfig {
        crate::config::Config::parse(
            r#"
[datasets.orders]
columns = [{ name = "order_id", type = "string" }, { name = "amount", type = "float" }, { name = "country", type = "string" }]
[labeling.risk]
dataset = "orders"
id_column = "order_id"
default_label = "normal"
[[labeling.risk.rules]]
label = "high_value"
column = "amount"
min = 500.0
confidence = 0.95
[[labeling.risk.rules]]
label = "check_country"
column = "country"
in = ["XX", "YY"]
confidence = 0.6
"#,
            "test.toml",
        )
        .unwrap()
        .labeling["risk"]
            .clone()
    }

    #[test]
    fn first_matching_rule_labels_the_row() {
        let c = config();
        let row = |amount: &str, country: &str| {
            BTreeMap::from([
                ("amount".to_string(), Some(amount.to_string())),
                ("country".to_string(), Some(country.to_string())),
            ])
        };
        assert_eq!(propose(&c, &row("900", "XX")), ("high_value".into(), 0.95));
        assert_eq!(propose(&c, &row("10", "XX")), ("check_country".into(), 0.6));
        assert_eq!(propose(&c, &row("10", "DE")), ("normal".into(), 0.5));
        assert_eq!(propose(&c, &row("n/a", "DE")), ("normal".into(), 0.5));
    }

    #[test]
    fn bad_labeling_config_names_the_field() {
        let err = crate::config::Config::parse(
            "[datasets.o]\ncolumns = [{ name = \"id\", type = \"string\" }]\n[labeling.x]\ndataset = \"o\"\nid_column = \"id\"\ndefault_label = \"a\"\n[[labeling.x.rules]]\nlabel = \"b\"\ncolumn = \"nope\"\nconfidence = 0.9\nmin = 1.0\n",
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("labeling.x.rules[0]") && err.contains("\"nope\" is not a column"),
            "{err}"
        );
    }
}
