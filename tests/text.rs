//! The text encoder against sentence-transformers (token ids and embeddings), `embed-text` and `search` on a
//! generated catalogue, bad queries, and a new article on the `articles` topic found by `GET /search` at once.

mod common;

use common::procs::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use streamrec::text::{TextEncoder, MODEL_VERSION};

/// The exported text model, made once per version of the export script and its requirements (about a minute)
/// and kept under the streamrec cache for later runs, like the trainer's venv.
fn text_models() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut h = crc32fast::Hasher::new();
    for f in ["trainer/export_text.py", "trainer/requirements-text.txt"] {
        h.update(&std::fs::read(root.join(f)).expect("read"));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let dir = home.join(format!(".cache/streamrec/test-models/text-{:08x}", h.finalize()));
    // Tests of this file run on threads of one process: one exports, the others wait (another process exporting
    // at the same time is harmless: the first finished export is kept).
    static ONCE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONCE.lock().unwrap_or_else(|e| e.into_inner());
    streamrec::text::ensure_exported(&dir, 2).expect("export the text model");
    dir
}

fn env_for(models: &Path, vectors: &Path) -> Vec<(String, String)> {
    vec![
        ("STREAMREC__TEXT__MODELS_DIR".into(), models.display().to_string()),
        ("STREAMREC__TEXT__VECTORS_DIR".into(), vectors.display().to_string()),
    ]
}

fn run(args: &[&str], env: &[(String, String)], cwd: &Path) -> std::process::Output {
    Command::new(common::bin()).args(args).envs(env.iter().map(|(k, v)| (k, v))).current_dir(cwd).output().expect("run")
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn text_encoder_matches_sentence_transformers_token_for_token_and_by_cosine() {
    let dir = text_models().join(MODEL_VERSION);
    let enc = TextEncoder::load(&dir, 2).expect("load");
    assert_eq!((enc.dim(), enc.manifest.max_tokens), (384, 256));
    let parity: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("parity.json")).expect("parity")).expect("json");
    let rows = parity["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 200);
    let texts: Vec<String> = rows.iter().map(|r| r["text"].as_str().expect("text").to_string()).collect();
    for (r, t) in rows.iter().zip(&texts) {
        let want: Vec<u32> = r["input_ids"].as_array().expect("ids").iter().map(|x| x.as_u64().expect("id") as u32).collect();
        assert_eq!(enc.token_ids(t).expect("tokenize"), want, "token ids of {t:?}");
    }
    let mut worst = f32::INFINITY;
    for (chunk, rows) in texts.chunks(16).zip(rows.chunks(16)) {
        let got = enc.encode(chunk).expect("encode");
        for (v, r) in got.chunks_exact(384).zip(rows) {
            let want: Vec<f32> = r["embedding"].as_array().expect("embedding").iter().map(|x| x.as_f64().expect("f") as f32).collect();
            let dot: f32 = v.iter().zip(&want).map(|(a, b)| a * b).sum();
            let (na, nb) = (v.iter().map(|x| x * x).sum::<f32>().sqrt(), want.iter().map(|x| x * x).sum::<f32>().sqrt());
            assert!((na - 1.0).abs() < 1e-4, "not a unit vector: {na}");
            worst = worst.min(dot / (na * nb));
        }
    }
    eprintln!("parity: 200 sentences, lowest cosine {worst:.7}");
    assert!(worst >= 0.999, "lowest cosine against sentence-transformers {worst}");
}

