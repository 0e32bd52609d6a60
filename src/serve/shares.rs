//! Scale-out (`kafka.instances` > 1): every engine reads the whole transactions topic and folds every purchase,
//! so every engine holds the same state; the consumer group only says which partitions' lists this engine makes
//! (ARCHITECTURE.md, "Scale-out"). [`Shares`] keeps that bookkeeping: the partitions owned and the seq after
//! which each one's lists are made here, and, in the state store every engine reads, the seq up to which each
//! partition's lists have been delivered. Taking a partition over whose delivered seq this engine's state is
//! already past means going back to the start and folding forward again (the lists in between are made then).

use crate::baskets::{Ownership, Shard};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SharesError {
    #[error("state store {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("state store {path}: unreadable delivered mark ({reason}); remove it to make that partition's lists again from the start")]
    Corrupt { path: PathBuf, reason: String },
}

/// The delivered mark of one partition, as written to the store.
#[derive(serde::Serialize, serde::Deserialize)]
struct Mark {
    /// Every list of the partition made at or before this seq has been delivered.
    seq: u64,
}

/// What a new assignment asks of the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct Assigned {
    /// Whose lists to make from now on.
    pub ownership: Ownership,
    /// The state is past a taken-over partition's delivered seq: go back and fold forward.
    pub go_back: bool,
    /// Going back: to a state at or before this seq (the lowest delivered seq of the partitions that need it;
    /// None: the start, some partition never delivered).
    pub back_to: Option<u64>,
    /// Partitions taken over (for the log).
    pub taken: Vec<Shard>,
}

pub struct Shares {
    dir: PathBuf,
    /// Owned partition → the seq after which its lists are made here (None: all of them).
    owned: BTreeMap<Shard, Option<u64>>,
    /// The delivered seq last written per owned partition.
    marked: BTreeMap<Shard, u64>,
    /// Times this engine went back to the start to take a partition over.
    pub go_backs: u64,
}

impl Shares {
    /// The bookkeeping over the state store `dir` (created if missing; its `delivered/` holds the marks).
    pub fn open(dir: &Path) -> Result<Self, SharesError> {
        let marks = dir.join("delivered");
        std::fs::create_dir_all(&marks).map_err(|source| SharesError::Io { path: marks.clone(), source })?;
        Ok(Shares { dir: dir.to_path_buf(), owned: BTreeMap::new(), marked: BTreeMap::new(), go_backs: 0 })
    }

    fn mark_path(&self, p: Shard) -> PathBuf {
        self.dir.join("delivered").join(format!("{p}.json"))
    }

    /// The seq up to which partition `p`'s lists have been delivered (None: none yet).
    pub fn delivered(&self, p: Shard) -> Result<Option<u64>, SharesError> {
        let path = self.mark_path(p);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice::<Mark>(&b).map(|m| Some(m.seq)).map_err(|e| SharesError::Corrupt { path, reason: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SharesError::Io { path, source }),
        }
    }

