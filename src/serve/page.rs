//! The operator's page on the engine's HTTP port: `GET /` (one HTML file with its script and style, embedded in
//! the binary: no CDN), and the JSON it reads: `GET /api/customer/{id}` (the customer's recent purchases beside
//! their current top 12, with article names, types, colours, scores, sources and model versions),
//! `GET /api/customers/recent` (customers who bought last, to pick one), and `GET /api/customer/{id}/events`
//! (server-sent events: the customer's view again whenever their list changes), `GET /api/backtest` (the last
//! backtest's summary: MAP@12 per method, candidate recall per source) and `GET /images/{article_id}` (the
//! article's picture when `[page] images_dir` is set). The engine view reads `/health` and `/api/backtest`.

use super::Shared;
use crate::data::{format_article_id, format_day, parse_hex32, ArticleIdx, CustomerIdx, CustomerKey};
use crate::pipeline::Pipeline;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use std::sync::Arc;
use std::time::Duration;

const PAGE: &str = include_str!("page.html");
/// How often a live view checks the customer's list.
const LIVE_EVERY: Duration = Duration::from_millis(500);
/// Customers `GET /api/customers/recent` names.
const RECENT_CUSTOMERS: usize = 12;

/// What the page reads besides the engine's state (from `[page]` and `[backtest]`).
#[derive(Debug, Clone, Default)]
pub struct PageSettings {
    /// Article images, Kaggle layout (`<dir>/012/0123456789.jpg`).
    pub images_dir: Option<std::path::PathBuf>,
    /// The backtest's summary file.
    pub backtest_summary: Option<std::path::PathBuf>,
}

impl PageSettings {
    pub fn from_config(cfg: &crate::config::Config) -> Self {
        let path = |s: &str| (!s.is_empty()).then(|| std::path::PathBuf::from(s));
        PageSettings { images_dir: path(&cfg.page.images_dir), backtest_summary: path(&cfg.backtest.summary) }
    }

    /// The image file of an article in the Kaggle layout (whether it exists or not).
    fn image_path(&self, article_id: u32) -> Option<std::path::PathBuf> {
        let id = format_article_id(article_id);
        self.images_dir.as_ref().map(|d| d.join(&id[..3]).join(format!("{id}.jpg")))
    }
}

pub async fn index() -> Html<&'static str> {
    Html(PAGE)
}

/// A file's bytes, read off the async threads.
async fn read_file(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::read(path)).await.unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
}

fn error(status: StatusCode, msg: String) -> Response {
    (status, Json(serde_json::json!({ "error": msg }))).into_response()
}

/// `GET /images/0123456789`: the article's picture (`image/jpeg`); 404 with the reason when there is none.
pub async fn image(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let article_id = match crate::data::parse_article_id(id.as_bytes()) {
        Ok(a) => a,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("article id: {}", e.reason)),
    };
    let Some(path) = s.page.image_path(article_id) else {
        return error(StatusCode::NOT_FOUND, "no image directory configured ([page] images_dir)".into());
    };
    match read_file(&path).await {
        Ok(bytes) => ([(axum::http::header::CONTENT_TYPE, "image/jpeg"), (axum::http::header::CACHE_CONTROL, "max-age=3600")], bytes).into_response(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => error(StatusCode::NOT_FOUND, format!("no image for article {}", format_article_id(article_id))),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "article image unreadable");
            error(StatusCode::INTERNAL_SERVER_ERROR, format!("the image of article {} is unreadable", format_article_id(article_id)))
        }
    }
}

