//! The engine's HTTP endpoint: `GET /recommendations/{customer_id}` (the customer's list as of the engine's
//! current event time), `GET /search?q=...&k=...` (articles nearest to the words by text embedding), `/metrics`
//! (Prometheus text format, from the `metrics` crate's recorder), `/health`, and the operator's page (`/` and
//! the `/api/` it reads: [`super::page`]).

use super::{ServeError, Shared};
use crate::data::{parse_hex32, CustomerKey};
use crate::events::{Recommendation, Trigger};
use crate::kafka::link::LinkStatus;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

/// Bucket bounds (seconds) of the `*_seconds` histograms: 1 ms … 60 s, so Prometheus can take quantiles over
/// instances (`histogram_quantile`) and a purchase → list delay at the live edge and one during a catch-up both
/// land in a bucket.
pub const SECONDS_BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0, 60.0];

/// The `instance` label every series of this process carries (set once, before the recorder is installed).
static INSTANCE: OnceLock<String> = OnceLock::new();

/// Names this engine instance in every exported series (`instance="..."`): several instances behind one
/// Prometheus keep their series apart by it (the compose stack's Prometheus keeps it: `honor_labels`). The
/// first name set stands (the recorder is process-wide).
pub fn set_instance(name: String) {
    let _ = INSTANCE.set(name);
}

/// The instance name for the metrics: `kafka.group_instance_id` when set (stable over restarts), else the host
/// name and the HTTP port (or the process id without HTTP).
pub fn instance_name(group_instance_id: &str, http: Option<std::net::SocketAddr>) -> String {
    if !group_instance_id.is_empty() {
        return group_instance_id.to_string();
    }
    let host = hostname().unwrap_or_else(|| "localhost".into());
    match http {
        Some(a) => format!("{host}:{}", a.port()),
        None => format!("{host}-{}", std::process::id()),
    }
}

fn hostname() -> Option<String> {
    // Linux's own record of it (containers get the service's name here).
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    Some(name.trim().to_string()).filter(|n| !n.is_empty())
}

/// The process-wide recorder (installed once; later engines in the same process share it).
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let mut builder = PrometheusBuilder::new();
            if let Some(name) = INSTANCE.get() {
                builder = builder.add_global_label("instance", name);
            }
            let built = builder.set_buckets_for_metric(metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS).and_then(|b| b.install_recorder());
            match built {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::error!(error = %e, "no Prometheus recorder: /metrics answers 503");
                    None
                }
            }
        })
        .as_ref()
}

/// Installs the recorder and registers the series an operator's board reads, at zero, with their help text:
/// a counter nothing has touched yet is exported as 0, not missing (a board panel shows "no data" for a missing
/// series, which reads as broken). The engine calls this at start; `/metrics` then carries every one.
pub fn register_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    if prometheus().is_none() {
        return;
    }
    describe_counter!("streamrec_events_total", "Events applied, by input topic");
    describe_counter!("streamrec_recommendations_total", "Lists published");
    describe_counter!("streamrec_dead_letters_total", "Messages sent to the dead-letter topic");
    describe_counter!("streamrec_model_swaps_total", "Models swapped in while serving, by kind");
    describe_counter!("streamrec_model_swap_refusals_total", "Model updates the gate refused, by kind");
    describe_counter!("streamrec_model_swap_failures_total", "Model updates that did not load, by kind");
    describe_counter!("streamrec_kafka_outages_total", "Times the broker became unreachable");
    describe_gauge!("streamrec_kafka_up", "1 while the broker answers");
    describe_gauge!("streamrec_group_assigned", "1 while the group gives this instance an assignment");
    describe_gauge!("streamrec_consumer_lag", "Messages behind the end of each assigned transactions partition");
    describe_gauge!("streamrec_resident_memory_bytes", Unit::Bytes, "Resident set size of the engine process");
    describe_histogram!("streamrec_purchase_to_list_seconds", Unit::Seconds, "From a purchase's produce time to its list handed to the producer");
    describe_histogram!("streamrec_search_seconds", Unit::Seconds, "GET /search: tokenize, encode, nearest k");
    for topic in ["transactions", "articles", "customers"] {
        metrics::counter!("streamrec_events_total", "topic" => topic).increment(0);
    }
    metrics::counter!("streamrec_recommendations_total").increment(0);
    metrics::counter!("streamrec_dead_letters_total").increment(0);
    metrics::counter!("streamrec_kafka_outages_total").increment(0);
    for kind in ["ranker", "two_tower"] {
        metrics::counter!("streamrec_model_swaps_total", "kind" => kind).increment(0);
        metrics::counter!("streamrec_model_swap_refusals_total", "kind" => kind).increment(0);
        metrics::counter!("streamrec_model_swap_failures_total", "kind" => kind).increment(0);
    }
    if let Some(rss) = crate::memory::rss_bytes() {
        metrics::gauge!("streamrec_resident_memory_bytes").set(rss as f64);
    }
}

