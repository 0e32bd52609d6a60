//! Embedding a catalogue's article texts, writing them to the text vector store as one version, and searching
//! them: [`embed`] runs the encoder in batches with progress, [`store_catalogue`] writes and activates a version
//! named after the model and the texts (the same catalogue and model give the same version, so a second run has
//! nothing to do), and [`TextSearch`] answers queries from an in-memory copy of the active version.

use super::{article_text, TextEncoder, TextError};
use crate::data::{ArticleIdx, Articles};
use super::quant::QuantIndex;
use crate::two_tower::store::{StoreError, VectorStore};

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error(transparent)]
    Text(#[from] TextError),
    #[error("text vectors: {0}")]
    Store(#[from] StoreError),
}

/// Unit vectors for `texts`, row-major in `texts`' order, `batch` texts per encoder run; `progress` gets the count
/// done after each. Texts go to the encoder sorted by token count, so a batch pads to nearly its own length
/// (as sentence-transformers' `encode` does), not to the longest text that happens to sit beside a short one.
pub fn embed(enc: &TextEncoder, texts: &[String], batch: usize, progress: &dyn Fn(usize)) -> Result<Vec<f32>, TextError> {
    let dim = enc.dim();
    let lens: Vec<usize> = texts.iter().map(|t| enc.token_ids(t).map(|ids| ids.len())).collect::<Result<_, _>>()?;
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| (lens[i], i));
    let mut out = vec![0.0f32; texts.len() * dim];
    let mut done = 0;
    for chunk in order.chunks(batch.max(1)) {
        let batch_texts: Vec<&str> = chunk.iter().map(|&i| texts[i].as_str()).collect();
        let v = enc.encode(&batch_texts)?;
        for (row, &i) in v.chunks_exact(dim).zip(chunk) {
            out[i * dim..(i + 1) * dim].copy_from_slice(row);
        }
        done += chunk.len();
        progress(done);
    }
    Ok(out)
}

/// The articles that have text to embed (ids and texts, in catalogue order; placeholder rows have none).
pub fn catalogue_texts(articles: &Articles) -> (Vec<u32>, Vec<String>) {
    let mut ids = Vec::with_capacity(articles.len());
    let mut texts = Vec::with_capacity(articles.len());
    for i in 0..articles.len() as ArticleIdx {
        let t = article_text(articles.get(i));
        if !t.is_empty() {
            ids.push(articles.id(i));
            texts.push(t);
        }
    }
    (ids, texts)
}

/// The version name for `texts` under `enc`: the model's fingerprint and a checksum of every (id, text) pair.
pub fn version_for(enc: &TextEncoder, ids: &[u32], texts: &[String]) -> String {
    let mut h = crc32fast::Hasher::new();
    for (id, t) in ids.iter().zip(texts) {
        h.update(&id.to_le_bytes());
        h.update(t.as_bytes());
        h.update(&[0]);
    }
    let fp: String = enc.manifest.fingerprint.chars().filter(char::is_ascii_alphanumeric).take(8).collect();
    format!("text-{fp}-{:08x}", h.finalize())
}

/// What [`store_catalogue`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub version: String,
    /// Articles embedded now (0: the version was there already).
    pub embedded: usize,
    pub secs: f64,
}

/// Embeds `articles` (unless the store holds this exact version already) and makes the version active.
pub async fn store_catalogue(enc: &TextEncoder, store: &VectorStore, articles: &Articles, batch: usize, progress: &dyn Fn(usize, usize)) -> Result<Stored, EmbedError> {
    let started = std::time::Instant::now();
    let (ids, texts) = catalogue_texts(articles);
    let version = version_for(enc, &ids, &texts);
    let have = store.versions().await?.iter().any(|v| v.version == version);
    let mut embedded = 0;
    if !have {
        let vectors = embed(enc, &texts, batch, &|done| progress(done, texts.len()))?;
        store.write_version(&version, &ids, &vectors, enc.dim()).await?;
        embedded = ids.len();
    }
    if store.active()?.as_deref() != Some(version.as_str()) {
        store.activate(&version).await?;
    }
    Ok(Stored { version, embedded, secs: started.elapsed().as_secs_f64() })
}

/// One search hit: the article and its cosine with the query.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub article_id: u32,
    pub score: f32,
}

