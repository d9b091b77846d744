//! How an option is declared: one [`Spec`] per option, from which its flag, environment
//! variable and config key all follow, and the value types an option can hold.

use std::path::PathBuf;
use std::time::Duration;

use super::parse;
use crate::tardis::Secret;

/// Which commands take an option (a bit set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope(u8);

impl Scope {
    /// `tickvault download`.
    pub const DOWNLOAD: Scope = Scope(1);
    /// `tickvault cache stats|verify|prune`.
    pub const CACHE: Scope = Scope(2);
    /// `tickvault cache prune` only.
    pub const PRUNE: Scope = Scope(4);
    /// Every command (logging, the config file).
    pub const GLOBAL: Scope = Scope(8);
    /// `tickvault exchanges`.
    pub const EXCHANGES: Scope = Scope(16);
    /// `tickvault serve`.
    pub const SERVE: Scope = Scope(32);
    /// `tickvault bars`.
    pub const BARS: Scope = Scope(64);
    /// `download` and `bars` (bars take the tiers, limits, validation and summary options of
    /// a download).
    pub const DOWNLOAD_OR_BARS: Scope = Scope(1 | 64);
    /// Every command (what `tickvault config` shows).
    pub const ANY: Scope = Scope(u8::MAX);
    /// `download` and the `cache` commands.
    pub const DOWNLOAD_AND_CACHE: Scope = Scope(1 | 2);

    /// Both sets.
    #[must_use]
    pub const fn or(self, other: Scope) -> Scope {
        Scope(self.0 | other.0)
    }

    /// Whether `self` includes any of `other`.
    pub fn has(self, other: Scope) -> bool {
        self.0 & other.0 != 0
    }
}

/// How an option is given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `--name VALUE`.
    Value,
    /// `--name A,B` (repeatable; the pieces are joined).
    List,
    /// `--name` / `--no-name`.
    Flag,
    /// `-v`, `-vv`: counted.
    Count,
}

/// The declaration of one option.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// The config key (`cache_dir`); the flag is the same with dashes unless [`Self::flag`].
    pub name: &'static str,
    /// The long flag, when it differs from the name.
    pub flag: Option<&'static str>,
    /// A one-letter flag.
    pub short: Option<char>,
    /// The environment variable, when it is not `TICKVAULT_` + the upper-case name.
    pub env: Option<&'static str>,
    /// What `--help` calls the value.
    pub value_name: &'static str,
    /// Help text (the declaration's doc comment).
    pub help: &'static str,
    /// Help section.
    pub heading: &'static str,
    /// The default, in the option's grammar (shown in `--help`).
    pub default: Option<&'static str>,
    /// The commands that take it.
    pub scope: Scope,
    /// A credential: its environment value is never shown.
    pub secret: bool,
    /// Whether a config file may set it.
    pub in_file: bool,
    /// How it is given on the command line.
    pub kind: Kind,
    /// For a value option: the value its `--no-NAME` form stands for (`--no-progress` is
    /// `--progress never`).
    pub no: Option<&'static str>,
}

impl Spec {
    /// The base every declaration starts from.
    pub const DEFAULT: Spec = Spec {
        name: "",
        flag: None,
        short: None,
        env: None,
        value_name: "VALUE",
        help: "",
        heading: "",
        default: None,
        scope: Scope::DOWNLOAD_OR_BARS,
        secret: false,
        in_file: true,
        kind: Kind::Value,
        no: None,
    };

    /// The long flag, without dashes.
    pub fn long(&self) -> String {
        self.flag.map_or_else(|| self.name.replace('_', "-"), str::to_string)
    }

    /// The environment variable.
    pub fn env_var(&self) -> String {
        self.env.map_or_else(
            || format!("TICKVAULT_{}", self.name.to_ascii_uppercase()),
            str::to_string,
        )
    }

    /// The help text, one paragraph.
    pub fn help_text(&self) -> String {
        self.help
            .split('\n')
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ")
            .trim()
            .to_string()
    }
}

/// A type an option's value can have: read from a flag or environment string, or a TOML value.
pub trait OptValue: Sized {
    /// How it is given on the command line.
    const KIND: Kind;

    /// Parses a flag, environment or default string; `Ok(None)` means "not set" (a blank value).
    ///
    /// # Errors
    /// A message saying what was expected.
    fn parse(raw: &str) -> Result<Option<Self>, String>;

    /// Reads a config file value (a string is parsed as a flag's would be).
    ///
    /// # Errors
    /// A message saying what was expected.
    fn from_toml(v: &toml::Value) -> Result<Option<Self>, String> {
        match v {
            toml::Value::String(s) => Self::parse(s),
            other => Self::parse(&other.to_string()),
        }
    }

    /// The value in the option's own grammar, for `tickvault config` (a secret is not shown).
    fn show(&self) -> String;
}

fn non_blank(raw: &str) -> Option<&str> {
    let t = raw.trim();
    (!t.is_empty()).then_some(t)
}

impl OptValue for String {
    const KIND: Kind = Kind::Value;
    fn parse(raw: &str) -> Result<Option<Self>, String> {
        Ok(non_blank(raw).map(str::to_string))
    }
    fn show(&self) -> String {
        // A URL may carry a password.
        crate::tardis::redact_raw(self)
    }
}

