//! Human approval through links in a message.
//!
//! A request stores `{opaque id → task token, execution, purpose, summary,
//! expiry}` and hands back approve and reject links. A link carries the id,
//! the decision, its expiry and an HMAC over the three — never the task
//! token. Opening a link (GET) only shows what is being decided (mail
//! scanners prefetch links); the decision (POST) verifies the signature and
//! the expiry and flips the approval from pending exactly once, with a
//! conditional write, so a replayed or raced link changes nothing.

use crate::ports::{Condition, PortError, StateStore};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The state store partition key of every approval request.
pub const PK: &str = "approval";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub id: String,
    /// The Step Functions task token; stays server-side.
    pub token: String,
    pub execution: String,
    pub purpose: String,
    pub summary: Value,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub status: ApprovalStatus,
    pub decider: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalLinks {
    pub approve: String,
    pub reject: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("no approval {id}: the link is wrong or the request was removed")]
    Unknown { id: String },
    #[error("this link's signature does not match: it was altered or forged")]
    BadSignature,
    #[error("this link expired at {expired_at}; ask for a new approval request")]
    Expired { expired_at: DateTime<Utc> },
    #[error("approval {id} was already {status:?} by {decider}; nothing changed")]
    AlreadyDecided {
        id: String,
        status: ApprovalStatus,
        decider: String,
    },
    #[error("the decision must be \"approve\" or \"reject\", not {0:?}")]
    BadDecision(String),
    /// Links are signed with a key only the approval functions are given.
    #[error("approval links need the signing key: set TRIBUTARY_APPROVAL_SECRET_ARN (Terraform sets it on the functions that send or answer approvals)")]
    NoSigningKey,
    /// Links need the approval callback's address (on AWS its function URL).
    #[error("approval links need the approval callback's URL: set TRIBUTARY_APPROVAL_BASE_URL (Terraform sets it to the approval-callback function URL)")]
    NoCallbackUrl,
    #[error(transparent)]
    Port(#[from] PortError),
}

impl ApprovalError {
    /// The HTTP status the callback answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            ApprovalError::Unknown { .. } => 404,
            ApprovalError::BadSignature => 403,
            ApprovalError::Expired { .. } => 410,
            ApprovalError::AlreadyDecided { .. } => 409,
            ApprovalError::BadDecision(_) => 400,
            ApprovalError::NoCallbackUrl | ApprovalError::NoSigningKey => 500,
            ApprovalError::Port(e) if e.retryable() => 503,
            ApprovalError::Port(_) => 500,
        }
    }

    pub fn retryable(&self) -> bool {
        matches!(self, ApprovalError::Port(e) if e.retryable())
    }
}

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Signs and checks links with the approval secret.
#[derive(Clone, Copy)]
pub struct LinkSigner<'a> {
    pub secret: &'a [u8],
    /// Where the approval callback is served, e.g. a function URL.
    pub base_url: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

impl Decision {
    pub fn parse(text: &str) -> Result<Decision, ApprovalError> {
        match text {
            "approve" => Ok(Decision::Approve),
            "reject" => Ok(Decision::Reject),
            other => Err(ApprovalError::BadDecision(other.to_string())),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
        }
    }
}

impl LinkSigner<'_> {
    fn signature(&self, id: &str, decision: Decision, expires: i64) -> String {
        hex::encode(hmac_sha256(
            self.secret,
            format!("{id}\n{}\n{expires}", decision.as_str()).as_bytes(),
        ))
    }

    pub fn link(&self, id: &str, decision: Decision, expires_at: DateTime<Utc>) -> String {
        let expires = expires_at.timestamp();
        format!(
            "{}/approvals/{id}?decision={}&expires={expires}&signature={}",
            self.base_url.trim_end_matches('/'),
            decision.as_str(),
            self.signature(id, decision, expires)
        )
    }

    /// Check a link's parameters: signature first (so nothing about an
    /// unsigned id is revealed), then expiry.
    pub fn verify(
        &self,
        id: &str,
        decision: Decision,
        expires: i64,
        signature: &str,
        now: DateTime<Utc>,
    ) -> Result<(), ApprovalError> {
        if self.secret.is_empty() {
            return Err(ApprovalError::NoSigningKey);
        }
        let expected = self.signature(id, decision, expires);
        // Constant-time comparison: a timing side channel must not reveal
        // how much of a guessed signature was right.
        let same = expected.len() == signature.len()
            && expected
                .bytes()
                .zip(signature.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !same {
            return Err(ApprovalError::BadSignature);
        }
        let expired_at = DateTime::from_timestamp(expires, 0).ok_or(ApprovalError::BadSignature)?;
        if now > expired_at {
            return Err(ApprovalError::Expired { expired_at });
        }
        Ok(())
    }
}

fn new_id() -> Result<String, ApprovalError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| {
        PortError::transient(
            "drawing a random approval id",
            std::io::Error::other(e.to_string()),
        )
    })?;
    Ok(hex::encode(bytes))
}

pub struct ApprovalRequest {
    pub token: String,
    pub execution: String,
    pub purpose: String,
    pub summary: Value,
    pub ttl: Duration,
}

