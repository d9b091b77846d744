//! `tickvault serve` as a process for the tests: started on a free port over the fake Tardis,
//! its log captured, its `/metrics` read back as numbers.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use super::Env;

/// A running server; killed when dropped.
pub struct Edge {
    child: Child,
    /// `http://127.0.0.1:PORT/`, what clients give as `--remote-cache`.
    pub url: String,
    /// The server's cache directory.
    pub cache: PathBuf,
    log: Arc<Mutex<String>>,
}

impl Edge {
    /// `tickvault serve --listen 127.0.0.1:0 --cache-dir CACHE ARGS` with `envs`, over `env`'s
    /// fake Tardis. Waits until it listens.
    pub fn start(env: &Env, cache: &Path, args: &[&str], envs: &[(&str, &str)]) -> Edge {
        let mut c = env.cmd();
        c.args(["serve", "--listen", "127.0.0.1:0", "--cache-dir"])
            .arg(cache)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("tickvault serve starts");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or_default().to_string();
                    let _ = tx.send(addr);
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("tickvault serve did not start:\n{}", log.lock().unwrap());
            }
        };
        Edge {
            child,
            url: format!("http://{addr}/"),
            cache: cache.to_path_buf(),
            log,
        }
    }

    /// The address, `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.url.trim_start_matches("http://").trim_end_matches('/').to_string()
    }

    /// What clients give as `--api-url`.
    pub fn api_url(&self) -> String {
        format!("{}v1", self.url)
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// `/metrics`, as `name{labels}` → value.
    pub async fn metrics(&self) -> HashMap<String, f64> {
        let text = reqwest::get(format!("{}metrics", self.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                Some((name.to_string(), value.parse().ok()?))
            })
            .collect()
    }

    /// One series of `/metrics` (0 when absent).
    pub async fn metric(&self, series: &str) -> u64 {
        self.metrics().await.get(series).copied().unwrap_or(0.0) as u64
    }

    /// Polls `series` until `ok` holds (at most 20 s); returns its last value.
    pub async fn wait_metric(&self, series: &str, ok: impl Fn(u64) -> bool) -> u64 {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.metric(series).await;
            if ok(v) || Instant::now() > until {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Kills the process (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit (at most 30 s) and returns its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `request` (a raw HTTP/1.1 request head) on a new connection and returns the status
/// line and the whole response (the server closes: `Connection: close`).
pub fn raw(addr: &str, request: &str) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let status = String::from_utf8_lossy(&out)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, out)
}
