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
