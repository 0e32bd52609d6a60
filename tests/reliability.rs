//! Faults the engine survives without stopping, losing or inventing anything, each test named after the defect
//! it guards against; every one runs `streamrec` as a process against a broker process.

mod common;

use common::procs::*;
use std::path::Path;
use std::process::{Command, Stdio};
use streamrec::data::{format_hex32, Dataset};
use streamrec::events::TxEvent;
use streamrec::kafka::consumer::read_to_end;
use streamrec::kafka::producer::Sink;

/// Produces `messages` (key, value) to `topic` and waits for their delivery.
fn produce(brokers: &str, topic: &str, messages: &[(Vec<u8>, Vec<u8>)]) {
    rt().block_on(async {
        let sink = Sink::new(brokers, 0).expect("sink");
        let mut pending = Vec::new();
        for (k, v) in messages {
            pending.push(sink.send(topic, k, v).await.expect("send"));
        }
        Sink::wait(pending).await.expect("delivered");
    });
}

fn dead_letters(brokers: &str) -> Vec<serde_json::Value> {
    let recs = rt().block_on(read_to_end(brokers, "dead-letters")).expect("dead letters");
    recs.iter().map(|r| serde_json::from_slice(r.payload.as_deref().expect("payload")).expect("json")).collect()
}

/// `streamrec ARGS --brokers B` in `cwd`, whatever its exit status.
fn cli_status(args: &[&str], brokers: &str, cwd: &Path) -> std::process::Output {
    Command::new(common::bin()).args(args).args(["--brokers", brokers]).current_dir(cwd).output().expect("run")
}

/// Creates the topics beforehand with nothing compacted: every list is kept to compare (a broker compacts
/// compacted topics when it likes; tansu does on a restart, leaving only some customers' latest lists).
fn plain_topics(addr: &str) {
    let mut specs = streamrec::kafka::topic_specs(&common::config());
    specs.iter_mut().for_each(|s| s.compacted = false);
    rt().block_on(streamrec::kafka::admin::ensure_topics(addr, &specs)).expect("topics");
}

/// Replays the days up to the middle one, starts `serve` (HTTP, checkpoints, `env`; log in `serve.log`) and
/// waits until it has applied them with `/health` ok. Returns serve, its HTTP address and the middle day.
fn serve_first_half(dir: &Path, data: &Dataset, addr: &str, env: &[(&str, &str)]) -> (Proc, String, u16) {
    let days = &data.transactions.day;
    let mid = days[days.len() / 2];
    let first_half = days.iter().filter(|&&d| d <= mid).count() as u64;
    let d = dir.to_str().expect("utf8");
    cli(&["replay", "--data", d, "--max", "--until", &streamrec::data::format_day(mid)], addr, dir);
    let http = format!("127.0.0.1:{}", free_port());
    let ck = dir.join("ckpt");
    let args = ["serve", "--idle-close-ms", "300", "--http", &http, "--checkpoint-dir", ck.to_str().expect("utf8")];
    let serve = spawn_logged(dir, addr, &args, env, "serve.log");
    let health = || http_get(&http, "/health").and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok());
    let caught_up = wait_for(120, || health().filter(|h| h["events"].as_u64() == Some(first_half)));
    let log = std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();
    assert!(caught_up.is_some_and(|h| h["status"] == "ok" && h["group"]["member"] == true && h["events_in_state"] == h["events"]), "first half not applied: {:?}\n{log}", health());
    (serve, http, mid)
}

fn replay_all(addr: &str, dir: &Path) {
    cli(&["replay", "--data", dir.to_str().expect("utf8"), "--max"], addr, dir);
}

