//! `tickvault config` (every option's value and where it came from), `tickvault completions`
//! and `tickvault man`, all from the one option list and the one command tree.

use std::fmt::Write as _;

use clap_complete::Shell;
use serde::Serialize;

use crate::settings::UsageError;
use crate::settings::cli::{Invocation, command};
use crate::settings::options::SPECS;

/// One option's effective value.
#[derive(Debug, Clone, Serialize)]
pub struct Setting {
    /// The config key.
    pub name: String,
    /// The long flag.
    pub flag: String,
    /// The environment variable.
    pub env: String,
    /// The value in the option's grammar (`null`: not set; secrets are not shown).
    pub value: Option<String>,
    /// `flag`, `env`, `job NAME`, `file` or `default`.
    pub source: Option<String>,
}

/// What `tickvault config` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The config file read, if any.
    pub config_file: Option<String>,
    /// Every option, in `--help` order.
    pub settings: Vec<Setting>,
}

impl Report {
    /// The report of an invocation.
    pub fn new(invocation: &Invocation) -> Self {
        let settings = SPECS
            .iter()
            .map(|s| Setting {
                name: s.name.to_string(),
                flag: format!("--{}", s.long()),
                env: s.env_var(),
                value: invocation.options.show(s.name),
                source: invocation.source(s.name).map(ToString::to_string),
            })
            .collect();
        Self {
            config_file: invocation.config_file.as_ref().map(|p| p.display().to_string()),
            settings,
        }
    }

    /// A table for a person.
    pub fn render(&self) -> String {
        let mut s = format!("config file: {}\n", self.config_file.as_deref().unwrap_or("none"));
        let width = self.settings.iter().map(|x| x.name.len()).max().unwrap_or(0);
        for x in &self.settings {
            let _ = writeln!(
                s,
                "{:width$}  {:24}  {}",
                x.name,
                x.value.as_deref().unwrap_or("-"),
                x.source.as_deref().unwrap_or("")
            );
        }
        s
    }
}

/// A completion script for `shell`.
pub fn completions(shell: Shell) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command(), "tickvault", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The man page (roff) of tickvault, or of one of its commands (`download`, `cache`, …).
///
/// # Errors
/// No such command.
pub fn man(name: Option<&str>) -> Result<String, UsageError> {
    let root = command();
    let (cmd, title) = match name {
        None => (root, "tickvault".to_string()),
        Some(n) => {
            let known: Vec<String> = root.get_subcommands().map(|c| c.get_name().to_string()).collect();
            let found = root
                .find_subcommand(n)
                .cloned()
                .ok_or_else(|| UsageError(format!("man: no command '{n}' (commands: {})", known.join(", "))))?;
            (found, format!("tickvault-{n}"))
        }
    };
    let cmd = cmd.name(title.clone()).bin_name(title.replace('-', " "));
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut out)
        .map_err(|e| UsageError(format!("man: {e}")))?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_gets_completions_naming_every_command() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish, Shell::PowerShell] {
            let text = completions(shell);
            for cmd in ["download", "cache", "config", "completions", "man"] {
                assert!(text.contains(cmd), "{shell}: {cmd}");
            }
            assert!(text.contains("data-types"), "{shell}");
        }
    }

    #[test]
    fn man_pages_for_the_tool_and_its_commands() {
        let root = man(None).unwrap();
        assert!(root.starts_with(".ie") || root.contains(".TH tickvault"), "{root}");
        let dl = man(Some("download")).unwrap();
        assert!(
            dl.contains("tickvault\\-download") && dl.contains("data\\-types"),
            "{dl}"
        );
        assert!(
            man(Some("nope"))
                .unwrap_err()
                .to_string()
                .contains("commands: download")
        );
    }
}
