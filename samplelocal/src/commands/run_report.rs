//! `tributary report EXECUTION`: one HTML page with the state machine drawn
//! and the path the execution took highlighted, each state's timing and
//! outcome, and the data counts of the datasets it processed.

use anyhow::{anyhow, Result};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use tributary_asl::definition::{Kind, StateMachine};
use tributary_handlers::http::html_escape;

/// Successor states of each state, with the field that leads there.
fn edges(machine: &StateMachine) -> BTreeMap<&str, Vec<(&str, &str)>> {
    let mut out: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
    for (name, state) in &machine.states {
        let list = out.entry(name.as_str()).or_default();
        if let Some(n) = &state.next {
            list.push((n.as_str(), "Next"));
        }
        let catches = match &state.kind {
            Kind::Choice { choices, default } => {
                list.extend(choices.iter().map(|(_, n)| (n.as_str(), "Choice")));
                if let Some(d) = default {
                    list.push((d.as_str(), "Default"));
                }
                &[][..]
            }
            Kind::Task(t) => &t.common.catch[..],
            Kind::Parallel(p) => &p.common.catch[..],
            Kind::Map(m) => &m.common.catch[..],
            _ => &[][..],
        };
        list.extend(catches.iter().map(|c| (c.next.as_str(), "Catch")));
    }
    out
}

/// Depth of each state from StartAt (breadth first).
fn levels(machine: &StateMachine) -> BTreeMap<String, usize> {
    let graph = edges(machine);
    let mut level = BTreeMap::new();
    let mut queue = VecDeque::from([(machine.start_at.as_str(), 0usize)]);
    while let Some((name, depth)) = queue.pop_front() {
        if level.contains_key(name) {
            continue;
        }
        level.insert(name.to_string(), depth);
        for (next, _) in graph.get(name).into_iter().flatten() {
            queue.push_back((next, depth + 1));
        }
    }
    level
}

struct Visit {
    name: String,
    kind: String,
    entered: String,
    exited: Option<String>,
    ms: Option<i64>,
}

fn visits(history: &Value) -> Vec<Visit> {
    let ms = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .map(|d| d.timestamp_millis())
            .ok()
    };
    let mut out: Vec<Visit> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    for e in history.as_array().into_iter().flatten() {
        let t = e["type"].as_str().unwrap_or_default();
        let at = e["timestamp"].as_str().unwrap_or_default().to_string();
        let name = e["details"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if let Some(kind) = t.strip_suffix("StateEntered") {
            open.push(out.len());
            out.push(Visit {
                name,
                kind: kind.to_string(),
                entered: at,
                exited: None,
                ms: None,
            });
        } else if t.ends_with("StateExited") {
            if let Some(pos) = open.iter().rposition(|&i| out[i].name == name) {
                let i = open.remove(pos);
                out[i].ms = ms(&at).zip(ms(&out[i].entered)).map(|(b, a)| b - a);
                out[i].exited = Some(at);
            }
        }
    }
    out
}

fn svg(machine: &StateMachine, visited: &BTreeSet<String>, failed_at: Option<&str>) -> String {
    let level = levels(machine);
    let mut rows: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for (name, l) in &level {
        rows.entry(*l).or_default().push(name);
    }
    let (w, h, gap_x, gap_y) = (190.0, 38.0, 30.0, 40.0);
    let mut pos: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    let widest = rows.values().map(|r| r.len()).max().unwrap_or(1) as f64;
    let total_w = widest * (w + gap_x) + gap_x;
    for (l, names) in &rows {
        let row_w = names.len() as f64 * (w + gap_x) - gap_x;
        for (i, n) in names.iter().enumerate() {
            let x = (total_w - row_w) / 2.0 + i as f64 * (w + gap_x);
            pos.insert(n, (x, gap_y + *l as f64 * (h + gap_y)));
        }
    }
    let total_h = gap_y + rows.len() as f64 * (h + gap_y);
    let mut body = String::new();
    for (from, outs) in edges(machine) {
        for (to, label) in outs {
            let (Some(a), Some(b)) = (pos.get(from), pos.get(to)) else {
                continue;
            };
            let taken = visited.contains(from) && visited.contains(to);
            body.push_str(&format!(
                "<line x1='{:.0}' y1='{:.0}' x2='{:.0}' y2='{:.0}' stroke='{}' stroke-width='{}' marker-end='url(#arrow)'><title>{label}</title></line>",
                a.0 + w / 2.0, a.1 + h, b.0 + w / 2.0, b.1,
                if taken { "#1a7f37" } else { "#bbb" },
                if taken { 2.5 } else { 1.0 },
            ));
        }
    }
    for (name, (x, y)) in &pos {
        let kind = machine
            .states
            .get(*name)
            .map(|s| s.type_name())
            .unwrap_or("?");
        let fill = if Some(*name) == failed_at {
            "#fde2e1"
        } else if visited.contains(*name) {
            "#dafbe1"
        } else {
            "#f6f8fa"
        };
        body.push_str(&format!(
            "<rect x='{x:.0}' y='{y:.0}' width='{w}' height='{h}' rx='6' fill='{fill}' stroke='#57606a'/>\
             <text x='{:.0}' y='{:.0}' font-size='12' text-anchor='middle'>{}</text>\
             <text x='{:.0}' y='{:.0}' font-size='10' fill='#57606a' text-anchor='middle'>{kind}</text>",
            x + w / 2.0, y + 16.0, html_escape(name), x + w / 2.0, y + 30.0
        ));
    }
    format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{total_w:.0}' height='{total_h:.0}'>\
         <defs><marker id='arrow' viewBox='0 0 10 10' refX='10' refY='5' markerWidth='6' markerHeight='6' orient='auto'><path d='M0,0 L10,5 L0,10 z' fill='#57606a'/></marker></defs>{body}</svg>"
    )
}

