//! A real nginx with WebDAV on a loopback port, started per test from a temporary prefix.
//!
//! nginx is a required test dependency (Debian package `nginx`, installed by `.ci/run`): a
//! missing binary fails the test, it is never skipped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub struct Nginx {
    child: Child,
    pub dir: TempDir,
    pub port: u16,
}

fn nginx_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("TICKVAULT_TEST_NGINX") {
        return PathBuf::from(p);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':').chain([
        "/usr/sbin",
        "/usr/local/sbin",
        "/usr/local/nginx/sbin",
    ]) {
        let p = Path::new(dir).join("nginx");
        if p.is_file() {
            return p;
        }
    }
    panic!("nginx is required for the remote-cache tests (Debian: apt-get install nginx; .ci/run installs it)");
}

impl Nginx {
    /// Starts nginx serving WebDAV at `http://127.0.0.1:{port}/`; with `token`, requests without
    /// `Authorization: Bearer {token}` get 401.
    pub fn start(token: Option<&str>) -> Nginx {
        let bin = nginx_binary();
        let dir = tempfile::tempdir().unwrap();
        for d in ["root", "body", "logs"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let auth = token
            .map(|t| format!("if ($http_authorization != \"Bearer {t}\") {{ return 401; }}"))
            .unwrap_or_default();
        for _ in 0..20 {
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let p = dir.path().display();
            let conf = format!(
                r#"daemon off;
master_process off;
worker_processes 1;
error_log {p}/logs/error.log warn;
pid {p}/logs/nginx.pid;
events {{ worker_connections 512; }}
http {{
    access_log {p}/logs/access.log;
    client_body_temp_path {p}/body;
    proxy_temp_path {p}/body;
    fastcgi_temp_path {p}/body;
    uwsgi_temp_path {p}/body;
    scgi_temp_path {p}/body;
    server {{
        listen 127.0.0.1:{port};
        root {p}/root;
        client_max_body_size 0;
        location / {{
            {auth}
            dav_methods PUT DELETE MKCOL COPY MOVE;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
        }}
    }}
}}
"#
            );
            std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
            let mut child = Command::new(&bin)
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(dir.path().join("nginx.conf"))
                .arg("-e")
                .arg(dir.path().join("logs/error.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: probably the port was taken; try another
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Nginx { child, dir, port };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(dir.path().join("logs/error.log")).unwrap_or_default();
        panic!("nginx did not start: {log}");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/cache/", self.port)
    }

    /// The directory nginx serves (`/cache/` of the URL is `root()/cache`).
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// Requests nginx logged so far, as `METHOD path status` lines.
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("logs/access.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let req = l.split('"').nth(1)?;
                let status = l.split('"').nth(2)?.split_whitespace().next()?;
                let mut parts = req.split_whitespace();
                Some(format!("{} {} {status}", parts.next()?, parts.next()?))
            })
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
