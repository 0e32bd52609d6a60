//! Checkpoints: the engine state, the open baskets and the input offsets they correspond to, written
//! atomically (temporary file, fsync, rename, fsync of the directory) so a crash leaves either the old or the
//! new checkpoint, never a torn one. The bytes are `engine::checkpoint`'s (magic, version, CRC-32, postcard body).
//! Restart = load, then skip input below the stored offsets.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

pub use engine::checkpoint::{Checkpoint, FORMAT_VERSION};
use engine::checkpoint::DecodeError;

const FILE: &str = "engine.ckpt";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("checkpoint {path} is not a streamrec checkpoint or is damaged: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("checkpoint {path} has format version {found}, this build reads {FORMAT_VERSION}; remove it to start fresh")]
    Version { path: PathBuf, found: u32 },
}

pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

pub fn write(dir: &Path, c: &Checkpoint) -> Result<u64, CheckpointError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CheckpointError::Io { path: path.clone(), source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let bytes = engine::checkpoint::encode(c).map_err(|e| CheckpointError::Corrupt { path: path(dir), reason: e.to_string() })?;
    let tmp = dir.join(format!("{FILE}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    let dest = path(dir);
    std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(bytes.len() as u64)
}

/// The checkpoint in `dir`, if there is one.
pub fn read(dir: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
    let p = path(dir);
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CheckpointError::Io { path: p, source }),
    };
    match engine::checkpoint::decode(&bytes) {
        Ok(c) => Ok(Some(c)),
        Err(DecodeError::Version(found)) => Err(CheckpointError::Version { path: p, found }),
        Err(DecodeError::Corrupt(reason)) => Err(CheckpointError::Corrupt { path: p, reason }),
    }
}

/// Moves the checkpoint of `dir` aside (to `engine.ckpt.discarded`, replacing an older one there) so the engine
/// starts fresh; returns where it went, None when there was none.
pub fn discard(dir: &Path) -> Result<Option<PathBuf>, CheckpointError> {
    let from = path(dir);
    if !from.exists() {
        return Ok(None);
    }
    let to = dir.join(format!("{FILE}.discarded"));
    std::fs::rename(&from, &to).map_err(|source| CheckpointError::Io { path: from.clone(), source })?;
    Ok(Some(to))
}

/// Scale-out: checkpoints in the state store, one directory per checkpoint named by the seq its state stands at
/// (`checkpoints/<seq>/engine.ckpt`), the newest [`STORE_KEEP`] kept. Any instance's state at a seq is every
/// instance's (they fold the same purchases in the same order), so one writes them and any restores from them.
pub const STORE_KEEP: usize = 3;

fn store_dir(store: &Path) -> PathBuf {
    store.join("checkpoints")
}

/// The seqs of the checkpoints in the store, ascending.
fn store_seqs(store: &Path) -> Result<Vec<u64>, CheckpointError> {
    let dir = store_dir(store);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(CheckpointError::Io { path: dir, source }),
    };
    let mut seqs: Vec<u64> = entries.filter_map(Result::ok).filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok())).filter(|s| path(&dir.join(format!("{s:020}"))).is_file()).collect();
    seqs.sort_unstable();
    Ok(seqs)
}

/// Writes `c` (its state at seq `c.seq`, which must be set) into the store and drops all but the newest
/// [`STORE_KEEP`]; returns the bytes written.
pub fn write_in_store(store: &Path, c: &Checkpoint) -> Result<u64, CheckpointError> {
    let dir = store_dir(store);
    let Some(seq) = c.seq else {
        return Err(CheckpointError::Corrupt { path: dir, reason: "a state that has applied no purchase is not kept in the store".into() });
    };
    let bytes = write(&dir.join(format!("{seq:020}")), c)?;
    let seqs = store_seqs(store)?;
    for old in &seqs[..seqs.len().saturating_sub(STORE_KEEP)] {
        let d = dir.join(format!("{old:020}"));
        if let Err(e) = std::fs::remove_dir_all(&d) {
            tracing::warn!(error = %e, path = %d.display(), "could not remove an old checkpoint from the state store");
        }
    }
    Ok(bytes)
}

/// The newest checkpoint in the store whose state stands at or before seq `at_most` (None: the newest of all),
/// if there is one.
pub fn read_in_store(store: &Path, at_most: Option<u64>) -> Result<Option<Checkpoint>, CheckpointError> {
    for seq in store_seqs(store)?.into_iter().rev().filter(|s| at_most.is_none_or(|m| *s <= m)) {
        match read(&store_dir(store).join(format!("{seq:020}"))) {
            // Removed by the writer since the listing (a newer one took its place): the next older one.
            Ok(None) => continue,
            Err(CheckpointError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => continue,
            got => return got,
        }
    }
    Ok(None)
}

/// The ranker a `model-updates` message swapped in, kept beside the checkpoint so a restart serves it again
/// (the configured selection would pick the newest in `models_dir`, which need not be the one announced).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ActiveRanker {
    pub version: String,
    /// The model's directory, as the update named it.
    pub path: String,
}

const ACTIVE_RANKER: &str = "active-ranker.json";

/// Records `active` in `dir` (written to a temporary file, then renamed: never torn).
pub fn write_active_ranker(dir: &Path, active: &ActiveRanker) -> Result<(), CheckpointError> {
    let dest = dir.join(ACTIVE_RANKER);
    let io = |source| CheckpointError::Io { path: dest.clone(), source };
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join(format!("{ACTIVE_RANKER}.tmp"));
    let bytes = serde_json::to_vec_pretty(active).map_err(|e| CheckpointError::Corrupt { path: dest.clone(), reason: e.to_string() })?;
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, &dest).map_err(io)
}