#[test]
fn poison_pill_an_oversized_message_is_dead_lettered_truncated_and_serving_goes_on() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = common::load(&common::tiny(dir.path(), 23));
    let (_broker, addr) = start_mock_broker();
    replay_all(&addr, dir.path());
    // 600 kB: carried whole twice over (text and base64) a dead letter would pass Kafka's 1 MB message limit.
    let big = format!("{{\"t_dat\":\"{}\"}}", "x".repeat(600_000)).into_bytes();
    produce(&addr, "transactions", &[(b"big".to_vec(), big.clone())]);
    let ckpt = dir.path().join("ckpt");
    let ck = ckpt.to_str().expect("utf8");
    let out = cli(&serve_args(&["--checkpoint-dir", ck]), &addr, dir.path());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{} events", data.transactions.len())), "{}", String::from_utf8_lossy(&out.stdout));
    let dead = dead_letters(&addr);
    assert_eq!(dead.len(), 1, "{dead:?}");
    let d = &dead[0];
    assert_eq!(d["truncated"], true);
    assert_eq!(d["payload_bytes"].as_u64(), Some(big.len() as u64));
    let want = streamrec::events::DeadLetter::new("x", 0, 0, None, &big, String::new()).payload_sha256;
    assert_eq!(d["payload_sha256"].as_str(), Some(want.as_str()));
    assert_eq!(published_lists(&addr), file_lists(&data), "the lists beside it are all there");
    // A restart does not meet it again: its offset moved on with the others (no second dead letter).
    cli(&serve_args(&["--checkpoint-dir", ck]), &addr, dir.path());
    assert_eq!(dead_letters(&addr).len(), 1, "re-published on restart");
}

#[test]
fn event_time_from_the_wrong_century_or_far_ahead_is_dead_lettered_and_a_duplicate_seq_is_skipped() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = common::load(&common::tiny(dir.path(), 29));
    let (_broker, addr) = start_mock_broker();
    replay_all(&addr, dir.path());
    let mid = data.transactions.len() / 2;
    let t = TxEvent::of_row(&data, mid);
    let key = format_hex32(&t.customer.0).into_bytes();
    let msg = |day: &str, seq: u64| {
        let good = String::from_utf8(TxEvent { seq, ..t }.to_json().expect("json")).expect("utf8");
        good.replace(&streamrec::data::format_day(t.day), day).into_bytes()
    };
    let after = data.transactions.len() as u64 + 10;
    produce(
        &addr,
        "transactions",
        &[
            (key.clone(), msg("2149-06-06", after)),
            (key.clone(), msg("1970-01-02", after + 1)),
            (key.clone(), msg("2030-01-01", after + 2)),
            // Replay's row `mid` again, byte for byte: a duplicate, not a new purchase.
            (key.clone(), t.to_json().expect("json")),
        ],
    );
    let out = cli(&serve_args(&[]), &addr, dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("{} events", data.transactions.len())), "the duplicate is not applied: {stdout}");
    let dead = dead_letters(&addr);
    assert_eq!(dead.len(), 3, "{dead:?}");
    let reasons: Vec<&str> = dead.iter().map(|d| d["reason"].as_str().expect("reason")).collect();
    assert!(reasons[0].contains("valid window") && reasons[1].contains("valid window"), "{reasons:?}");
    assert!(reasons[2].contains("max_ahead_days"), "{reasons:?}");
    // Event time never moved: every list equals the file pipeline's, no extra list for the duplicate.
    assert_eq!(published_lists(&addr), file_lists(&data));
}

#[test]
fn broker_reset_with_an_old_checkpoint_is_refused_and_discard_checkpoint_starts_fresh() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = common::load(&common::tiny(dir.path(), 31));
    let ckpt = dir.path().join("ckpt");
    let ck = ckpt.to_str().expect("utf8");
    {
        let (_old, addr) = start_mock_broker();
        replay_all(&addr, dir.path());
        cli(&serve_args(&["--checkpoint-dir", ck]), &addr, dir.path());
    }
    // A new broker, the whole replay again: the old checkpoint's offsets would skip every purchase.
    let (_new, addr) = start_mock_broker();
    replay_all(&addr, dir.path());
    let out = cli_status(&serve_args(&["--checkpoint-dir", ck]), &addr, dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "served on a checkpoint from another broker");
    assert!(err.contains("does not belong to this input") && err.contains("--discard-checkpoint"), "{err}");
    assert!(rt().block_on(read_to_end(&addr, "recommendations")).expect("recs").is_empty(), "nothing published when refused");
    let out = cli(&serve_args(&["--checkpoint-dir", ck, "--discard-checkpoint"]), &addr, dir.path());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{} events", data.transactions.len())));
    assert!(ckpt.join("engine.ckpt.discarded").is_file(), "the old checkpoint is kept aside");
    assert_eq!(published_lists(&addr), file_lists(&data));
}

