//! Credentials at rest: AES-256-GCM with a key from `CLAUDEFLARE_SECRET_KEY` or a key
//! file created once in the data directory, readable only by its owner. A database
//! copied without the key reveals no credential.

use aes_gcm::aead::{Aead, Generate, Key, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use std::path::Path;

/// Marks a stored value as encrypted (version 1: base64 of nonce ‖ ciphertext ‖ tag).
const PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 12;

/// Problems with the secret key; each message is one line for the user.
#[derive(Debug, thiserror::Error)]
pub enum SecretKeyError {
    #[error("CLAUDEFLARE_SECRET_KEY must be 64 hexadecimal characters (32 bytes)")]
    BadEnvKey,
    #[error("{0}: the secret key file must hold 64 hexadecimal characters (32 bytes)")]
    BadKeyFile(String),
    #[error("cannot read or create the secret key file {path}: {error}")]
    KeyFile { path: String, error: String },
}

/// A stored credential could not be decrypted: the key is not the one it was
/// encrypted with, or the value was damaged.
#[derive(Debug, thiserror::Error)]
#[error("a stored credential cannot be decrypted: the secret key (CLAUDEFLARE_SECRET_KEY or secret.key) is not the one it was encrypted with")]
pub struct DecryptError;

/// Encrypts and decrypts stored credentials.
#[derive(Clone)]
pub struct Cipher {
    aead: Aes256Gcm,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(****)")
    }
}

fn parse_hex_key(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(key)
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `n` random bytes from the operating system's generator.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 32);
    while out.len() < n {
        out.extend_from_slice(Key::<Aes256Gcm>::generate().as_slice());
    }
    out.truncate(n);
    out
}

/// `n` random bytes as base64url without padding (PKCE verifiers, states, ids).
pub fn random_token(n: usize) -> String {
    URL_SAFE_NO_PAD.encode(random_bytes(n))
}

impl Cipher {
    fn from_key(key: [u8; 32]) -> Cipher {
        Cipher {
            aead: Aes256Gcm::new(&Key::<Aes256Gcm>::from(key)),
        }
    }

    /// A cipher from a 64-hex-character key.
    pub fn from_hex(text: &str) -> Result<Cipher, SecretKeyError> {
        parse_hex_key(text)
            .map(Cipher::from_key)
            .ok_or(SecretKeyError::BadEnvKey)
    }

    /// The key from `env_key` when given, else from `secret.key` in `data_dir`,
    /// created (owner-only) on first start.
    pub fn load(env_key: Option<&str>, data_dir: &Path) -> Result<Cipher, SecretKeyError> {
        if let Some(k) = env_key.filter(|k| !k.trim().is_empty()) {
            return Cipher::from_hex(k);
        }
        let path = data_dir.join("secret.key");
        let io = |e: std::io::Error| SecretKeyError::KeyFile {
            path: path.display().to_string(),
            error: e.to_string(),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => parse_hex_key(&text)
                .map(Cipher::from_key)
                .ok_or_else(|| SecretKeyError::BadKeyFile(path.display().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir).map_err(io)?;
                let key: [u8; 32] = random_bytes(32)
                    .try_into()
                    .map_err(|_| io(std::io::Error::other("no random bytes")))?;
                write_owner_only(&path, &to_hex(&key)).map_err(io)?;
                Ok(Cipher::from_key(key))
            }
            Err(e) => Err(io(e)),
        }
    }

    pub fn encrypt(&self, plain: &str) -> String {
        let nonce = Nonce::generate();
        // Encryption with a valid key and nonce cannot fail for inputs this size.
        let sealed = self
            .aead
            .encrypt(&nonce, plain.as_bytes())
            .unwrap_or_default();
        let mut blob = Vec::with_capacity(NONCE_LEN + sealed.len());
        blob.extend_from_slice(nonce.as_slice());
        blob.extend_from_slice(&sealed);
        format!("{PREFIX}{}", STANDARD_NO_PAD.encode(blob))
    }

    /// Decrypts a stored value. A value without the prefix is plaintext written by an
    /// older version and is returned as it is (it gets encrypted on the next save).
    pub fn decrypt(&self, stored: &str) -> Result<String, DecryptError> {
        let Some(encoded) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let blob = STANDARD_NO_PAD.decode(encoded).map_err(|_| DecryptError)?;
        if blob.len() < NONCE_LEN {
            return Err(DecryptError);
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| DecryptError)?;
        let plain = self
            .aead
            .decrypt(&nonce, sealed)
            .map_err(|_| DecryptError)?;
        String::from_utf8(plain).map_err(|_| DecryptError)
    }

    /// Whether a stored value is still plaintext.
    pub fn is_plaintext(stored: &str) -> bool {
        !stored.starts_with(PREFIX)
    }
}

#[cfg(unix)]
fn write_owner_only(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")
}

#[cfg(not(unix))]
fn write_owner_only(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_key() {
        let c = Cipher::from_hex(&"ab".repeat(32)).expect("key");
        let sealed = c.encrypt("sk-ant-secret");
        assert!(sealed.starts_with(PREFIX));
        assert!(!sealed.contains("sk-ant-secret"));
        assert_ne!(
            sealed,
            c.encrypt("sk-ant-secret"),
            "a fresh nonce each time"
        );
        assert_eq!(c.decrypt(&sealed).expect("decrypt"), "sk-ant-secret");
        assert_eq!(c.decrypt("legacy-plain").expect("plain"), "legacy-plain");
        let other = Cipher::from_hex(&"cd".repeat(32)).expect("key");
        assert!(other.decrypt(&sealed).is_err());
        assert!(c.decrypt("enc:v1:!!!").is_err());
        assert!(Cipher::from_hex("abc").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn the_key_file_is_created_once_and_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let c1 = Cipher::load(None, dir.path()).expect("create");
        let path = dir.path().join("secret.key");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let c2 = Cipher::load(None, dir.path()).expect("reload");
        assert_eq!(c2.decrypt(&c1.encrypt("x")).expect("same key"), "x");
        std::fs::write(&path, "not hex").expect("write");
        assert!(matches!(
            Cipher::load(None, dir.path()),
            Err(SecretKeyError::BadKeyFile(_))
        ));
    }

    #[test]
    fn random_tokens_differ() {
        assert_eq!(random_bytes(48).len(), 48);
        assert_ne!(random_token(32), random_token(32));
        assert_eq!(random_token(32).len(), 43);
    }
}
