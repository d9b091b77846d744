//! The team MAC: a keyed BLAKE3 over a sealed file's bytes and its chunk key, stored in the
//! file's own footer (beside the xxh3 checksum, see [`super::sealed`]), so it travels with the
//! bytes to any tier or server (nginx WebDAV, S3, `file://`, `tickvault serve`). Whoever can
//! write the team cache but does not hold the secret cannot make a file that verifies.

use std::fmt;

/// Context string of the key derivation: changing it invalidates every MAC.
const KEY_CONTEXT: &str = "tickvault 2026-11 remote cache chunk MAC v1";

/// A key derived from the team secret (`TICKVAULT_REMOTE_CACHE_SECRET`). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct MacKey([u8; 32]);

impl MacKey {
    /// Derives the key from the team secret.
    pub fn from_secret(secret: &str) -> Self {
        Self(blake3::derive_key(KEY_CONTEXT, secret.as_bytes()))
    }

    /// A keyed hasher over `context` (the chunk key) followed by the bytes fed to it.
    pub(crate) fn hasher(&self, context: &str) -> blake3::Hasher {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        h.update(&(context.len() as u64).to_le_bytes());
        h.update(context.as_bytes());
        h
    }
}

impl fmt::Debug for MacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MacKey(***)")
    }
}

/// Compares a MAC as written (hex) with the one computed, in constant time.
pub(crate) fn matches(written_hex: &str, computed: &blake3::Hash) -> bool {
    blake3::Hash::from_hex(written_hex).is_ok_and(|w| w == *computed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_the_secret_and_never_print() {
        let a = MacKey::from_secret("team-a");
        assert_ne!(a, MacKey::from_secret("team-b"));
        assert_eq!(format!("{a:?}"), "MacKey(***)");
        let mac = a.hasher("x/trades/A/2024-01-01").update(b"bytes").finalize();
        assert!(matches(&mac.to_hex(), &mac));
        let other = a.hasher("x/trades/B/2024-01-01").update(b"bytes").finalize();
        assert!(!matches(&mac.to_hex(), &other), "the key is covered");
        assert!(!matches("zz", &mac));
    }
}
