//! `GET /v1/checkpoint`, `GET /v1/checkpoint/key` and the proofs an auditor
//! checks against checkpoints.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use shiplog_core::merkle::{to_base64, to_hex};
use shiplog_store::{ReadQuery, tree};

use crate::events::parse_query;
use crate::{ApiError, AppState, Code};

/// The latest signed checkpoint, as a signed note (text/plain).
pub async fn checkpoint(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let cp = state.ledger.checkpoint().await?;
    Ok(HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(cp.note))
}

/// The key that verifies checkpoints, in signed-note verifier form.
pub async fn key(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(format!("{}\n", state.ledger.verifier_key()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct InclusionQuery {
    seq: Option<u64>,
    tree_size: Option<u64>,
}

/// Proof that event `seq` is in the tree of `treeSize` events (default: the
/// latest checkpoint's size).
pub async fn inclusion(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let q: InclusionQuery = parse_query(&req)?;
    let seq = q.seq.ok_or_else(|| bad("seq", "seq is required: the event whose inclusion to prove".into()))?;
    let tree_size = match q.tree_size {
        Some(n) => n,
        None => state.ledger.checkpoint().await?.size,
    };
    let size = state.ledger.size();
    if tree_size > size {
        return Err(bad("treeSize", format!("treeSize {tree_size} is larger than the ledger ({size} events)")));
    }
    if tree_size == 0 {
        return Err(bad("treeSize", "the tree is empty: no event can be proven in it".into()));
    }
    if seq >= tree_size {
        return Err(bad(
            "seq",
            format!("seq {seq} is not in a tree of {tree_size} events (seqs 0 to {})", tree_size.saturating_sub(1)),
        ));
    }
    let hashes = tree::inclusion_proof(state.ledger.store.as_ref(), seq, tree_size).await?;
    let event =
        state.ledger.store.read(ReadQuery { after: seq.checked_sub(1), limit: 1, ..ReadQuery::default() }).await?;
    let leaf = event.first().filter(|e| e.seq == seq).and_then(|e| e.leaf_hash);
    Ok(HttpResponse::Ok().json(json!({
        "leafIndex": seq,
        "treeSize": tree_size,
        "leafHash": leaf.map(|l| to_hex(&l)),
        "hashes": hashes.iter().map(to_base64).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyQuery {
    from: Option<u64>,
    to: Option<u64>,
}

/// Proof that the tree of `from` events is a prefix of the tree of `to`.
pub async fn consistency(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let q: ConsistencyQuery = parse_query(&req)?;
    let from = q.from.ok_or_else(|| bad("from", "from is required: the size of the older tree".into()))?;
    let to = match q.to {
        Some(n) => n,
        None => state.ledger.checkpoint().await?.size,
    };
    let size = state.ledger.size();
    if from == 0 || from > to {
        return Err(bad("from", format!("from must be between 1 and to ({to}), got {from}")));
    }
    if to > size {
        return Err(bad("to", format!("to {to} is larger than the ledger ({size} events)")));
    }
    let hashes = tree::consistency_proof(state.ledger.store.as_ref(), from, to).await?;
    Ok(HttpResponse::Ok().json(json!({
        "from": from,
        "to": to,
        "hashes": hashes.iter().map(to_base64).collect::<Vec<_>>(),
    })))
}

fn bad(field: &str, message: String) -> ApiError {
    ApiError::new(Code::InvalidQuery, message).with("field", field)
}
