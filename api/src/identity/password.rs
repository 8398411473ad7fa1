//! Passwords: a policy check, argon2id hashing (OWASP's parameters, the
//! crate's defaults: 19 MiB, 2 passes, 1 lane) and constant-time
//! verification. Hashing is deliberately slow, so it runs on a blocking
//! thread and never while a database transaction is open; and at most as
//! many hashes run at once as the machine has cores ([`HASHING`]), so a
//! flood of sign-ins waits its turn instead of filling the blocking pool
//! with 19 MiB hashes.
//!
//! The policy also refuses the passwords attackers try first, as NIST SP
//! 800-63B (5.1.1.2) asks: `common-passwords.txt` beside this file is the
//! list Django's `CommonPasswordValidator` uses (20,000 passwords seen
//! most often in breaches, lower-cased; `common-passwords.LICENSE` says
//! where it comes from), compared without regard to case.

use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

use crate::secret::Secret;

pub const MIN_LENGTH: usize = 12;
pub const MAX_LENGTH: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("a password needs at least {MIN_LENGTH} characters")]
    TooShort,
    #[error("a password may have at most {MAX_LENGTH} characters")]
    TooLong,
    #[error(
        "a password needs at least three of: lower-case letters, upper-case letters, digits, other characters"
    )]
    TooSimple,
    #[error("a password must not contain the user name")]
    ContainsUsername,
    #[error(
        "this password is one of the most commonly used ones, which attackers try first; choose \
         another, such as a passphrase of several unrelated words"
    )]
    Common,
    #[error("the password could not be hashed")]
    Hash,
}

/// An argon2id hash in PHC string form (`$argon2id$v=19$m=19456,t=2,p=1$…`).
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<argon2id>)")
    }
}

impl PasswordHash {
    /// Checks the policy, then hashes with a fresh random salt.
    pub async fn new(username: &str, password: &Secret) -> Result<Self, PasswordError> {
        check_policy(username, password)?;
        let password = password.clone();
        on_blocking_pool(&HASHING, move || hash_now(&password))
            .await
            .ok_or(PasswordError::Hash)?
    }

