//! The streaming spine end to end, as separate processes against a real Kafka-protocol broker process:
//! `streamrec broker` (librdkafka's mock cluster) and, when installed by scripts/test.sh, `tansu`.
//! replay → serve → subscribe; every message checked against its JSON Schema; the lists equal what the same
//! pipeline computes from the files (transport does not change results); bad messages reach dead-letters;
//! offsets are committed once lists are delivered; kill -9 + restart from a checkpoint ends in the same lists.

mod common;

use common::procs::*;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use streamrec::data::{format_article_id, format_hex32, Dataset};
use streamrec::events::dataset_events;
use streamrec::generate::ScaleParams;
use streamrec::kafka::consumer::{committed_offsets, read_to_end, Record};
use streamrec::pipeline::Pipeline;

fn small_data(dir: &Path) -> Dataset {
    let params = ScaleParams { customers: 300, articles: 200, weeks: 3, rows: 3_000 };
    common::gen(dir, params, 7, streamrec::data::write::Format::Csv);
    common::load(dir)
}


fn schema(name: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas").join(format!("{name}.schema.json"));
    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("schema")).expect("schema json");
    jsonschema::validator_for(&s).expect("valid schema")
}

fn assert_valid(name: &str, recs: &[Record]) {
    assert!(!recs.is_empty(), "no messages on {name}");
    let v = schema(name);
    for r in recs {
        let value: serde_json::Value = serde_json::from_slice(r.payload.as_deref().unwrap_or(&[])).unwrap_or_else(|e| panic!("{name} offset {}: not JSON: {e}", r.offset));
        if let Err(e) = v.validate(&value) {
            panic!("{name} message at {}:{} breaks its schema: {e}\n{value}", r.partition, r.offset);
        }
        if name == "recommendations" {
            let ids: std::collections::BTreeSet<&str> = value["items"].as_array().expect("items").iter().filter_map(|i| i["article_id"].as_str()).collect();
            assert_eq!(ids.len(), 12, "12 distinct articles: {value}");
            assert_eq!(r.key.as_deref(), value["customer_id"].as_str().map(str::as_bytes), "keyed by customer");
        }
    }
}

/// replay → serve → subscribe as processes; returns the recommendations records.
fn spine(brokers: &str, dir: &Path, data: &Dataset) {
    let cwd = dir;
    let out = cli(&["replay", "--data", dir.to_str().expect("utf8"), "--max"], brokers, cwd);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("{} transactions", data.transactions.len())), "{text}");
    // Two bad messages on the input topic: not JSON, and a bad channel.
    let bad: [&[u8]; 2] = [b"{not json", br#"{"t_dat":"2020-09-01","customer_id":"00","article_id":"0108775015","price":0.1,"sales_channel_id":7,"seq":1}"#];
    rt().block_on(async {
        let sink = streamrec::kafka::producer::Sink::new(brokers, 0).expect("sink");
        let mut pending = Vec::new();
        for b in bad {
            pending.push(sink.send("transactions", b"bad", b).await.expect("send"));
        }
        streamrec::kafka::producer::Sink::wait(pending).await.expect("delivered");
    });
    let out = cli(&serve_args(&[]), brokers, cwd);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("{} events", data.transactions.len())), "{text}");

    let (recs, dead, txs, arts, custs) = rt().block_on(async {
        (
            read_to_end(brokers, "recommendations").await.expect("recs"),
            read_to_end(brokers, "dead-letters").await.expect("dead"),
            read_to_end(brokers, "transactions").await.expect("tx"),
            read_to_end(brokers, "articles").await.expect("articles"),
            read_to_end(brokers, "customers").await.expect("customers"),
        )
    });
    // Schemas: every message on every topic.
    assert_valid("recommendations", &recs);
    assert_valid("dead-letters", &dead);
    let good_tx: Vec<Record> = txs.iter().filter(|r| r.key.as_deref() != Some(b"bad")).cloned().collect();
    assert_valid("transactions", &good_tx);
    assert_valid("articles", &arts);
    assert_valid("customers", &custs);
    assert_eq!(arts.len(), data.articles.len());

    // Bad input: both in dead-letters with their exact bytes and a reason; nothing else lost.
    assert_eq!(dead.len(), 2, "dead letters: {dead:?}");
    for (d, b) in dead.iter().zip(bad) {
        let v: serde_json::Value = serde_json::from_slice(d.payload.as_deref().expect("payload")).expect("json");
        use base64::Engine;
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(v["payload_base64"].as_str().expect("b64")).expect("b64"), b);
        assert_eq!(v["source_topic"], "transactions");
        assert!(!v["reason"].as_str().expect("reason").is_empty());
    }
    assert!(dead.iter().any(|d| String::from_utf8_lossy(d.payload.as_deref().unwrap_or(&[])).contains("sales_channel_id")), "reason names the field");

    // Same lists as the file-fed pipeline, list for list, in order.
    let cfg = common::config();
    let expected = common::file_lists(data, &cfg);
    let got = common::kafka_lists(&recs);
    assert_eq!(got.len(), expected.len(), "customers with lists");
    assert_eq!(got, expected, "lists through Kafka differ from the file pipeline");

    // Offsets committed only after delivery, and all of them by the end: committed = end of every partition.
    let committed = committed_offsets(brokers, &cfg.kafka.group_id, "transactions", Duration::from_secs(10)).expect("committed");
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for r in &txs {
        ends.insert(r.partition, r.offset + 1);
    }
    let committed: BTreeMap<i32, i64> = committed.into_iter().collect();
    assert_eq!(committed, ends, "every consumed offset committed after its lists were delivered");

    // subscribe as a process: N lines, one per message, filtered by customer.
    let first = recs[0].clone();
    let customer = String::from_utf8(first.key.clone().expect("key")).expect("utf8");
    let n_for_customer = recs.iter().filter(|r| r.key == first.key).count();
    let out = cli(&["subscribe", "--from-beginning", "--customer", &customer, "--max", &n_for_customer.to_string()], brokers, cwd);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(lines.len(), n_for_customer);
    assert!(lines.iter().all(|l| l["customer_id"] == customer.as_str()));
    // --to-end: the whole topic as it is, then exit (no --max).
    let out = cli(&["subscribe", "--from-beginning", "--to-end"], brokers, cwd);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), recs.len(), "subscribe --to-end: one line per list");
}