pub async fn request(
    state: &dyn StateStore,
    signer: &LinkSigner<'_>,
    req: ApprovalRequest,
    now: DateTime<Utc>,
) -> Result<(Approval, ApprovalLinks), ApprovalError> {
    // Checked before the token is stored, so no request is left without links.
    if signer.secret.is_empty() {
        return Err(ApprovalError::NoSigningKey);
    }
    if signer.base_url.trim().is_empty() {
        return Err(ApprovalError::NoCallbackUrl);
    }
    let approval = Approval {
        id: new_id()?,
        token: req.token,
        execution: req.execution,
        purpose: req.purpose,
        summary: req.summary,
        created_at: now,
        expires_at: now + req.ttl,
        status: ApprovalStatus::Pending,
        decider: None,
        decided_at: None,
        reason: None,
    };
    let value = serde_json::to_value(&approval)
        .map_err(|e| PortError::permanent("encoding an approval", "a bug", e))?;
    state
        .put(PK, &approval.id, value, Condition::NotExists)
        .await?;
    let links = ApprovalLinks {
        approve: signer.link(&approval.id, Decision::Approve, approval.expires_at),
        reject: signer.link(&approval.id, Decision::Reject, approval.expires_at),
    };
    Ok((approval, links))
}

pub async fn get(state: &dyn StateStore, id: &str) -> Result<Approval, ApprovalError> {
    let item = state
        .get(PK, id)
        .await?
        .ok_or_else(|| ApprovalError::Unknown { id: id.to_string() })?;
    serde_json::from_value(item.value).map_err(|e| {
        PortError::permanent(format!("reading approval {id}"), "the record is damaged", e).into()
    })
}

pub async fn pending(
    state: &dyn StateStore,
    now: DateTime<Utc>,
) -> Result<Vec<Approval>, ApprovalError> {
    let mut out = Vec::new();
    for (_, item) in state.query(PK).await? {
        if let Ok(a) = serde_json::from_value::<Approval>(item.value) {
            if a.status == ApprovalStatus::Pending && a.expires_at >= now {
                out.push(a);
            }
        }
    }
    out.sort_by_key(|a| a.created_at);
    Ok(out)
}

/// Every request, pending or decided, newest first (the console's list).
pub async fn all(state: &dyn StateStore) -> Result<Vec<Approval>, ApprovalError> {
    let mut out: Vec<Approval> = state
        .query(PK)
        .await?
        .into_iter()
        .filter_map(|(_, item)| serde_json::from_value(item.value).ok())
        .collect();
    out.sort_by_key(|approval| std::cmp::Reverse(approval.created_at));
    Ok(out)
}

/// Record a decision once. The caller then answers the task token.
pub async fn decide(
    state: &dyn StateStore,
    id: &str,
    decision: Decision,
    decider: &str,
    reason: Option<String>,
    now: DateTime<Utc>,
) -> Result<Approval, ApprovalError> {
    let item = state
        .get(PK, id)
        .await?
        .ok_or_else(|| ApprovalError::Unknown { id: id.to_string() })?;
    let mut approval: Approval = serde_json::from_value(item.value).map_err(|e| {
        PortError::permanent(format!("reading approval {id}"), "the record is damaged", e)
    })?;
    if approval.status != ApprovalStatus::Pending {
        return Err(ApprovalError::AlreadyDecided {
            id: id.to_string(),
            status: approval.status,
            decider: approval.decider.unwrap_or_default(),
        });
    }
    if now > approval.expires_at {
        return Err(ApprovalError::Expired {
            expired_at: approval.expires_at,
        });
    }
    approval.status = match decision {
        Decision::Approve => ApprovalStatus::Approved,
        Decision::Reject => ApprovalStatus::Rejected,
    };
    approval.decider = Some(decider.to_string());
    approval.decided_at = Some(now);
    approval.reason = reason;
    let value = serde_json::to_value(&approval)
        .map_err(|e| PortError::permanent("encoding an approval", "a bug", e))?;
    match state
        .put(PK, id, value, Condition::VersionIs(item.version))
        .await
    {
        Ok(_) => Ok(approval),
        // Someone decided between our read and our write: theirs stands.
        Err(PortError::ConditionFailed { .. }) => {
            let winner = get(state, id).await?;
            Err(ApprovalError::AlreadyDecided {
                id: id.to_string(),
                status: winner.status,
                decider: winner.decider.unwrap_or_default(),
            })
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn links_verify_only_unaltered_and_unexpired() {
        let signer = LinkSigner {
            secret: b"secret",
            base_url: "http://127.0.0.1:8080/",
        };
        let now = Utc::now();
        let expires = now + Duration::hours(1);
        let link = signer.link("abc", Decision::Approve, expires);
        assert!(link.starts_with("http://127.0.0.1:8080/approvals/abc?decision=approve&expires="));
        let sig = link.rsplit("signature=").next().unwrap();
        let exp = expires.timestamp();
        assert!(signer
            .verify("abc", Decision::Approve, exp, sig, now)
            .is_ok());
        // The approve signature does not authorise a reject, another id,
        // a later expiry, or another secret.
        assert!(matches!(
            signer.verify("abc", Decision::Reject, exp, sig, now),
            Err(ApprovalError::BadSignature)
        ));
        assert!(matches!(
            signer.verify("abd", Decision::Approve, exp, sig, now),
            Err(ApprovalError::BadSignature)
        ));
        assert!(matches!(
            signer.verify("abc", Decision::Approve, exp + 3600, sig, now),
            Err(ApprovalError::BadSignature)
        ));
        let other = LinkSigner {
            secret: b"other",
            base_url: "x",
        };
        assert!(matches!(
            other.verify("abc", Decision::Approve, exp, sig, now),
            Err(ApprovalError::BadSignature)
        ));
        assert!(matches!(
            signer.verify("abc", Decision::Approve, exp, sig, now + Duration::hours(2)),
            Err(ApprovalError::Expired { .. })
        ));
        assert_eq!(ApprovalError::BadSignature.http_status(), 403);
    }
}