    pub(crate) fn from_stored(phc: String) -> Self {
        PasswordHash(phc)
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

fn hash_now(password: &Secret) -> Result<PasswordHash, PasswordError> {
    Argon2::default()
        .hash_password(password.expose().as_bytes())
        .map(|h| PasswordHash(h.to_string()))
        .map_err(|_| PasswordError::Hash)
}

/// The common passwords, lower-cased, one a line.
static COMMON: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| include_str!("common-passwords.txt").lines().collect());

/// Whether `password` is on the list of common passwords, in any case.
pub fn is_common(password: &str) -> bool {
    COMMON.contains(password.trim().to_lowercase().as_str())
}

/// Length and variety, as MLPS 2.0 L3-CES1-01 asks for "complexity", and
/// not one of the commonly used passwords.
pub fn check_policy(username: &str, password: &Secret) -> Result<(), PasswordError> {
    let p = password.expose();
    let chars = p.chars().count();
    if chars < MIN_LENGTH {
        return Err(PasswordError::TooShort);
    }
    if chars > MAX_LENGTH {
        return Err(PasswordError::TooLong);
    }
    if is_common(p) {
        return Err(PasswordError::Common);
    }
    let classes = [
        p.chars().any(|c| c.is_lowercase()),
        p.chars().any(|c| c.is_uppercase()),
        p.chars().any(|c| c.is_ascii_digit()),
        p.chars().any(|c| !c.is_alphanumeric()),
    ];
    if classes.iter().filter(|&&c| c).count() < 3 {
        return Err(PasswordError::TooSimple);
    }
    if !username.is_empty() && p.to_lowercase().contains(&username.to_lowercase()) {
        return Err(PasswordError::ContainsUsername);
    }
    Ok(())
}

/// Permits to hash: one per core the machine has (argon2 with one lane
/// keeps one core busy).
pub static HASHING: LazyLock<Semaphore> = LazyLock::new(|| {
    Semaphore::new(std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
});

/// Runs `work` on the blocking pool once it holds one of `permits`, which
/// it keeps until `work` is done; `None` if `work` panicked.
async fn on_blocking_pool<T: Send + 'static>(
    permits: &'static Semaphore,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let permit = permits.acquire().await.ok()?;
    let done = tokio::task::spawn_blocking(work).await.ok();
    drop(permit);
    done
}

/// A hash of nothing anyone knows, verified against when the user does not
/// exist so that "no such user" takes as long as "wrong password".
static DUMMY: LazyLock<Option<PasswordHash>> =
    LazyLock::new(|| hash_now(&Secret::new("no user has this password Q7!")).ok());

/// Verifies `password` against `hash` (or against a dummy hash when there
/// is no user), on a blocking thread under a [`HASHING`] permit (the
/// dummy's too, so "no such user" still waits and takes as long). The
/// comparison inside argon2 is constant-time.
pub(crate) async fn verify(hash: Option<PasswordHash>, password: &Secret) -> bool {
    let password = password.clone();
    on_blocking_pool(&HASHING, move || {
        let known = hash.is_some();
        let Some(hash) = hash.or_else(|| DUMMY.clone()) else {
            return false;
        };
        let ok = Argon2::default()
            .verify_password(password.expose().as_bytes(), hash.as_str())
            .is_ok();
        ok && known
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_wants_length_and_variety() {
        let check = |p: &str| check_policy("ana", &Secret::new(p));
        assert_eq!(check("Short1!"), Err(PasswordError::TooShort));
        assert_eq!(check("alllowercaseletters"), Err(PasswordError::TooSimple));
        assert_eq!(
            check("Ana-is-great-2024"),
            Err(PasswordError::ContainsUsername)
        );
        assert_eq!(check("Correct-horse-42"), Ok(()));
    }

    #[test]
    fn the_common_list_is_read_whole() {
        // First, last and a long one of the file; never the empty line.
        for common in ["123456", "fallen_angel", "1q2w3e4r5t6y7u8i9o0p"] {
            assert!(is_common(common), "{common}");
        }
        assert!(is_common(" PASSWORD "));
        assert!(!is_common(""));
        assert!(COMMON.len() > 19_000, "{}", COMMON.len());
    }

    /// Issue 16, finding 4: however many hashes are asked for at once, no
    /// more run than there are permits.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn permits_bound_how_many_hashes_run_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static PERMITS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(2));
        static RUNNING: AtomicUsize = AtomicUsize::new(0);
        static MOST: AtomicUsize = AtomicUsize::new(0);
        let tasks: Vec<_> = (0..12)
            .map(|_| {
                tokio::spawn(on_blocking_pool(&PERMITS, || {
                    let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
                    MOST.fetch_max(now, Ordering::SeqCst);
                    // Long enough for the others to pile up if nothing
                    // held them back.
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    RUNNING.fetch_sub(1, Ordering::SeqCst);
                }))
            })
            .collect();
        for task in tasks {
            assert!(task.await.unwrap().is_some());
        }
        assert!(MOST.load(Ordering::SeqCst) <= 2, "{MOST:?} ran at once");
        assert_eq!(PERMITS.available_permits(), 2, "every permit is given back");
    }

    #[tokio::test]
    async fn hashes_are_argon2id_salted_and_verify() {
        let secret = Secret::new("Correct-horse-42");
        let a = PasswordHash::new("ana", &secret).await.unwrap();
        let b = PasswordHash::new("ana", &secret).await.unwrap();
        assert!(a.as_str().starts_with("$argon2id$v=19$"), "{}", a.as_str());
        assert_ne!(a, b, "each hash has its own salt");
        assert!(!format!("{a:?}").contains("argon2id$"));
        assert!(verify(Some(a.clone()), &secret).await);
        assert!(!verify(Some(a), &Secret::new("Correct-horse-43")).await);
        assert!(!verify(None, &secret).await);
    }
}