#[test]
fn spine_on_the_embedded_broker_process() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = small_data(dir.path());
    let (_broker, addr) = start_mock_broker();
    spine(&addr, dir.path(), &data);
}

#[test]
fn spine_on_tansu() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = small_data(dir.path());
    let (_broker, addr) = start_tansu();
    spine(&addr, dir.path(), &data);
}

#[test]
fn kill_9_mid_run_then_restart_ends_in_the_same_lists() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = common::load(&common::tiny(dir.path(), 11));
    let (_broker, addr) = start_mock_broker();
    cli(&["replay", "--data", dir.path().to_str().expect("utf8"), "--max"], &addr, dir.path());
    let ckpt = dir.path().join("ckpt");
    let ck = ckpt.to_str().expect("utf8");
    let mut first = Proc(
        Command::new(common::bin())
            .args(serve_args(&["--checkpoint-dir", ck, "--checkpoint-every", "2000"]))
            .args(["--brokers", &addr])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve"),
    );
    let file = streamrec::serve::checkpoint::path(&ckpt);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !file.exists() {
        assert!(Instant::now() < deadline, "no checkpoint written");
        std::thread::sleep(Duration::from_millis(2));
    }
    first.0.kill().expect("kill -9"); // SIGKILL: no shutdown path runs
    let _ = first.0.wait();
    let at_kill = streamrec::serve::checkpoint::read(&ckpt).expect("read").expect("checkpoint");
    assert!(at_kill.state.events < data.transactions.len() as u64, "killed mid-run ({} of {} events)", at_kill.state.events, data.transactions.len());
    let out = cli(&serve_args(&["--checkpoint-dir", ck, "--checkpoint-every", "2000"]), &addr, dir.path());
    assert!(String::from_utf8_lossy(&out.stdout).contains("resumed from checkpoint"));

    let recs = rt().block_on(read_to_end(&addr, "recommendations")).expect("recs");
    // Compacted output: the last list per customer is what a reader keeps.
    let mut last: BTreeMap<String, (u64, Vec<String>)> = BTreeMap::new();
    for (c, lists) in common::kafka_lists(&recs) {
        last.insert(c, (0, lists.last().cloned().unwrap_or_default()));
    }
    let expected = common::file_lists(&data, &common::config());
    assert_eq!(last.len(), expected.len());
    for (c, lists) in expected {
        if last.get(&c).map(|x| &x.1) != lists.last() {
            for r in recs.iter().filter(|r| r.key.as_deref() == Some(c.as_bytes())) {
                let v: serde_json::Value = serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap();
                eprintln!("p{} o{} seq {} as_of {} {:?}", r.partition, r.offset, v["seq"], v["as_of"], v["items"].as_array().unwrap().iter().map(|i| i["article_id"].as_str().unwrap().to_string()).collect::<Vec<_>>());
            }
            eprintln!("expected {:?}", lists);
            eprintln!("checkpoint events {}", at_kill.state.events);
        }
        assert_eq!(last.get(&c).map(|x| &x.1), lists.last(), "final list of {c}");
    }
}

