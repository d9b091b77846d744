//! The layers an option's value can come from, highest first: a flag, its environment variable
//! (both read by clap), the job's table of the config file (`--job NAME`), the top level of the
//! config file, the declared default. Each layer is an [`Options`]; [`Options::or`] stacks them.
//! The config file is `--config`/`TICKVAULT_CONFIG`, else the platform config dir's
//! `tickvault/config.toml` if it exists.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
        // Never echo an environment value in --help: an API key, a token, or a URL with a
        // password (the remote cache, the Tardis hosts) may be in it.
        .hide_env_values(true);
    if let Some(c) = s.short {
        arg = arg.short(c);
    }
    match s.kind {
        Kind::Value | Kind::List => {
            // Relative dates start with a minus: `--from -7d`.
            arg = arg.allow_hyphen_values(s.value_name == "DATE");
            arg = arg.value_name(s.value_name).action(if s.kind == Kind::List {
                ArgAction::Append
            } else {
                ArgAction::Set
            });
            if let Some(d) = s.default {
                arg = arg.default_value(d);
            }
            match s.no {
                Some(value) => {
                    let no = Arg::new(no_id(s.name))
                        .long(format!("no-{long}"))
                        .help(format!("Same as --{long} {value}"))
                        .help_heading(s.heading)
                        .action(ArgAction::SetTrue)
                        .overrides_with(s.name);
                    vec![arg.overrides_with(no_id(s.name)), no]
                }
                None => vec![arg],
            }
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

/// The flags (first) and the environment variables (second) of `specs` that `m` holds.
///
/// # Errors
/// A value that does not parse, naming the flag or the variable.
pub(crate) fn from_matches<'a>(
    m: &ArgMatches,
    specs: impl Iterator<Item = &'a Spec>,
) -> Result<(Options, Options), UsageError> {
    let mut flags = Options::default();
    let mut env = Options::default();
    for s in specs {
        let layer = |src: ValueSource| if src == ValueSource::EnvVariable { 1 } else { 0 };
        let set = |o: &mut [&mut Options; 2], src: ValueSource, raw: &str| {
            let at = if src == ValueSource::EnvVariable {
                s.env_var()
            } else {
                format!("--{}", s.long())
            };
            o[layer(src)]
                .set_str(s.name, raw)
                .map_err(|e| UsageError(format!("invalid {at}: {e}")))
        };
        let mut both = [&mut flags, &mut env];
        let no = no_id(s.name);
        let no_given = s.kind == Kind::Flag || s.no.is_some();
        if no_given
            && m.try_get_one::<bool>(&no).ok().flatten() == Some(&true)
            && let Some(src) = given(m, &no)
        {
            set(&mut both, src, s.no.unwrap_or("false"))?;
            continue;
        }
        let Some(src) = given(m, s.name) else { continue };
        match s.kind {
            Kind::Flag => set(&mut both, src, if m.get_flag(s.name) { "true" } else { "false" })?,
            Kind::Count => set(&mut both, src, &m.get_count(s.name).to_string())?,
            Kind::Value | Kind::List => {
                if let Some(values) = m.get_raw(s.name) {
                    let joined: Vec<String> = values.map(|v| v.to_string_lossy().into_owned()).collect();
                    set(&mut both, src, &joined.join(","))?;
                }
            }
        }
    }
    Ok((flags, env))
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

/// A config file: its top level and its `[jobs.NAME]` tables.
#[derive(Debug, Clone)]
pub(crate) struct ConfigFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The top-level keys.
    pub top: Options,
    /// Each job's keys.
    pub jobs: BTreeMap<String, Options>,
}

impl ConfigFile {
    /// The options of job `name`.
    ///
    /// # Errors
    /// No such job; the message lists the jobs the file has.
    pub(crate) fn job(&self, name: &str) -> Result<Options, UsageError> {
        self.jobs.get(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = self.jobs.keys().map(String::as_str).collect();
            UsageError(format!(
                "--job {name}: config file {} has no [jobs.{name}] table ({})",
                self.path.display(),
                if known.is_empty() {
                    "it has no jobs".to_string()
                } else {
                    format!("its jobs: {}", known.join(", "))
                }
            ))
        })
    }
}

/// The config file's name under the platform config directory.
pub(crate) const DEFAULT_CONFIG: &str = "tickvault/config.toml";

/// The config file read when none is given: the platform config dir's `tickvault/config.toml`.
pub(crate) fn default_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join(DEFAULT_CONFIG))
}

/// Finds and reads the config file: `given` (`--config`/`TICKVAULT_CONFIG`), which must exist,
/// else the platform config dir's `tickvault/config.toml` when there is one, else none.
///
/// # Errors
/// The file cannot be read or is invalid.
pub(crate) fn discover(given: Option<&Path>) -> Result<Option<ConfigFile>, UsageError> {
    match given {
        Some(path) => from_file(path).map(Some),
        None => match default_config_path() {
            Some(path) if path.is_file() => from_file(&path).map(Some),
            _ => Ok(None),
        },
    }
}

