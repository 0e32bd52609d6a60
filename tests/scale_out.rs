//! Scale-out against the tansu broker process with 8 partitions: several engine instances in one consumer group
//! (`kafka.instances` > 1) each fold every purchase and make the lists of the partitions the group gives them;
//! between them they publish exactly the lists one engine makes.

mod common;

use common::procs::*;
use std::path::Path;
use std::process::Command;

const PARTITIONS: i32 = 8;

/// Every topic created beforehand with `PARTITIONS` partitions where the settings ask for several, nothing
/// compacted (every list is kept to compare).
fn topics(addr: &str) {
    let mut cfg = common::config();
    cfg.kafka.transactions_partitions = PARTITIONS;
    let mut specs = streamrec::kafka::topic_specs(&cfg);
    specs.iter_mut().for_each(|s| s.compacted = false);
    rt().block_on(streamrec::kafka::admin::ensure_topics(addr, &specs)).expect("topics");
}

fn health(http: &str) -> Option<serde_json::Value> {
    http_get(http, "/health").and_then(|(_, b)| serde_json::from_str(&b).ok())
}

/// Starts `n` instances (`kafka.instances` = `instances`, one state store) with HTTP; returns them and their addresses.
fn start(dir: &Path, addr: &str, n: usize, instances: &str, first: usize) -> Vec<(Proc, String)> {
    start_with(dir, addr, n, instances, first, &[])
}

/// [`start`] with more settings (`extra`: environment variables).
fn start_with(dir: &Path, addr: &str, n: usize, instances: &str, first: usize, extra: &[(&str, &str)]) -> Vec<(Proc, String)> {
    let store = dir.join("store");
    let store = store.to_str().expect("utf8");
    (first..first + n)
        .map(|i| {
            let http = format!("127.0.0.1:{}", free_port());
            // At the live edge a caught-up partition's next purchase may arrive late on a loaded machine: the
            // merge waits for it up to its grace (then applies what it has, out of the replay's order, as one
            // engine would); a long grace keeps the order here, so the lists can be compared with the files'.
            // A member replaced after the shortest wait the settings allow (partitions held by no live instance).
            let env = [
                ("STREAMREC__KAFKA__INSTANCES", instances),
                ("STREAMREC__KAFKA__TRANSACTIONS_PARTITIONS", "8"),
                ("STREAMREC__ENGINE__MERGE_GRACE_MS", "10000"),
                ("STREAMREC__KAFKA__REJOIN_AFTER_MS", "12000"),
                // Checkpoints in the store every 4,000 purchases (~30k in the data): goings back and new instances
                // start from them.
                ("STREAMREC__ENGINE__CHECKPOINT_EVERY", "4000"),
            ];
            let env: Vec<(&str, &str)> = env.iter().chain(extra).copied().collect();
            let p = spawn_logged(dir, addr, &["serve", "--http", &http, "--state-store", store], &env, &format!("serve-{i}.log"));
            (p, http)
        })
        .collect()
}

fn logs(dir: &Path) -> String {
    let mut all = String::new();
    for i in 0..4 {
        if let Ok(l) = std::fs::read_to_string(dir.join(format!("serve-{i}.log"))) {
            all += &format!("--- serve-{i}.log (last 60 lines)\n");
            all += &l.lines().rev().take(60).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
            all.push('\n');
        }
    }
    all
}

/// The partitions each instance holds, once every partition is held by exactly one of them.
fn shared_out(https: &[String]) -> Option<Vec<Vec<i64>>> {
    let held: Vec<Vec<i64>> = https
        .iter()
        .map(|h| health(h).and_then(|v| v["shares"]["owned"].as_object().map(|o| o.keys().filter_map(|k| k.parse().ok()).collect())))
        .collect::<Option<_>>()?;
    let mut all: Vec<i64> = held.iter().flatten().copied().collect();
    all.sort_unstable();
    (all == (0..i64::from(PARTITIONS)).collect::<Vec<_>>() && held.iter().all(|h| !h.is_empty())).then_some(held)
}

/// The data's first day and the day after it that has purchases.
fn first_days(data: &streamrec::data::Dataset) -> (String, String) {
    let days = &data.transactions.day;
    let next = days.iter().copied().find(|&d| d > days[0]).expect("more than one day");
    (streamrec::data::format_day(days[0]), streamrec::data::format_day(next))
}

