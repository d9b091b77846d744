//! The settings of `tickvault serve`: where to listen, the access tokens, the server's limits,
//! and the same cache tiers and Tardis options as `download`.

use std::net::SocketAddr;
use std::time::Duration;

use super::options::Options;
use super::{CacheSettings, TardisSettings, UsageError, checks, defaulted, usage};
use crate::serve::auth::{Access, Tokens};

/// Everything `tickvault serve` needs, validated.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The server's own cache tiers.
    pub cache: CacheSettings,
    /// Who may read and write.
    pub tokens: Tokens,
    /// Connections served at once.
    pub max_connections: usize,
    /// Limit on producing a response.
    pub request_timeout: Duration,
    /// Largest chunk file a client may PUT, in bytes.
    pub max_upload: u64,
    /// Time given to responses in flight after a stop signal.
    pub shutdown_timeout: Duration,
    /// How long proxied metadata is kept.
    pub metadata_ttl: Duration,
    /// The team's Tardis key, the APIs, and the limits on the traffic to Tardis (for all
    /// clients together).
    pub tardis: TardisSettings,
}

impl ServeSettings {
    /// Validates the options of `tickvault serve`. Reads the tokens file; creates nothing.
    ///
    /// # Errors
    /// [`UsageError`] naming the flag, key or file at fault.
    pub fn resolve(o: &Options) -> Result<Self, UsageError> {
        let raw_listen = defaulted(&o.listen);
        let listen: SocketAddr = raw_listen.trim().parse().map_err(|_| {
            usage(format!(
                "invalid --listen '{raw_listen}': expected IP:PORT, e.g. 127.0.0.1:8080 or 0.0.0.0:8080"
            ))
        })?;
        let cache = CacheSettings::resolve(o)?;
        checks::check_writable_dir("--cache-dir", &cache.cache_dir)?;
        let max_connections = defaulted(&o.max_connections);
        if max_connections == 0 {
            return Err(usage("invalid --max-connections 0: expected at least 1"));
        }
        let positive = |flag: &str, d: Duration| {
            if d.is_zero() {
                Err(usage(format!("invalid --{flag} 0: expected a positive duration")))
            } else {
                Ok(d)
            }
        };
        Ok(Self {
            listen,
            cache,
            tokens: tokens(o)?,
            max_connections,
            request_timeout: positive("request-timeout", defaulted(&o.request_timeout))?,
            max_upload: defaulted(&o.max_upload).0,
            shutdown_timeout: defaulted(&o.shutdown_timeout),
            metadata_ttl: defaulted(&o.metadata_ttl),
            tardis: TardisSettings::resolve(o)?,
        })
    }
}

/// The tokens of `--tokens-file`, `--read-tokens` and `--write-tokens` together.
fn tokens(o: &Options) -> Result<Tokens, UsageError> {
    let mut tokens = Tokens::default();
    if let Some(path) = &o.tokens_file {
        let shown = path.display();
        let text =
            std::fs::read_to_string(path).map_err(|e| usage(format!("cannot read --tokens-file {shown}: {e}")))?;
        tokens
            .add_file(&text)
            .map_err(|e| usage(format!("invalid --tokens-file {shown}: {e}")))?;
    }
    if let Some(list) = &o.read_tokens {
        tokens
            .add_list(Access::Read, list)
            .map_err(|e| usage(format!("invalid --read-tokens: {e}")))?;
    }
    if let Some(list) = &o.write_tokens {
        tokens
            .add_list(Access::Write, list)
            .map_err(|e| usage(format!("invalid --write-tokens: {e}")))?;
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use crate::settings::cli::{CommandKind, parse};

    use super::*;

    fn resolve(args: &[&str]) -> Result<ServeSettings, UsageError> {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("c");
        let mut full = vec!["tickvault", "serve", "--cache-dir", cache.to_str().unwrap()];
        full.extend_from_slice(args);
        let inv = parse(full).unwrap();
        assert_eq!(inv.command, CommandKind::Serve);
        ServeSettings::resolve(&inv.options)
    }

    #[test]
    fn defaults_listen_on_loopback_with_open_reads() {
        let s = resolve(&[]).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!((s.tokens.read_count(), s.tokens.write_count()), (0, 0));
        assert_eq!(s.tardis.concurrency, 20);
        assert_eq!(s.max_upload, 4 << 30);
    }

    #[test]
    fn bad_values_name_the_flag_and_never_the_token() {
        let e = resolve(&["--listen", "localhost"]).unwrap_err().to_string();
        assert!(e.contains("--listen 'localhost'"), "{e}");
        let e = resolve(&["--write-tokens", "tiny-secret"]).unwrap_err().to_string();
        assert!(e.contains("--write-tokens") && !e.contains("tiny-secret"), "{e}");
        let e = resolve(&["--tokens-file", "/nonexistent/tokens"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--tokens-file /nonexistent/tokens"), "{e}");
        let e = resolve(&["--max-connections", "0"]).unwrap_err().to_string();
        assert!(e.contains("--max-connections"), "{e}");
    }
}