    /// The group now gives this engine `parts`; `at` is the seq of the latest purchase in its state. A partition
    /// kept keeps its place; one taken over is made after its delivered seq, which needs going back when the state
    /// is past it. Going back, the partitions kept are made after `at` (this engine made those lists already).
    pub fn assign(&mut self, parts: &[Shard], at: Option<u64>) -> Result<Assigned, SharesError> {
        let mut next = BTreeMap::new();
        let (mut go_back, mut taken) = (false, Vec::new());
        let mut back_to: Option<Option<u64>> = None;
        for &p in parts {
            if let Some(after) = self.owned.get(&p) {
                next.insert(p, *after);
                continue;
            }
            let delivered = self.delivered(p)?;
            // Lists of `p` made after `delivered` are this engine's now; those made up to `at` have gone by.
            let behind = match (delivered, at) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(d), Some(a)) => a > d,
            };
            if behind {
                go_back = true;
                // The lowest mark wins; None (never delivered) is lowest of all.
                back_to = Some(match back_to {
                    None => delivered,
                    Some(b) => b.zip(delivered).map(|(x, y)| x.min(y)),
                });
            }
            taken.push(p);
            next.insert(p, delivered);
        }
        if go_back {
            for (p, after) in next.iter_mut() {
                if self.owned.contains_key(p) {
                    *after = at.max(*after);
                }
            }
            self.go_backs += 1;
        }
        self.marked.retain(|p, _| next.contains_key(p));
        self.owned = next;
        Ok(Assigned { ownership: Ownership::Shards(self.owned.clone()), go_back, back_to: back_to.flatten(), taken })
    }

    /// Every list made up to seq `at` has been delivered: records it for each owned partition whose lists are made
    /// here by then (a partition whose delivered seq is still ahead keeps its mark).
    pub fn delivered_through(&mut self, at: Option<u64>) -> Result<(), SharesError> {
        let Some(at) = at else { return Ok(()) };
        let due: Vec<Shard> = self
            .owned
            .iter()
            .filter(|(p, after)| after.is_none_or(|a| at > a) && self.marked.get(*p).is_none_or(|&m| at > m))
            .map(|(p, _)| *p)
            .collect();
        for p in due {
            let path = self.mark_path(p);
            write_json(&path, &Mark { seq: at }).map_err(|source| SharesError::Io { path, source })?;
            self.marked.insert(p, at);
        }
        Ok(())
    }

    /// Owned partitions and the seq after which each one's lists are made here (`/health`).
    pub fn owned(&self) -> &BTreeMap<Shard, Option<u64>> {
        &self.owned
    }
}

/// Writes `value` as JSON to `path` through a temporary file beside it (a reader sees the old file or the new one,
/// never a torn one).
pub(crate) fn write_json(path: &Path, value: &impl serde::Serialize) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec(value).map_err(std::io::Error::other)?)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_taken_over_is_made_after_its_delivered_seq_and_going_back_keeps_what_was_made() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Shares::open(dir.path()).unwrap();
        let mut b = Shares::open(dir.path()).unwrap();
        // Nothing folded yet: every partition from the start, no going back.
        let got = a.assign(&[0, 1], None).unwrap();
        assert_eq!(got.ownership, Ownership::Shards(BTreeMap::from([(0, None), (1, None)])));
        assert!(!got.go_back);
        a.delivered_through(Some(40)).unwrap();
        assert_eq!((a.delivered(0).unwrap(), a.delivered(1).unwrap()), (Some(40), Some(40)));
        // b is behind a's mark on partition 1: made after 40, no going back.
        let got = b.assign(&[1], Some(30)).unwrap();
        assert_eq!(got.ownership, Ownership::Shards(BTreeMap::from([(1, Some(40))])));
        assert!(!got.go_back);
        b.delivered_through(Some(35)).unwrap();
        assert_eq!(b.delivered(1).unwrap(), Some(40), "not yet past the mark: it stays");
        // a keeps 0 and takes 2 (never delivered) while past seq 50: it goes back; 0's lists up to 50 are made.
        let got = a.assign(&[0, 2], Some(50)).unwrap();
        assert!(got.go_back && got.taken == vec![2]);
        assert_eq!(got.back_to, None, "2 was never delivered: back to the start");
        assert_eq!(got.ownership, Ownership::Shards(BTreeMap::from([(0, Some(50)), (2, None)])));
        // b is past a's mark on 0 (40) when it takes 0 over: back to the start, made after 40.
        let got = b.assign(&[0, 1], Some(45)).unwrap();
        assert!(got.go_back);
        assert_eq!(got.back_to, Some(40), "back to a state at or before 0's mark");
        assert_eq!(got.ownership, Ownership::Shards(BTreeMap::from([(0, Some(40)), (1, Some(45))])));
        std::fs::write(dir.path().join("delivered/3.json"), b"{").unwrap();
        assert!(matches!(b.assign(&[3], None), Err(SharesError::Corrupt { .. })));
    }
}
