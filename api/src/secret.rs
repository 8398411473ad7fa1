//! Secrets at rest: kubeconfigs, cloud credentials and TOTP seeds are sealed
//! with AES-256-GCM before they reach the database, and opened only where
//! they are used.
//!
//! A sealed value is `version (1) ‖ key id (4, big-endian) ‖ nonce (12) ‖
//! ciphertext ‖ tag (16)`. The nonce is random per value (96 bits: safe for
//! far more values than a control plane holds under one key). The key id is
//! the first four bytes of SHA-256 of the key, so rotating keys needs no
//! numbering scheme: the new key encrypts, old keys still open what they
//! sealed. The associated data binds each value to the version, key id and a
//! caller-chosen context (e.g. `cluster:<id>:kubeconfig`), so a ciphertext
//! copied into another row does not open.
//!
//! [`Secret`] holds plaintext in memory. It prints as `<redacted>`, has no
//! `Serialize`, and is zeroed on drop, so it cannot reach a log line, an
//! error message or a response by accident.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// The current key, base64 of 32 bytes. Wins over the key file.
pub const SECRET_KEY_ENV: &str = "MODELFLEET_SECRET_KEY";
/// Earlier keys, comma-separated base64, kept so values sealed before a
/// rotation still open.
pub const PREVIOUS_SECRET_KEYS_ENV: &str = "MODELFLEET_PREVIOUS_SECRET_KEYS";

const FORMAT_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the secret key is not base64 of exactly 32 bytes")]
    BadKey,
    #[error("cannot read or write the key file {path}")]
    KeyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the key file {path} is readable by others (mode {mode:o}); run `chmod 600` on it")]
    KeyFilePermissions { path: PathBuf, mode: u32 },
    #[error(
        "the key file {path} is a symbolic link to nothing; the hub creates its key only as a new \
         file, never through a link: remove the link, or give the key in MODELFLEET_SECRET_KEY"
    )]
    KeyFileLink { path: PathBuf },
    #[error("the system random number generator failed")]
    Random,
    #[error("a sealed value is malformed")]
    Malformed,
    #[error("a sealed value was sealed with key {0}, which is not configured")]
    UnknownKey(KeyId),
    #[error("a sealed value does not open: wrong key, wrong context, or altered")]
    Open,
    #[error("a sealed value is not UTF-8 text")]
    NotText,
}

/// Plaintext secret in memory: a password, a kubeconfig, an API key.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(text: impl Into<String>) -> Self {
        Secret(Zeroizing::new(text.into()))
    }

    /// The plaintext. Call this only where the value is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Self {
        Secret::new(text)
    }
}

impl From<&str> for Secret {
    fn from(text: &str) -> Self {
        Secret::new(text)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Which key sealed a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub u32);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// A 32-byte AES-256 key.
pub struct SecretKey {
    id: KeyId,
    bytes: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("id", &self.id)
            .field("bytes", &"<redacted>")
            .finish()
    }
}

impl SecretKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let digest = Sha256::digest(bytes);
        let id = KeyId(u32::from_be_bytes([
            digest[0], digest[1], digest[2], digest[3],
        ]));
        SecretKey {
            id,
            bytes: Zeroizing::new(bytes),
        }
    }

    /// A new random key.
    pub fn generate() -> Result<Self, SecretError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|_| SecretError::Random)?;
        let key = SecretKey::from_bytes(bytes);
        bytes.zeroize();
        Ok(key)
    }

    pub fn from_base64(text: &str) -> Result<Self, SecretError> {
        let decoded = Zeroizing::new(
            BASE64
                .decode(text.trim())
                .map_err(|_| SecretError::BadKey)?,
        );
        let bytes: [u8; 32] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| SecretError::BadKey)?;
        Ok(SecretKey::from_bytes(bytes))
    }

    pub fn to_base64(&self) -> Secret {
        Secret::new(BASE64.encode(*self.bytes))
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The key in `MODELFLEET_SECRET_KEY`, if that is set.
    pub fn from_env() -> Result<Option<Self>, SecretError> {
        match std::env::var(SECRET_KEY_ENV) {
            Ok(text) => SecretKey::from_base64(&text).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Reads the key file at `path`, which must exist (a mounted Secret):
    /// hubs that share a database share one key, so none may make up its
    /// own. Refuses a file that group or others can read.
    pub fn load_existing(path: &Path) -> Result<Self, SecretError> {
        let meta = fs::metadata(path).map_err(|source| SecretError::KeyFile {
            path: path.to_owned(),
            source,
        })?;
        SecretKey::read_file(path, &meta)
    }

    /// Reads the key file, or creates it (mode 0600, a fresh random key) if
    /// it does not exist. Refuses a file that group or others can read.
    pub fn load_or_create(path: &Path) -> Result<Self, SecretError> {
        let io = |source| SecretError::KeyFile {
            path: path.to_owned(),
            source,
        };
        match fs::metadata(path) {
            Ok(meta) => SecretKey::read_file(path, &meta),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = SecretKey::generate()?;
                let created = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path);
                let mut file = match created {
                    Ok(file) => file,
                    // `create_new` does not follow a link, even one to
                    // nothing: the path holds a link nobody can read through.
                    Err(e)
                        if e.kind() == std::io::ErrorKind::AlreadyExists
                            && fs::symlink_metadata(path).is_ok_and(|m| m.is_symlink()) =>
                    {
                        return Err(SecretError::KeyFileLink {
                            path: path.to_owned(),
                        });
                    }
                    // Another process created it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let meta = fs::metadata(path).map_err(io)?;
                        return SecretKey::read_file(path, &meta);
                    }
                    Err(e) => return Err(io(e)),
                };
                let text = key.to_base64();
                file.write_all(text.expose().as_bytes()).map_err(io)?;
                file.write_all(b"\n").map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok(key)
            }
            Err(e) => Err(io(e)),
        }
    }
}