#[test]
fn search_finds_articles_of_the_queried_type_and_colour_and_bad_queries_are_refused() {
    let models = text_models();
    let tmp = tempfile::tempdir().expect("tmp");
    let data = common::tiny(&tmp.path().join("data"), 5);
    let env = env_for(&models, &tmp.path().join("vectors"));
    let d = data.to_str().expect("utf8");
    let first = run(&["embed-text", "--data", d], &env, tmp.path());
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stdout(&first).contains("embedded 1000 articles"), "{}", stdout(&first));
    let again = run(&["embed-text", "--data", d], &env, tmp.path());
    assert!(again.status.success() && stdout(&again).contains("up to date"), "a second run embeds nothing: {}", stdout(&again));
    let version_of = |o: &std::process::Output| stdout(o).split_whitespace().skip_while(|w| *w != "version" && *w != "vectors").nth(1).expect("a version named").to_string();
    let v1 = version_of(&first);

    // A catalogue with one more article is a new version; `models rollback --text` makes the first active again.
    let grown = tmp.path().join("grown");
    std::fs::create_dir_all(&grown).expect("dir");
    for f in ["customers.csv", "transactions_train.csv"] {
        std::fs::copy(data.join(f), grown.join(f)).expect("copy");
    }
    let csv = std::fs::read_to_string(data.join("articles.csv")).expect("articles");
    let last = csv.lines().last().expect("a row");
    let (_, rest) = last.split_once(',').expect("columns");
    std::fs::write(grown.join("articles.csv"), format!("{csv}0999999999,{rest}\n")).expect("write");
    let third = run(&["embed-text", "--data", grown.to_str().expect("utf8"), "--no-gate"], &env, tmp.path());
    assert!(third.status.success() && stdout(&third).contains("embedded 1001 articles"), "{}{}", stdout(&third), stderr(&third));
    let v2 = version_of(&third);
    assert_ne!(v1, v2);
    let back = run(&["models", "rollback", "--text"], &env, tmp.path());
    assert!(back.status.success(), "{}", stderr(&back));
    assert!(stdout(&back).contains(&format!("text vectors {v1} are active again")), "{}", stdout(&back));
    let active = rt().block_on(streamrec::two_tower::store::VectorStore::open(&tmp.path().join("vectors"), 3, 20_000)).expect("store").active().expect("active");
    assert_eq!(active.as_deref(), Some(v1.as_str()), "the first version is the active one");

    // Queries from the catalogue: the (colour, product type) pairs with the most articles.
    let (articles, _) = streamrec::data::Articles::load(&data.join("articles.csv"), &streamrec::data::LoadOptions::strict()).expect("articles");
    let mut pairs: std::collections::BTreeMap<(String, String), usize> = Default::default();
    for i in 0..articles.len() as u32 {
        let a = articles.get(i);
        *pairs.entry((a.colour_group_name.clone(), a.product_type_name.clone())).or_default() += 1;
    }
    let mut top: Vec<_> = pairs.into_iter().filter(|(_, n)| *n >= 3).collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    assert!(top.len() >= 5, "too few (colour, type) pairs with 3 articles: {top:?}");
    let mut matched = 0;
    for ((colour, kind), _) in top.iter().take(8) {
        let query = format!("{} {}", colour.to_lowercase(), kind.to_lowercase());
        let out = run(&["search", &query, "--k", "5", "--data", d], &env, tmp.path());
        assert!(out.status.success(), "{query}: {}", stderr(&out));
        let lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
        assert_eq!(lines.len(), 5, "{query}: {lines:?}");
        // Each line: id  score  name | type | colour
        let fields = |l: &str| l.split(" | ").map(str::trim).map(str::to_string).collect::<Vec<_>>();
        let of_type = lines.iter().filter(|l| fields(l).get(1) == Some(kind)).count();
        let first = fields(&lines[0]);
        eprintln!("{query:30} → {} of 5 of the type; first: {:?}", of_type, first);
        assert!(of_type >= 3, "{query}: {lines:?}");
        if first.get(1) == Some(kind) && first.get(2) == Some(colour) {
            matched += 1;
        }
    }
    assert!(matched >= 6, "the first hit had the queried type and colour for only {matched} of 8 queries");

    for (query, want) in [("", "empty"), ("   ", "empty"), (&"boots ".repeat(1700)[..], "at most 1000")] {
        let out = run(&["search", query], &env, tmp.path());
        assert!(!out.status.success() && stderr(&out).contains(want), "{query:.20}: {}", stderr(&out));
    }
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"black \xff boots");
    let out = Command::new(common::bin()).arg("search").arg(bad).envs(env.iter().map(|(k, v)| (k, v))).current_dir(tmp.path()).output().expect("run");
    assert!(!out.status.success() && stderr(&out).contains("UTF-8"), "{}", stderr(&out));
}