/// The keys of a config file.
///
/// # Errors
/// The file cannot be read or parsed, holds an unknown key, or a value of the wrong kind; the
/// message names the key and the file.
pub(crate) fn from_file(path: &Path) -> Result<ConfigFile, UsageError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError(format!("cannot read config file {}: {e}", path.display())))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| UsageError(format!("invalid config file {}: {}", path.display(), e.message())))?;
    parse_file(table, path)
}

fn parse_file(mut table: toml::Table, path: &Path) -> Result<ConfigFile, UsageError> {
    let mut jobs = BTreeMap::new();
    if let Some(value) = table.remove("jobs") {
        let toml::Value::Table(all) = value else {
            return Err(UsageError(format!(
                "invalid 'jobs' in config file {}: expected [jobs.NAME] tables",
                path.display()
            )));
        };
        for (name, job) in all {
            let toml::Value::Table(job) = job else {
                return Err(UsageError(format!(
                    "invalid 'jobs.{name}' in config file {}: expected a [jobs.{name}] table",
                    path.display()
                )));
            };
            let options = from_table(&job, &format!("[jobs.{name}] of config file {}", path.display()))?;
            jobs.insert(name, options);
        }
    }
    Ok(ConfigFile {
        path: path.to_path_buf(),
        top: from_table(&table, &format!("config file {}", path.display()))?,
        jobs,
    })
}

fn from_table(table: &toml::Table, place: &str) -> Result<Options, UsageError> {
    let mut o = Options::default();
    for (key, value) in table {
        let Some(s) = spec(key).filter(|s| s.in_file) else {
            return Err(UsageError(format!("unknown key '{key}' in {place}")));
        };
        o.set_toml(s.name, value)
            .map_err(|e| UsageError(format!("invalid '{key}' in {place}: {e}")))?;
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn table(text: &str) -> Result<Options, UsageError> {
        file(text).map(|f| f.top)
    }

    fn file(text: &str) -> Result<ConfigFile, UsageError> {
        parse_file(toml::from_str(text).unwrap(), Path::new("t.toml"))
    }

    const EXAMPLE: &str = include_str!("../../config/tickvault.example.toml");

    #[test]
    fn jobs_are_tables_of_the_same_keys() {
        let f = file("concurrency = 3\n[jobs.nightly]\nexchange = \"deribit\"\nconcurrency = 5\n").unwrap();
        assert_eq!(f.top.concurrency, Some(3));
        let job = f.job("nightly").unwrap();
        assert_eq!((job.exchange.as_deref(), job.concurrency), (Some("deribit"), Some(5)));
        let e = f.job("weekly").unwrap_err().to_string();
        assert!(e.contains("no [jobs.weekly]") && e.contains("its jobs: nightly"), "{e}");
        let e = file("[jobs.nightly]\nexchnge = \"x\"\n").unwrap_err().to_string();
        assert!(
            e.contains("'exchnge'") && e.contains("[jobs.nightly]") && e.contains("t.toml"),
            "{e}"
        );
        let e = file("jobs = 3\n").unwrap_err().to_string();
        assert!(e.contains("[jobs.NAME]"), "{e}");
        let e = file("[jobs.x]\njob = \"y\"\n").unwrap_err().to_string();
        assert!(e.contains("unknown key 'job'"), "{e}");
    }

    #[test]
    fn the_example_has_a_nightly_and_a_ci_job() {
        let f = file(EXAMPLE).unwrap();
        for job in ["nightly", "ci"] {
            let o = f.job(job).unwrap();
            assert!(o.exchange.is_some() && o.symbols.is_some() && o.from.is_some(), "{job}");
        }
        assert_eq!(f.job("nightly").unwrap().from.as_deref(), Some("yesterday"));
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
        let text = EXAMPLE;
        for s in SPECS.iter().filter(|s| s.in_file) {
            let set = format!("\n{} = ", s.name);
            let commented = format!("\n# {} = ", s.name);
            assert!(
                text.contains(&set) || text.contains(&commented),
                "{} is not in config/tickvault.example.toml",
                s.name
            );
        }
    }

    #[test]
    fn the_shipped_config_file_is_valid_and_matches_the_defaults() {
        let file = table(EXAMPLE).unwrap();
        let d = defaults();
        assert_eq!(file.concurrency, d.concurrency);
        assert_eq!(file.memory_cache, d.memory_cache);
        assert_eq!(file.read_timeout, d.read_timeout);
        assert_eq!(file.datasets_url, d.datasets_url);
        assert_eq!(file.max_retries, d.max_retries);
        assert_eq!(file.retry_max_backoff, d.retry_max_backoff);
    }
}