/// `GET /api/backtest`: the last backtest's summary as `streamrec backtest` wrote it; 404 with what to run when
/// there is none.
pub async fn backtest(State(s): State<Arc<Shared>>) -> Response {
    let Some(path) = s.page.backtest_summary.clone() else {
        return error(StatusCode::NOT_FOUND, "backtest summaries are off ([backtest] summary = \"\")".into());
    };
    match read_file(&path).await {
        Ok(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(v) => Json(v).into_response(),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{} is not a backtest summary: {e}", path.display())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            error(StatusCode::NOT_FOUND, format!("no backtest yet: {} does not exist (run `streamrec backtest --data DIR`)", path.display()))
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{}: {e}", path.display())),
    }
}

/// A customer id from the path, or the response that says what is wrong with it.
fn customer(p: &Pipeline, id: &str) -> Result<(CustomerKey, CustomerIdx), Response> {
    let key = parse_hex32("customer_id", id.as_bytes()).map(CustomerKey).map_err(|e| error(StatusCode::BAD_REQUEST, format!("customer id: {} (64 hexadecimal characters)", e.reason)))?;
    let c = p.state.customer(&key).ok_or_else(|| error(StatusCode::NOT_FOUND, "no such customer in the engine's state".into()))?;
    Ok((key, c))
}

fn article_json(p: &Pipeline, page: &PageSettings, a: ArticleIdx) -> serde_json::Value {
    let x = p.state.catalog.get(a);
    let image = page.image_path(x.article_id).filter(|f| f.is_file()).map(|_| format!("/images/{}", format_article_id(x.article_id)));
    serde_json::json!({
        "article_id": format_article_id(x.article_id),
        "name": x.prod_name,
        "type": x.product_type_name,
        "colour": x.colour_group_name,
        "perceived_colour": x.perceived_colour_master_name,
        "image": image,
    })
}

/// The customer view: recent purchases (newest first) and the list as of the engine's event time.
fn view(p: &Pipeline, page: &PageSettings, key: &CustomerKey, c: CustomerIdx) -> serde_json::Value {
    let user = &p.state.users[c as usize];
    let recent: Vec<serde_json::Value> = user
        .recent
        .iter()
        .rev()
        .map(|r| {
            let mut j = article_json(p, page, r.article);
            j["day"] = format_day(r.day).into();
            // The article's mean price around that day (a purchase's own price is not kept in the state).
            j["price"] = p.state.items.mean_price(r.article, r.day).into();
            j
        })
        .collect();
    let items: Vec<serde_json::Value> = p
        .recommend(c, 12)
        .into_iter()
        .map(|i| {
            let mut j = article_json(p, page, i.article);
            j["score"] = i.score.into();
            j["sources"] = i.sources.names().into();
            j
        })
        .collect();
    serde_json::json!({
        "customer_id": crate::data::format_hex32(&key.0),
        "as_of": format_day(p.state.clock),
        "recent": recent,
        "items": items,
        "model_versions": p.model_versions(),
    })
}

pub async fn customer_view(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let p = s.pipeline.read().unwrap_or_else(|e| e.into_inner());
    match customer(&p, &id) {
        Ok((key, c)) => Json(view(&p, &s.page, &key, c)).into_response(),
        Err(r) => r,
    }
}

/// Customers whose newest purchase is the latest, newest first.
pub async fn recent_customers(State(s): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let p = s.pipeline.read().unwrap_or_else(|e| e.into_inner());
    let mut last: Vec<(u16, CustomerIdx)> = p.state.users.iter().enumerate().filter_map(|(c, u)| u.recent.last().map(|r| (r.day, c as CustomerIdx))).collect();
    let n = RECENT_CUSTOMERS.min(last.len());
    if n > 0 {
        last.select_nth_unstable_by(n - 1, |a, b| b.cmp(a));
        last.truncate(n);
        last.sort_unstable_by(|a, b| b.cmp(a));
    }
    let ids: Vec<serde_json::Value> = last.iter().map(|&(day, c)| serde_json::json!({"customer_id": crate::data::format_hex32(&p.state.ids.key(c).0), "last_purchase": format_day(day)})).collect();
    Json(serde_json::json!({"customers": ids}))
}

/// Server-sent events: the customer view now, then again each time their list changes (checked every
/// [`LIVE_EVERY`]); an unknown or malformed id is refused before the stream starts.
pub async fn customer_events(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let key = {
        let p = s.pipeline.read().unwrap_or_else(|e| e.into_inner());
        match customer(&p, &id) {
            Ok((key, _)) => key,
            Err(r) => return r,
        }
    };
    let stream = futures::stream::unfold((s, key, None::<serde_json::Value>), |(s, key, last)| async move {
        loop {
            let now = {
                let p = s.pipeline.read().unwrap_or_else(|e| e.into_inner());
                p.state.customer(&key).map(|c| view(&p, &s.page, &key, c))
            };
            if let Some(v) = now.filter(|v| last.as_ref().map(|l| (&l["items"], &l["recent"])) != Some((&v["items"], &v["recent"]))) {
                let event = Event::default().event("customer").data(v.to_string());
                return Some((Ok::<_, std::convert::Infallible>(event), (s, key, Some(v))));
            }
            tokio::time::sleep(LIVE_EVERY).await;
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}
