//! The operator's page on a serving engine: `/` is one self-contained HTML file (no outside URL), the customer
//! view's JSON names recent purchases and 12 ranked articles, bad ids get a clear 400 / 404, the live stream
//! (server-sent events) sends the view again when the customer buys, and in a real browser (headless chromium)
//! the page shows all of it and updates itself; screenshots go to the test's output directory. The engine view
//! shows lag per partition, the models' champion / challenger decisions and the last backtest's recall per
//! source; article images show when an image directory is configured; every metric the Grafana board
//! (deploy/grafana/dashboards/streamrec.json) queries is on the engine's /metrics with the labels it uses.

mod common;

use common::procs::*;
use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

/// Reads server-sent events from `reader` until one named `customer` arrives (or `secs` pass): its data.
fn next_event(reader: &mut BufReader<std::net::TcpStream>, secs: u64) -> Option<serde_json::Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    let mut named = false;
    let mut line = String::new();
    while std::time::Instant::now() < deadline {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(_) => return None,
        }
        let l = line.trim_end();
        if l == "event: customer" {
            named = true;
        } else if let (true, Some(data)) = (named, l.strip_prefix("data: ")) {
            return serde_json::from_str(data).ok();
        }
    }
    None
}

#[test]
fn the_page_shows_a_customers_purchases_and_list_and_streams_the_next_purchase() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = common::tiny(tmp.path(), 21);
    let data = common::load(&dir);
    let (_broker, addr) = start_mock_broker();
    cli(&["replay", "--data", dir.to_str().expect("utf8"), "--max"], &addr, tmp.path());
    // A backtest first: its summary (models/backtest/last.json under the working directory) is what the engine
    // view shows.
    let bt = std::process::Command::new(common::bin()).args(["backtest", "--weeks", "1", "--data"]).arg(&dir).current_dir(tmp.path()).output().expect("backtest");
    assert!(bt.status.success(), "{}", String::from_utf8_lossy(&bt.stderr));
    let images = tmp.path().join("images");
    let http = format!("127.0.0.1:{}", free_port());
    let _serve = spawn_logged(tmp.path(), &addr, &["serve", "--http", &http], &[("STREAMREC__PAGE__IMAGES_DIR", images.to_str().expect("utf8"))], "serve.log");
    let log = || std::fs::read_to_string(tmp.path().join("serve.log")).unwrap_or_default();
    let total = data.transactions.len() as u64;
    let health = wait_for(90, || http_get(&http, "/health").and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok()).filter(|h| h["events"].as_u64() == Some(total)));
    assert!(health.is_some(), "serve did not apply the replay:\n{}", log());

    // The page: one file, nothing fetched from elsewhere.
    let (code, page) = http_get(&http, "/").expect("page");
    assert_eq!(code, 200);
    assert!(page.contains("<title>streamrec</title>") && page.contains("/api/customer/") && page.contains("EventSource"), "{page:.200}");
    assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("//cdn"), "the page loads nothing from outside");

    // Recently active customers, newest first; the first one's view.
    let (code, body) = http_get(&http, "/api/customers/recent").expect("recent");
    let recent: serde_json::Value = serde_json::from_str(&body).expect("json");
    let customers = recent["customers"].as_array().expect("customers");
    assert!(code == 200 && !customers.is_empty(), "{body}");
    let last_day = streamrec::data::format_day(data.transactions.last_day().expect("days"));
    assert_eq!(customers[0]["last_purchase"].as_str(), Some(last_day.as_str()), "{body}");
    let id = customers[0]["customer_id"].as_str().expect("id").to_string();
    // The view once the engine is done with the replay (after the last purchase its open baskets still close).
    let get_view = || http_get(&http, &format!("/api/customer/{id}")).filter(|(c, _)| *c == 200).and_then(|(_, b)| serde_json::from_str::<serde_json::Value>(&b).ok());
    let mut last_seen = get_view();
    let stable = wait_for(30, || {
        std::thread::sleep(Duration::from_millis(1000));
        let now = get_view();
        let same = now.is_some() && now == last_seen;
        last_seen = now.clone();
        same.then_some(now).flatten()
    });
    let v = stable.unwrap_or_else(|| panic!("the customer's view never settled: {last_seen:?}\n{}", log()));
    let body = v.to_string();
    let items = v["items"].as_array().expect("items");
    assert_eq!(items.len(), 12, "{body}");
    for i in items {
        assert!(i["name"].is_string() && i["type"].is_string() && i["colour"].is_string() && i["score"].is_number(), "{i}");
        assert!(!i["sources"].as_array().expect("sources").is_empty(), "{i}");
    }
    let bought = v["recent"].as_array().expect("recent");
    assert!(!bought.is_empty() && bought[0]["day"].as_str() == Some(last_day.as_str()), "newest purchase first: {body}");
    assert_eq!(v["model_versions"]["ranker"].as_str(), Some("blend-v1"), "{body}");

    // Bad ids: a clear message, never a broken page.
    for (path, code, want) in [
        ("/api/customer/xyz", 400, "64 hexadecimal"),
        ("/api/customer/%3Cscript%3E", 400, "64 hexadecimal"),
        (&format!("/api/customer/{}", "0".repeat(64)), 404, "no such customer"),
        ("/api/customer/xyz/events", 400, "64 hexadecimal"),
    ] {
        let got = http_get(&http, path).expect("answer");
        assert!(got.0 == code && got.1.contains(want), "{path}: {got:?}");
    }

    // In a real browser (Debian's chromium, headless, over the DevTools protocol): the page loads the customer
    // from its address and shows their purchases and 12 ranked articles; bad ids get a message, never markup.
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("operator_page");
    std::fs::create_dir_all(&out).expect("out dir");
    let profile = tempfile::tempdir().expect("profile");
    let mut browser = common::browser::Browser::open(&format!("http://{http}/?customer={id}"), profile.path());
    let shown = wait_for(20, || (browser.eval("document.querySelectorAll('#recs li.rec').length") == 12).then_some(()));
    assert!(shown.is_some(), "the page never showed 12 articles: {}", browser.eval("document.body.innerText"));
    assert!(browser.eval("document.querySelectorAll('#purchases li.purchase').length").as_u64().unwrap_or(0) >= 1);
    assert_eq!(browser.eval("document.getElementById('as-of').textContent").as_str(), Some(format!("as of {}", v["as_of"].as_str().expect("as_of")).as_str()));
    browser.screenshot(&out.join("customer.png"));
    for (typed, want) in [("<b>bold</b>", "A customer id is 64 hexadecimal characters"), (&"0".repeat(64)[..], "no such customer")] {
        browser.eval(&format!("document.getElementById('customer-id').value = {}; document.getElementById('find').requestSubmit()", serde_json::Value::from(typed)));
        let said = wait_for(10, || browser.eval("document.getElementById('message').textContent").as_str().filter(|m| m.contains(want)).map(str::to_string));
        assert!(said.is_some(), "{typed}: {}", browser.eval("document.body.innerHTML"));
        assert_eq!(browser.eval("document.querySelectorAll('b').length"), 0, "typed markup stays text");
    }
    browser.eval(&format!("document.getElementById('customer-id').value = '{id}'; document.getElementById('find').requestSubmit()"));
    assert!(wait_for(20, || (browser.eval("document.querySelectorAll('#recs li.rec').length") == 12).then_some(())).is_some());

    // Images: none yet (swatches only); then a JPEG per article in the Kaggle layout (made by the browser itself),
    // and the page shows them.
    assert_eq!(browser.eval("document.querySelectorAll('#recs img').length"), 0);
    for (path, code, want) in [("/images/12ab", 400, "article id"), ("/images/0000000001", 404, "no image for article 0000000001")] {
        let got = http_get(&http, path).expect("answer");
        assert!(got.0 == code && got.1.contains(want), "{path}: {got:?}");
    }
    let jpeg = browser.jpeg();
    assert_eq!(&jpeg[..2], b"\xff\xd8", "a JPEG");
    for i in 0..data.articles.len() as u32 {
        let id = streamrec::data::format_article_id(data.articles.get(i).article_id);
        let file = images.join(&id[..3]).join(format!("{id}.jpg"));
        std::fs::create_dir_all(file.parent().expect("parent")).expect("image dir");
        std::fs::write(&file, &jpeg).expect("image");
    }
    browser.eval(&format!("document.getElementById('customer-id').value = '{id}'; document.getElementById('find').requestSubmit()"));
    let pictured = wait_for(20, || (browser.eval("[...document.querySelectorAll('#recs img.thumb')].filter(i => i.complete && i.naturalWidth > 0).length") == 12).then_some(()));
    assert!(pictured.is_some(), "the page never showed 12 images: {}", browser.eval("document.getElementById('recs').innerHTML"));
    browser.screenshot(&out.join("customer-images.png"));

    browser.eval("document.getElementById('tab-engine').click()");
    let engine = wait_for(10, || browser.eval("document.getElementById('engine').innerText").as_str().filter(|t| t.contains("lists published")).map(str::to_string));
    assert!(engine.as_ref().is_some_and(|t| t.contains(&total.to_string())), "the engine view shows the purchases applied");
    let lag = wait_for(10, || browser.eval("document.getElementById('engine').innerText").as_str().filter(|t| t.lines().any(|l| l.starts_with("lag") && l.contains("p0 "))).map(str::to_string));
    assert!(lag.is_some(), "lag per partition: {}", browser.eval("document.getElementById('engine').innerText"));
    let models = browser.eval("document.getElementById('models').innerText").as_str().unwrap_or_default().to_string();
    assert!(models.lines().any(|l| l.starts_with("ranker") && l.contains("blend-v1")), "the ranker's decision: {models}");
    assert!(models.lines().any(|l| l.starts_with("two_tower") && l.contains("off")), "the two-tower decision: {models}");
    let map = wait_for(10, || browser.eval("document.getElementById('backtest-map').innerText").as_str().filter(|t| t.contains("engine")).map(str::to_string));
    assert!(map.is_some(), "the last backtest's MAP@12: {}", browser.eval("document.getElementById('engine-view').innerText"));
    let recall = browser.eval("document.getElementById('backtest-recall').innerText").as_str().unwrap_or_default().to_string();
    assert!(recall.contains("repurchase") && recall.lines().any(|l| l.starts_with("engine")), "recall per source: {recall}");
    let has_rate = |t: &str| t.lines().find(|l| l.starts_with("lists/s")).and_then(|l| l.split('\t').nth(1)).is_some_and(|v| v.ends_with("/s"));
    let rates = wait_for(10, || browser.eval("document.getElementById('engine').innerText").as_str().filter(|t| has_rate(t)).map(str::to_string));
    assert!(rates.is_some(), "rates from a second reading: {}", browser.eval("document.getElementById('engine').innerText"));
    browser.screenshot(&out.join("engine.png"));
    browser.eval("document.getElementById('tab-customer').click()");

    // Live: the stream sends the view now, and again once the customer's next purchase is applied.
    let mut s = std::net::TcpStream::connect(&http).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
    write!(s, "GET /api/customer/{id}/events HTTP/1.1\r\nHost: {http}\r\nAccept: text/event-stream\r\n\r\n").expect("write");
    let mut reader = BufReader::new(s);
    let first = next_event(&mut reader, 20).expect("the first event");
    let now = get_view().expect("the view");
    assert!(now["items"][0]["image"].is_string(), "articles have their images now: {now}");
    assert_eq!(first["items"], now["items"], "the stream starts with the current view");
    let article = &data.articles.get(0);
    let next_day = streamrec::data::format_day(data.transactions.last_day().expect("days") + 1);
    let purchase = serde_json::json!({
        "t_dat": next_day, "customer_id": id, "article_id": streamrec::data::format_article_id(article.article_id),
        "price": 0.0339, "sales_channel_id": 2, "seq": total,
    });
    rt().block_on(async {
        let sink = streamrec::kafka::producer::Sink::new(&addr, 0).expect("sink");
        let p = sink.send("transactions", id.as_bytes(), purchase.to_string().as_bytes()).await.expect("send");
        streamrec::kafka::producer::Sink::wait(vec![p]).await.expect("delivered");
    });
    // Event time may move first (the views in between are sent too); then the purchase is in the state.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let updated = loop {
        let e = next_event(&mut reader, 30).unwrap_or_else(|| panic!("no update after the purchase:\n{}", log()));
        if e["recent"][0]["day"].as_str() == Some(next_day.as_str()) || std::time::Instant::now() > deadline {
            break e;
        }
    };
    assert_eq!(updated["recent"][0]["day"].as_str(), Some(next_day.as_str()), "{updated}");
    assert_eq!(updated["recent"][0]["article_id"].as_str(), Some(streamrec::data::format_article_id(article.article_id).as_str()));
    assert_eq!(updated["as_of"].as_str(), Some(next_day.as_str()), "event time moved to the purchase's day");
    // The open page updated itself from the same stream.
    let live = wait_for(20, || browser.eval("document.getElementById('as-of').textContent").as_str().filter(|t| t.contains(&next_day)).map(str::to_string));
    assert!(live.is_some(), "the page did not update: {}", browser.eval("document.body.innerText"));
    assert!(browser.eval("document.querySelector('#purchases li').textContent").as_str().is_some_and(|t| t.contains(&next_day)));
    browser.screenshot(&out.join("customer-updated.png"));
    eprintln!("screenshots in {}", out.display());

    // The Grafana board queries only what the engine exports, with the labels it uses.
    let (code, metrics) = http_get(&http, "/metrics").expect("metrics");
    assert_eq!(code, 200);
    let board: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/dashboards/streamrec.json")).expect("board")).expect("board json");
    let exprs: Vec<String> = board["panels"].as_array().expect("panels").iter().flat_map(|p| p["targets"].as_array().expect("targets").iter().map(|t| t["expr"].as_str().expect("expr").to_string())).collect();
    assert!(exprs.len() >= 9, "{exprs:?}");
    let mut checked = std::collections::BTreeSet::new();
    for e in &exprs {
        for (metric, labels) in common::promql::series(e) {
            let lines: Vec<&str> = metrics.lines().filter(|l| !l.starts_with('#') && (l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} ")))).collect();
            assert!(!lines.is_empty(), "{metric} (in `{e}`) is not on /metrics:\n{metrics}");
            // `job` is Prometheus' own; `instance` the engine's (every series carries it).
            for l in labels.iter().filter(|l| l.as_str() != "job") {
                assert!(lines.iter().any(|x| x.contains(&format!("{l}=\""))), "{metric} has no label {l} (in `{e}`): {lines:?}");
            }
            checked.insert(metric);
        }
    }
    for m in ["streamrec_events_total", "streamrec_consumer_lag", "streamrec_purchase_to_list_seconds_bucket", "streamrec_recommendations_total", "streamrec_dead_letters_total", "streamrec_model_swaps_total", "streamrec_resident_memory_bytes"] {
        assert!(checked.contains(m), "the board shows {m}: {checked:?}");
    }
}

#[test]
fn promql_reader_finds_series_and_labels() {
    let got = common::promql::series(r#"histogram_quantile(0.99, sum by (le, instance) (rate(streamrec_x_seconds_bucket{kind="a"}[1m]))) / streamrec_y"#);
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["streamrec_x_seconds_bucket", "streamrec_y"]);
    assert_eq!(got[0].1.iter().map(String::as_str).collect::<Vec<_>>(), ["instance", "kind", "le"]);
    assert_eq!(got[1].1.iter().map(String::as_str).collect::<Vec<_>>(), ["instance", "le"]);
    assert!(common::promql::series("sum(rate(other_total[1m]))").is_empty());
}
