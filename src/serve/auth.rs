//! Access tokens: who may read (GET/HEAD chunks) and who may write (PUT chunks).
//!
//! Tokens come from `--tokens-file` (lines `read TOKEN` / `write TOKEN`) and from
//! `--read-tokens` / `--write-tokens` (comma-separated; their environment variables are the
//! intended way). A request presents one as `Authorization: Bearer TOKEN`, the header the
//! client's remote tier sends (`TICKVAULT_REMOTE_CACHE_TOKEN`). Every presented token is compared
//! with every configured one in constant time ([`subtle`]), so timing reveals neither which
//! bytes matched nor which token; tokens never appear in logs, errors or metrics.
//!
//! The rules: without read tokens, reads are open; with them, a read needs a read or a write
//! token. A write always needs a write token: none or an unknown one is 401, a read token 403.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use subtle::{Choice, ConstantTimeEq};

use crate::tardis::Secret;

/// Tokens shorter than this are refused: they could be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// GET or HEAD a chunk.
    Read,
    /// PUT a chunk.
    Write,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No token, or one that is not configured: 401.
    Unauthorized,
    /// A valid token without the scope asked for: 403.
    Forbidden,
}

/// The configured tokens.
#[derive(Clone, Default)]
pub struct Tokens {
    read: Vec<Secret>,
    write: Vec<Secret>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("read", &self.read.len())
            .field("write", &self.write.len())
            .finish()
    }
}

impl Tokens {
    /// Adds tokens with `access`.
    ///
    /// # Errors
    /// A message (without the token) when one is too short or cannot be a header value.
    pub fn add(&mut self, access: Access, token: &str) -> Result<(), String> {
        let Some(secret) = Secret::new(token) else {
            return Ok(());
        };
        check_token(secret.expose())?;
        match access {
            Access::Read => self.read.push(secret),
            Access::Write => self.write.push(secret),
        }
        Ok(())
    }

    /// Adds the comma-separated tokens of `--read-tokens` or `--write-tokens`.
    ///
    /// # Errors
    /// As [`Self::add`].
    pub fn add_list(&mut self, access: Access, list: &Secret) -> Result<(), String> {
        for t in list.expose().split(',') {
            self.add(access, t)?;
        }
        Ok(())
    }

    /// Adds the tokens of a tokens file: `read TOKEN` or `write TOKEN` per line, blank lines and
    /// `#` comments ignored.
    ///
    /// # Errors
    /// A message naming the line (never the token) when a line is malformed.
    pub fn add_file(&mut self, text: &str) -> Result<(), String> {
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let access = match words.next() {
                Some("read") => Access::Read,
                Some("write") => Access::Write,
                _ => return Err(format!("line {}: expected `read TOKEN` or `write TOKEN`", n + 1)),
            };
            let (Some(token), None) = (words.next(), words.next()) else {
                return Err(format!("line {}: expected one token after `read` or `write`", n + 1));
            };
            self.add(access, token).map_err(|e| format!("line {}: {e}", n + 1))?;
        }
        Ok(())
    }

    /// Read tokens configured.
    pub fn read_count(&self) -> usize {
        self.read.len()
    }

    /// Write tokens configured.
    pub fn write_count(&self) -> usize {
        self.write.len()
    }

    /// Whether the request's `Authorization` header grants `access`.
    ///
    /// # Errors
    /// [`Denied`] says which status to answer.
    pub fn check(&self, headers: &HeaderMap, access: Access) -> Result<(), Denied> {
        let presented = bearer(headers);
        let is_write = presented.is_some_and(|p| any_matches(&self.write, p));
        let is_read = presented.is_some_and(|p| any_matches(&self.read, p));
        match access {
            Access::Read if self.read.is_empty() || is_read || is_write => Ok(()),
            Access::Read => Err(Denied::Unauthorized),
            Access::Write if is_write => Ok(()),
            Access::Write if is_read => Err(Denied::Forbidden),
            Access::Write => Err(Denied::Unauthorized),
        }
    }
}

