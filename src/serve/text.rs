//! Text search while serving: the active text vectors in memory for `GET /search`, and articles that arrive on
//! the `articles` topic embedded and added as they come (findable at once, and appended to the store's active
//! version so a restart keeps them). Off, with one line saying why, when there is no text model or no active
//! version (`streamrec embed-text` makes both). When the version's gate admits it, the text candidate source is
//! plugged into the pipeline too ([`crate::text::source`]); it embeds new articles itself, as they arrive, and
//! search then takes their vectors from it rather than running the encoder twice.

use super::{Decision, Shared};
use crate::data::Article;
use crate::text::embed::TextSearch;
use crate::text::source::{self, TextSource};
use crate::text::TextEncoder;
use crate::two_tower::store::VectorStore;
use std::path::Path;

/// Articles embedded per loop turn at most: one encoder run of ~50 ms on 2 cores (about 150 articles/s), so
/// purchases keep flowing while new articles are embedded on the loop's thread.
const PER_TURN: usize = 8;
/// New articles queued at most; more means the text vectors belong to another catalogue: the rest are counted and
/// reported (`streamrec embed-text` on this catalogue is the fix), not embedded here a few at a time for minutes.
const MAX_PENDING: usize = 2_000;

pub struct TextService {
    store: Option<VectorStore>,
    pending: Vec<Article>,
}

impl TextService {
    /// Loads the text model and the active text vectors into `shared` when `[text] enabled` and both exist.
    pub async fn start(cfg: &crate::config::TextConfig, shared: &Shared) -> Self {
        let off = TextService { store: None, pending: Vec::new() };
        if !cfg.enabled {
            shared.decisions.record("text", Decision { serving: "off".into(), passed: false, reason: "[text] enabled = false".into() });
            return off;
        }
        let loaded = async {
            let dir = crate::text::model_dir(Path::new(&cfg.models_dir)).map_err(|e| e.to_string())?;
            let enc = TextEncoder::load(&dir, cfg.threads).map_err(|e| e.to_string())?;
            let store = VectorStore::open(Path::new(&cfg.vectors_dir), cfg.keep_versions, cfg.index_min_rows).await.map_err(|e| e.to_string())?;
            let search = TextSearch::open(std::sync::Arc::new(enc), &store).await.map_err(|e| e.to_string())?;
            Ok::<_, String>((store, search))
        };
        match loaded.await {
            Ok((store, search)) => {
                tracing::info!(version = %search.version, articles = search.len(), "text search on (GET /search)");
                plug_source(cfg, &search, shared).await;
                *shared.text.write().unwrap_or_else(|e| e.into_inner()) = Some(search);
                TextService { store: Some(store), pending: Vec::new() }
            }
            Err(e) => {
                tracing::info!(reason = %e, "text search off");
                shared.decisions.record("text", Decision { serving: "off".into(), passed: false, reason: format!("text search off: {e}") });
                off
            }
        }
    }

    pub fn on(&self) -> bool {
        self.store.is_some()
    }

    /// Queues articles that arrived, unless their text is indexed already.
    pub fn offer(&mut self, shared: &Shared, articles: Vec<Article>) {
        if !self.on() || articles.is_empty() {
            return;
        }
        let t = shared.text.read().unwrap_or_else(|e| e.into_inner());
        let Some(s) = t.as_ref() else { return };
        let mut skipped = 0u64;
        for a in articles.into_iter().filter(|a| !s.contains(a.article_id)) {
            if self.pending.len() < MAX_PENDING {
                self.pending.push(a);
            } else {
                skipped += 1;
            }
        }
        if skipped > 0 {
            metrics::counter!("streamrec_text_articles_skipped_total").increment(skipped);
            tracing::warn!(skipped, queued = MAX_PENDING, version = %s.version, "more new articles than text search embeds while serving: these are not searchable; run `streamrec embed-text` on this catalogue");
        }
    }

