//! The API key and the remote-cache token never appear in logs, errors, summaries, Parquet
//! metadata or cache paths.

use fake_tardis::Fault;

use crate::support::{Env, date, files_under};

const SECRET_KEY: &str = "sk-LEAKCHECK-7f3a9c";
const SECRET_TOKEN: &str = "tok-LEAKCHECK-51b2e8";

fn assert_absent(what: &str, text: &[u8]) {
    for secret in [SECRET_KEY, SECRET_TOKEN] {
        assert!(
            !text.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{what} contains a secret"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_leak_into_output_logs_or_files() {
    let env = Env::with(fake_tardis::FakeTardis::builder().api_key(SECRET_KEY)).await;
    for d in ["2024-03-05", "2024-03-06"] {
        env.serve_generated("deribit", "trades", "BTC-PERPETUAL", date(d), 200, 1);
    }
    // A retried failure and a final failure, so error paths are exercised too.
    env.tardis.script(
        &fake_tardis::FakeTardis::dataset_path("deribit", "trades", date("2024-03-05"), "BTC-PERPETUAL"),
        [Fault::internal_error()],
    );
    let remote_dir = env.dir.path().join("remote");
    let runs = [
        // Success, with debug logs, a remote cache and its token.
        vec!["-vv", "--json", "--remote-cache"],
        // Failure: a day that does not exist.
        vec!["-vv", "--to", "2024-03-08", "--remote-cache"],
    ];
    for extra in runs {
        let mut c = env.cmd();
        c.env("TARDIS_API_KEY", SECRET_KEY)
            .env("TICKVAULT_REMOTE_CACHE_TOKEN", SECRET_TOKEN);
        c.args([
            "download",
            "-e",
            "deribit",
            "-s",
            "BTC-PERPETUAL",
            "--from",
            "2024-03-05",
            "-o",
            env.out.to_str().unwrap(),
        ]);
        let (flags, url) = extra.split_at(extra.len() - 1);
        c.args(flags);
        c.arg(url[0]).arg(format!("file://{}", remote_dir.display()));
        let run = crate::support::run(c).await;
        assert_absent("stdout", run.stdout.as_bytes());
        assert_absent("stderr", run.stderr.as_bytes());
        assert!(
            run.stderr.contains("attempt 1 failed") || run.code != 0,
            "{}",
            run.stderr
        );
    }
    for f in files_under(env.dir.path()) {
        assert_absent(&format!("path {}", f.display()), f.display().to_string().as_bytes());
        if f != env.config {
            assert_absent(&format!("file {}", f.display()), &std::fs::read(&f).unwrap());
        }
    }
    // The key reached the server only as a bearer header.
    assert!(
        env.tardis
            .dataset_requests()
            .iter()
            .all(|r| r.authorization.as_deref() == Some(&format!("Bearer {SECRET_KEY}")[..]))
    );
}