#[test]
fn missing_checkpoint_with_committed_offsets_is_refused_and_rebuild_state_reads_from_the_start() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = common::load(&common::tiny(dir.path(), 37));
    let (_broker, addr) = start_mock_broker();
    replay_all(&addr, dir.path());
    cli(&serve_args(&[]), &addr, dir.path());
    // Restarted without its state: the group's offsets say every purchase was consumed.
    let out = cli_status(&serve_args(&[]), &addr, dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "served from an empty state");
    assert!(err.contains("already consumed") && err.contains("--rebuild-state"), "{err}");
    let ckpt = dir.path().join("ckpt");
    let ck = ckpt.to_str().expect("utf8");
    let out = cli(&serve_args(&["--rebuild-state", "--checkpoint-dir", ck]), &addr, dir.path());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{} events", data.transactions.len())), "rebuilt from every purchase");
    let c = streamrec::serve::checkpoint::read(&ckpt).expect("read").expect("checkpoint");
    assert_eq!(c.state.events, data.transactions.len() as u64);
}

#[test]
fn clean_stop_sigint_while_joining_the_group_exits_0_after_its_checkpoint() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("tmp");
    common::tiny(dir.path(), 41);
    let (_broker, addr) = start_mock_broker();
    replay_all(&addr, dir.path());
    let ckpt = dir.path().join("ckpt");
    let ck = ckpt.to_str().expect("utf8");
    cli(&serve_args(&["--checkpoint-dir", ck]), &addr, dir.path());
    // Again from its checkpoint (offsets to commit), stopped as soon as its reference data is in: the group
    // join has only begun.
    let mut child = Command::new(common::bin())
        .args(["serve", "--exit-when-idle", "--checkpoint-dir", ck, "--brokers", &addr])
        .env("RUST_LOG", "streamrec=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut log = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("line");
        log.push_str(&line);
        log.push('\n');
        if line.contains("reference data loaded") {
            let ok = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
            assert!(ok.success());
        }
    }
    let status = child.wait().expect("wait");
    assert!(log.contains("stopping"), "stopped by the signal: {log}");
    assert!(status.success(), "exit {status:?}: {log}");
    assert!(log.contains("checkpoint written"), "{log}");
}

#[test]
fn replay_resume_past_the_data_end_says_there_is_nothing_to_send() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = common::load(&common::tiny(dir.path(), 43));
    let (_broker, addr) = start_mock_broker();
    let resume = dir.path().join("resume.json");
    std::fs::write(&resume, format!("{{\"next_row\":{},\"last_seq\":{}}}", data.transactions.len() + 5, data.transactions.len() + 4)).expect("write");
    let args = ["replay", "--data", dir.path().to_str().expect("utf8"), "--max", "--resume", "--resume-file", resume.to_str().expect("utf8")];
    let out = cli_status(&args, &addr, dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("nothing left to send"), "{err}");
    assert!(rt().block_on(read_to_end(&addr, "transactions")).expect("tx").is_empty());
}

/// A damaged newest ranker (its model file cut short) once kept `serve` from starting although an older good
/// version sat beside it: the newest one that loads serves, and the damaged one is named in the log.
#[test]
fn corrupt_newest_model_falls_back_to_the_newest_good_one() {
    use streamrec::config::RankerKind;
    use streamrec::features::FEATURES;
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("ranker");
    common::write_model(&root.join("a"), "a-good", &FEATURES, (0.031, 0.025));
    common::write_model(&root.join("b"), "b-damaged", &FEATURES, (0.031, 0.025));
    let model = root.join("b/model.json");
    let text = std::fs::read_to_string(&model).expect("model");
    std::fs::write(&model, &text[..text.len() / 2]).expect("cut");
    let mut cfg = common::config().ranker;
    cfg.models_dir = root.to_str().expect("utf8").to_string();
    assert_eq!(streamrec::ranker::store::newest(&root).expect("newest"), Some(root.join("b")), "the damaged one is the newest");
    for kind in [RankerKind::Auto, RankerKind::Catboost] {
        cfg.kind = kind;
        let s = streamrec::ranker::select(&cfg).expect("starts");
        assert_eq!(s.ranker.version(), "a-good", "{kind:?}");
        assert!(s.why.contains("skipped"), "{}", s.why);
    }
    // Nothing loads: auto serves the blend and says why; catboost (the operator asked for a model) refuses.
    std::fs::write(root.join("a/model.json"), "{").expect("damage");
    cfg.kind = RankerKind::Auto;
    let s = streamrec::ranker::select(&cfg).expect("auto starts on the blend");
    assert!(s.refused && s.why.contains("none of the 2 models"), "{}", s.why);
    cfg.kind = RankerKind::Catboost;
    assert!(streamrec::ranker::select(&cfg).is_err());
}