/// Reads `recommendations` back and checks nothing was lost or doubled (the (seq, customer) of every list equals
/// the file pipeline's) and each output partition holds its lists in the engine's emission order; returns the
/// messages in emission order.
fn delivered_exactly_once_in_order(addr: &str, data: &Dataset) -> Vec<serde_json::Value> {
    let recs = rt().block_on(read_to_end(addr, "recommendations")).expect("recs");
    let mut p = Pipeline::new(&common::config().core()).expect("pipeline");
    let mut want: Vec<(u64, String)> = Vec::new();
    for ev in dataset_events(data) {
        want.extend(p.step(ev).into_iter().map(|r| (r.seq, format_hex32(&r.customer.0))));
    }
    want.extend(p.finish().into_iter().map(|r| (r.seq, format_hex32(&r.customer.0))));
    let msgs: Vec<(i32, i64, serde_json::Value)> =
        recs.iter().map(|r| (r.partition, r.offset, serde_json::from_slice(r.payload.as_deref().expect("payload")).expect("json"))).collect();
    let key = |v: &serde_json::Value| (v["seq"].as_u64().expect("seq"), v["customer_id"].as_str().expect("c").to_string());
    let mut got: Vec<(u64, String)> = msgs.iter().map(|(_, _, v)| key(v)).collect();
    let mut all = want.clone();
    got.sort();
    all.sort();
    if got != all {
        let (g, w): (std::collections::BTreeSet<_>, std::collections::BTreeSet<_>) = (got.iter().collect(), all.iter().collect());
        let missing: Vec<_> = w.difference(&g).take(5).collect();
        let extra: Vec<_> = g.difference(&w).take(5).collect();
        panic!("every list exactly once: got {} ({} distinct), want {}; missing e.g. {missing:?}; unexpected e.g. {extra:?}", got.len(), g.len(), all.len());
    }
    let position: BTreeMap<(u64, String), usize> = want.iter().cloned().enumerate().map(|(i, k)| (k, i)).collect();
    let mut by_part: BTreeMap<i32, Vec<(i64, usize)>> = BTreeMap::new();
    for (part, off, v) in &msgs {
        by_part.entry(*part).or_default().push((*off, position[&key(v)]));
    }
    for (part, mut v) in by_part {
        v.sort();
        assert!(v.windows(2).all(|w| w[0].1 < w[1].1), "partition {part}: lists out of emission order");
    }
    let mut by_seq: Vec<(usize, serde_json::Value)> = msgs.into_iter().map(|(_, _, v)| (position[&key(&v)], v)).collect();
    by_seq.sort_by_key(|(i, _)| *i);
    by_seq.into_iter().map(|(_, v)| v).collect()
}

