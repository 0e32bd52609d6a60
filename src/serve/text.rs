//! Text search while serving: the active text vectors in memory for `GET /search`, and articles that arrive on
//! the `articles` topic embedded and added as they come (findable at once, and appended to the store's active
//! version so a restart keeps them). Off, with one line saying why, when there is no text model or no active
//! version (`streamrec embed-text` makes both).

use super::Shared;
use crate::data::Article;
use crate::text::embed::TextSearch;
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
            return off;
        }
        let loaded = async {
            let dir = crate::text::model_dir(Path::new(&cfg.models_dir)).map_err(|e| e.to_string())?;
            let enc = TextEncoder::load(&dir, cfg.threads).map_err(|e| e.to_string())?;
            let store = VectorStore::open(Path::new(&cfg.vectors_dir), cfg.keep_versions, cfg.index_min_rows).await.map_err(|e| e.to_string())?;
            let search = TextSearch::open(enc, &store).await.map_err(|e| e.to_string())?;
            Ok::<_, String>((store, search))
        };
        match loaded.await {
            Ok((store, search)) => {
                tracing::info!(version = %search.version, articles = search.len(), "text search on (GET /search)");
                *shared.text.write().unwrap_or_else(|e| e.into_inner()) = Some(search);
                TextService { store: Some(store), pending: Vec::new() }
            }
            Err(e) => {
                tracing::info!(reason = %e, "text search off");
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
        let batch: Vec<Article> = self.pending.drain(..self.pending.len().min(PER_TURN)).collect();
        let refs: Vec<&Article> = batch.iter().collect();
        let added = {
            let mut t = shared.text.write().unwrap_or_else(|e| e.into_inner());
            let Some(s) = t.as_mut() else { return };
            s.add_articles(&refs).map(|rows| (rows, s.version.clone()))
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