/// `GET /search` on a serving engine: results from the catalogue's text vectors; a new article published on the
/// `articles` topic is found at once (embedded as it arrives, by the text source, which serves here with its gate
/// off, and reused by search); bad queries get 400 with the reason.
#[test]
fn a_new_article_on_the_topic_is_found_by_search_at_once() {
    let models = text_models();
    let tmp = tempfile::tempdir().expect("tmp");
    let data = common::tiny(&tmp.path().join("data"), 9);
    let vectors = tmp.path().join("vectors");
    let mut env = env_for(&models, &vectors);
    env.push(("STREAMREC__TEXT__GATE".into(), "false".into()));
    let d = data.to_str().expect("utf8");
    let out = run(&["embed-text", "--data", d], &env, tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let (_broker, addr) = start_mock_broker();
    cli(&["replay", "--data", d, "--max"], &addr, tmp.path());
    let http = format!("127.0.0.1:{}", free_port());
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let _serve = spawn_logged(tmp.path(), &addr, &["serve", "--http", &http], &env_ref, "serve.log");
    let log = || std::fs::read_to_string(tmp.path().join("serve.log")).unwrap_or_default();
    let get = |path: &str| http_get(&http, path).map(|(code, body)| (code, serde_json::from_str::<serde_json::Value>(&body).unwrap_or_default()));
    let first = wait_for(60, || get("/search?q=black+trousers&k=12").filter(|(c, _)| *c == 200));
    let (_, body) = first.unwrap_or_else(|| panic!("search never answered: {:?}\n{}", get("/search?q=black+trousers"), log()));
    assert_eq!(body["results"].as_array().map(Vec::len), Some(12), "{body}");
    assert!(body["results"][0]["prod_name"].is_string() && body["took_ms"].as_f64().is_some(), "{body}");

    let new = streamrec::data::Article {
        article_id: 999_000_001,
        product_code: 999_000,
        prod_name: "Rodeo glitter".into(),
        product_type_name: "Boots".into(),
        colour_group_name: "Gold".into(),
        graphical_appearance_name: "Glittering/Metallic".into(),
        department_name: "Shoes".into(),
        section_name: "Womens Shoes".into(),
        detail_desc: "Knee-high cowboy boots in glittering gold imitation leather with a pointed toe and a stacked heel.".into(),
        ..streamrec::data::Article::unknown(999_000_001)
    };
    let payload = streamrec::events::article_to_json(&new).expect("json");
    rt().block_on(async {
        let sink = streamrec::kafka::producer::Sink::new(&addr, 0).expect("sink");
        let p = sink.send("articles", b"0999000001", &payload).await.expect("send");
        streamrec::kafka::producer::Sink::wait(vec![p]).await.expect("delivered");
    });
    let found = wait_for(30, || {
        get("/search?q=gold+glitter+cowboy+boots&k=3").filter(|(_, b)| b["results"][0]["article_id"] == "0999000001")
    });
    assert!(found.is_some(), "the new article was not found: {:?}\n{}", get("/search?q=gold+glitter+cowboy+boots&k=3"), log());
    assert!(log().contains("text source on"), "the text source serves with its gate off:\n{}", log());

    for (path, want) in [("/search?q=", "empty"), ("/search", "missing"), ("/search?q=boots&k=0", "between 1 and 1000"), ("/search?q=%FF%FE", "not UTF-8"), ("/search?q=boots&colour=red", "unknown parameter")] {
        let got = get(path);
        assert!(got.as_ref().is_some_and(|(c, b)| *c == 400 && b["error"].as_str().is_some_and(|e| e.contains(want))), "{path}: {got:?}");
    }
    let long = format!("/search?q={}", "boots+".repeat(1700));
    let got = get(&long);
    assert!(got.as_ref().is_some_and(|(c, b)| *c == 400 && b["error"].as_str().is_some_and(|e| e.contains("at most 1000"))), "{got:?}");
}

/// `embed-text` on data with purchases measures the text source's gate (the engine with and without it on the last
/// week) and records it; the backtest scores the source alone and in the blend, with its column in the recall table.
#[test]
fn embed_text_gates_the_text_source_and_the_backtest_shows_its_recall() {
    let models = text_models();
    let tmp = tempfile::tempdir().expect("tmp");
    let data = common::tiny(&tmp.path().join("data"), 6);
    let vectors = tmp.path().join("vectors");
    let mut env = env_for(&models, &vectors);
    env.push(("STREAMREC__RANKER__KIND".into(), "blend".into()));
    env.push(("STREAMREC__TWO_TOWER__ENABLED".into(), "false".into()));
    let d = data.to_str().expect("utf8");
    let out = run(&["embed-text", "--data", d], &env, tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(said.contains("text source") && said.contains("MAP@12") && said.contains("without it"), "{said}");
    let version = said.split_whitespace().skip_while(|w| *w != "version").nth(1).expect("version named").to_string();
    let gate: streamrec::two_tower::gate::TowerGate =
        serde_json::from_slice(&std::fs::read(streamrec::text::source::gate_path(&vectors, &version)).expect("gate file")).expect("gate json");
    assert!(gate.customers > 0 && gate.with_map12 > 0.0 && gate.without_map12 > 0.0, "{gate:?}");
    let cfg = streamrec::config::Config::load(None).expect("config");
    let serves = gate.with_map12 >= gate.without_map12 * (1.0 + cfg.text.min_lift);
    assert!(said.contains(if serves { "text source serves" } else { "text source does not serve" }), "the decision follows the figures: {said}");
    // A second run has figures already: it says the decision without measuring again.
    let again = run(&["embed-text", "--data", d], &env, tmp.path());
    assert!(again.status.success() && !stderr(&again).contains("text source gate:"), "{}", stderr(&again));
    assert!(stdout(&again).contains("text source"), "{}", stdout(&again));

    let bt = run(&["backtest", "--data", d, "--weeks", "1", "--no-ranker"], &env, tmp.path());
    assert!(bt.status.success(), "{}", stderr(&bt));
    let table = stdout(&bt);
    let header = table.lines().find(|l| l.contains(" any ")).expect("recall table");
    let col = header.split_whitespace().position(|w| w == "text").expect("a text column") ;
    let rate = |method: &str| -> f64 {
        let line = table.lines().find(|l| l.split_whitespace().nth(1) == Some(method)).unwrap_or_else(|| panic!("{method} row: {table}"));
        line.split_whitespace().nth(col).expect("cell").parse().expect("number")
    };
    assert!(rate("text_only") > 0.0 && rate("engine_text") > 0.0, "{table}");
    assert_eq!(rate("engine"), 0.0, "{table}");
    assert!(table.lines().any(|l| l.starts_with("engine_text ")), "{table}");
}

/// Cold start through the pipeline: an article that arrives as an event is embedded by the text source at once and
/// offered first to a customer whose only purchase has the same text; without an encoder it is counted, left out.
#[test]
fn the_text_source_offers_a_new_article_like_a_customers_purchase_as_soon_as_it_arrives() {
    use std::sync::Arc;
    use streamrec::candidates::{UserView, TEXT};
    use streamrec::text::source::{Neighbours, TextSource};
    let models = text_models();
    let tmp = tempfile::tempdir().expect("tmp");
    let data = common::load(&common::tiny(&tmp.path().join("data"), 8));
    let enc = Arc::new(TextEncoder::load(&models.join(MODEL_VERSION), 2).expect("encoder"));
    let (ids, texts) = streamrec::text::embed::catalogue_texts(&data.articles);
    let vectors = streamrec::text::embed::embed(&enc, &texts, 64, &|_| {}).expect("embed");
    let nb = Arc::new(Neighbours::build("text-test".into(), ids, vectors, enc.dim(), 32, &|_, _| {}));
    let cfg = common::config();
    let end = data.transactions.last_day().expect("days") + 1;
    let fold = || {
        let mut p = streamrec::pipeline::Pipeline::new(&cfg.core()).expect("pipeline");
        p.fold_history(&streamrec::backtest::History::before(&data, end));
        p
    };
    let mut p = fold();
    let seeds = cfg.candidates.seeds;
    let who = (0..p.state.users.len() as u32).find(|&c| UserView::new(&p.state, c, seeds).own.len() == 1).expect("a customer with one distinct purchase");
    let bought = UserView::new(&p.state, who, seeds).own[0].article;
    p.plug(Box::new(TextSource::new(nb.clone(), Some(enc.clone()), &p.state, 20)));
    assert_eq!(p.model_versions().get("text").map(String::as_str), Some("text-test"));
    let before = p.candidate_set(who).expect("candidates");
    assert!(before.items.iter().filter(|c| c.sources.has(TEXT)).count() >= 10, "the text source proposes for them");

    let new = streamrec::data::Article { article_id: 999_000_001, product_code: 999_000, ..p.state.catalog.get(bought).clone() };
    p.apply(&streamrec::events::Event::Article(Box::new(new.clone())));
    let a = p.state.catalog.idx(new.article_id).expect("in the catalogue");
    let after = p.candidate_set(who).expect("candidates");
    let c = after.items.iter().find(|c| c.article == a).expect("the new article is offered");
    assert!(c.sources.has(TEXT) && c.ranks[TEXT] == 0 && c.scores[TEXT] > 0.999, "{c:?}");
    let src = p.source::<TextSource>().expect("plugged");
    assert_eq!(src.counts(), (1, 0));
    assert!(src.vector_of(new.article_id).is_some(), "search can reuse the vector");

    // Without an encoder (the backtest's way) a new article is counted and left out, never guessed.
    let mut q = fold();
    q.plug(Box::new(TextSource::new(nb, None, &q.state, 20)));
    q.apply(&streamrec::events::Event::Article(Box::new(new.clone())));
    let a = q.state.catalog.idx(new.article_id).expect("in the catalogue");
    assert!(q.candidate_set(who).expect("candidates").items.iter().all(|c| c.article != a || !c.sources.has(TEXT)));
    assert_eq!(q.source::<TextSource>().expect("plugged").counts(), (0, 1));
}