/// A ranker swapped in through `model-updates` was forgotten on restart (the newest in `models_dir` served
/// again): the swap is recorded beside the checkpoint and the restarted engine serves it.
#[test]
fn ranker_swapped_in_by_model_updates_is_kept_across_a_restart() {
    use streamrec::features::FEATURES;
    let dir = tempfile::tempdir().expect("tmp");
    common::tiny(dir.path(), 41);
    let (_broker, addr) = start_mock_broker();
    replay_all(&addr, dir.path());
    let models = dir.path().join("models/ranker");
    common::write_model(&models.join("older"), "a-older", &FEATURES, (0.031, 0.025));
    common::write_model(&models.join("newer"), "b-newer", &FEATURES, (0.031, 0.025));
    let env = [("STREAMREC__RANKER__MODELS_DIR", models.to_str().expect("utf8"))];
    let ck = dir.path().join("ckpt");
    let args = ["serve", "--idle-close-ms", "300", "--checkpoint-dir", ck.to_str().expect("utf8")];
    let log = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    let mut serve = spawn_logged(dir.path(), &addr, &args, &env, "first.log");
    assert!(wait_for(60, || log("first.log").contains("assigned").then_some(())).is_some(), "{}", log("first.log"));
    assert!(log("first.log").contains("b-newer"), "the newest serves at first: {}", log("first.log"));
    cli(&["models", "publish", "--path", models.join("older").to_str().expect("utf8")], &addr, dir.path());
    assert!(wait_for(60, || log("first.log").contains("ranker swapped").then_some(())).is_some(), "{}", log("first.log"));
    Command::new("kill").args(["-INT", &serve.0.id().to_string()]).status().expect("kill");
    assert!(serve.0.wait().expect("wait").success(), "{}", log("first.log"));

    let args = ["serve", "--exit-when-idle", "--idle-close-ms", "300", "--checkpoint-dir", ck.to_str().expect("utf8")];
    let mut again = spawn_logged(dir.path(), &addr, &args, &env, "second.log");
    assert!(again.0.wait().expect("wait").success(), "{}", log("second.log"));
    let second = log("second.log");
    assert!(second.contains("ranker restored") && second.contains("a-older"), "{second}");
    assert!(!second.contains("b-newer"), "the newest was served again: {second}");
}

/// A broker that dies mid-replay and comes back (the same storage, the same port): `serve` keeps its state,
/// reports `/health` degraded while the broker is away, and goes on when it is back, losing and repeating no
/// list. (Before: `serve` exited within 5 s with `AllBrokersDown`, without a checkpoint.)
#[test]
fn broker_outage_mid_replay_is_waited_out_with_health_degraded_and_nothing_lost() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = common::load(&common::tiny(dir.path(), 37));
    let storage = "sqlite://tansu.db"; // in the test's directory: it outlives the broker process
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut broker = Some(start_tansu_on(port, storage, dir.path()));
    plain_topics(&addr);
    let (mut serve, http, mid) = serve_first_half(dir.path(), &data, &addr, &[]);
    let first_half = data.transactions.day.iter().filter(|&&d| d <= mid).count() as u64;
    let d = dir.path().to_str().expect("utf8");
    let log = || std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
    let health = || http_get(&http, "/health").and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok());

    drop(broker.take()); // SIGKILL: the broker is gone
    let degraded = wait_for(30, || health().filter(|h| h["status"] == "degraded"));
    let degraded = degraded.unwrap_or_else(|| panic!("health never said degraded: {:?}\n{}", health(), log()));
    assert_eq!(degraded["kafka"]["status"], "down", "{degraded}");
    std::thread::sleep(std::time::Duration::from_secs(8));
    assert!(serve.0.try_wait().expect("wait").is_none(), "serve exited during the outage:\n{}", log());
    assert_eq!(health().expect("health answers during the outage")["events"].as_u64(), Some(first_half));

    broker = Some(start_tansu_on(port, storage, dir.path()));
    let up = wait_for(60, || health().filter(|h| h["status"] == "ok"));
    assert!(up.is_some_and(|h| h["kafka"]["outages"].as_u64() >= Some(1)), "health never recovered: {:?}\n{}", health(), log());
    let next = streamrec::data::format_day(mid + 1);
    cli(&["replay", "--data", d, "--max", "--from", &next], &addr, dir.path());
    let total = data.transactions.len() as u64;
    assert!(wait_for(120, || health().filter(|h| h["events"].as_u64() == Some(total))).is_some(), "the rest not applied: {:?}\n{}", health(), log());
    // Stop cleanly (SIGINT): the last day's baskets close on quiet input; everything delivered.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let pid = serve.0.id().to_string();
    Command::new("kill").args(["-INT", &pid]).status().expect("kill");
    let status = serve.0.wait().expect("wait");
    assert!(status.success(), "serve did not stop cleanly: {status:?}\n{}", log());
    assert!(log().contains("broker reachable again"), "{}", log());
    assert_same_lists(&addr, &data, "the outage");
    drop(broker);
}