/// The token of an `Authorization: Bearer TOKEN` header.
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let v = headers.get(AUTHORIZATION)?.as_bytes();
    let scheme = v.get(..7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| v[7..].trim_ascii())
        .filter(|t| !t.is_empty())
}

/// Compares `presented` with every token, without stopping at a match.
fn any_matches(tokens: &[Secret], presented: &[u8]) -> bool {
    let mut found = Choice::from(0);
    for t in tokens {
        found |= t.expose().as_bytes().ct_eq(presented);
    }
    found.into()
}

fn check_token(token: &str) -> Result<(), String> {
    if token.len() < MIN_TOKEN_LEN {
        return Err(format!(
            "a token is shorter than {MIN_TOKEN_LEN} characters (e.g. `openssl rand -hex 24` makes a good one)"
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) || token.contains(',') {
        return Err("a token holds a character other than printable ASCII (or a comma)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const R: &str = "read-token-0123456789";
    const W: &str = "write-token-0123456789";

    fn headers(token: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(t) = token {
            h.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {t}")).unwrap());
        }
        h
    }

    fn tokens() -> Tokens {
        let mut t = Tokens::default();
        t.add_file(&format!("# team tokens\n\nread {R}\n  write {W}  \n"))
            .unwrap();
        t
    }

    #[test]
    fn scopes_decide_401_and_403() {
        let t = tokens();
        assert_eq!((t.read_count(), t.write_count()), (1, 1));
        assert_eq!(t.check(&headers(Some(R)), Access::Read), Ok(()));
        assert_eq!(t.check(&headers(Some(W)), Access::Read), Ok(()), "write implies read");
        assert_eq!(t.check(&headers(None), Access::Read), Err(Denied::Unauthorized));
        assert_eq!(
            t.check(&headers(Some("read-token-012345678")), Access::Read),
            Err(Denied::Unauthorized),
            "a prefix is not the token"
        );
        assert_eq!(t.check(&headers(Some(W)), Access::Write), Ok(()));
        assert_eq!(t.check(&headers(Some(R)), Access::Write), Err(Denied::Forbidden));
        assert_eq!(t.check(&headers(None), Access::Write), Err(Denied::Unauthorized));
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(&format!("bearer  {W} ")).unwrap());
        assert_eq!(t.check(&h, Access::Write), Ok(()), "the scheme is case-insensitive");
        h.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Basic {W}")).unwrap());
        assert_eq!(t.check(&h, Access::Write), Err(Denied::Unauthorized));
    }

    #[test]
    fn without_read_tokens_reads_are_open_and_writes_closed() {
        let t = Tokens::default();
        assert_eq!(t.check(&headers(None), Access::Read), Ok(()));
        assert_eq!(t.check(&headers(Some("whatever-0123456789")), Access::Read), Ok(()));
        assert_eq!(t.check(&headers(None), Access::Write), Err(Denied::Unauthorized));
        let mut w = Tokens::default();
        w.add_list(
            Access::Write,
            &Secret::new(format!("{W},other-token-0123456789")).unwrap(),
        )
        .unwrap();
        assert_eq!(w.check(&headers(None), Access::Read), Ok(()));
        assert_eq!(w.check(&headers(Some("other-token-0123456789")), Access::Write), Ok(()));
    }

    #[test]
    fn bad_files_name_the_line_never_the_token() {
        let mut t = Tokens::default();
        let e = t.add_file("read abc123\n").unwrap_err();
        assert!(e.starts_with("line 1:") && !e.contains("abc123"), "{e}");
        let e = t.add_file(&format!("\nadmin {W}\n")).unwrap_err();
        assert!(e.starts_with("line 2:") && !e.contains(W), "{e}");
        let e = t.add_file(&format!("write {W} {R}\n")).unwrap_err();
        assert!(!e.contains(W) && !e.contains(R), "{e}");
        assert!(format!("{:?}", tokens()).contains("read: 1"));
        assert!(!format!("{:?}", tokens()).contains(R));
    }
}
