//! The progress bar in a pseudo-terminal: bytes, rate and ETA move while a body streams,
//! before its chunk ends (bytes used to count only when a chunk ended).

use std::io::Read;
use std::process::Stdio;

use fake_tardis::Fault;

use crate::support::{Env, KEY, date};

#[tokio::test(flavor = "multi_thread")]
async fn the_bar_shows_bytes_before_the_first_chunk_ends() {
    let env = Env::new().await;
    let csv = env.serve_generated("deribit", "trades", "BTC-PERPETUAL", date("2024-03-05"), 30_000, 1);
    let gz_len = fake_tardis::generate::gzip_members(csv.as_bytes(), 3).len() as u64;
    // The body takes about 3 s.
    env.tardis.script(
        &fake_tardis::FakeTardis::dataset_path("deribit", "trades", date("2024-03-05"), "BTC-PERPETUAL"),
        [Fault::trickle(gz_len / 3)],
    );
    let pty = nix::pty::openpty(None, None).expect("a pseudo-terminal");
    let mut c = env.cmd();
    c.env("TARDIS_API_KEY", KEY)
        .env("TERM", "xterm")
        .args([
            "download",
            "-e",
            "deribit",
            "-s",
            "BTC-PERPETUAL",
            "--from",
            "2024-03-05",
            "-o",
        ])
        .arg(&env.out)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(pty.slave));
    let mut child = c.spawn().unwrap();
    drop(c);
    // Read the terminal until the child closes it (EIO once no process holds the slave).
    let mut master = std::fs::File::from(pty.master);
    let reader = std::thread::spawn(move || {
        let mut screen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            screen.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&screen).into_owned()
    });
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let screen = tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{screen}");
    // Frames of the bar while the only chunk is still streaming: "0/1 chunks · 12.00 KiB from
    // Tardis · 4.00 KiB/s".
    // "0/1 chunks · 38.7 KiB · 12.9 KiB/s · ETA 2s": bytes and a rate while the only chunk is
    // still streaming, in an 80-column terminal.
    let moving = screen
        .split(['\r', '\n'])
        .filter_map(|f| f.split("0/1 chunks · ").nth(1))
        .filter(|m| !m.starts_with("0 B") && m.contains("iB/s"))
        .count();
    assert!(moving >= 2, "no frame with bytes before the chunk ended:\n{screen:?}");
    assert!(!env.out_files().is_empty());
}