/// A broker that stalls (SIGSTOP) for longer than the group's session timeout while purchases flow. tansu 0.6.0
/// then kept the group waiting on the member it had lost as its leader: the engine's new member never got a
/// partition, applied nothing more, and `/health` said "ok". Now the group view makes `/health` degraded after
/// 12 s without an assignment and the engine replaces its member after `kafka.rejoin_after_ms`: every purchase
/// is applied and every list equals the file pipeline's.
#[test]
fn broker_stall_longer_than_the_session_timeout_is_rejoined_and_nothing_lost() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = common::load(&common::tiny(dir.path(), 37));
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let broker = start_tansu_on(port, "memory://tansu/", dir.path());
    plain_topics(&addr);
    // Replaced after 20 s: /health says degraded from 12 s on.
    let (mut serve, http, mid) = serve_first_half(dir.path(), &data, &addr, &[("STREAMREC__KAFKA__REJOIN_AFTER_MS", "20000")]);
    let d = dir.path().to_str().expect("utf8");
    let log = || std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
    let health = || http_get(&http, "/health").and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok());

    // The rest flows at a steady rate through the stall.
    let next = streamrec::data::format_day(mid + 1);
    let mut replay = spawn_logged(dir.path(), &addr, &["replay", "--data", d, "--rate", "300", "--from", &next], &[], "replay.log");
    std::thread::sleep(std::time::Duration::from_secs(2));
    let tansu = broker.0.id().to_string();
    Command::new("kill").args(["-STOP", &tansu]).status().expect("kill");
    std::thread::sleep(std::time::Duration::from_secs(15));
    Command::new("kill").args(["-CONT", &tansu]).status().expect("kill");

    let total = data.transactions.len() as u64;
    let (mut degraded, mut replaced) = (false, 0);
    let done = wait_for(180, || {
        let h = health()?;
        degraded |= h["status"] == "degraded" && h["group"]["member"] == false;
        replaced = replaced.max(h["group"]["replaced"].as_u64().unwrap_or(0));
        (h["events"].as_u64() == Some(total)).then_some(h)
    });
    let replay_log = || std::fs::read_to_string(dir.path().join("replay.log")).unwrap_or_default();
    assert!(done.is_some(), "the rest not applied after the stall ({total} purchases): {:?}\nreplay: {:?} {}\n{}", health(), replay.0.try_wait(), replay_log(), log());
    let replay_status = replay.0.wait().expect("replay");
    assert!(replay_status.success(), "replay failed: {}", replay_log());
    if replaced > 0 {
        assert!(degraded, "the member was replaced but /health never said degraded:\n{}", log());
    }
    eprintln!("stall: /health degraded {degraded}, members replaced {replaced}");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    Command::new("kill").args(["-INT", &serve.0.id().to_string()]).status().expect("kill");
    let status = serve.0.wait().expect("wait");
    assert!(status.success(), "serve did not stop cleanly: {status:?}\n{}", log());
    // This test has failed now and then in .ci/run with lists of ~50 customers differing at their tails (and
    // always one member replacement where passing runs had two): the serve log goes with the failure.
    if !same_lists(&addr, &data) {
        let l = log();
        eprintln!("serve.log (last 200 lines):\n{}", l.lines().rev().take(200).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    assert_same_lists(&addr, &data, "the stall");
    drop(broker);
}

/// `kill -9` of `serve` and a restart at once, within the group's session timeout: the dead member still holds
/// its partitions, so the new one is first given only part of them. It applied that part's purchases ahead of the
/// rest, out of the replay's order, and 1,207 of 2,000 customers' latest lists differed from a run without the
/// fault (tiny data, soak trial). Now it holds a partial assignment's purchases until the rest arrives: every
/// customer's latest list equals the file pipeline's.
#[test]
fn kill_9_and_restart_within_the_session_timeout_applies_purchases_in_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = common::load(&common::tiny(dir.path(), 11));
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    // sqlite: on tansu 0.6.0's memory storage the restart found `articles` ending at offset 1 after 1,000 were
    // replayed, and the checkpoint check rightly refused to resume past the topic's end.
    let _broker = start_tansu_on(port, "sqlite://tansu.db", dir.path());
    plain_topics(&addr);
    replay_all(&addr, dir.path());
    let ckpt = dir.path().join("ckpt");
    let ck = ckpt.to_str().expect("utf8");
    let args = serve_args(&["--checkpoint-dir", ck, "--checkpoint-every", "2000"]);
    let mut first = spawn_logged(dir.path(), &addr, &args, &[], "serve1.log");
    let file = streamrec::serve::checkpoint::path(&ckpt);
    assert!(wait_for(60, || file.exists().then_some(())).is_some(), "no checkpoint written");
    first.0.kill().expect("kill -9");
    let _ = first.0.wait();
    let at_kill = streamrec::serve::checkpoint::read(&ckpt).expect("read").expect("checkpoint");
    assert!(at_kill.state.events < data.transactions.len() as u64, "killed mid-run ({} of {} events)", at_kill.state.events, data.transactions.len());
    let mut second = spawn_logged(dir.path(), &addr, &args, &[], "serve2.log");
    let status = second.0.wait().expect("wait");
    let log = std::fs::read_to_string(dir.path().join("serve2.log")).unwrap_or_default();
    assert!(status.success() && log.contains("resumed from checkpoint"), "{status:?}\n{log}");
    let partial = log.contains("assigned part of the topic");
    eprintln!("restart: first given part of the partitions: {partial}");
    let got = published_lists(&addr);
    let want = file_lists(&data);
    let differing = want.iter().filter(|(c, lists)| got.get(*c).and_then(|g| g.last()) != lists.last()).count();
    assert_eq!(differing, 0, "{differing} of {} customers' latest lists differ after the restart (partial assignment first: {partial})\n{log}", want.len());
}