impl OptValue for PathBuf {
    const KIND: Kind = Kind::Value;
    fn parse(raw: &str) -> Result<Option<Self>, String> {
        Ok(non_blank(raw).map(|p| parse::expand_home(std::path::Path::new(p))))
    }
    fn show(&self) -> String {
        self.display().to_string()
    }
}

impl OptValue for Secret {
    const KIND: Kind = Kind::Value;
    fn parse(raw: &str) -> Result<Option<Self>, String> {
        Ok(Secret::new(raw))
    }
    fn show(&self) -> String {
        "(set, not shown)".into()
    }
}

impl OptValue for Vec<String> {
    const KIND: Kind = Kind::List;
    fn parse(raw: &str) -> Result<Option<Self>, String> {
        Ok(Some(raw.split(',').map(str::to_string).collect()))
    }
    fn from_toml(v: &toml::Value) -> Result<Option<Self>, String> {
        match v {
            toml::Value::Array(items) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("{i} is not a string"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            toml::Value::String(s) => Self::parse(s),
            other => Err(format!("{other} is not a list of strings")),
        }
    }
    fn show(&self) -> String {
        self.join(",")
    }
}

impl OptValue for bool {
    const KIND: Kind = Kind::Flag;
    fn parse(raw: &str) -> Result<Option<Self>, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "" => Ok(None),
            "true" | "1" | "yes" | "on" => Ok(Some(true)),
            "false" | "0" | "no" | "off" => Ok(Some(false)),
            _ => Err(format!("'{raw}' is not true or false")),
        }
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

/// A counted flag (`-vv` is 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Count(pub u8);

impl OptValue for Count {
    const KIND: Kind = Kind::Count;
    fn parse(raw: &str) -> Result<Option<Self>, String> {
        non_blank(raw)
            .map(|s| s.parse().map(Count).map_err(|_| format!("'{raw}' is not a count")))
            .transpose()
    }
    fn show(&self) -> String {
        self.0.to_string()
    }
}

macro_rules! number {
    ($($t:ty),*) => {$(
        impl OptValue for $t {
            const KIND: Kind = Kind::Value;
            fn parse(raw: &str) -> Result<Option<Self>, String> {
                non_blank(raw)
                    .map(|s| s.parse().map_err(|_| format!("'{raw}' is not a whole number")))
                    .transpose()
            }
            fn show(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
number!(u32, usize);

impl OptValue for Duration {
    const KIND: Kind = Kind::Value;
    fn parse(raw: &str) -> Result<Option<Self>, String> {
        non_blank(raw).map(parse::duration).transpose()
    }
    fn show(&self) -> String {
        parse::show_duration(*self)
    }
}

/// A size in bytes (`512MiB`, `2GB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

impl OptValue for Size {
    const KIND: Kind = Kind::Value;
    fn parse(raw: &str) -> Result<Option<Self>, String> {
        non_blank(raw).map(|s| parse::size(s).map(Size)).transpose()
    }
    fn show(&self) -> String {
        parse::show_size(self.0)
    }
}

/// Declares the options: a struct with an `Option` field per option, the [`Spec`] table, and
/// the per-field plumbing (set by name, layer over another set).
macro_rules! options {
    ($( $(#[doc = $doc:literal])* $name:ident : $ty:ty { $($field:ident : $val:expr),* $(,)? } )*) => {
        /// Every option, each `None` until a layer sets it.
        #[derive(Debug, Clone, Default)]
        pub struct Options {
            $( $(#[doc = $doc])* pub $name: Option<$ty>, )*
        }

        /// The declaration of every option, in `--help` order.
        pub static SPECS: &[Spec] = &[$(
            Spec {
                name: stringify!($name),
                help: concat!($($doc, "\n"),*),
                kind: <$ty as OptValue>::KIND,
                $($field: $val,)*
                ..Spec::DEFAULT
            },
        )*];

        impl Options {
            /// Sets the option `name` from a flag, environment or default string.
            pub(crate) fn set_str(&mut self, name: &str, raw: &str) -> Result<(), String> {
                match name {
                    $( stringify!($name) => self.$name = <$ty as OptValue>::parse(raw)?, )*
                    _ => return Err(format!("unknown option '{name}'")),
                }
                Ok(())
            }

            /// Sets the option `name` from a config file value.
            pub(crate) fn set_toml(&mut self, name: &str, v: &toml::Value) -> Result<(), String> {
                match name {
                    $( stringify!($name) => self.$name = <$ty as OptValue>::from_toml(v)?, )*
                    _ => return Err(format!("unknown option '{name}'")),
                }
                Ok(())
            }

            /// Whether the option `name` is set in this layer.
            pub fn is_set(&self, name: &str) -> bool {
                match name {
                    $( stringify!($name) => self.$name.is_some(), )*
                    _ => false,
                }
            }

            /// The value of the option `name` in its own grammar, if set (secrets not shown).
            pub fn show(&self, name: &str) -> Option<String> {
                match name {
                    $( stringify!($name) => self.$name.as_ref().map(OptValue::show), )*
                    _ => None,
                }
            }

            /// Each option from `self`, or else from `lower`.
            #[must_use]
            pub(crate) fn or(self, lower: Options) -> Options {
                Options { $( $name: self.$name.or(lower.$name), )* }
            }

        }
    };
}
pub(crate) use options;
