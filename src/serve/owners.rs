//! Scale-out: which instances are alive and whose lists each makes, as the state store says. Every instance
//! keeps a record `owners/<instance>.json` (the partitions it makes lists for), rewritten every
//! [`BEAT`] by a task of its own; a record not rewritten for [`DEAD_AFTER`] is a dead instance's.
//!
//! Why the store and not only the group: a broker decides when a member is gone and gives its partitions to the
//! others. tansu 0.6.0 does not always do so for a member killed outright (`kill -9`): it drops the member,
//! re-assigns one survivor its old share and leaves the dead member's partitions with nobody. An instance that
//! sees partitions held by no live instance for `kafka.rejoin_after_ms` joins the group again with a new member
//! ([`super::source::Input::watch_group`]), and the rebalance that follows shares every partition out.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How often an instance rewrites its record.
pub const BEAT: Duration = Duration::from_secs(1);
/// A record not rewritten this long belongs to an instance that is gone (the consumer's session timeout).
pub const DEAD_AFTER: Duration = crate::kafka::consumer::SESSION_TIMEOUT;

#[derive(Debug, thiserror::Error)]
pub enum OwnersError {
    #[error("state store {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    /// The partitions whose lists the instance makes.
    partitions: Vec<i32>,
}

pub struct Owners {
    dir: PathBuf,
    /// This instance's record.
    mine: PathBuf,
    /// When the records were last read, and since when some partition has been held by no live instance.
    checked_at: Option<Instant>,
    unowned_since: Option<Instant>,
    /// The partitions held by nobody at the last check.
    pub unowned: Vec<i32>,
    /// `unowned` changed since [`Owners::take_news`] last said so.
    news: bool,
}

impl Owners {
    /// The records under the store `dir` (`owners/`, created if missing); this instance's is named by its process
    /// id and start time.
    pub fn open(dir: &Path) -> Result<Self, OwnersError> {
        let dir = dir.join("owners");
        std::fs::create_dir_all(&dir).map_err(|source| OwnersError::Io { path: dir.clone(), source })?;
        let started = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let mine = dir.join(format!("{}-{started}.json", std::process::id()));
        Ok(Owners { dir, mine, checked_at: None, unowned_since: None, unowned: Vec::new(), news: false })
    }

    /// Rewrites this instance's record every [`BEAT`] with the partitions `shared` says it owns, on a task of its
    /// own (a long turn of the loop, such as going back, does not make the instance look dead).
    pub fn spawn_beat(&self, shared: Arc<super::Shared>) -> tokio::task::JoinHandle<()> {
        let path = self.mine.clone();
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                let partitions = shared.shares.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|v| v.owned.keys().copied().collect()).unwrap_or_default();
                match write(&path, &Record { partitions }) {
                    Ok(()) => failing = false,
                    Err(e) if !failing => {
                        failing = true;
                        tracing::error!(error = %e, "could not write this instance's record in the state store: the others will take it for dead and rebalance");
                    }
                    Err(_) => {}
                }
                tokio::time::sleep(BEAT).await;
            }
        })
    }

    /// Removes this instance's record (a clean stop: its partitions are the group's to give out).
    pub fn leave(&self) {
        if let Err(e) = std::fs::remove_file(&self.mine) {
            tracing::warn!(error = %e, path = %self.mine.display(), "could not remove this instance's record from the state store");
        }
    }

    /// How long some partition of `all` has been held by no live instance (checked once per [`BEAT`]; None: every
    /// partition is held). Records of instances gone for a long time are removed on the way.
    /// `all` is read only then (the loop calls this every turn).
    pub fn unowned_for(&mut self, all: impl IntoIterator<Item = i32>) -> Option<Duration> {
        if self.checked_at.is_none_or(|t| t.elapsed() >= BEAT) {
            self.checked_at = Some(Instant::now());
            match self.held() {
                Ok(held) => {
                    let unowned: Vec<i32> = all.into_iter().filter(|p| !held.contains(p)).collect();
                    if unowned.is_empty() {
                        self.unowned_since = None;
                    } else if self.unowned_since.is_none() {
                        self.unowned_since = Some(Instant::now());
                    }
                    if unowned != self.unowned {
                        if !unowned.is_empty() {
                            tracing::info!(partitions = ?unowned, "partitions whose lists no live instance makes (the group has not given them out yet)");
                        }
                        self.news = true;
                    }
                    self.unowned = unowned;
                }
                // Unreadable records say nothing either way: the wait stands as it was.
                Err(e) => tracing::warn!(error = %e, "could not read the instances' records in the state store"),
            }
        }
        self.unowned_since.map(|s| s.elapsed())
    }

    /// The partitions held by nobody, once after each change (for `/health`).
    pub fn take_news(&mut self) -> Option<&[i32]> {
        std::mem::take(&mut self.news).then_some(&self.unowned[..])
    }

    /// The partitions held by live instances.
    fn held(&self) -> Result<BTreeSet<i32>, OwnersError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| OwnersError::Io { path, source }
        };
        let mut held = BTreeSet::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let path = entry.map_err(io(&self.dir))?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            // A record removed between the listing and here is an instance that stopped: skip it.
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            let age = meta.modified().ok().and_then(|m| SystemTime::now().duration_since(m).ok()).unwrap_or_default();
            if age >= DEAD_AFTER {
                if age >= DEAD_AFTER * 100 {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else { continue };
            match serde_json::from_slice::<Record>(&bytes) {
                Ok(r) => held.extend(r.partitions),
                Err(e) => tracing::warn!(error = %e, path = %path.display(), "unreadable instance record in the state store: ignored"),
            }
        }
        Ok(held)
    }
}

fn write(path: &Path, r: &Record) -> Result<(), OwnersError> {
    super::shares::write_json(path, r).map_err(|source| OwnersError::Io { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_of_dead_or_stopped_instances_are_unowned() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Owners::open(dir.path()).unwrap();
        let b = Owners { mine: dir.path().join("owners/other.json"), ..Owners::open(dir.path()).unwrap() };
        write(&a.mine, &Record { partitions: vec![0, 1] }).unwrap();
        write(&b.mine, &Record { partitions: vec![2] }).unwrap();
        assert_eq!(a.unowned_for([0, 1, 2]), None);
        assert!(a.unowned.is_empty());
        // b stops cleanly: partition 2 is nobody's from the next check on.
        b.leave();
        a.checked_at = None;
        assert!(a.unowned_for([0, 1, 2]).is_some());
        assert_eq!(a.take_news(), Some(&[2][..]));
        assert_eq!(a.take_news(), None, "said once");
        // b is back, then killed: its record ages past DEAD_AFTER.
        write(&b.mine, &Record { partitions: vec![2] }).unwrap();
        a.checked_at = None;
        assert_eq!(a.unowned_for([0, 1, 2]), None);
        let old = SystemTime::now() - DEAD_AFTER - Duration::from_secs(1);
        std::fs::File::options().write(true).open(&b.mine).unwrap().set_modified(old).unwrap();
        a.checked_at = None;
        assert!(a.unowned_for([0, 1, 2]).is_some());
        assert_eq!(a.unowned, vec![2]);
        // A torn or foreign file says nothing.
        std::fs::write(dir.path().join("owners/junk.json"), b"{").unwrap();
        a.checked_at = None;
        assert!(a.unowned_for([0, 1]).is_none());
    }
}