/// The ranker recorded in `dir`, if any.
pub fn read_active_ranker(dir: &Path) -> Result<Option<ActiveRanker>, CheckpointError> {
    let path = dir.join(ACTIVE_RANKER);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| CheckpointError::Corrupt { path, reason: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CheckpointError::Io { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::data::CustomerKey;
    use crate::state::State;
    use crate::events::TxEvent;

    #[test]
    fn round_trip_and_damage_is_detected() {
        let cfg = Config::load(None).unwrap();
        let mut s = State::new(&cfg.core());
        s.apply_tx(&TxEvent { day: 100, customer: CustomerKey([3; 32]), article_id: 5, price: 0.1, channel: 1, seq: 0 });
        let keys = vec![*s.ids.key(0)];
        let c = Checkpoint { state: s, customer_keys: keys, open_baskets: vec![engine::baskets::OpenBasket { customer: 0, seq: 0, shard: 3 }], open_day: 100, seq: Some(0), tx_offsets: vec![(0, 1)], ref_offsets: vec![], recommendations_sent: 0, cluster_id: Some("c1".into()) };
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_none());
        write(dir.path(), &c).unwrap();
        let back = read(dir.path()).unwrap().unwrap();
        assert_eq!(back.state.customer(&CustomerKey([3; 32])), Some(0));
        assert_eq!(back.state.users, c.state.users);
        assert_eq!(back.state.catalog.idx(5), Some(0));
        assert_eq!(back.tx_offsets, vec![(0, 1)]);
        assert_eq!((back.open_baskets[0].shard, back.seq), (3, Some(0)));
        assert_eq!(back.cluster_id.as_deref(), Some("c1"));
        let mut bytes = std::fs::read(path(dir.path())).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 0xff;
        std::fs::write(path(dir.path()), &bytes).unwrap();
        assert!(matches!(read(dir.path()), Err(CheckpointError::Corrupt { .. })));
    }

    #[test]
    fn the_store_keeps_the_newest_and_finds_the_newest_at_or_before_a_seq() {
        let cfg = Config::load(None).unwrap();
        let store = tempfile::tempdir().unwrap();
        let at = |seq: Option<u64>| Checkpoint { state: State::new(&cfg.core()), customer_keys: vec![], open_baskets: vec![], open_day: 0, seq, tx_offsets: vec![(0, seq.unwrap_or(0) as i64)], ref_offsets: vec![], recommendations_sent: 0, cluster_id: None };
        assert!(read_in_store(store.path(), None).unwrap().is_none());
        assert!(write_in_store(store.path(), &at(None)).is_err(), "a state with nothing applied is not kept");
        for seq in [10, 20, 30, 40] {
            write_in_store(store.path(), &at(Some(seq))).unwrap();
        }
        assert_eq!(store_seqs(store.path()).unwrap(), vec![20, 30, 40], "the newest {STORE_KEEP} kept");
        let seq = |m| read_in_store(store.path(), m).unwrap().and_then(|c| c.seq);
        assert_eq!(seq(None), Some(40));
        assert_eq!(seq(Some(35)), Some(30));
        assert_eq!(seq(Some(30)), Some(30));
        assert_eq!(seq(Some(19)), None, "none old enough: the topics' start");
        assert_eq!(read_in_store(store.path(), Some(25)).unwrap().unwrap().tx_offsets, vec![(0, 20)]);
    }

    /// A checkpoint whose checksum is right but whose parts disagree (what a bug or a hand-edited file gives,
    /// and what fuzzing found panicking a restore) is refused as damaged, naming the part.
    #[test]
    fn parts_that_disagree_are_refused_before_any_index_is_built() {
        use crate::state::Purchase;
        use engine::checkpoint::{decode, encode};
        let cfg = Config::load(None).unwrap();
        let base = || {
            let mut s = State::new(&cfg.core());
            for (c, a) in [(1u8, 5u32), (2, 6), (1, 6)] {
                s.apply_tx(&TxEvent { day: 100, customer: CustomerKey([c; 32]), article_id: a, price: 0.1, channel: 1, seq: 0 });
            }
            let keys = (0..s.users.len() as u32).map(|i| *s.ids.key(i)).collect();
            Checkpoint { state: s, customer_keys: keys, open_baskets: vec![], open_day: 100, seq: None, tx_offsets: vec![], ref_offsets: vec![], recommendations_sent: 0, cluster_id: None }
        };
        let refused = |c: Checkpoint| match decode(&encode(&c).unwrap()) {
            Err(DecodeError::Corrupt(reason)) => reason,
            Err(e) => panic!("refused as {e}"),
            Ok(_) => panic!("accepted"),
        };
        assert!(decode(&encode(&base()).unwrap()).is_ok());
        let mut c = base();
        c.customer_keys[1] = c.customer_keys[0];
        assert!(refused(c).contains("repeats"));
        let mut c = base();
        c.state.users[1].recent.push(Purchase { article: 2, day: 100 }, 8);
        assert!(refused(c).contains("customer 1: a purchase of article 2 of 2"));
        let mut c = base();
        c.state.items.items.pop();
        assert!(refused(c).contains("1 statistics for 2 articles"));
        let mut c = base();
        let row = c.state.catalog.rows[0].clone();
        c.state.apply_article(crate::data::Article { article_id: 9, ..row });
        c.state.copurchase = engine::state::CoPurchase::new(10.0, 4);
        assert!(refused(c).contains("co-purchases: 0 partner lists for 3 articles"));
        let mut c = base();
        c.state.users[0].band = 6;
        assert!(refused(c).contains("age band 6"));
    }
}