/// The encoder and an in-memory copy of a text-vector version: nearest articles by cosine (an 8-bit scan for a
/// shortlist, scored exactly: [`QuantIndex`]).
pub struct TextSearch {
    /// Shared with the text candidate source when one serves (one ONNX session for both).
    pub encoder: std::sync::Arc<TextEncoder>,
    pub version: String,
    index: QuantIndex,
    /// Article id of each index slot.
    ids: Vec<u32>,
    slots: rustc_hash::FxHashMap<u32, ArticleIdx>,
    /// Threads a query's scan is split over (the machine's cores, at most 4).
    threads: usize,
}

impl TextSearch {
    /// The active version of `store` (an error when there is none, or its dimension is not the encoder's).
    pub async fn open(encoder: std::sync::Arc<TextEncoder>, store: &VectorStore) -> Result<Self, EmbedError> {
        let version = store.active()?.ok_or_else(|| TextError::Read { path: "text vectors".into(), message: "no active version: run `streamrec embed-text --data DIR`".into() })?;
        let (ids, vectors, dim) = store.load(&version).await?;
        if dim != encoder.dim() {
            return Err(TextError::Manifest { path: encoder.dir.clone(), message: format!("text vectors {version} have dimension {dim}, the encoder {}", encoder.dim()) }.into());
        }
        Ok(Self::from_vectors(encoder, version, &ids, &vectors))
    }

    /// Over given vectors (row-major, the encoder's dimension each) as version `version`.
    pub fn from_vectors(encoder: std::sync::Arc<TextEncoder>, version: String, ids: &[u32], vectors: &[f32]) -> Self {
        let dim = encoder.dim();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
        let mut s = TextSearch { encoder, version, index: QuantIndex::new(dim), ids: Vec::new(), slots: Default::default(), threads };
        for (id, v) in ids.iter().zip(vectors.chunks_exact(dim)) {
            s.set(*id, v);
        }
        s
    }

    /// Adds or replaces one article's vector (a new article arriving while serving).
    pub fn set(&mut self, article_id: u32, v: &[f32]) {
        let next = self.ids.len() as ArticleIdx;
        let slot = *self.slots.entry(article_id).or_insert(next);
        if slot == next {
            self.ids.push(article_id);
        }
        self.index.set(slot, v);
    }

    /// Embeds `articles`' texts and adds them (new articles while serving); returns the ids of those that had
    /// text and their vectors (row-major), for the store.
    pub fn add_articles(&mut self, articles: &[&crate::data::Article]) -> Result<(Vec<u32>, Vec<f32>), TextError> {
        let (ids, texts): (Vec<u32>, Vec<String>) = articles.iter().map(|a| (a.article_id, article_text(a))).filter(|(_, t)| !t.is_empty()).unzip();
        let vectors = self.encoder.encode(&texts)?;
        for (id, v) in ids.iter().zip(vectors.chunks_exact(self.encoder.dim())) {
            self.set(*id, v);
        }
        Ok((ids, vectors))
    }

    /// Every article's id and vector (row-major), in the order they were added: the loaded version's order,
    /// then articles added while serving.
    pub fn rows(&self) -> (Vec<u32>, Vec<f32>) {
        let mut vectors = Vec::with_capacity(self.ids.len() * self.encoder.dim());
        let mut ids = Vec::with_capacity(self.ids.len());
        for (slot, &id) in self.ids.iter().enumerate() {
            if let Some(v) = self.index.vector(slot as ArticleIdx) {
                ids.push(id);
                vectors.extend_from_slice(v);
            }
        }
        (ids, vectors)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn contains(&self, article_id: u32) -> bool {
        self.slots.contains_key(&article_id)
    }

    /// The `k` articles nearest to `query`, best first.
    pub fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>, TextError> {
        let q = self.encoder.encode_query(query)?;
        Ok(self.nearest(&q, k))
    }

    /// The `k` articles nearest to the unit vector `q`, best first.
    pub fn nearest(&self, q: &[f32], k: usize) -> Vec<Hit> {
        self.hits(self.index.top_k(q, k, self.threads))
    }

    /// [`TextSearch::nearest`] by a scan of every f32 vector (to measure the 8-bit shortlist against).
    pub fn nearest_exact(&self, q: &[f32], k: usize) -> Vec<Hit> {
        self.hits(self.index.top_k_exact(q, k))
    }

    fn hits(&self, slots: Vec<(ArticleIdx, f32)>) -> Vec<Hit> {
        slots.into_iter().map(|(slot, score)| Hit { article_id: self.ids[slot as usize], score }).collect()
    }
}
