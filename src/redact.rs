//! The one redaction layer: every message, log line, summary and JSON value the process prints
//! goes through [`redact`] (in the log writer and in `main`'s printing), which removes the
//! secrets of this process wherever they ended up: the API key, the remote token, the team
//! secret, URL passwords, cloud credentials from the environment, in whatever error text or
//! server body quoted them.
//!
//! Secrets are registered once, at start-up ([`register`], [`register_env`],
//! [`register_url_credentials`]). Besides the registered values, two shapes are always hidden:
//! the user-info of any URL (`scheme://user:pass@host` → `scheme://***@host`) and the value of
//! any bearer or basic credential (`Bearer abc` → `Bearer ***`).

use std::borrow::Cow;
use std::sync::RwLock;

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Values shorter than this are not registered: hiding every `a` of a one-letter password would
/// garble every message, and such a value is not a credential worth protecting.
const MIN_SECRET_LEN: usize = 4;

/// Values of environment variables are registered only from this length on (they are taken by
/// their variable's name, not declared as secrets).
const ENV_SECRET_MIN_LEN: usize = 8;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Registers a secret: from now on it never appears in what [`redact`] returns, nor in its
/// percent-encoded or JSON-escaped forms.
pub fn register(secret: &str) {
    let secret = secret.trim();
    if secret.len() < MIN_SECRET_LEN {
        return;
    }
    let mut forms = vec![secret.to_string()];
    let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    forms.push(encoded);
    if let Ok(json) = serde_json::to_string(secret) {
        forms.push(json.trim_matches('"').to_string());
    }
    let mut all = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    for f in forms {
        if f.len() >= MIN_SECRET_LEN && !all.contains(&f) {
            all.push(f);
        }
    }
    // Longest first, so a secret that contains another is hidden whole.
    all.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Registers the user name and password of a URL (`http://user:pass@host/`), decoded and as
/// written.
pub fn register_url_credentials(raw: &str) {
    if let Ok(url) = url::Url::parse(raw.trim()) {
        for part in [url.username(), url.password().unwrap_or_default()] {
            register(part);
            if let Ok(decoded) = percent_decode(part) {
                register(&decoded);
            }
        }
    }
}

/// Registers the values of environment variables that hold credentials by convention (names
/// ending in `_KEY`, `_SECRET`, `_TOKEN`, `_PASSWORD`, `_CREDENTIALS`; the cloud SDKs' own).
pub fn register_env() {
    const SUFFIXES: [&str; 6] = ["_KEY", "_SECRET", "_TOKEN", "_PASSWORD", "_CREDENTIALS", "_SAS"];
    for (name, value) in std::env::vars_os() {
        let (Some(name), Some(value)) = (name.to_str(), value.to_str()) else {
            continue;
        };
        let upper = name.to_ascii_uppercase();
        // A credential is long and not a flag or a number; `SOME_KEY=true` must not hide
        // every "true" printed.
        let credential_like = value.trim().len() >= ENV_SECRET_MIN_LEN
            && !value.trim().chars().all(|c| c.is_ascii_digit())
            && !["true", "false", "yes", "no"].contains(&value.trim().to_ascii_lowercase().as_str());
        if credential_like && (SUFFIXES.iter().any(|s| upper.ends_with(s)) || upper.contains("SECRET")) {
            register(value);
        }
        if upper.ends_with("_URL") || upper.ends_with("_PROXY") || upper == "TICKVAULT_REMOTE_CACHE" {
            register_url_credentials(value);
        }
    }
}

fn percent_decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes: Vec<u8> = url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned().into_bytes())
        .unwrap_or_default();
    String::from_utf8(bytes)
}

/// `text` without the registered secrets, URL user-info or bearer/basic credentials.
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    {
        let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
        for s in secrets.iter() {
            if out.contains(s.as_str()) {
                out = Cow::Owned(out.replace(s.as_str(), MASK));
            }
        }
    }
    if out.contains('@')
        && let Some(stripped) = strip_userinfo(&out)
    {
        out = Cow::Owned(stripped);
    }
    for scheme in ["Bearer ", "bearer ", "Basic ", "basic "] {
        if out.contains(scheme)
            && let Some(masked) = mask_after(&out, scheme)
        {
            out = Cow::Owned(masked);
        }
    }
    out
}

/// Ends of a token in free text.
fn ends_token(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | ',' | ')' | '}' | ']' | '<' | '>' | ';' | '\\')
}

/// Replaces the user-info of every `scheme://user-info@host` with [`MASK`].
fn strip_userinfo(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail.find(|c: char| ends_token(c) || c == '/').unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) if at > 0 && &authority[..at] != MASK => {
                out.push_str(MASK);
                out.push_str(&authority[at..]);
                changed = true;
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    changed.then_some(out)
}

/// Replaces the token after each `scheme` (e.g. `Bearer `) with [`MASK`].
fn mask_after(text: &str, scheme: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(i) = rest.find(scheme) {
        let (head, tail) = rest.split_at(i + scheme.len());
        out.push_str(head);
        let end = tail.find(ends_token).unwrap_or(tail.len());
        if end > 0 && &tail[..end] != MASK {
            out.push_str(MASK);
            changed = true;
        } else {
            out.push_str(&tail[..end]);
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_and_their_encodings_are_hidden() {
        register("sk-unit-test-9d1e");
        register("p@ss w\"rd/x");
        register("ab");
        let t = redact("key sk-unit-test-9d1e in 'sk-unit-test-9d1e'");
        assert_eq!(t, "key *** in '***'");
        assert!(!redact("user=p%40ss+w%22rd%2Fx").contains("p%40ss"));
        assert!(!redact(r#"{"m":"p@ss w\"rd/x"}"#).contains("rd/x"));
        assert_eq!(redact("ab cd"), "ab cd", "too short to be a secret");
    }

    #[test]
    fn url_user_info_and_bearer_tokens_are_always_hidden() {
        assert_eq!(
            redact("GET http://alice:hunter2@cache.example/v1/x failed"),
            "GET http://***@cache.example/v1/x failed"
        );
        assert_eq!(redact("see https://h.example/a@b"), "see https://h.example/a@b");
        assert_eq!(
            redact(r#"{"message":"bad Authorization: Bearer tok-123, try again"}"#),
            r#"{"message":"bad Authorization: Bearer ***, try again"}"#
        );
        assert_eq!(redact("Basic dXNlcjpwYXNz"), "Basic ***");
        assert_eq!(redact("nothing here"), "nothing here");
    }
}
