//! API keys: format, hashing and verification (pure; randomness is passed in).
//!
//! A key reads `ml_<prefix>_<secret>`: `prefix` is 16 characters of lowercase base32
//! (`a-z 2-7`, 80 random bits) and is the key's public id, shown in listings and logs;
//! `secret` is 48 such characters (240 random bits) and is shown once, at creation.
//!
//! Only a salted hash of the secret is stored: `SHA-256("meterline-api-key-v1\0" || salt ||
//! secret)` with a per-key random 16-byte salt. A fast hash is enough because the secret is
//! random with 240 bits of entropy (a slow password hash protects low-entropy secrets); the salt
//! keeps two stores' hashes unrelated. Comparison is constant-time.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// Length of a key's prefix (its id).
pub const PREFIX_LEN: usize = 16;
/// Length of a key's secret part.
pub const SECRET_LEN: usize = 48;
/// Random bytes needed by [`KeyMaterial::from_random`]: 10 for the prefix, 30 for the secret,
/// 16 for the salt.
pub const RANDOM_BYTES: usize = 56;

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
const DOMAIN: &[u8] = b"meterline-api-key-v1\0";

/// Lowercase base32 without padding (5 bits per character).
fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    s.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [_, _] => u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok(),
            _ => None,
        })
        .collect()
}

fn is_key_chars(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| ALPHABET.contains(&b))
}

/// Whether `id` has the form of a key id (a prefix).
pub fn is_valid_key_id(id: &str) -> bool {
    is_key_chars(id, PREFIX_LEN)
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// A presented key, split into its parts (nothing is verified yet).
#[derive(Clone, PartialEq, Eq)]
pub struct PresentedKey {
    pub prefix: String,
    secret: String,
}

impl fmt::Debug for PresentedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PresentedKey(ml_{}_…)", self.prefix)
    }
}

impl FromStr for PresentedKey {
    type Err = ();

    /// Parses `ml_<prefix>_<secret>`.
    fn from_str(s: &str) -> Result<Self, ()> {
        let rest = s.strip_prefix("ml_").ok_or(())?;
        let (prefix, secret) = rest.split_once('_').ok_or(())?;
        if is_key_chars(prefix, PREFIX_LEN) && is_key_chars(secret, SECRET_LEN) {
            Ok(PresentedKey {
                prefix: prefix.to_string(),
                secret: secret.to_string(),
            })
        } else {
            Err(())
        }
    }
}

/// A salted hash of a key's secret, as stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyHash {
    /// Hex of the 16-byte salt.
    pub salt: String,
    /// Hex of the SHA-256 digest.
    pub hash: String,
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash(…)")
    }
}

fn digest(salt: &[u8], secret: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(salt);
    h.update(secret.as_bytes());
    h.finalize().into()
}

impl KeyHash {
    /// Hashes `key`'s secret with `salt`.
    pub fn new(key: &PresentedKey, salt: &[u8; 16]) -> KeyHash {
        KeyHash {
            salt: hex(salt),
            hash: hex(&digest(salt, &key.secret)),
        }
    }

    /// Whether `key`'s secret is the one hashed here (constant-time in the secret).
    pub fn verify(&self, key: &PresentedKey) -> bool {
        match (unhex(&self.salt), unhex(&self.hash)) {
            (Some(salt), Some(expected)) => constant_time_eq(&digest(&salt, &key.secret), &expected),
            _ => false,
        }
    }
}

/// A newly generated key: the full text (shown once) and what is stored.
pub struct KeyMaterial {
    pub key: String,
    pub id: String,
    pub hash: KeyHash,
}

impl KeyMaterial {
    /// Builds a key from [`RANDOM_BYTES`] random bytes (from the OS generator).
    #[allow(clippy::expect_used)] // Cannot fail: the key and salt are built from fixed-size random bytes in the format `parse` accepts.
    pub fn from_random(random: &[u8; RANDOM_BYTES]) -> KeyMaterial {
        let id = base32(&random[..10]);
        let secret = base32(&random[10..40]);
        let key = format!("ml_{id}_{secret}");
        let presented: PresentedKey = key.parse().expect("generated keys parse");
        let salt: [u8; 16] = random[40..].try_into().expect("16 bytes");
        KeyMaterial {
            hash: KeyHash::new(&presented, &salt),
            id,
            key,
        }
    }
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything.
    Operator,
    /// Its own account only.
    Customer,
    /// Its own statements and price books only.
    Provider,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Customer => "customer",
            Role::Provider => "provider",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "operator" => Ok(Role::Operator),
            "customer" => Ok(Role::Customer),
            "provider" => Ok(Role::Provider),
            other => Err(format!(
                "`{other}` is not a role; expected operator, customer or provider"
            )),
        }
    }
}

/// Who a request comes from, once its key is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Operator { key_id: String },
    Customer { key_id: String, account_id: String },
    Provider { key_id: String, provider_id: String },
}