/// The report's body: status, the graph with the path taken, each state's
/// timing and outcome, the data counts. `render` makes it a page; the
/// console shows it inside its own.
pub fn render_fragment(definition: &str, summary: &Value, history: &Value) -> Result<String> {
    let machine = tributary_asl::load(definition).map_err(|e| anyhow!("{e}"))?;
    let visits = visits(history);
    let visited: BTreeSet<String> = visits.iter().map(|v| v.name.clone()).collect();
    let failed_at = visits
        .iter()
        .rev()
        .find(|v| v.exited.is_none() && machine.states.contains_key(&v.name))
        .map(|v| v.name.as_str());
    let status = summary["status"].as_str().unwrap_or("?");
    let mut rows = String::new();
    for v in &visits {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html_escape(&v.name),
            html_escape(&v.kind),
            html_escape(&v.entered),
            v.ms.map_or("—".into(), |ms| format!("{:.3} s", ms as f64 / 1000.0)),
            if v.exited.is_some() {
                "done"
            } else if status == "RUNNING" {
                "waiting"
            } else {
                "failed here"
            }
        ));
    }
    // The latest state output that carries per-dataset results (the whole
    // execution's output is absent when it failed).
    let datasets = history
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .find_map(|e| e["details"]["output"]["datasets"].as_array())
        .or_else(|| summary["output"]["datasets"].as_array());
    let mut data = String::new();
    for d in datasets.into_iter().flatten() {
        data.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html_escape(d["dataset"].as_str().unwrap_or("?")),
            d["clean"]["input"],
            d["clean"]["kept"],
            d["clean"]["rejected"],
            d["clean"]["duplicates"],
            d["quality"]["report"]["score"]
                .as_f64()
                .map_or("—".into(), |s| format!("{s:.3}")),
        ));
    }
    let data = if data.is_empty() {
        String::new()
    } else {
        format!("<h2>Data</h2><table><tr><th>dataset</th><th>rows in</th><th>kept</th><th>rejected</th><th>duplicates</th><th>quality</th></tr>{data}</table>")
    };
    let error = match (summary["error"].as_str(), summary["cause"].as_str()) {
        (Some(e), c) => format!(
            "<p class='err'><b>{}</b> {}</p>",
            html_escape(e),
            html_escape(c.unwrap_or_default())
        ),
        _ => String::new(),
    };
    Ok(format!(
        "<p class='status'>{status} · started {} · stopped {} · {} state transitions</p>{error}\
         {svg}<h2>States, in the order they ran</h2><table><tr><th>state</th><th>type</th><th>entered</th><th>took</th><th>outcome</th></tr>{rows}</table>{data}",
        html_escape(summary["startDate"].as_str().unwrap_or("?")),
        html_escape(summary["stopDate"].as_str().unwrap_or("—")),
        summary["transitions"],
        svg = svg(&machine, &visited, failed_at),
    ))
}

/// The CSS of a run report (the console's pages include it).
pub const STYLE: &str = "table{border-collapse:collapse;margin:1rem 0}\
    td,th{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:left}.err{color:#b42318}\
    .status{font-weight:bold}";

pub fn render(definition: &str, summary: &Value, history: &Value, trend: &str) -> Result<String> {
    let fragment = render_fragment(definition, summary, history)?;
    let name = html_escape(summary["name"].as_str().unwrap_or("?"));
    Ok(format!(
        "<!doctype html><html><head><meta charset='utf-8'><title>{name}</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2rem}}{STYLE}</style></head><body>\
         <h1>{name}</h1>{fragment}{trend}</body></html>"
    ))
}