    /// Embeds up to [`PER_TURN`] queued articles into the index and appends them to the store's active version.
    /// A failure is logged and counted; those articles stay unsearchable until the next `embed-text`.
    pub async fn flush(&mut self, shared: &Shared) {
        let Some(store) = &self.store else { return };
        if self.pending.is_empty() {
            return;
        }
        // Articles the text source embedded already (it sees them first, in the pipeline) cost no encoder run.
        let known: Vec<(u32, Vec<f32>)> = {
            let p = shared.pipeline.read().unwrap_or_else(|e| e.into_inner());
            match p.source::<TextSource>() {
                Some(src) => self.pending.iter().filter_map(|a| src.vector_of(a.article_id).map(|v| (a.article_id, v.to_vec()))).collect(),
                None => Vec::new(),
            }
        };
        self.pending.retain(|a| !known.iter().any(|k| k.0 == a.article_id));
        let batch: Vec<Article> = self.pending.drain(..self.pending.len().min(PER_TURN)).collect();
        let refs: Vec<&Article> = batch.iter().collect();
        let added = {
            let mut t = shared.text.write().unwrap_or_else(|e| e.into_inner());
            let Some(s) = t.as_mut() else { return };
            for (id, v) in &known {
                s.set(*id, v);
            }
            s.add_articles(&refs).map(|(mut ids, mut vectors)| {
                for (id, v) in known {
                    ids.push(id);
                    vectors.extend(v);
                }
                ((ids, vectors), s.version.clone())
            })
        };
        match added {
            Ok(((ids, vectors), version)) => {
                metrics::counter!("streamrec_text_articles_embedded_total").increment(ids.len() as u64);
                if let Err(e) = store.append(&version, &ids, &vectors).await {
                    metrics::counter!("streamrec_text_errors_total").increment(1);
                    tracing::warn!(error = %e, articles = ids.len(), "new articles' text vectors not stored (searchable until a restart)");
                }
            }
            Err(e) => {
                metrics::counter!("streamrec_text_errors_total").increment(1);
                tracing::warn!(error = %e, articles = batch.len(), "embedding new articles failed: not searchable until the next embed-text");
            }
        }
    }
}

/// Plugs the text candidate source into the pipeline when `[text] source_k` > 0 and the version's gate admits it
/// (its neighbour lists are built here from the vectors search just loaded, off the async threads: about a minute
/// for 105k articles on 2 cores).
async fn plug_source(cfg: &crate::config::TextConfig, search: &TextSearch, shared: &Shared) {
    let decision = match source::admits(cfg, &search.version) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "text source off: its gate figures are unreadable");
            shared.decisions.record("text", Decision { serving: "off".into(), passed: false, reason: format!("version {}: gate figures unreadable: {e}", search.version) });
            return;
        }
    };
    if !decision.serves() {
        tracing::info!(version = %search.version, reason = %decision.reason(), "text source off");
        shared.decisions.record("text", Decision { serving: "off".into(), passed: false, reason: format!("version {} not served: {}", search.version, decision.reason()) });
        return;
    }
    let (version, m, dim) = (search.version.clone(), cfg.neighbours, search.encoder.dim());
    let (ids, vectors) = search.rows();
    let started = std::time::Instant::now();
    match tokio::task::spawn_blocking(move || source::Neighbours::build(version, ids, vectors, dim, m, &|_, _| {})).await {
        Ok(nb) => {
            let secs = started.elapsed().as_secs_f64();
            let mut p = shared.pipeline.write().unwrap_or_else(|e| e.into_inner());
            let src = TextSource::new(std::sync::Arc::new(nb), Some(search.encoder.clone()), &p.state, cfg.source_k);
            tracing::info!(version = %search.version, articles = src.mapped(), neighbours = m, build_secs = secs, reason = %decision.reason(), "text source on");
            p.plug(Box::new(src));
            shared.decisions.record("text", Decision { serving: search.version.clone(), passed: true, reason: decision.reason().to_string() });
        }
        Err(e) => {
            metrics::counter!("streamrec_text_errors_total").increment(1);
            tracing::warn!(error = %e, "text source off: building its neighbour lists failed");
            shared.decisions.record("text", Decision { serving: "off".into(), passed: false, reason: format!("building its neighbour lists failed: {e}") });
        }
    }
}