impl SecretKey {
    /// The key in the file at `path`, which `meta` describes; refused when
    /// group or others may read it.
    fn read_file(path: &Path, meta: &fs::Metadata) -> Result<Self, SecretError> {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretError::KeyFilePermissions {
                path: path.to_owned(),
                mode,
            });
        }
        let text =
            Zeroizing::new(
                fs::read_to_string(path).map_err(|source| SecretError::KeyFile {
                    path: path.to_owned(),
                    source,
                })?,
            );
        SecretKey::from_base64(&text)
    }
}

/// A sealed value as stored in the database.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(Vec<u8>);

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id())
            .field("len", &self.0.len())
            .finish()
    }
}

impl Sealed {
    /// Wraps bytes read from the database.
    pub fn from_stored(bytes: Vec<u8>) -> Result<Self, SecretError> {
        if bytes.len() < HEADER_LEN + TAG_LEN || bytes[0] != FORMAT_VERSION {
            return Err(SecretError::Malformed);
        }
        Ok(Sealed(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn key_id(&self) -> KeyId {
        KeyId(u32::from_be_bytes([
            self.0[1], self.0[2], self.0[3], self.0[4],
        ]))
    }
}

/// The current key and the earlier ones that may still open old values.
#[derive(Debug)]
pub struct Keyring {
    current: SecretKey,
    previous: Vec<SecretKey>,
}

impl Keyring {
    pub fn new(current: SecretKey) -> Self {
        Keyring {
            current,
            previous: Vec::new(),
        }
    }

    pub fn with_previous(mut self, key: SecretKey) -> Self {
        self.previous.push(key);
        self
    }

    /// `MODELFLEET_SECRET_KEY` if set, otherwise the key file (created on
    /// first use); plus `MODELFLEET_PREVIOUS_SECRET_KEYS`.
    pub fn from_env_or_file(key_file: &Path) -> Result<Self, SecretError> {
        let current = match SecretKey::from_env()? {
            Some(key) => key,
            None => SecretKey::load_or_create(key_file)?,
        };
        Keyring::with_previous_from_env(current)
    }

    /// The key in `key_file` when one is named (it must exist), else in
    /// `MODELFLEET_SECRET_KEY`; `None` when neither gives one. Never
    /// creates a key: what `modelfleet api` uses, since every hub of one
    /// database must hold the same.
    pub fn from_file_or_env(key_file: Option<&Path>) -> Result<Option<Self>, SecretError> {
        let current = match key_file {
            Some(path) => SecretKey::load_existing(path)?,
            None => match SecretKey::from_env()? {
                Some(key) => key,
                None => return Ok(None),
            },
        };
        Keyring::with_previous_from_env(current).map(Some)
    }

    /// `current`, with the earlier keys `MODELFLEET_PREVIOUS_SECRET_KEYS`
    /// lists (comma-separated), which still open what they sealed.
    fn with_previous_from_env(current: SecretKey) -> Result<Self, SecretError> {
        let mut ring = Keyring::new(current);
        if let Ok(list) = std::env::var(PREVIOUS_SECRET_KEYS_ENV) {
            for text in list.split(',').filter(|t| !t.trim().is_empty()) {
                ring = ring.with_previous(SecretKey::from_base64(text)?);
            }
        }
        Ok(ring)
    }

    /// Cluster `cluster`'s admission key: what the hub seals the specs it
    /// admits there with, and what that cluster's operator checks them by
    /// (`modelfleet_core::contract::admission`). Derived from the current
    /// key (HMAC-SHA256), so nothing more is stored; rotating the key
    /// changes every cluster's, and their operators must be given the new.
    pub fn admission_key(
        &self,
        cluster: &str,
    ) -> modelfleet_core::contract::admission::AdmissionKey {
        use hmac::{Hmac, KeyInit, Mac};
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.current.bytes.as_slice())
            .expect("HMAC takes any key");
        mac.update(b"modelfleet admission key v1\0");
        mac.update(cluster.as_bytes());
        modelfleet_core::contract::admission::AdmissionKey::from_bytes(
            mac.finalize().into_bytes().into(),
        )
    }

    pub fn current_key_id(&self) -> KeyId {
        self.current.id
    }

    /// Encrypts `secret` under the current key, bound to `context`.
    pub fn seal(&self, secret: &Secret, context: &str) -> Result<Sealed, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| SecretError::Random)?;
        let mut out = Vec::with_capacity(HEADER_LEN + secret.expose().len() + TAG_LEN);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.current.id.0.to_be_bytes());
        out.extend_from_slice(&nonce);
        let aad = associated_data(&out[..5], context);
        let ciphertext = cipher(&self.current)
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: secret.expose().as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| SecretError::Open)?;
        out.extend_from_slice(&ciphertext);
        Ok(Sealed(out))
    }

    /// Decrypts a value sealed by [`Keyring::seal`] with the same context.
    pub fn open(&self, sealed: &Sealed, context: &str) -> Result<Secret, SecretError> {
        let id = sealed.key_id();
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
            .ok_or(SecretError::UnknownKey(id))?;
        let bytes = &sealed.0;
        let nonce: [u8; NONCE_LEN] = bytes[5..HEADER_LEN]
            .try_into()
            .map_err(|_| SecretError::Malformed)?;
        let aad = associated_data(&bytes[..5], context);
        let plaintext = Zeroizing::new(
            cipher(key)
                .decrypt(
                    &nonce.into(),
                    Payload {
                        msg: &bytes[HEADER_LEN..],
                        aad: &aad,
                    },
                )
                .map_err(|_| SecretError::Open)?,
        );
        let text = std::str::from_utf8(&plaintext).map_err(|_| SecretError::NotText)?;
        Ok(Secret::new(text))
    }

    /// Whether `sealed` should be re-sealed under the current key.
    pub fn needs_rotation(&self, sealed: &Sealed) -> bool {
        sealed.key_id() != self.current.id
    }
}