/// Replays the reference data and the first day's purchases: the instances started after it read the reference
/// data before any purchase (as one engine started after a replay does), so their lists can equal the file
/// pipeline's; the rest follows with [`replay`] / [`replay_at`] from the second day, purchases only.
fn replay_first_day(dir: &Path, addr: &str, data: &streamrec::data::Dataset) {
    let out = Command::new(common::bin())
        .args(["replay", "--data", dir.to_str().expect("utf8"), "--max", "--until", &first_days(data).0, "--brokers", addr])
        .env("STREAMREC__KAFKA__TRANSACTIONS_PARTITIONS", "8")
        .current_dir(dir)
        .output()
        .expect("replay");
    assert!(out.status.success(), "replay: {}", String::from_utf8_lossy(&out.stderr));
}

fn replay(dir: &Path, addr: &str, data: &streamrec::data::Dataset) {
    let from = first_days(data).1;
    let out = Command::new(common::bin())
        .args(["replay", "--data", dir.to_str().expect("utf8"), "--max", "--purchases-only", "--from", &from, "--brokers", addr])
        .env("STREAMREC__KAFKA__TRANSACTIONS_PARTITIONS", "8")
        .current_dir(dir)
        .output()
        .expect("replay");
    assert!(out.status.success(), "replay: {}", String::from_utf8_lossy(&out.stderr));
}

/// A tansu broker with the topics, the reference data and the first day replayed, and `n` instances
/// (`kafka.instances` = `instances`) that have shared the partitions out.
struct Cluster {
    engines: Vec<(Proc, String)>,
    /// Partitions each instance held once shared out.
    held: Vec<Vec<i64>>,
    addr: String,
    data: streamrec::data::Dataset,
    _broker: Proc,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start(seed: u64, n: usize, instances: &str) -> Cluster {
        Cluster::start_with(seed, n, instances, &[])
    }

    fn start_with(seed: u64, n: usize, instances: &str, extra: &[(&str, &str)]) -> Cluster {
        let dir = tempfile::tempdir().expect("tmp");
        let data = common::load(&common::tiny(dir.path(), seed));
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let broker = start_tansu_on(port, "sqlite://tansu.db", dir.path());
        topics(&addr);
        replay_first_day(dir.path(), &addr, &data);
        let engines = start_with(dir.path(), &addr, n, instances, 0, extra);
        let https: Vec<String> = engines.iter().map(|(_, h)| h.clone()).collect();
        let held = wait_for(90, || shared_out(&https)).unwrap_or_else(|| panic!("the group never shared the partitions out: {:?}\n{}", https.iter().map(|h| health(h)).collect::<Vec<_>>(), logs(dir.path())));
        eprintln!("partitions held: {held:?}");
        Cluster { engines, held, addr, data, _broker: broker, dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Instance `i`'s log so far.
    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.path().join(format!("serve-{i}.log"))).unwrap_or_default()
    }

    /// Waits until the instance at `http` has folded a third of the purchases.
    fn a_third_in(&self, http: &str) {
        let third = self.data.transactions.len() as u64 / 3;
        let seen = wait_for(60, || health(http).filter(|h| h["events_in_state"].as_u64() >= Some(third)));
        assert!(seen.is_some(), "the replay never got a third in\n{}", logs(self.path()));
    }

    /// Every list one engine makes arrives (repeats aside), none different.
    fn assert_lists_arrive(&self, fault: &str) {
        if wait_for(180, || same_lists(&self.addr, &self.data).then_some(())).is_none() {
            eprintln!("{}", logs(self.path()));
            assert_same_lists(&self.addr, &self.data, fault);
        }
    }
}