#[test]
fn ranker_hot_swap_mid_stream_loses_and_reorders_nothing() {
    use streamrec::features::FEATURES;
    let dir = tempfile::tempdir().expect("tmp");
    let data = common::load(&common::tiny(dir.path(), 13));
    let (_broker, addr) = start_mock_broker();
    let good = dir.path().join("models/good");
    let bad = dir.path().join("models/bad");
    let loser = dir.path().join("models/loser");
    common::write_model(&good, "swap-good", &FEATURES, (0.031, 0.025));
    common::write_model(&bad, "swap-bad", &FEATURES[..FEATURES.len() - 1], (0.031, 0.025));
    // Fits the engine but lost to the blend on validation: the gate keeps it out under kind = "auto".
    common::write_model(&loser, "swap-loser", &FEATURES, (0.020, 0.025));

    // Replay at a steady rate while the engine serves, so the updates land mid-stream.
    let spawn = |args: &[&str], log: &str| spawn_logged(dir.path(), &addr, args, &[], log);
    // About 16 s of input, so both updates land mid-stream even on a loaded machine.
    let rate = (data.transactions.len() / 16).max(500).to_string();
    let mut replay = spawn(&["replay", "--data", dir.path().to_str().expect("utf8"), "--rate", &rate], "replay.log");
    let http = format!("127.0.0.1:{}", free_port());
    let mut serve = spawn(&serve_args(&["--http", &http]), "serve.log");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = rt().block_on(read_to_end(&addr, "recommendations")).expect("recs").len();
        if n >= 50 {
            break;
        }
        assert!(Instant::now() < deadline, "no lists appeared");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ranker_decision = || http_get(&http, "/health").and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok()).map(|h| h["models"]["ranker"].clone());
    let first = ranker_decision().expect("health");
    assert!(first["serving"] == "blend-v1" && first["reason"].as_str().is_some_and(|r| !r.is_empty()), "the decision at start: {first}");
    cli(&["models", "publish", "--path", bad.to_str().expect("utf8")], &addr, dir.path());
    cli(&["models", "publish", "--path", good.to_str().expect("utf8")], &addr, dir.path());
    cli(&["models", "publish", "--path", loser.to_str().expect("utf8")], &addr, dir.path());
    // /health (and the operator's page) name what serves and the gate's last word: the loser refused, the good
    // model still serving.
    let refused = wait_for(20, || ranker_decision().filter(|d| d["reason"].as_str().is_some_and(|r| r.contains("swap-loser"))));
    let refused = refused.unwrap_or_else(|| panic!("no decision on swap-loser: {:?}", ranker_decision()));
    assert!(refused["serving"] == "swap-good" && refused["passed"] == false && refused["reason"].as_str().is_some_and(|r| r.contains("did not beat the blend")), "{refused}");
    assert!(replay.0.wait().expect("replay").success(), "replay failed");
    assert!(serve.0.wait().expect("serve").success(), "serve failed: {}", std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default());

    let by_seq = delivered_exactly_once_in_order(&addr, &data);
    let versions: Vec<&str> = by_seq.iter().map(|v| v["model_versions"]["ranker"].as_str().expect("version")).collect();
    let first_new = versions.iter().position(|v| *v == "swap-good").expect("the good model was swapped in");
    assert!(first_new > 0, "lists before the swap came from the blend");
    assert!(versions[..first_new].iter().all(|v| *v == "blend-v1"), "{:?}", &versions[..first_new]);
    assert!(versions[first_new..].iter().all(|v| *v == "swap-good"), "no list after the swap from another model");
    // The new model really ranks: its scores are its leaf values (fill items score 0).
    for v in &by_seq[first_new..] {
        for it in v["items"].as_array().expect("items") {
            let s = it["score"].as_f64().expect("score");
            assert!(s == 0.0 || s == 0.25 || s == 0.75, "score {s} is not one of the test model's leaves");
        }
    }
    let log = std::fs::read_to_string(dir.path().join("serve.log")).expect("log");
    assert!(log.contains("model update rejected") && log.contains("does not match this engine's features"), "refusal logged: {log}");
    assert!(log.contains("ranker swapped"), "{log}");
    assert!(!versions.contains(&"swap-loser"), "a model that lost to the blend never serves");
    assert!(log.contains("model update not served") && log.contains("did not beat the blend"), "gate refusal logged: {log}");
}