pub fn run(workspace: &Path, name: &str, out: Option<&Path>) -> Result<()> {
    let (definition, summary, history) =
        crate::stepfunctions::StepFunctions::open(workspace)?.record(name)?;
    let trend = {
        let rt = crate::local::LocalRuntime::open(workspace, None)?;
        let tokio = tokio::runtime::Builder::new_current_thread().build()?;
        tokio
            .block_on(deviation_trend(&rt.services()))
            .unwrap_or_default()
    };
    let html = render(&definition, &summary, &history, &trend)?;
    let path: PathBuf = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| workspace.join("reports").join(format!("{name}.html")));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, html)?;
    println!("{}", path.display());
    Ok(())
}

/// Reconciliation's deviation per hour, one line per check, with the alert
/// threshold: how realtime and batch have agreed over time.
pub async fn deviation_trend(svc: &tributary_core::services::Services<'_>) -> Result<String> {
    let mut out = String::new();
    for stream in svc.config.streams.keys() {
        out.push_str(&stream_deviation_trend(svc, stream).await?);
    }
    Ok(out)
}

/// One stream's deviation chart (empty before its first reconciliation).
pub async fn stream_deviation_trend(
    svc: &tributary_core::services::Services<'_>,
    stream: &str,
) -> Result<String> {
    use tributary_core::stream::reconcile::{history, Deviation};
    let mut out = String::new();
    if let Some(config) = svc.config.streams.get(stream) {
        let checks: Vec<Deviation> = history(svc, stream, chrono::Utc::now())
            .await?
            .into_iter()
            .filter(|d| d.granularity == "hour")
            .collect();
        if checks.is_empty() {
            return Ok(out);
        }
        let periods: BTreeSet<&str> = checks.iter().map(|d| d.period_start.as_str()).collect();
        let periods: Vec<&str> = periods.into_iter().collect();
        let mut by_check: BTreeMap<String, Vec<&Deviation>> = BTreeMap::new();
        for d in &checks {
            by_check
                .entry(d.checked_at.to_rfc3339())
                .or_default()
                .push(d);
        }
        let top = checks
            .iter()
            .map(|d| d.deviation_pct)
            .fold(config.deviation_threshold_pct * 1.5, f64::max);
        let (w, h, left, bottom) = (640.0, 200.0, 40.0, 30.0);
        let x = |i: usize| left + (w - left - 10.0) * (i as f64 + 0.5) / periods.len() as f64;
        let y = |v: f64| 10.0 + (h - bottom - 10.0) * (1.0 - v / top);
        let colours = ["#b42318", "#1a7f37", "#0969da", "#8250df", "#bf8700"];
        let mut svg = format!(
            "<svg width='{w}' height='{h}' xmlns='http://www.w3.org/2000/svg' font-size='10'>\
             <line x1='{left}' y1='{t}' x2='{w}' y2='{t}' stroke='#999' stroke-dasharray='4'/>\
             <text x='2' y='{t}'>{thr} %</text>",
            t = y(config.deviation_threshold_pct),
            thr = config.deviation_threshold_pct
        );
        for (i, p) in periods.iter().enumerate() {
            svg.push_str(&format!(
                "<text x='{}' y='{}' text-anchor='middle'>{}</text>",
                x(i),
                h - 10.0,
                html_escape(p.get(11..16).unwrap_or(p))
            ));
        }
        for (n, (checked, ds)) in by_check.iter().enumerate() {
            let colour = colours[n % colours.len()];
            let points: Vec<String> = ds
                .iter()
                .filter_map(|d| {
                    let i = periods.iter().position(|p| *p == d.period_start)?;
                    Some(format!("{:.1},{:.1}", x(i), y(d.deviation_pct)))
                })
                .collect();
            svg.push_str(&format!(
                "<polyline fill='none' stroke='{colour}' stroke-width='2' points='{}'><title>checked {}</title></polyline>",
                points.join(" "),
                html_escape(checked)
            ));
            for pt in &points {
                let (px, py) = pt.split_once(',').unwrap_or(("0", "0"));
                svg.push_str(&format!(
                    "<circle cx='{px}' cy='{py}' r='3' fill='{colour}'/>"
                ));
            }
        }
        svg.push_str("</svg>");
        out.push_str(&format!(
            "<h2>Reconciliation: {} realtime vs batch, deviation per hour</h2>\
             <p>One line per check ({} checks); the dashed line is the alert threshold.</p>{svg}",
            html_escape(stream),
            by_check.len()
        ));
    }
    Ok(out)
}