/// Three instances share the 8 partitions; the replay goes through them; every list one engine makes is published,
/// none different, and each instance made a share of them.
#[test]
fn three_instances_publish_the_lists_of_one() {
    let c = Cluster::start(31, 3, "3");
    let https: Vec<String> = c.engines.iter().map(|(_, h)| h.clone()).collect();
    replay(c.path(), &c.addr, &c.data);
    c.assert_lists_arrive("three instances");
    for (i, h) in https.iter().enumerate() {
        let h = health(h).unwrap_or_else(|| panic!("instance {i} gone\n{}", logs(c.path())));
        eprintln!("instance {i}: {} lists, {} left to others, shares {}", h["recommendations"], h["lists_not_made"], h["shares"]);
        assert!(h["recommendations"].as_u64() > Some(0) && h["lists_not_made"].as_u64() > Some(0), "instance {i} made no share: {h}");
        assert_eq!(h["events_in_state"].as_u64(), Some(c.data.transactions.len() as u64), "instance {i} folds every purchase: {h}");
    }
    // Each instance names itself in every series it exports (Prometheus keeps the series of several apart).
    let names: Vec<String> = https
        .iter()
        .map(|h| {
            let (_, m) = http_get(h, "/metrics").expect("metrics");
            let line = m.lines().find(|l| l.starts_with("streamrec_events_total{")).unwrap_or_else(|| panic!("no events series: {m}"));
            let name = line.split("instance=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or_else(|| panic!("no instance label: {line}"));
            assert!(m.lines().filter(|l| l.starts_with("streamrec_") && !l.starts_with('#')).all(|l| l.contains(&format!("instance=\"{name}\""))), "a series without this instance's label:\n{m}");
            name.to_string()
        })
        .collect();
    let distinct: std::collections::BTreeSet<&String> = names.iter().collect();
    assert_eq!(distinct.len(), https.len(), "{names:?}");
    // The owner of partition 0, and only it, holds the retraining role.
    let roles: Vec<bool> = https.iter().map(|h| health(h).is_some_and(|v| v["shares"]["retrains"] == true)).collect();
    let owner = c.held.iter().position(|h| h.contains(&0)).expect("partition 0 held");
    assert_eq!(roles, (0..https.len()).map(|i| i == owner).collect::<Vec<_>>(), "held {:?}", c.held);
}

fn replay_at(dir: &Path, addr: &str, data: &streamrec::data::Dataset, rate: &str) -> Proc {
    let log = std::fs::File::create(dir.join("replay.log")).expect("log");
    let from = first_days(data).1;
    Proc(
        Command::new(common::bin())
            .args(["replay", "--data", dir.to_str().expect("utf8"), "--rate", rate, "--purchases-only", "--from", &from, "--brokers", addr])
            .env("STREAMREC__KAFKA__TRANSACTIONS_PARTITIONS", "8")
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("replay"),
    )
}

/// Mid-replay a third instance joins two: the group shares the partitions out again, an instance taking over a
/// partition whose lists were delivered only up to a seq its state is past goes back to the topics' start, and
/// every list still arrives, none different from one engine's.
#[test]
fn an_instance_added_mid_replay_changes_and_loses_nothing() {
    let c = Cluster::start(37, 2, "2");
    let mut https: Vec<String> = c.engines.iter().map(|(_, h)| h.clone()).collect();
    let mut replay = replay_at(c.path(), &c.addr, &c.data, "4000");
    c.a_third_in(&https[1]);
    let added = std::time::Instant::now();
    let third_engine = start(c.path(), &c.addr, 1, "2", 2);
    https.push(third_engine[0].1.clone());
    let held = wait_for(90, || shared_out(&https)).unwrap_or_else(|| panic!("the new instance never got a share\n{}", logs(c.path())));
    eprintln!("shared out again {:.1} s after the third instance started: {held:?}", added.elapsed().as_secs_f64());
    assert!(replay.0.wait().expect("replay").success(), "replay failed");
    c.assert_lists_arrive("an instance added");
    let shares: Vec<serde_json::Value> = https.iter().filter_map(|h| health(h)).map(|h| h["shares"].clone()).collect();
    eprintln!("shares at the end: {shares:?}");
}

/// Mid-replay one of three instances stops (SIGINT: it delivers, marks and leaves the group): the two left take
/// its partitions over, going back to the topics' start where their state is past its marks, and every list still
/// arrives, none different from one engine's. Prints the time from the stop to the partitions being owned again.
#[test]
fn an_instance_stopped_mid_replay_is_taken_over_and_nothing_lost() {
    let mut c = Cluster::start(41, 3, "3");
    let https: Vec<String> = c.engines.iter().map(|(_, h)| h.clone()).collect();
    let mut replay = replay_at(c.path(), &c.addr, &c.data, "4000");
    c.a_third_in(&https[1]);
    let stopped = std::time::Instant::now();
    let first = &mut c.engines[0].0 .0;
    // SAFETY: signalling a child process this test started and still owns.
    unsafe { libc::kill(first.id() as i32, libc::SIGINT) };
    assert!(first.wait().expect("wait").success(), "a clean stop\n{}", logs(c.path()));
    let rest = https[1..].to_vec();
    let taken = wait_for(60, || shared_out(&rest));
    let taken = taken.unwrap_or_else(|| panic!("the stopped instance's partitions {:?} were never taken over\n{}", c.held[0], logs(c.path())));
    eprintln!("partitions {:?} owned again {:.1} s after the stop: {taken:?}", c.held[0], stopped.elapsed().as_secs_f64());
    assert!(replay.0.wait().expect("replay").success(), "replay failed");
    c.assert_lists_arrive("an instance stopped");
    let go_backs: u64 = rest.iter().filter_map(|h| health(h)).map(|h| h["shares"]["go_backs"].as_u64().unwrap_or(0)).sum();
    eprintln!("the two left went back {go_backs} times");
}


/// Mid-replay one of three instances is killed (SIGKILL: nothing delivered or marked on the way out, no leaving
/// the group, its record in the state store goes stale): the two left take its partitions over (through a
/// rebalance of the broker's, or a new member of theirs when the broker leaves the partitions with nobody) and go
/// back where their state is past its marks; then a new instance joins. Every list still arrives, none different
/// from one engine's. Prints the time from the kill to the partitions being owned again and to their new owners
/// being past the point of the kill (lists flowing for them).
#[test]
fn an_instance_killed_mid_replay_is_taken_over_and_nothing_lost() {
    let mut c = Cluster::start(43, 3, "3");
    let mut https: Vec<String> = c.engines.iter().map(|(_, h)| h.clone()).collect();
    let mut replay = replay_at(c.path(), &c.addr, &c.data, "4000");
    c.a_third_in(&https[1]);
    let at_kill = health(&https[0]).and_then(|h| h["watermark"]["seq"].as_u64()).unwrap_or(0);
    let killed = std::time::Instant::now();
    let first = &mut c.engines[0].0 .0;
    first.kill().expect("kill -9");
    first.wait().expect("wait");
    let rest = https[1..].to_vec();
    let taken = wait_for(120, || shared_out(&rest));
    let taken = taken.unwrap_or_else(|| panic!("the killed instance's partitions {:?} were never taken over: {:?}\n{}", c.held[0], rest.iter().map(|h| health(h)).collect::<Vec<_>>(), logs(c.path())));
    let owned_after = killed.elapsed().as_secs_f64();
    let past = wait_for(120, || rest.iter().all(|h| health(h).and_then(|v| v["watermark"]["seq"].as_u64()) >= Some(at_kill)).then_some(()));
    assert!(past.is_some(), "the instances left never got past the point of the kill\n{}", logs(c.path()));
    eprintln!("partitions {:?} owned again {owned_after:.1} s after the kill, made again (owners past the kill's seq {at_kill}) {:.1} s after it: {taken:?}", c.held[0], killed.elapsed().as_secs_f64());
    let joined = std::time::Instant::now();
    let new = start(c.path(), &c.addr, 1, "3", 3);
    https = rest.into_iter().chain(new.iter().map(|(_, h)| h.clone())).collect();
    c.engines.extend(new);
    let held = wait_for(90, || shared_out(&https)).unwrap_or_else(|| panic!("the new instance never got a share\n{}", logs(c.path())));
    eprintln!("shared out among three again {:.1} s after the new instance started: {held:?}", joined.elapsed().as_secs_f64());
    assert!(replay.0.wait().expect("replay").success(), "replay failed");
    c.assert_lists_arrive("an instance killed");
    // The new instance started from the store's newest checkpoint, not the topics' start; goings back from one
    // at or before the lowest mark they needed.
    assert!(c.log(3).contains("starting from the state store's newest checkpoint"), "{}", logs(c.path()));
    let from_ckpt = (1..3).map(|i| c.log(i).matches("going back to the state store's checkpoint").count()).sum::<usize>();
    let from_start = (1..3).map(|i| c.log(i).matches("going back to the topics' start").count()).sum::<usize>();
    eprintln!("went back {from_ckpt} times to a checkpoint, {from_start} times to the topics' start");
}

/// Roles: with periodic two-tower retraining on, only the owner of partition 0 trains; every instance swaps in the
/// versions it announces on `model-updates`.
#[test]
fn only_the_owner_of_partition_0_retrains_and_every_instance_swaps() {
    // The gate off: each version is announced as soon as it is ready (streaming.rs tests the shadow week).
    let extra = [
        ("STREAMREC__TWO_TOWER__RETRAIN_EVERY_DAYS", "14"),
        ("STREAMREC__TWO_TOWER__GATE", "false"),
        ("STREAMREC__TWO_TOWER__EPOCHS", "2"),
        ("STREAMREC__TWO_TOWER__DEVICE", "cpu"),
        ("STREAMREC__TWO_TOWER__INDEX_MIN_ROWS", "100000"),
    ];
    let c = Cluster::start_with(47, 2, "2", &extra);
    let owner = c.held.iter().position(|h| h.contains(&0)).expect("partition 0 held");
    replay(c.path(), &c.addr, &c.data);
    let swapped = wait_for(300, || (0..2).all(|i| c.log(i).contains("two-tower swapped")).then_some(()));
    assert!(swapped.is_some(), "not every instance swapped a retrained version in\n{}", logs(c.path()));
    for i in 0..2 {
        let trained = c.log(i).matches("two-tower retraining started").count();
        eprintln!("instance {i} (partitions {:?}): {trained} retrainings", c.held[i]);
        assert_eq!(trained > 0, i == owner, "instance {i} trained {trained} times; the owner of partition 0 is {owner}\n{}", logs(c.path()));
    }
}
