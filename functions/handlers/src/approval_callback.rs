//! approval-callback: the function URL behind the approve / reject links.
//!
//! GET shows what is being decided and a button, and decides nothing: mail
//! scanners and link previews fetch links. POST (the button) checks the
//! link's signature and expiry, records the decision once, and answers the
//! task token through the TaskCallbacks port. Forged, expired, replayed or
//! unknown links get a 4xx page and change nothing.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use tributary_core::approvals::{self, Approval, ApprovalError, Decision};
use tributary_core::error::UseCaseError;
use tributary_core::orchestration;
use tributary_core::services::Services;

use crate::error::HandlerError;
use crate::http::{html_escape, HttpRequest};

/// The function: a function URL event in, a page out.
pub async fn approval_callback(svc: &Services<'_>, event: Value) -> Result<Value, HandlerError> {
    let request = HttpRequest::from_event(&event)?;
    Ok(handle(svc, &request, chrono::Utc::now()).await)
}

fn page(status: u16, title: &str, body: &str) -> Value {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{t}</title><style>body{{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}}\
         button{{font-size:1.1rem;padding:.5rem 1.2rem}}.approve{{background:#1a7f37;color:#fff}}.reject{{background:#b42318;color:#fff}}</style>\
         </head><body><h1>{t}</h1>{body}</body></html>",
        t = html_escape(title)
    );
    json!({"statusCode": status, "headers": {"content-type": "text/html; charset=utf-8", "cache-control": "no-store"}, "body": html})
}

fn error_page(e: &ApprovalError) -> Value {
    let title = match e.http_status() {
        403 => "This link is not valid",
        404 => "No such approval request",
        409 => "Already decided",
        410 => "This link has expired",
        _ => "Something went wrong",
    };
    page(
        e.http_status(),
        title,
        &format!(
            "<p>{}</p><p>Nothing was changed.</p>",
            html_escape(&e.to_string())
        ),
    )
}

fn summary_table(a: &Approval) -> String {
    if a.summary["kind"] == "feature_publish" || a.summary["kind"] == "model_deploy" {
        let mut rows = String::new();
        for (check, score) in a.summary["checks"].as_object().into_iter().flatten() {
            rows.push_str(&format!(
                "<tr><td>{}</td><td>{:.3}</td></tr>",
                html_escape(check),
                score.as_f64().unwrap_or(0.0)
            ));
        }
        return format!(
            "<p>{}</p><table><tr><th>check</th><th>score</th></tr>{rows}</table>\
             <p>{} users, {} items. The request expires {}.</p>",
            html_escape(&a.purpose),
            a.summary["users"],
            a.summary["items"],
            a.expires_at.format("%Y-%m-%d %H:%M UTC")
        );
    }
    if a.summary["kind"] == "label_review" {
        let items: Vec<&serde_json::Value> = a.summary["items"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        // The row's content: the columns the rules read, as the first item has them.
        let columns: Vec<String> = items
            .first()
            .and_then(|i| i["fields"].as_object())
            .map(|f| f.keys().cloned().collect())
            .unwrap_or_default();
        let head: String = columns
            .iter()
            .map(|c| format!("<th>{}</th>", html_escape(c)))
            .collect();
        let mut rows = String::new();
        for i in &items {
            let cells: String = columns
                .iter()
                .map(|c| {
                    format!(
                        "<td>{}</td>",
                        html_escape(i["fields"][c].as_str().unwrap_or("(null)"))
                    )
                })
                .collect();
            rows.push_str(&format!(
                "<tr><td>{}</td>{cells}<td>{}</td><td>{:.2}</td></tr>",
                html_escape(i["id"].as_str().unwrap_or("?")),
                html_escape(i["label"].as_str().unwrap_or("?")),
                i["confidence"].as_f64().unwrap_or(0.0)
            ));
        }
        return format!(
            "<p>{}</p><table><tr><th>id</th>{head}<th>proposed label</th><th>confidence</th></tr>{rows}</table>\
             <p>Approving confirms exactly these {} label(s); {} pending in all — the rest come in the next page. The request expires {}.</p>",
            html_escape(&a.purpose),
            items.len(),
            a.summary["pending"],
            a.expires_at.format("%Y-%m-%d %H:%M UTC")
        );
    }
    let mut rows = String::new();
    for d in a.summary["held"].as_array().into_iter().flatten() {
        let failed: Vec<String> = d["failed"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str().map(html_escape))
            .collect();
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{:.3} &lt; {:.3}</td><td>{}</td></tr>",
            html_escape(d["dataset"].as_str().unwrap_or("?")),
            d["rows"],
            d["score"].as_f64().unwrap_or(0.0),
            d["threshold"].as_f64().unwrap_or(0.0),
            failed.join("<br>")
        ));
    }
    format!(
        "<p>{}</p><table><tr><th>dataset</th><th>rows</th><th>quality</th><th>failed expectations</th></tr>{rows}</table>\
         <p>Pipeline <b>{}</b>, date <b>{}</b>, run <code>{}</code>. Requested {}; the request expires {}.</p>",
        html_escape(&a.purpose),
        html_escape(a.summary["pipeline"].as_str().unwrap_or("?")),
        html_escape(a.summary["date"].as_str().unwrap_or("?")),
        html_escape(a.summary["run_id"].as_str().unwrap_or("?")),
        a.created_at.format("%Y-%m-%d %H:%M UTC"),
        a.expires_at.format("%Y-%m-%d %H:%M UTC"),
    )
}

