//! Every option, generated from the one option list (`settings::options::SPECS`): set once by
//! its flag, once by its environment variable, once by the config file, and seen to take
//! effect in `tickvault config --json` (value and source). Then one option through a real run:
//! `TICKVAULT_REMOTE_CACHE_MODE=read-only` keeps a job from writing the team cache.

use serde_json::Value;
use tickvault::settings::options::SPECS;
use tickvault::settings::spec::{Kind, Spec};

use crate::support::{Env, date, files_under};

/// A value for `spec` that differs from its default, and how `tickvault config` shows it.
fn sample(spec: &Spec, config: &str) -> (String, String) {
    let same = |v: &str| (v.to_string(), v.to_string());
    match (spec.name, spec.kind) {
        (_, Kind::Flag) => same(if spec.default == Some("true") { "false" } else { "true" }),
        (_, Kind::Count) => same("2"),
        (_, Kind::List) => same("AAA,BBB"),
        ("config", _) => same(config),
        ("job", _) => same("j"),
        ("api_key" | "remote_cache_token" | "remote_cache_secret" | "read_tokens" | "write_tokens", _) => {
            ("sk-sample-0123456789".into(), "(set, not shown)".into())
        }
        ("listen", _) => same("0.0.0.0:9090"),
        ("remote_cache_mode", _) => same("read-only"),
        ("order", _) => same("time"),
        ("by", _) => same("local_timestamp"),
        ("log_format", _) => same("json"),
        ("color", _) => same("always"),
        ("progress", _) => same("plain"),
        ("now", _) => same("2024-03-07T07:15:00Z"),
        ("shard", _) => same("2/3"),
        ("from" | "to", _) => same("today-3d"),
        ("exchange", _) => same("okex-swap"),
        ("remote_cache", _) => same("file:///srv/tickvault-cache/"),
        (_, Kind::Value) => match spec.value_name {
            "DURATION" | "AGE" => same("7s"),
            "SIZE" => same("3MiB"),
            "N" => same("7"),
            "URL" => same("http://127.0.0.1:9/v9"),
            "DIR" | "PATH" | "FILE" => same("/srv/tickvault-sample"),
            "PATTERN" => same("BTC*"),
            other => panic!("option {} ({other}) has no sample value: add one here", spec.name),
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    Flag,
    Env,
    File,
}

async fn shown(env: &Env, spec: &Spec, layer: Layer) -> (Value, String) {
    let base = env.dir.path().join("base.toml");
    std::fs::write(&base, "[jobs.j]\n").unwrap();
    let (raw, expected) = sample(spec, base.to_str().unwrap());
    // Only this option is set: no TICKVAULT_* variable from the test environment.
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_tickvault"));
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.dir.path())
        .arg("config");
    // `json` set by env or file must itself turn the JSON on.
    if spec.name != "json" || layer == Layer::Flag {
        c.arg("--json");
    }
    match layer {
        Layer::Flag => {
            if spec.name != "config" {
                c.arg("--config").arg(&base);
            }
            match spec.kind {
                // The flag that moves the option off its default: --no-X for one on by default.
                Kind::Flag if spec.default == Some("true") => c.arg(format!("--no-{}", spec.long())),
                Kind::Flag => c.arg(format!("--{}", spec.long())),
                Kind::Count => c.arg("-vv"),
                _ => c.arg(format!("--{}", spec.long())).arg(&raw),
            };
        }
        Layer::Env => {
            if spec.name != "config" {
                c.env("TICKVAULT_CONFIG", &base);
            }
            c.env(spec.env_var(), &raw);
        }
        Layer::File => {
            let file = env.dir.path().join("file.toml");
            std::fs::write(&file, format!("{} = \"{raw}\"\n[jobs.j]\n", spec.name)).unwrap();
            c.arg("--config").arg(&file);
        }
    }
    let run = crate::support::run(c).await;
    run.ok();
    let setting = run.json()["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == spec.name)
        .cloned()
        .unwrap_or_else(|| panic!("{} missing from tickvault config", spec.name));
    (setting, expected)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_option_takes_effect_by_flag_by_env_and_by_file() {
    let env = Env::new().await;
    let mut checked = 0;
    for spec in SPECS {
        let layers: &[Layer] = if spec.in_file {
            &[Layer::Flag, Layer::Env, Layer::File]
        } else {
            &[Layer::Flag, Layer::Env]
        };
        for &layer in layers {
            let (setting, expected) = shown(&env, spec, layer).await;
            let source = match layer {
                Layer::Flag => "flag",
                Layer::Env => "env",
                Layer::File => "file",
            };
            assert_eq!(
                (setting["value"].as_str(), setting["source"].as_str()),
                (Some(expected.as_str()), Some(source)),
                "{} set by {source}: {setting}",
                spec.name
            );
            assert_eq!(setting["env"], spec.env_var());
            checked += 1;
        }
    }
    assert!(checked >= 3 * SPECS.len() - 6, "{checked} checks");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_remote_from_the_environment_is_never_written() {
    let env = Env::new().await;
    env.serve_generated("deribit", "trades", "BTC-PERPETUAL", date("2024-03-05"), 100, 1);
    let remote = env.dir.path().join("remote");
    std::fs::create_dir_all(&remote).unwrap();
    let mut c = env.cmd();
    c.env("TICKVAULT_REMOTE_CACHE", format!("file://{}/", remote.display()))
        .env("TICKVAULT_REMOTE_CACHE_MODE", "read-only")
        .env("TARDIS_API_KEY", crate::support::KEY)
        .args([
            "download",
            "-e",
            "deribit",
            "-s",
            "BTC-PERPETUAL",
            "--from",
            "2024-03-05",
            "--json",
            "-o",
        ])
        .arg(&env.out);
    let run = crate::support::run(c).await;
    run.ok();
    assert_eq!(run.json()["chunks"]["tardis"], 1);
    assert!(files_under(&remote).is_empty(), "uploaded: {:?}", files_under(&remote));
}