fn cipher(key: &SecretKey) -> Aes256Gcm {
    Aes256Gcm::new(&(*key.bytes).into())
}

fn associated_data(header: &[u8], context: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + context.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(context.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_with_context() {
        let ring = Keyring::new(SecretKey::generate().unwrap());
        let secret = Secret::new("apiVersion: v1\nkind: Config\n");
        let sealed = ring.seal(&secret, "cluster:a:kubeconfig").unwrap();
        assert!(!sealed.as_bytes().windows(10).any(|w| w == b"apiVersion"));
        assert_eq!(ring.open(&sealed, "cluster:a:kubeconfig").unwrap(), secret);
        assert!(matches!(
            ring.open(&sealed, "cluster:b:kubeconfig"),
            Err(SecretError::Open)
        ));
        // A fresh nonce per value: the same plaintext seals differently.
        assert_ne!(
            ring.seal(&secret, "c").unwrap(),
            ring.seal(&secret, "c").unwrap()
        );
    }

    #[test]
    fn any_flipped_byte_is_refused() {
        let ring = Keyring::new(SecretKey::generate().unwrap());
        let sealed = ring.seal(&Secret::new("token"), "ctx").unwrap();
        for i in 0..sealed.as_bytes().len() {
            let mut bytes = sealed.as_bytes().to_vec();
            bytes[i] ^= 0x01;
            let opened = Sealed::from_stored(bytes).and_then(|s| ring.open(&s, "ctx"));
            assert!(opened.is_err(), "byte {i} flipped still opened");
        }
    }

    #[test]
    fn rotation_keeps_old_values_readable() {
        let old = SecretKey::generate().unwrap();
        let old_copy = SecretKey::from_base64(old.to_base64().expose()).unwrap();
        let sealed = Keyring::new(old).seal(&Secret::new("x"), "ctx").unwrap();
        let new_only = Keyring::new(SecretKey::generate().unwrap());
        assert!(matches!(
            new_only.open(&sealed, "ctx"),
            Err(SecretError::UnknownKey(_))
        ));
        let rotated = new_only.with_previous(old_copy);
        assert_eq!(rotated.open(&sealed, "ctx").unwrap().expose(), "x");
        assert!(rotated.needs_rotation(&sealed));
    }

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret} {secret:?}"), "<redacted> <redacted>");
        let key = SecretKey::generate().unwrap();
        assert!(!format!("{key:?}").contains(key.to_base64().expose()));
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let first = SecretKey::load_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = SecretKey::load_or_create(&path).unwrap();
        assert_eq!(first.id(), again.id());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            SecretKey::load_or_create(&path),
            Err(SecretError::KeyFilePermissions { .. })
        ));
        assert!(matches!(
            SecretKey::from_base64("c2hvcnQ="),
            Err(SecretError::BadKey)
        ));
    }
}
