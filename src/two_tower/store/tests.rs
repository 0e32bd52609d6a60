//! The vector store against real LanceDB tables in temporary directories.

use super::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// `n` unit vectors around `clusters` random centres (noise `spread`), ids 1..=n.
fn clustered(n: usize, dim: usize, clusters: usize, spread: f32, seed: u64) -> (Vec<u32>, Vec<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut normal = || -> f32 { StandardNormal.sample(&mut rng) };
    let centres: Vec<Vec<f32>> = (0..clusters).map(|_| unit((0..dim).map(|_| normal()).collect())).collect();
    let mut vectors = Vec::with_capacity(n * dim);
    for i in 0..n {
        let c = &centres[i % clusters];
        vectors.extend(unit(c.iter().map(|x| x + spread * normal()).collect()));
    }
    ((1..=n as u32).collect(), vectors)
}

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

async fn store(dir: &Path, keep: usize, index_min_rows: usize) -> VectorStore {
    VectorStore::open(dir, keep, index_min_rows).await.expect("open store")
}

async fn write_small(s: &VectorStore, version: &str) {
    let (ids, vecs) = clustered(50, 8, 5, 0.3, 1);
    let report = s.write_version(version, &ids, &vecs, 8).await.expect("write");
    assert_eq!(report.rows, 50);
}