/// The largest request body taken (every endpoint is a GET: a body is never needed).
pub const MAX_BODY_BYTES: u64 = 16 * 1024;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .route("/recommendations/{customer_id}", get(recommendations))
        .route("/search", get(search))
        .route("/", get(super::page::index))
        .route("/api/customer/{customer_id}", get(super::page::customer_view))
        .route("/api/customer/{customer_id}/events", get(super::page::customer_events))
        .route("/api/customers/recent", get(super::page::recent_customers))
        .route("/api/backtest", get(super::page::backtest))
        .route("/images/{article_id}", get(super::page::image))
        .layer(axum::middleware::from_fn(limit_body))
        .with_state(shared)
}

/// Refuses a request whose body is larger than [`MAX_BODY_BYTES`], or of unannounced length, with 413
/// before any handler runs.
async fn limit_body(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let headers = req.headers();
    let len = headers.get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let chunked = headers.contains_key(axum::http::header::TRANSFER_ENCODING);
    if chunked || len.is_some_and(|n| n > MAX_BODY_BYTES) {
        metrics::counter!("streamrec_http_refused_total", "why" => "too_large").increment(1);
        let msg = format!("request body over {MAX_BODY_BYTES} bytes (or of unannounced length): every endpoint is a GET");
        return (StatusCode::PAYLOAD_TOO_LARGE, Json(serde_json::json!({ "error": msg }))).into_response();
    }
    next.run(req).await
}

/// An address to listen on: `HOST:PORT` with an IP or a host name (`localhost:8080`), the first address it
/// resolves to; a bare `PORT` is loopback only (`127.0.0.1:PORT`): all interfaces must be asked for
/// (`0.0.0.0:PORT`, as docker-compose does).
pub fn parse_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(port) = s.parse::<u16>() {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    let mut addrs = s.to_socket_addrs().map_err(|e| format!("{s:?}: expected HOST:PORT ({e})"))?;
    addrs.next().ok_or_else(|| format!("{s:?} resolves to no address"))
}

/// Binds `addr` and serves in a background task; returns it and the address bound (port 0: the one chosen).
pub async fn spawn(addr: std::net::SocketAddr, shared: Arc<Shared>) -> Result<(tokio::task::JoinHandle<()>, std::net::SocketAddr), ServeError> {
    prometheus();
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| ServeError::Http(format!("binding {addr}: {e}")))?;
    let local = listener.local_addr().map_err(|e| ServeError::Http(e.to_string()))?;
    tracing::info!(%local, "http listening");
    let app = router(shared);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "http server stopped");
        }
    });
    Ok((task, local))
}

async fn health(State(s): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let (clock, customers, applied, seq, not_made) = s.pipeline.read().map(|p| (crate::data::format_day(p.state.clock), p.state.users.len(), p.state.events, p.last_seq(), p.lists_not_made())).unwrap_or_default();
    // Degraded while the broker is unreachable: the engine keeps its state and waits; lists are as of
    // `event_time` and go stale until purchases flow again.
    let (mut status, kafka) = match s.link.status() {
        LinkStatus::Up => ("ok", serde_json::json!({"status": "up", "outages": s.link.outages()})),
        LinkStatus::Down { for_, reason } => ("degraded", serde_json::json!({"status": "down", "down_for_s": for_.as_secs_f64(), "reason": reason, "outages": s.link.outages()})),
    };
    // Degraded too while the group gives this member nothing: the broker answers but no purchase is applied.
    let g = s.group.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if g.stalled() {
        status = "degraded";
    }
    let group = serde_json::json!({
        "partitions": g.partitions,
        "partitions_of": g.partitions_of,
        "member": g.unassigned_for.is_none(),
        "unassigned_for_s": g.unassigned_for.map(|d| d.as_secs_f64()),
        "short_for_s": g.short_for.map(|d| d.as_secs_f64()),
        "replaced": g.replaced,
        "lag": g.lag.iter().map(|(p, n)| (p.to_string(), serde_json::Value::from(*n))).collect::<serde_json::Map<String, serde_json::Value>>(),
    });
    let models: serde_json::Map<String, serde_json::Value> = s.decisions.all().into_iter().map(|(k, d)| (k.to_string(), serde_json::json!(d))).collect();
    Json(serde_json::json!({
        "status": status,
        "kafka": kafka,
        "group": group,
        "event_time": clock,
        "customers": customers,
        "events": s.counters.events.load(Ordering::Relaxed),
        // Purchases in the state, those of the checkpoint it resumed from included.
        "events_in_state": applied,
        "recommendations": s.counters.recommendations.load(Ordering::Relaxed),
        "dead_letters": s.counters.dead_letters.load(Ordering::Relaxed),
        "models": models,
        "memory_bytes": crate::memory::rss_bytes(),
        // Where the state (item state included) stands in the input's order.
        "watermark": {"seq": seq, "event_time": clock},
        // Scale-out: the partitions whose lists this instance makes (and after which seq), lists left to others.
        "shares": s.shares.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        "lists_not_made": not_made,
    }))
}

