//! The operator's console of `tributary serve`: server-rendered pages over
//! the same services the CLI reads (no JavaScript, inline SVG charts,
//! everything shown escaped).
//!
//! - `/` the partition grid: datasets × dates, coloured by state, with the
//!   pipelines' watermarks and freshness (`?days=N`, `?end=YYYY-MM-DD`)
//! - `/partitions/<dataset>/<date>` one partition: files, runs, counts, the
//!   quality report, rejected rows by reason, the published manifest
//! - `/executions` (`?page=N`) and `/executions/<name>` the run report
//! - `/approvals` pending requests with their signed links; decided ones
//! - `/streams` per stream: counts per hour, reconciliations, dead letters
//!   (`?page=N`)

use crate::local::LocalRuntime;
use anyhow::{Context, Result};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use tributary_core::approvals::{self, Approval, ApprovalStatus, Decision};
use tributary_core::layout::{self, parse_date, Layer};
use tributary_core::orchestration;
use tributary_core::quality::QualityReport;
use tributary_core::services::Services;
use tributary_core::state::{self, PartitionState, PartitionStatus};
use tributary_core::stream::{reconcile, speed, stats};
use tributary_handlers::http::{html_escape, parse_pairs, url_decode};

use super::run_report;

const DEFAULT_DAYS: i64 = 14;
const MAX_DAYS: i64 = 92;
const EXECUTIONS_PER_PAGE: usize = 50;
const DEAD_LETTERS_PER_PAGE: usize = 25;
const REJECT_EXAMPLES_PER_REASON: usize = 5;
const STREAM_HOURS: i64 = 24;

