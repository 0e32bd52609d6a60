//! A real browser for page tests: Debian's chromium, headless, driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: commands on its fd 3, answers on fd 4, each message ending in a NUL byte), so no
//! client library or websocket is needed. `scripts/test.sh` installs chromium.
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub struct Browser {
    child: Child,
    to: File,
    from: BufReader<File>,
    next: u64,
    session: String,
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes; both are owned from here on.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: pipe2 succeeded, so both are open descriptors nothing else owns.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

impl Browser {
    /// Opens `url` in headless chromium (a profile under `profile`) and attaches to its page.
    pub fn open(url: &str, profile: &Path) -> Browser {
        use std::os::fd::AsRawFd;
        let (cmd_read, cmd_write) = pipe();
        let (ans_read, ans_write) = pipe();
        let (r, w) = (cmd_read.as_raw_fd(), ans_write.as_raw_fd());
        let mut c = Command::new("chromium");
        c.args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--remote-debugging-pipe", "--window-size=1280,900"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(profile.join("chromium.log")).map(Stdio::from).unwrap_or_else(|_| Stdio::null()));
        // SAFETY: between fork and exec only fcntl and dup2 run (async-signal-safe); they put the pipe ends on fds 3
        // and 4, where chromium expects them (dup2 clears close-on-exec on the copies).
        unsafe {
            c.pre_exec(move || {
                // Copies above 10 first: one of the ends may itself be fd 3 or 4.
                let (r2, w2) = (libc::fcntl(r, libc::F_DUPFD_CLOEXEC, 10), libc::fcntl(w, libc::F_DUPFD_CLOEXEC, 10));
                if r2 < 0 || w2 < 0 || libc::dup2(r2, 3) < 0 || libc::dup2(w2, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = c.spawn().expect("chromium (scripts/test.sh installs it)");
        drop((cmd_read, ans_write));
        let mut b = Browser { child, to: File::from(cmd_write), from: BufReader::new(File::from(ans_read)), next: 0, session: String::new() };
        let page = super::procs::wait_for(20, || {
            let t = b.call("Target.getTargets", serde_json::json!({}), false);
            t["targetInfos"].as_array()?.iter().find(|i| i["type"] == "page").and_then(|i| i["targetId"].as_str()).map(str::to_string)
        })
        .expect("a page target");
        let attached = b.call("Target.attachToTarget", serde_json::json!({"targetId": page, "flatten": true}), false);
        b.session = attached["sessionId"].as_str().expect("session").to_string();
        b
    }

    /// Sends one command (to the page when `on_page`) and returns its result (events in between are skipped).
    pub fn call(&mut self, method: &str, params: serde_json::Value, on_page: bool) -> serde_json::Value {
        self.next += 1;
        let mut msg = serde_json::json!({"id": self.next, "method": method, "params": params});
        if on_page {
            msg["sessionId"] = self.session.clone().into();
        }
        self.to.write_all(msg.to_string().as_bytes()).expect("write to chromium");
        self.to.write_all(b"\0").expect("write to chromium");
        loop {
            let mut buf = Vec::new();
            let n = self.from.read_until(0, &mut buf).expect("read from chromium");
            assert!(n > 0, "chromium closed the pipe");
            buf.pop();
            let v: serde_json::Value = serde_json::from_slice(&buf).expect("json from chromium");
            if v["id"].as_u64() == Some(self.next) {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression in the page.
    pub fn eval(&mut self, expr: &str) -> serde_json::Value {
        let r = self.call("Runtime.evaluate", serde_json::json!({"expression": expr, "returnByValue": true}), true);
        r["result"]["value"].clone()
    }

    /// A PNG of the page, written to `path`.
    pub fn screenshot(&mut self, path: &Path) {
        use base64::Engine;
        let r = self.call("Page.captureScreenshot", serde_json::json!({"format": "png"}), true);
        let png = base64::engine::general_purpose::STANDARD.decode(r["data"].as_str().expect("data")).expect("base64");
        std::fs::write(path, png).expect("write screenshot");
    }

    /// A small JPEG (the page's top left corner, 60 × 80), made by the browser's own encoder.
    pub fn jpeg(&mut self) -> Vec<u8> {
        use base64::Engine;
        let clip = serde_json::json!({"x": 0, "y": 0, "width": 60, "height": 80, "scale": 1});
        let r = self.call("Page.captureScreenshot", serde_json::json!({"format": "jpeg", "quality": 80, "clip": clip}), true);
        base64::engine::general_purpose::STANDARD.decode(r["data"].as_str().expect("data")).expect("base64")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
