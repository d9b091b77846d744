//! The layers an option's value can come from, highest first: a flag, its environment variable
//! (both read by clap), the config file, the declared default. Each layer is an [`Options`];
//! [`Options::or`] stacks them.

use std::path::Path;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches};

use super::UsageError;
use super::options::{Options, SPECS, spec};
use super::spec::{Kind, Spec};

/// The clap arguments of one option (a flag option also gets its `--no-` form).
pub(crate) fn clap_args(s: &Spec) -> Vec<Arg> {
    let long = s.long();
    let mut arg = Arg::new(s.name)
        .long(long.clone())
        .help(s.help_text())
        .help_heading(s.heading)
        .env(s.env_var())
        .hide_env_values(s.secret);
    if let Some(c) = s.short {
        arg = arg.short(c);
    }
    match s.kind {
        Kind::Value | Kind::List => {
            arg = arg.value_name(s.value_name).action(if s.kind == Kind::List {
                ArgAction::Append
            } else {
                ArgAction::Set
            });
            if let Some(d) = s.default {
                arg = arg.default_value(d);
            }
            vec![arg]
        }
        Kind::Count => vec![arg.action(ArgAction::Count)],
        Kind::Flag => {
            let no = Arg::new(no_id(s.name))
                .long(format!("no-{long}"))
                .help(format!("Turn --{long} off"))
                .help_heading(s.heading)
                .action(ArgAction::SetTrue)
                .overrides_with(s.name);
            vec![arg.action(ArgAction::SetTrue).overrides_with(no_id(s.name)), no]
        }
    }
}

fn no_id(name: &str) -> String {
    format!("no_{name}")
}

/// Whether `id` was given on the command line or by its environment variable (not a default).
fn given(m: &ArgMatches, id: &str) -> Option<ValueSource> {
    match m.value_source(id) {
        Some(src @ (ValueSource::CommandLine | ValueSource::EnvVariable)) => Some(src),
        _ => None,
    }
}

/// The flags and environment variables of `specs` that `m` holds.
///
/// # Errors
/// A value that does not parse, naming the flag.
pub(crate) fn from_matches<'a>(m: &ArgMatches, specs: impl Iterator<Item = &'a Spec>) -> Result<Options, UsageError> {
    let mut o = Options::default();
    for s in specs {
        let bad = |e: String| UsageError(format!("invalid --{}: {e}", s.long()));
        match s.kind {
            Kind::Flag => {
                let no = no_id(s.name);
                if m.try_get_one::<bool>(&no).ok().flatten() == Some(&true) && given(m, &no).is_some() {
                    o.set_str(s.name, "false").map_err(bad)?;
                } else if given(m, s.name).is_some() {
                    let on = m.get_flag(s.name);
                    o.set_str(s.name, if on { "true" } else { "false" }).map_err(bad)?;
                }
            }
            Kind::Count => {
                if given(m, s.name).is_some() {
                    o.set_str(s.name, &m.get_count(s.name).to_string()).map_err(bad)?;
                }
            }
            Kind::Value | Kind::List => {
                if given(m, s.name).is_some()
                    && let Some(values) = m.get_raw(s.name)
                {
                    let joined: Vec<String> = values.map(|v| v.to_string_lossy().into_owned()).collect();
                    o.set_str(s.name, &joined.join(",")).map_err(bad)?;
                }
            }
        }
    }
    Ok(o)
}

/// The declared defaults.
pub(crate) fn defaults() -> Options {
    let mut o = Options::default();
    for s in SPECS {
        if let Some(d) = s.default {
            o.set_str(s.name, d).expect("defaults parse (tested)");
        }
    }
    o
}

/// The keys of a config file.
///
/// # Errors
/// The file cannot be read or parsed, holds an unknown key, or a value of the wrong kind; the
/// message names the key and the file.
pub(crate) fn from_file(path: &Path) -> Result<Options, UsageError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError(format!("cannot read config file {}: {e}", path.display())))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| UsageError(format!("invalid config file {}: {}", path.display(), e.message())))?;
    from_table(&table, path)
}

fn from_table(table: &toml::Table, path: &Path) -> Result<Options, UsageError> {
    let mut o = Options::default();
    for (key, value) in table {
        let Some(s) = spec(key).filter(|s| s.in_file) else {
            return Err(UsageError(format!(
                "unknown key '{key}' in config file {}",
                path.display()
            )));
        };
        o.set_toml(s.name, value)
            .map_err(|e| UsageError(format!("invalid '{key}' in config file {}: {e}", path.display())))?;
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn table(text: &str) -> Result<Options, UsageError> {
        from_table(&toml::from_str(text).unwrap(), Path::new("t.toml"))
    }

    #[test]
    fn file_values_take_their_types() {
        let o =
            table("concurrency = 3\nsymbols = [\"A\", \"B\"]\nread_timeout = \"1m\"\npartitioned = true\n").unwrap();
        assert_eq!(o.concurrency, Some(3));
        assert_eq!(o.symbols, Some(vec!["A".into(), "B".into()]));
        assert_eq!(o.read_timeout, Some(Duration::from_secs(60)));
        assert_eq!(o.partitioned, Some(true));
    }

    #[test]
    fn unknown_and_bad_keys_name_the_key_and_the_file() {
        let e = table("concurency = 3").unwrap_err().to_string();
        assert!(e.contains("'concurency'") && e.contains("t.toml"), "{e}");
        let e = table("config = \"x.toml\"").unwrap_err().to_string();
        assert!(e.contains("unknown key 'config'"), "{e}");
        let e = table("read_timeout = \"soon\"").unwrap_err().to_string();
        assert!(e.contains("'read_timeout'") && e.contains("soon"), "{e}");
    }

    #[test]
    fn the_shipped_config_file_documents_every_key() {
        let text = include_str!("../../config/default.toml");
        for s in SPECS.iter().filter(|s| s.in_file) {
            let set = format!("\n{} = ", s.name);
            let commented = format!("\n# {} = ", s.name);
            assert!(
                text.contains(&set) || text.contains(&commented),
                "{} is not in config/default.toml",
                s.name
            );
        }
    }

    #[test]
    fn the_shipped_config_file_is_valid_and_matches_the_defaults() {
        let file = table(include_str!("../../config/default.toml")).unwrap();
        let d = defaults();
        assert_eq!(file.concurrency, d.concurrency);
        assert_eq!(file.memory_cache, d.memory_cache);
        assert_eq!(file.read_timeout, d.read_timeout);
        assert_eq!(file.datasets_url, d.datasets_url);
        assert_eq!(file.max_retries, d.max_retries);
        assert_eq!(file.retry_max_backoff, d.retry_max_backoff);
    }
}