/// Replays `data` (in `dir`) for about 40 s into `serve`, which retrains the towers quickly (tiny data, CPU) under
/// the settings in `env` as well; returns serve's log.
fn serve_with_retraining(dir: &Path, addr: &str, data: &streamrec::data::Dataset, env: &[(&str, &str)]) -> String {
    let mut env: Vec<(&str, &str)> = env.to_vec();
    env.extend([("STREAMREC__TWO_TOWER__EPOCHS", "2"), ("STREAMREC__TWO_TOWER__DEVICE", "cpu"), ("STREAMREC__TWO_TOWER__INDEX_MIN_ROWS", "100000")]);
    let spawn = |args: &[&str], log: &str| spawn_logged(dir, addr, args, &env, log);
    // About 40 s of input: retraining (export, PyTorch, ONNX parity, LanceDB) finishes while events still flow.
    let rate = (data.transactions.len() / 40).max(500).to_string();
    let mut replay = spawn(&["replay", "--data", dir.to_str().expect("utf8"), "--rate", &rate], "replay.log");
    // The trainer shares the two cores with replay and serve: a longer quiet spell before open baskets close as
    // end of input, so a slow moment of the producer is not taken for the end.
    let mut serve = spawn(&["serve", "--exit-when-idle", "--idle-close-ms", "5000"], "serve.log");
    assert!(replay.0.wait().expect("replay").success(), "replay failed");
    assert!(serve.0.wait().expect("serve").success(), "serve failed: {}", std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default());
    std::fs::read_to_string(dir.join("serve.log")).expect("log")
}

#[test]
fn periodic_two_tower_retraining_inside_serve_loses_and_reorders_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = common::load(&common::tiny(dir.path(), 17));
    let (_broker, addr) = start_mock_broker();
    // Retrain every two event-weeks on what the engine saw, quickly (tiny data, CPU).
    // The gate off: each version is announced as soon as it is ready (the shadow week has its own test).
    let env = [
        ("STREAMREC__TWO_TOWER__RETRAIN_EVERY_DAYS", "14"),
        ("STREAMREC__TWO_TOWER__GATE", "false"),
    ];
    let log = serve_with_retraining(dir.path(), &addr, &data, &env);
    assert!(log.contains("two-tower retraining published") && log.contains("two-tower swapped"), "{log}");

    // Lists before the first swap have no two-tower version; after it, every list names one, and versions
    // only move forward (each retraining's name carries its event date).
    let by_seq = delivered_exactly_once_in_order(&addr, &data);
    let versions: Vec<Option<&str>> = by_seq.iter().map(|v| v["model_versions"]["two_tower"].as_str()).collect();
    let first = versions.iter().position(Option::is_some).expect("a retrained model served lists");
    assert!(first > 0, "the engine started without a two-tower model");
    assert!(versions[first..].iter().all(Option::is_some), "no list after the swap without the source");
    assert!(versions[first..].windows(2).all(|w| w[0] <= w[1]), "versions move forward only");
    // The served version is on disk and active in the store.
    let last = versions.last().copied().flatten().expect("version");
    assert!(dir.path().join("models/two_tower").join(last).join("manifest.json").is_file());
    let mut cfg = common::config();
    cfg.two_tower.vectors_dir = dir.path().join("models/vectors").display().to_string();
    let store = rt().block_on(streamrec::two_tower::open_store(&cfg.two_tower)).expect("store");
    assert!(store.active().expect("active").is_some());
}

/// The shadow week: a version retrained inside serve serves nobody for the 7 event-days after it is ready,
/// while sampled customers' lists with and without it are compared; one that does not beat the engine without
/// it (here: a margin no model reaches) is refused, logged with both figures, and never swapped in.
#[test]
fn retrained_two_tower_that_loses_its_shadow_week_is_not_served() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = common::load(&common::tiny(dir.path(), 19));
    let (_broker, addr) = start_mock_broker();
    let env = [
        ("STREAMREC__TWO_TOWER__RETRAIN_EVERY_DAYS", "10"),
        ("STREAMREC__TWO_TOWER__MIN_LIFT", "100.0"),
        ("STREAMREC__TWO_TOWER__SHADOW_SAMPLE", "1"),
    ];
    let log = serve_with_retraining(dir.path(), &addr, &data, &env);
    assert!(log.contains("two-tower shadow week started"), "{log}");
    assert!(log.contains("two-tower retrained version not served (gate)") && log.contains("did not beat the engine without it"), "{log}");
    assert!(!log.contains("two-tower retraining published") && !log.contains("two-tower swapped"), "{log}");
    let by_seq = delivered_exactly_once_in_order(&addr, &data);
    assert!(by_seq.iter().all(|v| v["model_versions"]["two_tower"].is_null()), "no list was served by the refused version");
    // Its figures are in its manifest; it is stored, not active. A later retraining whose shadow week the input
    // ended before is stored unjudged: no figures at all, never figures from another method.
    let models = dir.path().join("models/two_tower");
    let manifests: Vec<serde_json::Value> = std::fs::read_dir(&models)
        .expect("models")
        .filter_map(Result::ok)
        .map(|e| e.path().join("manifest.json"))
        .filter(|p| p.is_file())
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("json"))
        .collect();
    let judged: Vec<&serde_json::Value> = manifests.iter().filter(|m| !m["gate"].is_null()).collect();
    assert!(!judged.is_empty(), "no version carries its shadow week's figures: {manifests:?}");
    for m in judged {
        assert_eq!(m["gate"]["method"], "shadow", "{}", m["gate"]);
        assert!(m["gate"]["customers"].as_u64().expect("customers") > 0, "{}", m["gate"]);
    }
    let mut cfg = common::config();
    cfg.two_tower.vectors_dir = dir.path().join("models/vectors").display().to_string();
    let store = rt().block_on(streamrec::two_tower::open_store(&cfg.two_tower)).expect("store");
    assert!(store.active().expect("active").is_none());
}

