//! The API key format: `mf_<prefix>_<secret>`, e.g.
//! `mf_k3x9q2ab_Vb1…` (8 + 32 characters). The prefix is public: it names
//! the key in lists and audit records and finds its row. The whole token is
//! shown once, at creation; the store keeps only its SHA-256.
//!
//! Why SHA-256 and not argon2: the secret part carries 32 base62
//! characters, about 190 bits of entropy, so no amount of guessing speed
//! makes a preimage search feasible; slow hashes exist to protect
//! low-entropy human passwords. And a key is checked on every API request:
//! argon2's 19 MiB and tens of milliseconds per check would turn each
//! request into a denial-of-service lever.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secret::Secret;

pub const PREFIX_LEN: usize = 8;
pub const SECRET_LEN: usize = 32;
const PREFIX_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RandomFailed;

/// A freshly generated key: the token to show once, and what to store.
#[derive(Debug)]
pub struct Generated {
    pub prefix: String,
    pub token: Secret,
    pub digest: [u8; 32],
}

pub fn generate() -> Result<Generated, RandomFailed> {
    let prefix = random_string(PREFIX_ALPHABET, PREFIX_LEN)?;
    let secret = Secret::new(random_string(SECRET_ALPHABET, SECRET_LEN)?);
    let token = Secret::new(format!("mf_{prefix}_{}", secret.expose()));
    let digest = digest(token.expose());
    Ok(Generated {
        prefix,
        token,
        digest,
    })
}

/// The prefix of a well-formed token, or `None`.
pub fn prefix_of(token: &str) -> Option<&str> {
    let rest = token.strip_prefix("mf_")?;
    let (prefix, secret) = rest.split_once('_')?;
    let ok = prefix.len() == PREFIX_LEN
        && prefix.bytes().all(|b| PREFIX_ALPHABET.contains(&b))
        && secret.len() == SECRET_LEN
        && secret.bytes().all(|b| SECRET_ALPHABET.contains(&b));
    ok.then_some(prefix)
}

pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Compares a presented token with a stored digest in constant time.
pub fn matches(stored_digest: &[u8], token: &str) -> bool {
    digest(token).ct_eq(stored_digest).into()
}

/// Uniform characters from `alphabet` by rejection sampling (no modulo bias).
fn random_string(alphabet: &[u8], len: usize) -> Result<String, RandomFailed> {
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf).map_err(|_| RandomFailed)?;
        for &b in &buf {
            if usize::from(b) < limit && out.len() < len {
                out.push(char::from(alphabet[usize::from(b) % alphabet.len()]));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_match_only_themselves() {
        let key = generate().unwrap();
        let token = key.token.expose();
        assert_eq!(token.len(), 3 + PREFIX_LEN + 1 + SECRET_LEN);
        assert_eq!(prefix_of(token), Some(key.prefix.as_str()));
        assert!(matches(&key.digest, token));
        let other = generate().unwrap();
        assert_ne!(other.prefix, key.prefix);
        assert!(!matches(&key.digest, other.token.expose()));
    }

    #[test]
    fn malformed_tokens_have_no_prefix() {
        for bad in [
            "",
            "mf_",
            "mf_abcdefgh",
            "mf_ABCDEFGH_0123456789abcdef0123456789abcdef",
            "xx_abcdefgh_0123456789abcdef0123456789abcdef",
            "mf_abcdefgh_0123456789abcdef0123456789abcde!",
            "mf_abcdefgh_short",
        ] {
            assert_eq!(prefix_of(bad), None, "{bad:?}");
        }
        assert_eq!(
            prefix_of("mf_abcdefgh_0123456789abcdef0123456789ABCDEF"),
            Some("abcdefgh")
        );
    }
}