async fn metrics_text() -> Response {
    if let Some(rss) = crate::memory::rss_bytes() {
        metrics::gauge!("streamrec_resident_memory_bytes").set(rss as f64);
    }
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

/// `q` and `k` of a query string (`+` is a space; percent-escapes must decode to UTF-8); another key is an error.
fn search_params(raw: Option<&str>) -> Result<(String, usize), String> {
    let (mut q, mut k) = (None, 12usize);
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_encoding::percent_decode_str(&value.replace('+', " "))
            .decode_utf8()
            .map_err(|_| format!("{key}: not UTF-8 once decoded"))?
            .into_owned();
        match key {
            "q" => q = Some(value),
            "k" => k = value.parse().map_err(|_| format!("k: {value:?} is not a whole number"))?,
            other => return Err(format!("unknown parameter {other:?} (expected q and k)")),
        }
    }
    let q = q.ok_or("q: missing (GET /search?q=black+ankle+boots&k=12)")?;
    if !(1..=1000).contains(&k) {
        return Err(format!("k: {k}, between 1 and 1000"));
    }
    Ok((q, k))
}

/// `GET /search?q=black+ankle+boots&k=12`: the articles whose text is nearest to `q` (cosine, best first), with
/// name, type and colour from the engine's catalogue. 400 with the reason for a bad query; 503 when text search
/// is off (no text model or vectors: `streamrec embed-text`).
async fn search(State(s): State<Arc<Shared>>, axum::extract::RawQuery(raw): axum::extract::RawQuery) -> Response {
    let bad = |msg: String| (StatusCode::BAD_REQUEST, Json(serde_json::json!({ "error": msg }))).into_response();
    let (q, k) = match search_params(raw.as_deref()) {
        Ok(p) => p,
        Err(e) => return bad(e),
    };
    let started = std::time::Instant::now();
    let hits = {
        let t = s.text.read().unwrap_or_else(|e| e.into_inner());
        let Some(t) = t.as_ref() else {
            let msg = "text search is off: no text model or no active text vectors (run `streamrec embed-text --data DIR`)";
            return (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "error": msg }))).into_response();
        };
        match t.search(&q, k) {
            Ok(h) => (t.version.clone(), h),
            Err(crate::text::TextError::Query(m)) => return bad(format!("q: {m}")),
            Err(e) => {
                metrics::counter!("streamrec_text_errors_total").increment(1);
                return (StatusCode::INTERNAL_SERVER_ERROR, Json(serde_json::json!({ "error": e.to_string() }))).into_response();
            }
        }
    };
    let took_ms = started.elapsed().as_secs_f64() * 1e3;
    metrics::histogram!("streamrec_search_seconds").record(took_ms / 1e3);
    let p = s.pipeline.read().unwrap_or_else(|e| e.into_inner());
    let results: Vec<serde_json::Value> = hits
        .1
        .iter()
        .map(|h| {
            let a = p.state.catalog.idx(h.article_id).map(|i| p.state.catalog.get(i));
            serde_json::json!({
                "article_id": crate::data::format_article_id(h.article_id),
                "score": h.score,
                "prod_name": a.map(|a| a.prod_name.as_str()),
                "product_type": a.map(|a| a.product_type_name.as_str()),
                "colour": a.map(|a| a.colour_group_name.as_str()),
            })
        })
        .collect();
    Json(serde_json::json!({ "query": q.trim(), "k": k, "text_version": hits.0, "took_ms": took_ms, "results": results })).into_response()
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
        // A bare port binds loopback only.
        assert_eq!(super::parse_addr("8080").unwrap(), "127.0.0.1:8080".parse::<std::net::SocketAddr>().unwrap());
        assert!(super::parse_addr("127.0.0.1:99999").is_err());
    }

    /// Sends raw `request` to a fresh endpoint; returns the status line's code and the body.
    async fn exchange(request: Vec<u8>) -> (u16, String) {
        exchange_with(request, Default::default()).await
    }

    /// [`exchange`] with the engine's group membership as given.
    async fn exchange_with(request: Vec<u8>, group: crate::serve::GroupView) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let cfg = crate::config::Config::load(None).unwrap();
        let p = crate::pipeline::Pipeline::new(&cfg.core()).unwrap();
        let shared = std::sync::Arc::new(super::Shared { pipeline: std::sync::RwLock::new(p), counters: Default::default(), link: Default::default(), group: std::sync::Mutex::new(group), text: Default::default(), decisions: Default::default(), page: Default::default(), shares: Default::default() });
        let task = super::spawn("127.0.0.1:0".parse().unwrap(), shared.clone()).await.unwrap();
        let addr = task.1;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(&request).await.unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut buf)).await;
        task.0.abort();
        let text = String::from_utf8_lossy(&buf).to_string();
        let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        (code, text)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn http_a_request_body_over_the_limit_is_refused_and_health_answers() {
        let (code, body) = exchange(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec()).await;
        assert_eq!(code, 200, "{body}");
        assert!(body.contains("\"status\":\"ok\"") && body.contains("\"kafka\""), "{body}");
        let big = super::MAX_BODY_BYTES as usize + 1;
        let mut req = format!("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {big}\r\n\r\n").into_bytes();
        req.extend(std::iter::repeat_n(b'x', big));
        let (code, body) = exchange(req).await;
        assert_eq!(code, 413, "{body}");
        let (code, _) = exchange(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec()).await;
        assert_eq!(code, 413);
    }

    /// A member the group has given nothing for longer than a rebalance takes makes `/health` degraded, though
    /// the broker answers (it applies nothing); a short wait, as in any rebalance, does not.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn health_is_degraded_while_the_group_gives_this_member_nothing() {
        let health = |group| async move {
            let (code, text) = exchange_with(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(), group).await;
            assert_eq!(code, 200, "{text}");
            serde_json::from_str::<serde_json::Value>(text.split_once("\r\n\r\n").map_or("", |(_, b)| b)).unwrap()
        };
        let unassigned = |secs: u64| crate::serve::GroupView { unassigned_for: Some(std::time::Duration::from_secs(secs)), replaced: 1, ..Default::default() };
        let h = health(unassigned(2)).await;
        assert!(h["status"] == "ok" && h["group"]["member"] == false, "{h}");
        let h = health(unassigned(crate::serve::source::GROUP_STALL.as_secs())).await;
        assert!(h["status"] == "degraded" && h["kafka"]["status"] == "up" && h["group"]["replaced"] == 1, "{h}");
        let h = health(crate::serve::GroupView { partitions: vec![0, 1], partitions_of: 2, lag: vec![(0, 7), (1, 0)], ..Default::default() }).await;
        assert!(h["status"] == "ok" && h["group"]["member"] == true && h["group"]["partitions"] == serde_json::json!([0, 1]), "{h}");
        assert_eq!(h["group"]["lag"], serde_json::json!({"0": 7, "1": 0}), "lag per partition: {h}");
        // One instance given part of the partitions: held, and degraded once that outlasts a rebalance.
        let short = |secs: u64| crate::serve::GroupView { partitions: vec![1], partitions_of: 2, short_for: Some(std::time::Duration::from_secs(secs)), ..Default::default() };
        let h = health(short(1)).await;
        assert!(h["status"] == "ok" && h["group"]["member"] == true, "{h}");
        let h = health(short(crate::serve::source::GROUP_STALL.as_secs())).await;
        assert!(h["status"] == "degraded" && h["group"]["partitions_of"] == 2 && h["group"]["short_for_s"].as_f64() >= Some(12.0), "{h}");
    }
}