/// The console's answer to a GET of `path`, or None when the path is not
/// one of its pages.
pub async fn page(rt: &LocalRuntime, path: &str, query: &str) -> Option<Value> {
    let query = parse_pairs(query);
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(url_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let rendered = match segments.as_slice() {
        [] => grid(rt, &query).await,
        ["partitions", dataset, date] => partition(rt, dataset, date).await,
        ["executions"] => executions(rt, &query),
        ["executions", name] => execution(rt, name),
        ["approvals"] => approvals_page(rt).await,
        ["streams"] => streams(rt, &query).await,
        _ => return None,
    };
    Some(match rendered {
        Ok(Page { title, body }) => html(200, &layout(&title, &body)),
        Err(e) => match e.downcast_ref::<Refused>() {
            Some(refused) => html(
                refused.status,
                &layout(
                    refused.title(),
                    &format!("<p class='err'>{}</p>", html_escape(&refused.message)),
                ),
            ),
            None => html(
                500,
                &layout(
                    "Error",
                    &format!("<p class='err'>{}</p>", html_escape(&format!("{e:#}"))),
                ),
            ),
        },
    })
}

struct Page {
    title: String,
    body: String,
}

/// A request the console answers with a 4xx: something that does not
/// exist (404) or a parameter it cannot read (400).
#[derive(Debug)]
struct Refused {
    status: u16,
    message: String,
}

impl Refused {
    fn not_found(message: String) -> Refused {
        Refused {
            status: 404,
            message,
        }
    }

    fn bad_parameter(message: String) -> Refused {
        Refused {
            status: 400,
            message,
        }
    }

    fn title(&self) -> &'static str {
        if self.status == 404 {
            "Not found"
        } else {
            "Bad request"
        }
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refused {}

fn html(status: u16, body: &str) -> Value {
    json!({"statusCode": status, "headers": {"content-type": "text/html; charset=utf-8"}, "body": body})
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#1f2328}\
    nav{background:#24292f;padding:.6rem 1.5rem}nav a{color:#fff;margin-right:1.2rem;text-decoration:none}\
    main{padding:1rem 1.5rem}h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem}\
    td.num,th.num{text-align:right}small,.muted{color:#57606a}\
    .grid td.cell{width:5.2rem;text-align:center;font-size:.75rem;padding:0}\
    .grid td.cell a{display:block;padding:.35rem 0;color:inherit;text-decoration:none}\
    .s-none{background:#f6f8fa;color:#8c959f}.s-waiting{background:#fff8c5}.s-running{background:#ddf4ff}\
    .s-held{background:#ffd8b5}.s-published{background:#aceebb}.s-failed{background:#ffcecb}\
    .s-quarantined{background:#d8b9ff}.s-expired{background:#eaeef2}\
    .badge{padding:.1rem .5rem;border-radius:.6rem;font-size:.85rem}\
    .legend span{display:inline-block;padding:.1rem .5rem;margin-right:.3rem;font-size:.8rem}\
    .pager a{margin-right:1rem}pre{white-space:pre-wrap;margin:0}\
    a.approve,a.reject{border:1px solid;border-radius:.3rem;padding:.1rem .5rem;text-decoration:none}\
    a.approve{color:#1a7f37}a.reject{color:#b42318}";

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset='utf-8'><title>{t} · tributary</title>\
         <style>{STYLE}{report}</style></head><body><nav><a href='/'>Partitions</a>\
         <a href='/executions'>Executions</a><a href='/approvals'>Approvals</a>\
         <a href='/streams'>Streams</a></nav><main><h1>{t}</h1>{body}</main></body></html>",
        t = html_escape(title),
        report = run_report::STYLE,
    )
}

/// The grid's name for a partition state: what an operator acts on.
fn cell_state(state: Option<PartitionState>) -> &'static str {
    match state {
        None => "none",
        Some(PartitionState::Arrived) => "waiting",
        Some(PartitionState::Running | PartitionState::Cleaned | PartitionState::Validated) => {
            "running"
        }
        Some(PartitionState::Held) => "held",
        Some(PartitionState::Published) => "published",
        Some(PartitionState::Failed) => "failed",
        Some(PartitionState::Quarantined) => "quarantined",
        Some(PartitionState::Expired) => "expired",
    }
}

fn cell_label(state: &str) -> &'static str {
    match state {
        "none" => "no data",
        "waiting" => "waiting",
        "running" => "running",
        "held" => "held",
        "published" => "published",
        "failed" => "failed",
        "quarantined" => "quarantined",
        _ => "expired",
    }
}

fn badge(state: &str) -> String {
    format!("<span class='badge s-{state}'>{}</span>", cell_label(state))
}

fn query_date(query: &BTreeMap<String, String>, name: &str) -> Result<Option<NaiveDate>> {
    query
        .get(name)
        .filter(|v| !v.is_empty())
        .map(|v| {
            parse_date(v)
                .ok_or_else(|| Refused::bad_parameter(format!("?{name}={v} is not YYYY-MM-DD")))
        })
        .transpose()
        .map_err(Into::into)
}

fn query_number(query: &BTreeMap<String, String>, name: &str, default: i64) -> i64 {
    query
        .get(name)
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(default)
}

async fn grid(rt: &LocalRuntime, query: &BTreeMap<String, String>) -> Result<Page> {
    let store = &rt.adapters.state;
    let now = Utc::now();
    let mut partitions: BTreeMap<String, BTreeMap<NaiveDate, PartitionStatus>> = BTreeMap::new();
    for dataset in rt.config.datasets.keys() {
        let by_date = state::all_partitions(store, dataset)
            .await?
            .into_iter()
            .map(|p| (p.date, p))
            .collect();
        partitions.insert(dataset.clone(), by_date);
    }
    let latest = partitions.values().flat_map(|d| d.keys()).max().copied();
    let days = query_number(query, "days", DEFAULT_DAYS).clamp(1, MAX_DAYS);
    let end = query_date(query, "end")?
        .or(latest)
        .unwrap_or_else(|| now.date_naive() - Duration::days(1));
    let dates: Vec<NaiveDate> = (0..days)
        .rev()
        .map(|back| end - Duration::days(back))
        .collect();

    let mut body = String::from("<p class='legend'>");
    for s in [
        "none",
        "waiting",
        "running",
        "held",
        "published",
        "failed",
        "quarantined",
    ] {
        let _ = write!(body, "<span class='s-{s}'>{}</span>", cell_label(s));
    }
    body.push_str("</p><table class='grid'><tr><th>dataset</th>");
    for d in &dates {
        let _ = write!(body, "<th><small>{}</small></th>", d.format("%Y-%m-%d"));
    }
    body.push_str("</tr>");
    for (dataset, by_date) in &partitions {
        let _ = write!(body, "<tr><th>{}</th>", html_escape(dataset));
        for d in &dates {
            let status = by_date.get(d);
            let state = cell_state(status.map(|p| p.state));
            let title = match status {
                Some(p) => {
                    let c = p.clean.clone().unwrap_or_default();
                    format!(
                        "{dataset} {d}: {} · {} in, {} kept, {} rejected, {} duplicates",
                        p.state.name(),
                        c.input,
                        c.kept,
                        c.rejected_total,
                        c.duplicates
                    )
                }
                None => format!("{dataset} {d}: no data has arrived"),
            };
            let _ = write!(
                body,
                "<td class='cell s-{state}' data-dataset='{ds}' data-date='{d}' data-state='{state}' title='{t}'>\
                 <a href='/partitions/{ds}/{d}'>{label}</a></td>",
                ds = html_escape(dataset),
                t = html_escape(&title),
                label = cell_label(state),
            );
        }
        body.push_str("</tr>");
    }
    body.push_str("</table>");
    let _ = write!(
        body,
        "<p class='pager'><a href='/?days={days}&amp;end={earlier}'>← earlier</a>\
         <a href='/?days={days}&amp;end={later}'>later →</a>\
         <a href='/?days={days}'>latest</a> <small>{days} days ending {end}</small></p>",
        earlier = end - Duration::days(days),
        later = end + Duration::days(days),
    );

    body.push_str(
        "<h2>Pipelines: watermarks and freshness</h2><p class='muted'>Freshness: how many days \
         the watermark lags behind the date the pipeline is due to have completed (yesterday in \
         its time zone).</p><table><tr><th>pipeline</th><th>datasets</th><th>watermark</th>\
         <th>due</th><th class='num'>days behind</th><th>last moved</th></tr>",
    );
    for (name, pipeline) in &rt.config.pipelines {
        let watermark = state::watermark(store, name).await?;
        let first_data = pipeline
            .datasets
            .iter()
            .filter_map(|d| partitions.get(d)?.keys().next().copied())
            .min();
        let due = orchestration::due_date(pipeline, now);
        let lag =
            orchestration::freshness_lag_days(due, watermark.as_ref().map(|w| w.date), first_data);
        let _ = write!(
            body,
            "<tr data-pipeline='{n}'><td>{n}</td><td>{datasets}</td><td>{wm}</td><td>{due}</td>\
             <td class='num'>{lag}</td><td><small>{moved}</small></td></tr>",
            n = html_escape(name),
            datasets = html_escape(&pipeline.datasets.join(", ")),
            wm = watermark
                .as_ref()
                .map_or("(none yet)".to_string(), |w| w.date.to_string()),
            moved = watermark.as_ref().map_or(String::new(), |w| {
                match w.manual_changes.last() {
                    Some(c) => html_escape(&format!(
                        "{} by {} ({})",
                        c.at.format("%Y-%m-%d %H:%M"),
                        c.by,
                        c.reason
                    )),
                    None => w.updated_at.format("%Y-%m-%d %H:%M UTC").to_string(),
                }
            }),
        );
    }
    body.push_str("</table>");
    Ok(Page {
        title: "Partitions".into(),
        body,
    })
}

/// An approval link relative to this server, whatever base URL the message
/// used.
fn relative_link(svc: &Services<'_>, approval: &Approval, decision: Decision) -> String {
    let full = svc.links.link(&approval.id, decision, approval.expires_at);
    full.find("/approvals/")
        .map(|i| full[i..].to_string())
        .unwrap_or(full)
}

fn approval_links(svc: &Services<'_>, approval: &Approval) -> String {
    format!(
        "<a class='approve' href='{}'>approve…</a> · <a class='reject' href='{}'>reject…</a>",
        html_escape(&relative_link(svc, approval, Decision::Approve)),
        html_escape(&relative_link(svc, approval, Decision::Reject)),
    )
}

/// Whether an approval request holds this dataset's date.
fn holds(approval: &Approval, dataset: &str, date: NaiveDate) -> bool {
    approval.summary["date"].as_str() == Some(&date.to_string())
        && approval.summary["held"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|h| h["dataset"].as_str() == Some(dataset))
}

/// Executions in the workspace, newest first.
fn execution_list(rt: &LocalRuntime) -> Result<Vec<Value>> {
    let mut list = rt.executions.list()?;
    list.sort_by(|a, b| {
        b["startDate"]
            .as_str()
            .unwrap_or_default()
            .cmp(a["startDate"].as_str().unwrap_or_default())
    });
    Ok(list)
}

/// The pipeline and date an execution's name carries
/// (`<pipeline>-<YYYY-MM-DD>-<run>`), where it does.
fn name_parts(name: &str) -> (Option<&str>, Option<NaiveDate>) {
    for (i, _) in name.match_indices('-') {
        if let Some(date) = name.get(i + 1..i + 11).and_then(parse_date) {
            return (Some(&name[..i]), Some(date));
        }
    }
    (None, None)
}

fn duration(execution: &Value) -> String {
    let at = |field: &str| {
        execution[field]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    match (at("startDate"), at("stopDate")) {
        (Some(start), Some(stop)) => {
            format!("{:.3} s", (stop - start).num_milliseconds() as f64 / 1000.0)
        }
        (Some(start), None) => format!("running for {} s", (Utc::now() - start).num_seconds()),
        _ => "—".into(),
    }
}

fn execution_rows(list: &[Value]) -> String {
    let mut rows = String::new();
    for e in list {
        let name = e["name"].as_str().unwrap_or_default();
        let (pipeline, date) = name_parts(name);
        let status = e["status"].as_str().unwrap_or("?");
        let _ = write!(
            rows,
            "<tr data-execution='{n}'><td><a href='/executions/{n}'>{n}</a></td><td>{machine}</td>\
             <td>{pipeline}</td><td>{date}</td><td class='x-{status}'>{status}</td><td><small>{start}</small></td>\
             <td class='num'>{took}</td></tr>",
            n = html_escape(name),
            machine = html_escape(e["stateMachine"].as_str().unwrap_or("?")),
            pipeline = html_escape(pipeline.unwrap_or("—")),
            date = date.map_or("—".into(), |d| d.to_string()),
            status = html_escape(status),
            start = html_escape(e["startDate"].as_str().unwrap_or("?")),
            took = html_escape(&duration(e)),
        );
    }
    rows
}

const EXECUTION_HEADER: &str = "<tr><th>execution</th><th>state machine</th><th>pipeline</th>\
    <th>date</th><th>status</th><th>started</th><th class='num'>duration</th></tr>";

async fn partition(rt: &LocalRuntime, dataset: &str, date: &str) -> Result<Page> {
    let svc = rt.services();
    if rt.config.dataset(dataset).is_none() {
        return Err(Refused::not_found(format!(
            "no dataset {dataset:?} (known: {})",
            rt.config.dataset_names()
        ))
        .into());
    }
    let day = parse_date(date)
        .ok_or_else(|| Refused::bad_parameter(format!("{date:?} is not YYYY-MM-DD")))?;
    let title = format!("{dataset} {day}");
    let Some(p) = state::partition_status(&rt.adapters.state, dataset, day).await? else {
        return Ok(Page {
            title,
            body: format!("<p>{} No file of this date has arrived.</p>", badge("none")),
        });
    };
    let state = cell_state(Some(p.state));
    let mut body = format!(
        "<p data-state='{state}'>{} <small>updated {}</small></p>",
        badge(state),
        p.updated_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    if let Some(e) = &p.error {
        let _ = write!(body, "<p class='err'>{}</p>", html_escape(e));
    }
    if p.state == PartitionState::Held {
        for a in approvals::pending(&rt.adapters.state, Utc::now()).await? {
            if holds(&a, dataset, day) {
                let _ = write!(
                    body,
                    "<p class='held'>Held for a decision: {} — {} <small>(expires {})</small></p>",
                    html_escape(&a.purpose),
                    approval_links(&svc, &a),
                    a.expires_at.format("%Y-%m-%d %H:%M UTC")
                );
            }
        }
    }

    let c = p.clean.clone().unwrap_or_default();
    let _ = write!(
        body,
        "<h2>Counts</h2><table class='counts'><tr><th>run</th><th class='num'>rows in</th>\
         <th class='num'>kept</th><th class='num'>rejected</th><th class='num'>duplicates</th>\
         <th class='num'>quality</th><th>published run</th></tr><tr><td>{run}</td>\
         <td class='num' data-count='input'>{}</td><td class='num' data-count='kept'>{}</td>\
         <td class='num' data-count='rejected'>{}</td><td class='num' data-count='duplicates'>{}</td>\
         <td class='num'>{quality}</td><td>{published}</td></tr></table>",
        c.input,
        c.kept,
        c.rejected_total,
        c.duplicates,
        run = html_escape(p.run_id.as_deref().unwrap_or("—")),
        quality = p.quality_score.map_or("—".into(), |s| format!("{s:.3}")),
        published = html_escape(p.published_run.as_deref().unwrap_or("—")),
    );
    if !c.rejected.is_empty() {
        body.push_str("<p class='muted'>rejected by reason: ");
        let reasons: Vec<String> = c
            .rejected
            .iter()
            .map(|(reason, n)| format!("{} {n}", html_escape(reason)))
            .collect();
        body.push_str(&reasons.join(" · "));
        body.push_str("</p>");
    }

    body.push_str(
        "<h2>Files</h2><table><tr><th>key</th><th>ETag</th><th class='num'>bytes</th><th>arrived</th></tr>",
    );
    for f in p.files.iter().chain(&p.markers) {
        let _ = write!(
            body,
            "<tr><td>{}</td><td><small>{}</small></td><td class='num'>{}</td><td><small>{}</small></td></tr>",
            html_escape(&f.key),
            html_escape(&f.etag),
            f.size,
            f.arrived_at
                .map_or("—".into(), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        );
    }
    body.push_str("</table>");

    let runs: Vec<Value> = {
        let prefixes: Vec<String> = rt
            .config
            .pipelines_of(dataset)
            .map(|(name, _)| format!("{name}-{day}-"))
            .collect();
        execution_list(rt)?
            .into_iter()
            .filter(|e| {
                let name = e["name"].as_str().unwrap_or_default();
                prefixes.iter().any(|p| name.starts_with(p))
            })
            .collect()
    };
    body.push_str("<h2>Runs</h2>");
    if runs.is_empty() {
        body.push_str("<p class='muted'>No execution has run for this date.</p>");
    } else {
        let _ = write!(
            body,
            "<table>{EXECUTION_HEADER}{}</table>",
            execution_rows(&runs)
        );
    }

    body.push_str("<h2>Quality</h2>");
    body.push_str(&quality_section(&svc, dataset, day).await?);

    body.push_str("<h2>Rejected rows, by reason</h2>");
    body.push_str(&rejects_section(&svc, dataset, day, p.run_id.as_deref()).await?);

    body.push_str("<h2>Published</h2>");
    match tributary_core::publish::read_manifest(svc.objects, dataset, day).await? {
        None => body.push_str("<p class='muted'>Nothing of this date is published.</p>"),
        Some(m) => {
            let _ = write!(
                body,
                "<p>run <b>{}</b> · {} rows · mode {} · published {} · previous run {}</p>\
                 <table><tr><th>file</th><th class='num'>rows</th><th class='num'>bytes</th></tr>",
                html_escape(&m.run_id),
                m.rows,
                html_escape(&m.mode),
                m.published_at.format("%Y-%m-%d %H:%M:%S UTC"),
                html_escape(m.previous_run.as_deref().unwrap_or("—")),
            );
            for f in &m.files {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td class='num'>{}</td><td class='num'>{}</td></tr>",
                    html_escape(&f.key),
                    f.rows.map_or("—".into(), |r| r.to_string()),
                    f.size
                );
            }
            body.push_str("</table>");
        }
    }
    Ok(Page { title, body })
}

async fn quality_section(svc: &Services<'_>, dataset: &str, day: NaiveDate) -> Result<String> {
    let key = layout::quality_report_key(dataset, day);
    let bytes = match svc.objects.get_bytes(&key).await {
        Ok(bytes) => bytes,
        Err(tributary_core::ports::PortError::NotFound { .. }) => {
            return Ok("<p class='muted'>Not validated yet.</p>".into())
        }
        Err(e) => return Err(e.into()),
    };
    let report: QualityReport =
        serde_json::from_slice(&bytes).with_context(|| format!("{key} is not a quality report"))?;
    let mut out = format!(
        "<p>score <b>{:.3}</b> against threshold {:.3}: {} · run {} · {} rows</p>\
         <table><tr><th>expectation</th><th>column</th><th>passed</th><th class='num'>met</th>\
         <th class='num'>required</th><th class='num'>unexpected</th><th>examples</th><th>observed</th></tr>",
        report.score,
        report.threshold,
        if report.passed { "passed" } else { "below the threshold" },
        html_escape(&report.run_id),
        report.rows,
    );
    for e in &report.expectations {
        let _ = write!(
            out,
            "<tr class='{cls}'><td>{}</td><td>{}</td><td>{}</td><td class='num'>{:.1} %</td>\
             <td class='num'>{:.1} %</td><td class='num'>{}</td><td><small>{}</small></td><td><small>{}</small></td></tr>",
            html_escape(&e.expectation),
            html_escape(e.column.as_deref().unwrap_or("—")),
            if e.passed { "yes" } else { "no" },
            e.success_fraction * 100.0,
            e.mostly * 100.0,
            e.unexpected_count,
            html_escape(&e.unexpected_examples.join(", ")),
            html_escape(&e.observed),
            cls = if e.passed { "" } else { "err" },
        );
    }
    out.push_str("</table>");
    Ok(out)
}

async fn rejects_section(
    svc: &Services<'_>,
    dataset: &str,
    day: NaiveDate,
    run_id: Option<&str>,
) -> Result<String> {
    let Some(run_id) = run_id else {
        return Ok("<p class='muted'>Not cleaned yet.</p>".into());
    };
    let prefix = layout::run_prefix(Layer::Rejects, dataset, day, run_id);
    let mut groups: BTreeMap<String, tributary_core::clean::rejects::RejectGroup> = BTreeMap::new();
    for object in svc.objects.list(&prefix).await? {
        if !object.key.ends_with(".parquet") {
            continue;
        }
        let bytes = svc.objects.get_bytes(&object.key).await?;
        let found = tributary_core::clean::rejects::group_by_reason(
            bytes.into(),
            REJECT_EXAMPLES_PER_REASON,
        )
        .with_context(|| format!("reading rejected rows of {}", object.key))?;
        for g in found {
            let merged = groups.entry(g.reason.clone()).or_insert_with(|| {
                tributary_core::clean::rejects::RejectGroup {
                    reason: g.reason.clone(),
                    rows: 0,
                    examples: vec![],
                }
            });
            merged.rows += g.rows;
            let room = REJECT_EXAMPLES_PER_REASON.saturating_sub(merged.examples.len());
            merged.examples.extend(g.examples.into_iter().take(room));
        }
    }
    if groups.is_empty() {
        return Ok("<p class='muted'>No row of this run was rejected.</p>".into());
    }
    let mut ordered: Vec<_> = groups.into_values().collect();
    ordered.sort_by_key(|g| std::cmp::Reverse(g.rows));
    let mut out = format!(
        "<p class='muted'>All of them are kept under <code>{}</code>; a sample of each reason:</p>",
        html_escape(&prefix)
    );
    for g in &ordered {
        let _ = write!(
            out,
            "<h3 data-reason='{r}'>{r} <small>{} rows</small></h3><table><tr><th>file</th>\
             <th class='num'>line</th><th>detail</th><th>values</th></tr>",
            g.rows,
            r = html_escape(&g.reason),
        );
        for e in &g.examples {
            let values: Vec<String> = e
                .values
                .iter()
                .map(|(column, value)| {
                    format!("{column}={}", value.as_deref().unwrap_or("(missing)"))
                })
                .collect();
            let _ = write!(
                out,
                "<tr><td><small>{}</small></td><td class='num'>{}</td><td>{}</td><td><small>{}</small></td></tr>",
                html_escape(e.file.as_deref().unwrap_or("—")),
                e.line.map_or("—".into(), |l| l.to_string()),
                html_escape(e.detail.as_deref().unwrap_or("")),
                html_escape(&values.join(", ")),
            );
        }
        out.push_str("</table>");
    }
    Ok(out)
}

fn pager(base: &str, page: usize, pages: usize) -> String {
    if pages <= 1 {
        return String::new();
    }
    let mut out = String::from("<p class='pager'>");
    if page > 1 {
        let _ = write!(out, "<a href='{base}?page={}'>← newer</a>", page - 1);
    }
    let _ = write!(out, "<small>page {page} of {pages}</small> ");
    if page < pages {
        let _ = write!(out, "<a href='{base}?page={}'>older →</a>", page + 1);
    }
    out.push_str("</p>");
    out
}

/// The 1-based page asked for, within 1..=pages.
fn page_number(query: &BTreeMap<String, String>, pages: usize) -> usize {
    (query_number(query, "page", 1).max(1) as usize).min(pages.max(1))
}

fn executions(rt: &LocalRuntime, query: &BTreeMap<String, String>) -> Result<Page> {
    let list = execution_list(rt)?;
    let pages = list.len().div_ceil(EXECUTIONS_PER_PAGE);
    let page = page_number(query, pages);
    let shown: Vec<Value> = list
        .iter()
        .skip((page - 1) * EXECUTIONS_PER_PAGE)
        .take(EXECUTIONS_PER_PAGE)
        .cloned()
        .collect();
    let body = if list.is_empty() {
        "<p class='muted'>No execution yet.</p>".to_string()
    } else {
        format!(
            "<p class='muted'>{} executions, newest first.</p><table class='executions'>{EXECUTION_HEADER}{}</table>{}",
            list.len(),
            execution_rows(&shown),
            pager("/executions", page, pages)
        )
    };
    Ok(Page {
        title: "Executions".into(),
        body,
    })
}

fn execution(rt: &LocalRuntime, name: &str) -> Result<Page> {
    let exists = rt
        .executions
        .list()?
        .iter()
        .any(|e| e["name"].as_str() == Some(name));
    if !exists {
        return Err(Refused::not_found(format!("no execution named {name:?}")).into());
    }
    let (definition, summary, history) = rt.executions.record(name)?;
    Ok(Page {
        title: name.to_string(),
        body: run_report::render_fragment(&definition, &summary, &history)?,
    })
}

async fn approvals_page(rt: &LocalRuntime) -> Result<Page> {
    let svc = rt.services();
    let now = Utc::now();
    let all = approvals::all(&rt.adapters.state).await?;
    let (pending, rest): (Vec<&Approval>, Vec<&Approval>) = all
        .iter()
        .partition(|a| a.status == ApprovalStatus::Pending && a.expires_at >= now);
    let mut body = String::from("<h2>Waiting for a decision</h2>");
    if pending.is_empty() {
        body.push_str("<p class='muted'>Nothing is waiting for a decision.</p>");
    }
    for a in pending {
        let _ = write!(
            body,
            "<div class='pending' data-approval='{id}'><p><b>{}</b><br>{} <small>requested {} · \
             expires {}</small></p>",
            html_escape(&a.purpose),
            approval_links(&svc, a),
            a.created_at.format("%Y-%m-%d %H:%M UTC"),
            a.expires_at.format("%Y-%m-%d %H:%M UTC"),
            id = html_escape(&a.id),
        );
        body.push_str(&held_table(&a.summary));
        body.push_str("</div>");
    }
    body.push_str(
        "<h2>Decided and expired</h2><table><tr><th>request</th><th>decision</th><th>by</th>\
         <th>when</th><th>why</th></tr>",
    );
    for a in rest {
        let decision = match a.status {
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Rejected => "rejected",
            ApprovalStatus::Pending => "expired undecided",
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{decision}</td><td>{}</td><td><small>{}</small></td><td>{}</td></tr>",
            html_escape(&a.purpose),
            html_escape(a.decider.as_deref().unwrap_or("—")),
            a.decided_at
                .unwrap_or(a.expires_at)
                .format("%Y-%m-%d %H:%M UTC"),
            html_escape(a.reason.as_deref().unwrap_or("")),
        );
    }
    body.push_str("</table>");
    Ok(Page {
        title: "Approvals".into(),
        body,
    })
}

/// What a person needs to decide a hold: per dataset, the score against
/// the threshold, the rows, the failed expectations.
fn held_table(summary: &Value) -> String {
    let mut out = String::from(
        "<table><tr><th>dataset</th><th>date</th><th class='num'>rows</th><th class='num'>score</th>\
         <th class='num'>threshold</th><th>failed expectations</th></tr>",
    );
    let date = summary["date"].as_str().unwrap_or("?");
    for h in summary["held"].as_array().into_iter().flatten() {
        let dataset = h["dataset"].as_str().unwrap_or("?");
        let failed: Vec<&str> = h["failed"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let _ = write!(
            out,
            "<tr><td><a href='/partitions/{ds}/{d}'>{ds}</a></td><td>{d}</td><td class='num'>{}</td>\
             <td class='num'>{}</td><td class='num'>{}</td><td>{}</td></tr>",
            h["rows"],
            h["score"].as_f64().map_or("—".into(), |s| format!("{s:.3}")),
            h["threshold"].as_f64().map_or("—".into(), |s| format!("{s:.3}")),
            html_escape(&failed.join("; ")),
            ds = html_escape(dataset),
            d = html_escape(date),
        );
    }
    out.push_str("</table>");
    out
}

async fn streams(rt: &LocalRuntime, query: &BTreeMap<String, String>) -> Result<Page> {
    let svc = rt.services();
    let now = Utc::now();
    let mut body = String::new();
    if rt.config.streams.is_empty() {
        body.push_str("<p class='muted'>No stream is configured.</p>");
    }
    for stream in rt.config.streams.keys() {
        let _ = write!(
            body,
            "<section data-stream='{s}'><h2>{s}: the last {STREAM_HOURS} hours</h2>",
            s = html_escape(stream)
        );
        let hours = stats::recent(svc.state, stream, now, STREAM_HOURS).await?;
        if hours.iter().all(|(_, c)| c.input == 0) {
            body.push_str("<p class='muted'>No batch was processed in these hours.</p>");
        } else {
            body.push_str(&hours_chart(&hours));
            body.push_str(
            "<table class='hours'><tr><th>hour (UTC)</th><th class='num'>in</th><th class='num'>aggregated</th>\
             <th class='num'>dead-lettered</th><th class='num'>late</th><th class='num'>duplicates</th>\
             <th class='num'>redelivered</th></tr>",
        );
            for (hour, c) in hours.iter().rev().filter(|(_, c)| c.input > 0) {
                let _ = write!(
                body,
                "<tr><td>{}</td><td class='num'>{}</td><td class='num' data-count='aggregated'>{}</td>\
                 <td class='num' data-count='dlq'>{}</td><td class='num'>{}</td><td class='num'>{}</td>\
                 <td class='num'>{}</td></tr>",
                html_escape(hour),
                c.input,
                c.aggregated,
                c.dlq,
                c.late,
                c.duplicates,
                c.redelivered
            );
            }
            body.push_str("</table>");
        }

        let mut checks = reconcile::history(&svc, stream, now).await?;
        checks.sort_by_key(|d| std::cmp::Reverse(d.checked_at));
        body.push_str("<h3>Reconciliations, newest first</h3>");
        if checks.is_empty() {
            body.push_str("<p class='muted'>Not reconciled yet.</p>");
        } else {
            body.push_str(
                "<table><tr><th>checked</th><th>period</th><th>granularity</th><th class='num'>batch</th>\
                 <th class='num'>realtime</th><th class='num'>deviation</th><th>alert</th></tr>",
            );
            for d in checks.iter().take(20) {
                let _ = write!(
                    body,
                    "<tr class='{cls}'><td><small>{}</small></td><td>{}</td><td>{}</td><td class='num'>{:.2}</td>\
                     <td class='num'>{:.2}</td><td class='num'>{:.2} %</td><td>{}</td></tr>",
                    d.checked_at.format("%Y-%m-%d %H:%M:%S"),
                    html_escape(&d.period_start),
                    html_escape(&d.granularity),
                    d.batch,
                    d.realtime,
                    d.deviation_pct,
                    if d.alert { "ALERT" } else { "" },
                    cls = if d.alert { "err" } else { "" },
                );
            }
            body.push_str("</table>");
            body.push_str(&run_report::stream_deviation_trend(&svc, stream).await?);
        }

        let letters = speed::dead_letters(&svc, stream).await?;
        let pages = letters.len().div_ceil(DEAD_LETTERS_PER_PAGE);
        let page = page_number(query, pages);
        let _ = write!(
            body,
            "<h3>Dead letters <small>{} kept, with their reason</small></h3>",
            letters.len()
        );
        if !letters.is_empty() {
            body.push_str(
                "<table class='dead-letters'><tr><th>arrived</th><th>shard · sequence</th><th>reason</th><th>payload</th></tr>",
            );
            for (_, letter) in letters
                .iter()
                .skip((page - 1) * DEAD_LETTERS_PER_PAGE)
                .take(DEAD_LETTERS_PER_PAGE)
            {
                let payload = letter
                    .data_text
                    .clone()
                    .unwrap_or_else(|| format!("(binary, base64) {}", letter.data_base64));
                let _ = write!(
                    body,
                    "<tr><td><small>{}</small></td><td><small>{} · {}</small></td><td>{}</td><td><pre>{}</pre></td></tr>",
                    letter.arrival_time.format("%Y-%m-%d %H:%M:%S"),
                    html_escape(&letter.shard_id),
                    html_escape(&letter.sequence_number),
                    html_escape(&letter.error),
                    html_escape(&payload),
                );
            }
            body.push_str("</table>");
            body.push_str(&pager("/streams", page, pages));
        }
        body.push_str("</section>");
    }
    Ok(Page {
        title: "Streams".into(),
        body,
    })
}

/// Stacked bars per hour: aggregated, dead-lettered, late, duplicates.
fn hours_chart(hours: &[(String, stats::HourCounts)]) -> String {
    let (w, h, left, bottom) = (720.0, 160.0, 40.0, 24.0);
    let top = hours
        .iter()
        .map(|(_, c)| c.aggregated + c.dlq + c.late + c.duplicates)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let slot = (w - left - 10.0) / hours.len().max(1) as f64;
    let y = |v: f64| (h - bottom - 10.0) * v / top;
    let mut svg = format!(
        "<svg width='{w}' height='{h}' xmlns='http://www.w3.org/2000/svg' font-size='10'>\
         <text x='2' y='14'>{top}</text><line x1='{left}' y1='{base}' x2='{w}' y2='{base}' stroke='#999'/>",
        base = h - bottom,
    );
    let series = [
        ("aggregated", "#1a7f37"),
        ("dead-lettered", "#cf222e"),
        ("late", "#bf8700"),
        ("duplicates", "#8c959f"),
    ];
    for (i, (hour, c)) in hours.iter().enumerate() {
        let x = left + i as f64 * slot;
        let mut stacked = 0.0;
        for ((what, colour), value) in
            series
                .iter()
                .zip([c.aggregated, c.dlq, c.late, c.duplicates])
        {
            if value == 0 {
                continue;
            }
            let height = y(value as f64);
            stacked += height;
            let _ = write!(
                svg,
                "<rect x='{x:.1}' y='{:.1}' width='{:.1}' height='{height:.1}' fill='{colour}'>\
                 <title>{} {what}: {value}</title></rect>",
                h - bottom - stacked,
                slot * 0.8,
                html_escape(hour),
            );
        }
        if i % 3 == 0 {
            let _ = write!(
                svg,
                "<text x='{:.1}' y='{:.1}'>{}</text>",
                x,
                h - 8.0,
                html_escape(hour.get(11..13).unwrap_or(hour))
            );
        }
    }
    let mut legend_x = left;
    for (what, colour) in series {
        let _ = write!(
            svg,
            "<rect x='{legend_x}' y='2' width='10' height='10' fill='{colour}'/><text x='{}' y='11'>{what}</text>",
            legend_x + 14.0
        );
        legend_x += 100.0;
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_execution_name_gives_its_pipeline_and_date() {
        assert_eq!(
            name_parts("user_events_daily-2025-12-02-1059f20876bd5249"),
            (Some("user_events_daily"), parse_date("2025-12-02"))
        );
        assert_eq!(
            name_parts("a-b-2025-01-31-x"),
            (Some("a-b"), parse_date("2025-01-31"))
        );
        assert_eq!(name_parts("catchup-nightly"), (None, None));
    }

    #[test]
    fn every_partition_state_has_a_cell() {
        assert_eq!(cell_state(None), "none");
        assert_eq!(cell_state(Some(PartitionState::Arrived)), "waiting");
        assert_eq!(cell_state(Some(PartitionState::Validated)), "running");
        assert_eq!(cell_state(Some(PartitionState::Held)), "held");
        assert_eq!(cell_label("quarantined"), "quarantined");
    }
}