/// Another member holding part of the transactions partitions for longer than a rebalance takes (a member
/// whose process died but whose session is open, a broker slow to rebalance). A single engine applied its share
/// after 12 s, ahead of the rest: 7 of 87,000 customers' latest lists differed after the 30-min soak. Now one
/// instance (`kafka.instances` = 1) holds a partial assignment until it has every partition: `/health` is
/// degraded meanwhile, the member is replaced after `kafka.rejoin_after_ms`, nothing is applied, and once the
/// other member leaves every list equals the file pipeline's.
#[test]
fn a_single_instance_given_part_of_the_partitions_holds_them_until_it_has_all() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use streamrec::kafka::consumer::{GroupOptions, GroupReader};
    let dir = tempfile::tempdir().expect("tmp");
    let data = common::load(&common::tiny(dir.path(), 13));
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let _broker = start_tansu_on(port, "sqlite://tansu.db", dir.path());
    plain_topics(&addr);
    replay_all(&addr, dir.path());
    let cfg = common::config();

    // The other member: joins the engine's group on the transactions topic and keeps polling until told to go.
    let (stop, holding) = (std::sync::Arc::new(AtomicBool::new(false)), std::sync::Arc::new(std::sync::Mutex::new(Vec::new())));
    let other = {
        let (stop, holding) = (stop.clone(), holding.clone());
        let o = GroupOptions { brokers: addr.clone(), group: cfg.kafka.group_id.clone(), topic: cfg.topics.transactions.clone(), fetch_wait_ms: 100, instance_id: None, from_beginning: false, paused: false };
        std::thread::spawn(move || {
            rt().block_on(async {
                let reader = GroupReader::join(&o, None).expect("join");
                while !stop.load(Ordering::Relaxed) {
                    let _ = tokio::time::timeout(std::time::Duration::from_millis(100), reader.recv()).await;
                    *holding.lock().expect("lock") = reader.assignment().0;
                }
            });
        })
    };
    let all: Vec<i32> = (0..cfg.kafka.transactions_partitions).collect();
    assert!(wait_for(60, || (*holding.lock().expect("lock") == all).then_some(())).is_some(), "the other member never held the topic");

    let http = format!("127.0.0.1:{}", free_port());
    let args = serve_args(&["--http", &http]);
    let mut serve = spawn_logged(dir.path(), &addr, &args, &[("STREAMREC__KAFKA__REJOIN_AFTER_MS", "15000")], "serve.log");
    let log = || std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
    let health = || http_get(&http, "/health").and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok());
    // Held (degraded, nothing applied) through a replacement of its member, while the other keeps a share.
    let held = wait_for(90, || {
        let h = health()?;
        let short = h["group"]["partitions"].as_array().is_some_and(|p| !p.is_empty() && p.len() < all.len());
        (h["status"] == "degraded" && short && h["group"]["replaced"].as_u64() >= Some(1)).then_some(h)
    });
    let held = held.unwrap_or_else(|| panic!("never held a partial assignment through a replacement: {:?} (other member: {:?})\n{}", health(), holding.lock().map(|h| h.clone()), log()));
    assert_eq!(held["events"].as_u64(), Some(0), "purchases applied from part of the partitions: {held}");
    assert_eq!(held["group"]["partitions_of"].as_u64(), Some(all.len() as u64), "{held}");
    assert!(held["group"]["short_for_s"].as_f64().is_some(), "{held}");

    stop.store(true, Ordering::Relaxed);
    other.join().expect("other member");
    let status = serve.0.wait().expect("wait");
    assert!(status.success(), "{status:?}\n{}", log());
    assert!(log().contains("holding its purchases until the group gives the rest"), "{}", log());
    assert_same_lists(&addr, &data, "a partial assignment held");
}