/// A list that cannot be encoded (a score JSON cannot carry) is not published as an empty or `null`-scored
/// message: it goes to dead-letters with the reason, counted; the lists beside it go out.
#[test]
fn a_list_that_cannot_be_encoded_goes_to_dead_letters_not_out_empty() {
    use streamrec::data::CustomerKey;
    use streamrec::events::{DeadLetter, RecItem, Recommendation, Sources, Trigger};
    use streamrec::kafka::embedded::EmbeddedBroker;
    use streamrec::serve::sink::{encode, Output};
    use streamrec::serve::{Counters, Shared};
    let cfg = common::config();
    let broker = EmbeddedBroker::start(&streamrec::kafka::topic_specs(&cfg)).expect("broker");
    let dir = tempfile::tempdir().unwrap();
    let data = common::load(&common::tiny(dir.path(), 5));
    let mut p = Pipeline::new(&cfg.core()).expect("pipeline");
    for ev in dataset_events(&data).filter(|e| !matches!(e, streamrec::events::Event::Transaction(_))) {
        p.step(ev);
    }
    let item = |article, score| RecItem { article, score, sources: Sources::default().with(0) };
    let list = |key: u8, score| Recommendation { customer: CustomerKey([key; 32]), as_of: 18_500, seq: 1, trigger: Trigger::Basket, items: vec![item(1, 1.0), item(0, score)] };
    let recs = [list(1, 0.5), list(2, f32::NAN), list(3, 0.25)];
    let encoded = encode(&p, &recs);
    let shared = Shared { pipeline: std::sync::RwLock::new(p), counters: Counters::default(), link: Default::default(), group: Default::default(), text: Default::default(), decisions: Default::default(), page: Default::default(), shares: Default::default() };
    let rt = rt();
    let (lists, dead) = rt.block_on(async {
        let mut out = Output::new(broker.bootstrap(), cfg.topics.clone(), Default::default()).expect("output");
        let sent = out.lists(&shared, encoded).await.expect("lists");
        assert_eq!(sent, 2);
        out.delivered().await.expect("delivered");
        (read_to_end(broker.bootstrap(), &cfg.topics.recommendations).await.expect("read"), read_to_end(broker.bootstrap(), &cfg.topics.dead_letters).await.expect("read"))
    });
    let mut keys: Vec<String> = lists.iter().map(|r| String::from_utf8_lossy(r.key.as_deref().unwrap_or(&[])).into_owned()).collect();
    keys.sort();
    assert_eq!(keys, [format_hex32(&[1; 32]), format_hex32(&[3; 32])]);
    for r in &lists {
        let m: streamrec::events::RecommendationMsg = serde_json::from_slice(r.payload.as_deref().expect("payload")).expect("a list");
        assert_eq!(m.items.len(), 2);
        assert!(m.items.iter().all(|i| i.score.is_finite()));
    }
    assert_eq!(dead.len(), 1);
    let d: DeadLetter = serde_json::from_slice(dead[0].payload.as_deref().expect("payload")).expect("a dead letter");
    assert_eq!(d.source_topic, cfg.topics.recommendations);
    assert!(d.reason.contains("NaN") && d.reason.contains(&format_article_id(data.articles.id(0))), "{}", d.reason);
    assert_eq!(d.key.as_deref(), Some(format_hex32(&[2; 32]).as_str()));
    assert_eq!(shared.counters.dead_letters.load(std::sync::atomic::Ordering::Relaxed), 1);
}