/// The signed parameters of a link, from the query (GET) or the form (POST).
fn link_params(
    params: &BTreeMap<String, String>,
) -> Result<(Decision, i64, String), ApprovalError> {
    let decision = Decision::parse(params.get("decision").map(String::as_str).unwrap_or(""))?;
    let expires = params
        .get("expires")
        .and_then(|e| e.parse::<i64>().ok())
        .ok_or(ApprovalError::BadSignature)?;
    let signature = params
        .get("signature")
        .cloned()
        .ok_or(ApprovalError::BadSignature)?;
    Ok((decision, expires, signature))
}

/// Handle one request at `now` (the function passes the wall clock; tests
/// pass their own); the response is the function URL's response.
pub async fn handle(
    svc: &Services<'_>,
    req: &HttpRequest,
    now: chrono::DateTime<chrono::Utc>,
) -> Value {
    let Some(id) = req
        .path
        .strip_prefix("/approvals/")
        .filter(|id| !id.is_empty() && !id.contains('/'))
    else {
        return page(
            404,
            "Not found",
            "<p>Approval links look like /approvals/&lt;id&gt;?decision=…</p>",
        );
    };
    let params = if req.method == "POST" {
        &req.form
    } else {
        &req.query
    };
    let checked = link_params(params).and_then(|(decision, expires, signature)| {
        svc.links
            .verify(id, decision, expires, &signature, now)
            .map(|_| (decision, expires, signature))
    });
    let (decision, expires, signature) = match checked {
        Ok(ok) => ok,
        Err(e) => return error_page(&e),
    };
    let approval = match approvals::get(svc.state, id).await {
        Ok(a) => a,
        Err(e) => return error_page(&e),
    };
    if approval.status != approvals::ApprovalStatus::Pending {
        return error_page(&ApprovalError::AlreadyDecided {
            id: id.to_string(),
            status: approval.status,
            decider: approval.decider.clone().unwrap_or_default(),
        });
    }
    match req.method.as_str() {
        "GET" | "HEAD" => {
            let (verb, class) = match decision {
                Decision::Approve => ("Approve", "approve"),
                Decision::Reject => ("Reject", "reject"),
            };
            page(
                200,
                &format!("{verb}?"),
                &format!(
                    "{}<form method=\"post\" action=\"/approvals/{id}\">\
                     <input type=\"hidden\" name=\"decision\" value=\"{}\">\
                     <input type=\"hidden\" name=\"expires\" value=\"{expires}\">\
                     <input type=\"hidden\" name=\"signature\" value=\"{}\">\
                     <p><label>Your name <input name=\"decider\" required></label></p>\
                     <p><label>Reason (optional)<br><textarea name=\"reason\" rows=\"3\" cols=\"60\"></textarea></label></p>{review_fields}\
                     <p><button class=\"{class}\" type=\"submit\">{verb}</button></p></form>\
                     <p>Nothing has been decided yet: opening this page changes nothing.</p>",
                    summary_table(&approval),
                    decision.as_str(),
                    html_escape(&signature),
                    id = html_escape(id),
                    review_fields = if approval.summary["kind"] == "label_review" && decision == Decision::Approve {
                        "<p><label>Corrections, one <code>id,label</code> per line (the rest is confirmed as proposed)<br>\
                         <textarea name=\"corrections\" rows=\"6\" cols=\"60\"></textarea></label></p>\
                         <p><label><input type=\"checkbox\" name=\"again\"> send the rest back for another round</label></p>"
                    } else {
                        ""
                    },
                ),
            )
        }
        "POST" => {
            let decider = req
                .form
                .get("decider")
                .map(|d| d.trim())
                .filter(|d| !d.is_empty())
                .unwrap_or("someone with the link");
            let reason = req
                .form
                .get("reason")
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty());
            let details = if approval.summary["kind"] == "label_review" {
                match tributary_core::labeling::parse_corrections(
                    req.form.get("corrections").map_or("", |c| c.as_str()),
                ) {
                    Ok(corrections) => {
                        if let Err(e) = tributary_core::labeling::check_corrections(
                            svc,
                            &approval.summary,
                            &corrections,
                        )
                        .await
                        {
                            return page(
                                400,
                                "Corrections not accepted",
                                &format!("<p>{}</p>", html_escape(&e.to_string())),
                            );
                        }
                        Some(
                            json!({"corrections": corrections, "again": req.form.contains_key("again")}),
                        )
                    }
                    Err(e) => {
                        return page(
                            400,
                            "Corrections not understood",
                            &format!(
                                "<p>{}</p><p>Nothing was changed; go back and fix them.</p>",
                                html_escape(&e)
                            ),
                        )
                    }
                }
            } else {
                None
            };
            match orchestration::decide_and_answer(svc, id, decision, &format!("{decider} (link)"), reason, details, now).await {
                Ok(a) => page(
                    200,
                    match decision {
                        Decision::Approve => "Approved",
                        Decision::Reject => "Rejected",
                    },
                    &format!(
                        "{}<p>Recorded for {}. The pipeline continues; you can close this page.</p>",
                        summary_table(&a),
                        html_escape(a.decider.as_deref().unwrap_or(decider))
                    ),
                ),
                Err(UseCaseError::Approval(e)) => error_page(&e),
                Err(e) => page(
                    if e.retryable() { 503 } else { 500 },
                    "Something went wrong",
                    &format!("<p>{}</p>", html_escape(&e.to_string())),
                ),
            }
        }
        other => page(
            405,
            "Method not allowed",
            &format!("<p>{} is not supported here.</p>", html_escape(other)),
        ),
    }
}