#[test]
fn kafka_properties_reach_every_client_and_a_bad_entry_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = common::load(&common::tiny(dir.path(), 41));
    let d = dir.path().to_str().expect("utf8");
    let ckpt = dir.path().join("ckpt");
    let ck = ckpt.to_str().expect("utf8");
    let run = |props: &str, args: &[&str], addr: &str| {
        Command::new(common::bin()).args(args).args(["--brokers", addr]).env("STREAMREC_KAFKA_PROPERTIES", props).current_dir(dir.path()).output().expect("run")
    };
    // Bad input is named before anything is sent (no broker needed to find out).
    for (props, named) in [("linger.ms=5;oops", "`oops`"), ("no.such.property=1", "no.such.property")] {
        let out = run(props, &["replay", "--data", d, "--max"], "127.0.0.1:9");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(named), "{props}: {err}");
    }
    // tansu 0.6.0's memory storage reports a topic's end as its newest record batch's base offset + 1, so with
    // batches of many records a restarted serve refuses its own checkpoint as "past the topic's end". With one
    // record per batch set here, in replay's and serve's producers alike, the reported end is the true one and
    // the restart resumes: the property reached every client that wrote.
    let port = free_port();
    let _broker = start_tansu_on(port, "memory://tansu/", dir.path());
    let addr = format!("127.0.0.1:{port}");
    let ok = |out: std::process::Output| {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The soak's way: the reference data alone, one record per batch, then the purchases alone.
    let one = "batch.num.messages=1";
    ok(run(one, &["replay", "--data", d, "--max", "--until", "2000-01-01"], &addr));
    let sent = ok(run(one, &["replay", "--data", d, "--max", "--purchases-only"], &addr));
    assert!(sent.contains(&format!("replayed 0 articles, 0 customers, {} transactions", data.transactions.len())), "{sent}");
    let first = ok(run(one, &serve_args(&["--checkpoint-dir", ck]), &addr));
    assert!(first.contains(&format!("{} events", data.transactions.len())), "{first}");
    let again = ok(run(one, &serve_args(&["--checkpoint-dir", ck]), &addr));
    assert!(again.contains("resumed from checkpoint"), "{again}");
}
