//! Processes for the streaming tests: broker processes (librdkafka's mock cluster via `streamrec broker`, and
//! tansu), the CLI, and children killed when the test ends.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed when the test ends, however it ends.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime")
}

pub fn start_mock_broker() -> (Proc, String) {
    let mut child = Command::new(super::bin()).arg("broker").stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn broker");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read bootstrap");
    let addr = line.trim().strip_prefix("bootstrap=").unwrap_or_else(|| panic!("first line should be bootstrap=…, got {line:?}")).to_string();
    (Proc(child), addr)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

pub fn tansu_bin() -> PathBuf {
    if let Ok(p) = std::env::var("STREAMREC_TANSU") {
        return PathBuf::from(p);
    }
    PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/streamrec/tools/bin/tansu")
}

pub fn start_tansu() -> (Proc, String) {
    let port = free_port();
    (start_tansu_on(port, "memory://tansu/", Path::new(".")), format!("127.0.0.1:{port}"))
}

/// tansu on `port` with `storage` (`memory://tansu/`, or `sqlite://FILE` — relative to `cwd` — to outlive the
/// process), run in `cwd`; waits until it listens.
pub fn start_tansu_on(port: u16, storage: &str, cwd: &Path) -> Proc {
    let bin = tansu_bin();
    assert!(bin.exists(), "tansu not found at {} — scripts/test.sh installs it (or set STREAMREC_TANSU)", bin.display());
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(&bin)
        .args(["broker", "--storage-engine", storage, "--listener-url", &url, "--advertised-listener-url", &url])
        .current_dir(cwd)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tansu");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "tansu did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    Proc(child)
}

/// `GET path` from `addr` (HOST:PORT): the status code and body, None when nothing answers.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

/// Polls `f` every 100 ms until it returns Some or `secs` pass.
pub fn wait_for<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn cli(args: &[&str], brokers: &str, cwd: &Path) -> std::process::Output {
    let out = Command::new(super::bin()).args(args).args(["--brokers", brokers]).current_dir(cwd).output().expect("run");
    assert!(out.status.success(), "streamrec {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

pub fn serve_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["serve", "--exit-when-idle", "--idle-close-ms", "300"];
    v.extend_from_slice(extra);
    v
}

/// Starts `streamrec ARGS --brokers ADDR` in `dir` with `env` (and info logs to `dir/log`).
pub fn spawn_logged(dir: &Path, addr: &str, args: &[&str], env: &[(&str, &str)], log: &str) -> Proc {
    let err = std::fs::File::create(dir.join(log)).expect("log");
    Proc(
        Command::new(super::bin())
            .args(args)
            .args(["--brokers", addr])
            .env("RUST_LOG", "streamrec=info")
            .envs(env.iter().copied())
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("spawn"),
    )
}

/// Every list published, per customer in seq order (the output is keyed by customer).
pub fn published_lists(brokers: &str) -> BTreeMap<String, Vec<Vec<String>>> {
    super::kafka_lists(&rt().block_on(streamrec::kafka::consumer::read_to_end(brokers, "recommendations")).expect("recs"))
}

/// The lists the same pipeline makes from the files.
pub fn file_lists(data: &streamrec::data::Dataset) -> BTreeMap<String, Vec<Vec<String>>> {
    super::file_lists(data, &super::config())
}

/// Each customer's lists with a repeat of the list before it left out (at-least-once: a list may go out twice).
fn dedup(m: BTreeMap<String, Vec<Vec<String>>>) -> BTreeMap<String, Vec<Vec<String>>> {
    m.into_iter().map(|(c, mut v)| { v.dedup(); (c, v) }).collect()
}

/// Every list published is one the file pipeline makes, and every one it makes was published (repeats aside).
pub fn same_lists(addr: &str, data: &streamrec::data::Dataset) -> bool {
    dedup(published_lists(addr)) == dedup(file_lists(data))
}

/// At-least-once across a fault: a list may go out twice (the keyed, compacted topic keeps one); none is lost
/// or different from the file pipeline's.
pub fn assert_same_lists(addr: &str, data: &streamrec::data::Dataset, fault: &str) {
    let (got, want) = (dedup(published_lists(addr)), dedup(file_lists(data)));
    let n = |m: &BTreeMap<String, Vec<Vec<String>>>| m.values().map(Vec::len).sum::<usize>();
    let differing: Vec<&String> = want.keys().filter(|c| got.get(*c) != want.get(*c)).collect();
    // The first few that differ: how many lists each, and where the first difference sits.
    for c in differing.iter().take(12) {
        let (g, w) = (got.get(*c).cloned().unwrap_or_default(), want.get(*c).cloned().unwrap_or_default());
        let first = g.iter().zip(&w).position(|(a, b)| a != b);
        let pos = first.map(|i| (0..12).find(|&j| g[i].get(j) != w[i].get(j)));
        eprintln!("DIFF {c}: got {} want {} first differing list {:?} at item {:?}", g.len(), w.len(), first, pos);
    }
    assert!(differing.is_empty() && got.len() == want.len(), "lists lost or changed across {fault}: {} customers differ of {}, {} lists published vs {} expected; first: {:?} got {:?} want {:?}", differing.len(), want.len(), n(&got), n(&want), differing.first(), differing.first().and_then(|c| got.get(*c)).map(Vec::len), differing.first().and_then(|c| want.get(*c)).map(Vec::len));
}
