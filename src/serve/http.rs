//! The engine's HTTP endpoint: `GET /recommendations/{customer_id}` (the customer's list as of the engine's
//! current event time), `/metrics` (Prometheus text format, from the `metrics` crate's recorder) and
//! `/health`.

use super::{ServeError, Shared};
use crate::data::{parse_hex32, CustomerKey};
use crate::events::{Recommendation, Trigger};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

/// The process-wide recorder (installed once; later engines in the same process share it).
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE.get_or_init(|| PrometheusBuilder::new().install_recorder().ok()).as_ref()
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .route("/recommendations/{customer_id}", get(recommendations))
        .with_state(shared)
}

/// An address to listen on: `HOST:PORT` with an IP or a host name (`localhost:8080`), the first address it
/// resolves to.
pub fn parse_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let mut addrs = s.to_socket_addrs().map_err(|e| format!("{s:?}: expected HOST:PORT ({e})"))?;
    addrs.next().ok_or_else(|| format!("{s:?} resolves to no address"))
}

/// Binds `addr` and serves in a background task.
pub async fn spawn(addr: std::net::SocketAddr, shared: Arc<Shared>) -> Result<tokio::task::JoinHandle<()>, ServeError> {
    prometheus();
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| ServeError::Http(format!("binding {addr}: {e}")))?;
    let local = listener.local_addr().map_err(|e| ServeError::Http(e.to_string()))?;
    tracing::info!(%local, "http listening");
    let app = router(shared);
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "http server stopped");
        }
    }))
}

async fn health(State(s): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let (clock, customers) = s.pipeline.read().map(|p| (crate::data::format_day(p.state.clock), p.state.users.len())).unwrap_or_default();
    Json(serde_json::json!({
        "status": "ok",
        "event_time": clock,
        "customers": customers,
        "events": s.counters.events.load(Ordering::Relaxed),
        "recommendations": s.counters.recommendations.load(Ordering::Relaxed),
        "dead_letters": s.counters.dead_letters.load(Ordering::Relaxed),
    }))
}

async fn metrics_text() -> Response {
    match prometheus() {
        Some(h) => ([("content-type", "text/plain; version=0.0.4")], h.render()).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "metrics recorder not installed").into_response(),
    }
}

async fn recommendations(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let key = match parse_hex32("customer_id", id.as_bytes()) {
        Ok(k) => CustomerKey(k),
        Err(e) => return (StatusCode::BAD_REQUEST, Json(serde_json::json!({"error": format!("customer_id: {}", e.reason)}))).into_response(),
    };
    let p = s.pipeline.read().unwrap_or_else(|e| e.into_inner());
    let Some(c) = p.state.customer(&key) else {
        return (StatusCode::NOT_FOUND, Json(serde_json::json!({"error": "unknown customer"}))).into_response();
    };
    let r = Recommendation { customer: key, as_of: p.state.clock, seq: 0, trigger: Trigger::Query, items: p.recommend(c, 12) };
    let msg = r.to_msg(|a| p.state.catalog.id(a), p.model_versions());
    Json(msg).into_response()
}

#[cfg(test)]
mod tests {
    /// `--http localhost:PORT` is accepted (host names resolve), and a bad address says what was expected.
    #[test]
    fn http_host_names_are_accepted() {
        let a = super::parse_addr("localhost:8080").unwrap();
        assert!(a.ip().is_loopback() && a.port() == 8080, "{a}");
        assert_eq!(super::parse_addr("127.0.0.1:9").unwrap().port(), 9);
        assert!(super::parse_addr("localhost").unwrap_err().contains("expected HOST:PORT"));
        assert!(super::parse_addr("127.0.0.1:99999").is_err());
    }
}