impl Principal {
    pub fn key_id(&self) -> &str {
        match self {
            Principal::Operator { key_id }
            | Principal::Customer { key_id, .. }
            | Principal::Provider { key_id, .. } => key_id,
        }
    }

    pub fn role(&self) -> Role {
        match self {
            Principal::Operator { .. } => Role::Operator,
            Principal::Customer { .. } => Role::Customer,
            Principal::Provider { .. } => Role::Provider,
        }
    }
}

/// A stored API key (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// The key's prefix.
    pub id: String,
    pub role: Role,
    /// The account of a customer key.
    pub account_id: Option<String>,
    /// The provider of a provider key.
    pub provider_id: Option<String>,
    /// A label for people (at most 128 characters).
    pub name: Option<String>,
    pub hash: KeyHash,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The key that replaced this one, when it was rotated.
    pub replaced_by: Option<String>,
}

impl ApiKeyRecord {
    /// The principal this key acts as, if `presented` is this key and it is not revoked.
    pub fn authenticate(&self, presented: &PresentedKey) -> Option<Principal> {
        // Verify first so a revoked key costs the same as a live one.
        let verified = presented.prefix == self.id && self.hash.verify(presented);
        if !verified || self.revoked_at.is_some() {
            return None;
        }
        let key_id = self.id.clone();
        match self.role {
            Role::Operator => Some(Principal::Operator { key_id }),
            Role::Customer => Some(Principal::Customer {
                key_id,
                account_id: self.account_id.clone()?,
            }),
            Role::Provider => Some(Principal::Provider {
                key_id,
                provider_id: self.provider_id.clone()?,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn material(seed: u8) -> KeyMaterial {
        let mut r = [0u8; RANDOM_BYTES];
        for (i, b) in r.iter_mut().enumerate() {
            *b = seed.wrapping_mul(31).wrapping_add((i as u8).wrapping_mul(7));
        }
        KeyMaterial::from_random(&r)
    }

    fn record(m: &KeyMaterial, role: Role) -> ApiKeyRecord {
        ApiKeyRecord {
            id: m.id.clone(),
            role,
            account_id: Some("acct_1".into()),
            provider_id: Some("prov_1".into()),
            name: None,
            hash: m.hash.clone(),
            created_at: Utc::now(),
            revoked_at: None,
            replaced_by: None,
        }
    }

    #[test]
    fn generated_keys_have_the_documented_shape_and_verify() {
        let m = material(1);
        assert_eq!(m.key.len(), 3 + PREFIX_LEN + 1 + SECRET_LEN);
        assert!(m.key.starts_with(&format!("ml_{}_", m.id)));
        assert!(is_valid_key_id(&m.id));
        let p: PresentedKey = m.key.parse().unwrap();
        assert!(m.hash.verify(&p));
        assert!(!format!("{p:?}").contains(&m.key[20..]), "Debug hides the secret");
        assert_eq!(
            record(&m, Role::Customer).authenticate(&p),
            Some(Principal::Customer {
                key_id: m.id.clone(),
                account_id: "acct_1".into()
            })
        );
    }

    #[test]
    fn a_wrong_secret_a_revoked_key_or_a_malformed_key_fails() {
        let (a, b) = (material(1), material(2));
        let pa: PresentedKey = a.key.parse().unwrap();
        let mut forged = a.key.clone();
        forged.replace_range(30..31, if &forged[30..31] == "a" { "b" } else { "a" });
        let forged: PresentedKey = forged.parse().unwrap();
        assert!(record(&a, Role::Operator).authenticate(&forged).is_none());
        assert!(record(&b, Role::Operator).authenticate(&pa).is_none());
        let mut revoked = record(&a, Role::Operator);
        revoked.revoked_at = Some(Utc::now());
        assert!(revoked.authenticate(&pa).is_none());
        for bad in [
            "",
            "ml_",
            "Bearer x",
            &a.key[..a.key.len() - 1],
            &a.key.to_uppercase(),
            &format!("{}a", a.key),
            &a.key.replacen("ml_", "mk_", 1),
        ] {
            assert!(bad.parse::<PresentedKey>().is_err(), "{bad}");
        }
    }

    #[test]
    fn same_secret_different_salt_gives_different_hashes() {
        let m = material(3);
        let p: PresentedKey = m.key.parse().unwrap();
        let h1 = KeyHash::new(&p, &[1; 16]);
        let h2 = KeyHash::new(&p, &[2; 16]);
        assert_ne!(h1.hash, h2.hash);
        assert!(h1.verify(&p) && h2.verify(&p));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn base32_encodes_five_bits_per_character() {
        assert_eq!(base32(&[0u8; 10]), "a".repeat(16));
        assert_eq!(base32(&[0xff; 5]), "77777777");
    }
}