fn names(versions: &[VersionInfo]) -> Vec<&str> {
    versions.iter().map(|v| v.version.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_activate_rollback_and_keep_pruning() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 2, 1_000_000).await;
    assert_eq!(s.active().unwrap(), None);
    for v in ["v1", "v2", "v3", "v4", "staged"] {
        write_small(&s, v).await;
    }
    let all = s.versions().await.unwrap();
    assert_eq!(names(&all), ["staged", "v1", "v2", "v3", "v4"]);
    assert!(all.iter().all(|v| v.rows == 50 && !v.indexed && !v.active));
    assert!(matches!(s.rollback().await, Err(StoreError::NothingToRollBack)));

    s.activate("v1").await.unwrap();
    s.activate("v2").await.unwrap();
    assert_eq!(s.active().unwrap().as_deref(), Some("v2"));
    s.activate("v3").await.unwrap();
    // keep = 2: v1 fell out of the history and was dropped; the never-activated version stays.
    assert_eq!(names(&s.versions().await.unwrap()), ["staged", "v2", "v3", "v4"]);
    assert!(matches!(s.load("v1").await, Err(StoreError::UnknownVersion(_))));
    assert!(matches!(s.activate("v1").await, Err(StoreError::UnknownVersion(_))));

    assert_eq!(s.rollback().await.unwrap(), "v2");
    assert_eq!(s.active().unwrap().as_deref(), Some("v2"));
    let listed = s.versions().await.unwrap();
    assert_eq!(listed.iter().filter(|v| v.active).map(|v| v.version.as_str()).collect::<Vec<_>>(), ["v2"]);
    // v1 is gone, so there is nothing before v2.
    assert!(matches!(s.rollback().await, Err(StoreError::NothingToRollBack)));

    // The rolled-back-from v3 is dropped at the next activation; v2 stays as the one to roll back to.
    s.activate("v4").await.unwrap();
    assert_eq!(names(&s.versions().await.unwrap()), ["staged", "v2", "v4"]);
    assert_eq!(s.rollback().await.unwrap(), "v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_one_never_drops_the_active_version() {
    let dir = tempfile::tempdir().unwrap();
    // index_min_rows 1: tiny tables get a one-partition index.
    let s = store(dir.path(), 1, 1).await;
    write_small(&s, "a").await;
    write_small(&s, "b").await;
    s.activate("a").await.unwrap();
    s.activate("a").await.unwrap();
    let listed = s.versions().await.unwrap();
    assert_eq!(names(&listed), ["a", "b"]);
    assert!(listed.iter().all(|v| v.indexed));
    let (_, vecs) = clustered(50, 8, 5, 0.3, 1);
    assert_eq!(s.search("a", &vecs[8..16], 1).await.unwrap()[0].article_id, 2);
    s.activate("b").await.unwrap();
    assert_eq!(names(&s.versions().await.unwrap()), ["b"]);
    assert!(matches!(s.rollback().await, Err(StoreError::NothingToRollBack)));
    assert!(matches!(VectorStore::open(dir.path(), 0, 1).await, Err(StoreError::InvalidKeep)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_version_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 2, 1_000_000).await;
    write_small(&s, "v1").await;
    let (ids, vecs) = clustered(10, 8, 2, 0.3, 2);
    assert!(matches!(s.write_version("v1", &ids, &vecs, 8).await, Err(StoreError::VersionExists(v)) if v == "v1"));
    assert_eq!(s.load("v1").await.unwrap().0.len(), 50, "the first write is untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_vectors_and_names_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 2, 1_000_000).await;
    let (ids, vecs) = clustered(10, 4, 2, 0.3, 3);
    let invalid = |r: Result<WriteReport, StoreError>| matches!(r, Err(StoreError::InvalidVectors(_)));
    let mut nan = vecs.clone();
    nan[13] = f32::NAN;
    assert!(invalid(s.write_version("a", &ids, &nan, 4).await));
    let mut inf = vecs.clone();
    inf[0] = f32::INFINITY;
    assert!(invalid(s.write_version("a", &ids, &inf, 4).await));
    assert!(invalid(s.write_version("a", &ids, &vecs[..39], 4).await));
    assert!(invalid(s.write_version("a", &ids, &vecs, 5).await));
    assert!(invalid(s.write_version("a", &ids, &[], 0).await));
    let mut twice = ids.clone();
    twice[9] = twice[0];
    assert!(invalid(s.write_version("a", &twice, &vecs, 4).await));
    for name in ["", "a/b", "../x", "sp ace", &"x".repeat(65)] {
        assert!(matches!(s.write_version(name, &ids, &vecs, 4).await, Err(StoreError::InvalidVersionName(_))));
    }
    assert!(s.versions().await.unwrap().is_empty(), "nothing written");

    s.write_version("a", &ids, &vecs, 4).await.unwrap();
    assert!(matches!(s.search("a", &[1.0, 0.0, 0.0], 5).await, Err(StoreError::QueryDim { dim: 4, found: 3, .. })));
    assert!(matches!(s.search("a", &[f32::NAN, 0.0, 0.0, 0.0], 5).await, Err(StoreError::InvalidVectors(_))));
    assert!(matches!(s.append("a", &[99], &[0.5; 3]).await, Err(StoreError::InvalidVectors(_))));
    assert!(matches!(s.append("a", &[ids[0]], &vecs[..4]).await, Err(StoreError::InvalidVectors(_))));
    assert!(matches!(s.search("nope", &[0.5; 4], 5).await, Err(StoreError::UnknownVersion(_))));
    assert_eq!(s.load("a").await.unwrap().0.len(), 10, "failed appends wrote nothing");
    // Without an index, search is the exhaustive scan.
    let hits = s.search("a", &vecs[4..8], 3).await.unwrap();
    assert_eq!((hits.len(), hits[0].article_id), (3, ids[1]));
    assert!((hits[0].score - 1.0).abs() < 1e-5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_then_load_and_search_find_the_new_row() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 2, 500).await;
    let (ids, vecs) = clustered(1000, 16, 10, 0.3, 4);
    let report = s.write_version("v1", &ids, &vecs, 16).await.unwrap();
    assert!(report.index_ms.is_some());
    let new = unit((0..16).map(|i| if i % 2 == 0 { 1.0 } else { -1.0 }).collect());
    s.append("v1", &[5_000_001], &new).await.unwrap();

    let (loaded_ids, loaded, dim) = s.load("v1").await.unwrap();
    assert_eq!((loaded_ids.len(), loaded.len(), dim), (1001, 1001 * 16, 16));
    let at = loaded_ids.iter().position(|&id| id == 5_000_001).expect("appended row loaded");
    assert_eq!(&loaded[at * 16..(at + 1) * 16], &new[..]);
    let first = loaded_ids.iter().position(|&id| id == ids[0]).unwrap();
    assert_eq!(&loaded[first * 16..(first + 1) * 16], &vecs[..16]);

    for hits in [s.search("v1", &new, 5).await.unwrap(), s.search_exact("v1", &new, 5).await.unwrap()] {
        assert_eq!(hits[0].article_id, 5_000_001);
        assert!((hits[0].score - 1.0).abs() < 1e-4, "score {}", hits[0].score);
    }
    let listed = s.versions().await.unwrap();
    assert_eq!(listed, [VersionInfo { version: "v1".into(), rows: 1001, indexed: true, active: false }]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = store(dir.path(), 3, 1_000_000).await;
        write_small(&s, "v1").await;
        write_small(&s, "v2").await;
        s.activate("v1").await.unwrap();
        s.activate("v2").await.unwrap();
    }
    let reader = store(dir.path(), 3, 1_000_000).await;
    assert_eq!(reader.active().unwrap().as_deref(), Some("v2"));
    assert_eq!(reader.load("v2").await.unwrap().0.len(), 50);
    // A switch by one handle is seen by another at once.
    let writer = store(dir.path(), 3, 1_000_000).await;
    assert_eq!(writer.rollback().await.unwrap(), "v1");
    assert_eq!(reader.active().unwrap().as_deref(), Some("v1"));
    let leftovers = std::fs::read_dir(dir.path()).unwrap().filter(|e| {
        e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().starts_with("state.json.tmp"))
    });
    assert_eq!(leftovers.count(), 0, "no temporary state files left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ann_agrees_with_exact_search_on_a_small_indexed_table() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), 2, 1000).await;
    let (dim, k) = (16, 20);
    // 10k rows: 19 partitions, 6 probed, so the index really is approximate.
    let (ids, vecs) = clustered(10_000, dim, 50, 0.2, 5);
    assert!(s.write_version("v1", &ids, &vecs, dim).await.unwrap().index_ms.is_some());
    // Queries near stored items, as users are near what they buy.
    let (_, noise) = clustered(50, dim, 50, 1.0, 6);
    let queries: Vec<Vec<f32>> = noise
        .chunks(dim)
        .enumerate()
        .map(|(i, e)| unit(vecs[i * 199 * dim..][..dim].iter().zip(e).map(|(v, e)| v + 0.3 * e).collect()))
        .collect();
    let mut found = 0;
    for q in &queries {
        let exact = s.search_exact("v1", q, k).await.unwrap();
        let ann = s.search("v1", q, k).await.unwrap();
        assert_eq!(exact.len(), k);
        // Exact scores are the dot products themselves.
        for n in &exact {
            let v = &vecs[(n.article_id as usize - 1) * dim..][..dim];
            let dot: f32 = v.iter().zip(q).map(|(a, b)| a * b).sum();
            assert!((dot - n.score).abs() < 1e-4, "{dot} vs {}", n.score);
        }
        assert!(exact.windows(2).all(|w| w[0].score >= w[1].score));
        let truth: HashSet<u32> = exact.iter().map(|n| n.article_id).collect();
        found += ann.iter().filter(|n| truth.contains(&n.article_id)).count();
    }
    let recall = found as f64 / (queries.len() * k) as f64;
    assert!(recall >= 0.9, "recall@{k} {recall}");
}
