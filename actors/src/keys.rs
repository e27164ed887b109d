//! Keys the daemon issues to its own clients: `proxy` keys may use `/v1/*`, `admin`
//! keys everything. A key is `cfk_` + 32 random bytes (base64url); only its SHA-256
//! is stored, and a presented key is checked by hashing it and comparing digests in
//! constant time.

use crate::clock::now_ms;
use crate::secrets::random_token;
use crate::store::schema::{api_keys, audit_log};
use crate::store::{Store, StoreError};
use diesel::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::{Arc, RwLock};
use subtle::ConstantTimeEq;

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Proxy,
    Admin,
}

impl Role {
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "proxy" => Some(Role::Proxy),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Proxy => "proxy",
            Role::Admin => "admin",
        }
    }
}

/// A key as listed: never the key itself.
#[derive(Clone, Debug, Serialize, Queryable, Selectable)]
#[diesel(table_name = api_keys)]
#[serde(rename_all = "camelCase")]
pub struct KeyRecord {
    pub id: String,
    pub name: String,
    #[serde(skip)]
    pub role: String,
    #[serde(skip)]
    pub key_hash: String,
    pub created_at: i64,
    pub last_used: Option<i64>,
    pub request_count: i64,
    pub enabled: bool,
    /// Optional limit: requests per minute.
    pub requests_per_minute: Option<i32>,
    /// Optional limit: requests (streams included) in flight at once.
    pub max_concurrent: Option<i32>,
}

/// Optional limits of a key (off by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyLimits {
    pub requests_per_minute: Option<u32>,
    pub max_concurrent: Option<u32>,
}

/// A newly issued key: the only time the key is seen.
#[derive(Clone, Debug)]
pub struct IssuedKey {
    pub record: KeyRecord,
    pub key: String,
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Key failures at the boundary.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("a key named {0:?} already exists")]
    DuplicateName(String),
    #[error("no key {0:?}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// Issues a key; the returned string is never stored.
    pub fn create_key(&self, name: &str, role: Role) -> Result<IssuedKey, KeyError> {
        self.create_key_limited(name, role, KeyLimits::default())
    }

    /// Issues a key with optional limits.
    pub fn create_key_limited(
        &self,
        name: &str,
        role: Role,
        limits: KeyLimits,
    ) -> Result<IssuedKey, KeyError> {
        let key = format!("cfk_{}", random_token(32));
        let record = KeyRecord {
            id: uuid::Uuid::now_v7().to_string(),
            name: name.to_string(),
            role: role.as_str().to_string(),
            key_hash: hex(&digest(&key)),
            created_at: now_ms(),
            last_used: None,
            request_count: 0,
            enabled: true,
            requests_per_minute: limits
                .requests_per_minute
                .map(|n| n.min(i32::MAX as u32) as i32),
            max_concurrent: limits.max_concurrent.map(|n| n.min(i32::MAX as u32) as i32),
        };
        diesel::insert_into(api_keys::table)
            .values((
                api_keys::id.eq(&record.id),
                api_keys::name.eq(&record.name),
                api_keys::role.eq(&record.role),
                api_keys::key_hash.eq(&record.key_hash),
                api_keys::created_at.eq(record.created_at),
                api_keys::request_count.eq(0i64),
                api_keys::enabled.eq(true),
                api_keys::requests_per_minute.eq(record.requests_per_minute),
                api_keys::max_concurrent.eq(record.max_concurrent),
            ))
            .execute(&mut *self.conn()?)
            .map_err(|e| match e {
                diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                ) => KeyError::DuplicateName(name.to_string()),
                other => KeyError::Store(other.into()),
            })?;
        Ok(IssuedKey { record, key })
    }

    pub fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        Ok(api_keys::table
            .order(api_keys::created_at.asc())
            .select(KeyRecord::as_select())
            .load(&mut *self.conn()?)?)
    }

    /// Enables or disables a key by id or name.
    pub fn set_key_enabled(&self, id_or_name: &str, enabled: bool) -> Result<KeyRecord, KeyError> {
        let n = diesel::update(
            api_keys::table.filter(
                api_keys::id
                    .eq(id_or_name)
                    .or(api_keys::name.eq(id_or_name)),
            ),
        )
        .set(api_keys::enabled.eq(enabled))
        .execute(&mut *self.conn()?)
        .map_err(StoreError::from)?;
        if n == 0 {
            return Err(KeyError::NotFound(id_or_name.to_string()));
        }
        self.list_keys()?
            .into_iter()
            .find(|k| k.id == id_or_name || k.name == id_or_name)
            .ok_or_else(|| KeyError::NotFound(id_or_name.to_string()))
    }

    pub fn delete_key(&self, id_or_name: &str) -> Result<(), KeyError> {
        let n = diesel::delete(
            api_keys::table.filter(
                api_keys::id
                    .eq(id_or_name)
                    .or(api_keys::name.eq(id_or_name)),
            ),
        )
        .execute(&mut *self.conn()?)
        .map_err(StoreError::from)?;
        if n == 0 {
            return Err(KeyError::NotFound(id_or_name.to_string()));
        }
        Ok(())
    }

    /// Adds uses to keys' counters (batched by the caller).
    pub fn record_key_use(&self, uses: &[(String, i64, i64)]) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        conn.transaction(|c| {
            for (id, count, at) in uses {
                diesel::update(api_keys::table.filter(api_keys::id.eq(id)))
                    .set((
                        api_keys::request_count.eq(api_keys::request_count + *count),
                        api_keys::last_used.eq(*at),
                    ))
                    .execute(c)?;
            }
            Ok::<_, diesel::result::Error>(())
        })?;
        Ok(())
    }

    pub fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        diesel::insert_into(audit_log::table)
            .values((
                audit_log::id.eq(uuid::Uuid::now_v7().to_string()),
                audit_log::timestamp.eq(entry.timestamp),
                audit_log::actor.eq(&entry.actor),
                audit_log::action.eq(&entry.action),
                audit_log::target.eq(&entry.target),
                audit_log::status_code.eq(entry.status_code),
            ))
            .execute(&mut *self.conn()?)?;
        Ok(())
    }

    pub fn audit_entries(&self, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(audit_log::table
            .order((audit_log::timestamp.desc(), audit_log::id.desc()))
            .limit(limit)
            .select((
                audit_log::timestamp,
                audit_log::actor,
                audit_log::action,
                audit_log::target,
                audit_log::status_code,
            ))
            .load::<(i64, String, String, String, i32)>(&mut *self.conn()?)?
            .into_iter()
            .map(
                |(timestamp, actor, action, target, status_code)| AuditEntry {
                    timestamp,
                    actor,
                    action,
                    target,
                    status_code,
                },
            )
            .collect())
    }
}

/// One management action.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub timestamp: i64,
    /// The key's name, or `local` when access control is off.
    pub actor: String,
    /// e.g. `POST /api/accounts/work/pause`.
    pub action: String,
    pub target: String,
    pub status_code: i32,
}

/// A key that checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub key_id: String,
    pub name: String,
    pub role: Role,
    pub limits: KeyLimits,
}

#[derive(Clone)]
struct Entry {
    digest: [u8; 32],
    caller: Caller,
    enabled: bool,
}

/// The keys in memory, for checking every request without the database.
#[derive(Clone, Default)]
pub struct KeyRing {
    entries: Arc<RwLock<Vec<Entry>>>,
}

/// What a presented key turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyCheck {
    Valid(Caller),
    /// Missing, unknown, disabled or deleted: 401.
    Unknown,
}

impl KeyRing {
    /// Loads every key from the store (at start and after each change).
    pub fn reload(&self, store: &Store) -> Result<(), StoreError> {
        let entries = store
            .list_keys()?
            .into_iter()
            .filter_map(|k| {
                Some(Entry {
                    digest: unhex(&k.key_hash)?,
                    caller: Caller {
                        key_id: k.id,
                        name: k.name,
                        role: Role::parse(&k.role)?,
                        limits: KeyLimits {
                            requests_per_minute: k
                                .requests_per_minute
                                .and_then(|n| u32::try_from(n).ok()),
                            max_concurrent: k.max_concurrent.and_then(|n| u32::try_from(n).ok()),
                        },
                    },
                    enabled: k.enabled,
                })
            })
            .collect();
        if let Ok(mut e) = self.entries.write() {
            *e = entries;
        }
        Ok(())
    }

    /// Whether any key exists (access control is on once one does).
    pub fn is_active(&self) -> bool {
        self.entries.read().map(|e| !e.is_empty()).unwrap_or(true)
    }

    /// Checks a presented key: hashes it, then compares against every stored digest
    /// in constant time (no early exit on the first match either).
    pub fn check(&self, presented: &str) -> KeyCheck {
        let d = digest(presented);
        let Ok(entries) = self.entries.read() else {
            return KeyCheck::Unknown;
        };
        let mut found: Option<&Entry> = None;
        for e in entries.iter() {
            if bool::from(e.digest.ct_eq(&d)) {
                found = Some(e);
            }
        }
        match found {
            Some(e) if e.enabled => KeyCheck::Valid(e.caller.clone()),
            _ => KeyCheck::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests_support::test_store;

    #[test]
    fn keys_are_stored_as_hashes_and_checked() {
        let (_dir, store) = test_store();
        let issued = store.create_key("ci", Role::Proxy).expect("create");
        assert!(issued.key.starts_with("cfk_") && issued.key.len() == 47);
        let listed = store.list_keys().expect("list");
        assert_eq!(listed.len(), 1);
        assert_ne!(listed[0].key_hash, issued.key);
        assert!(!listed[0].key_hash.contains(&issued.key[4..]));
        assert!(matches!(
            store.create_key("ci", Role::Admin),
            Err(KeyError::DuplicateName(_))
        ));
        let ring = KeyRing::default();
        assert!(!ring.is_active());
        ring.reload(&store).expect("reload");
        assert!(ring.is_active());
        match ring.check(&issued.key) {
            KeyCheck::Valid(c) => assert_eq!((c.name.as_str(), c.role), ("ci", Role::Proxy)),
            other => panic!("{other:?}"),
        }
        assert_eq!(ring.check("cfk_wrong"), KeyCheck::Unknown);
        store.set_key_enabled("ci", false).expect("disable");
        ring.reload(&store).expect("reload");
        assert_eq!(ring.check(&issued.key), KeyCheck::Unknown);
        store.delete_key("ci").expect("delete");
        assert!(matches!(store.delete_key("ci"), Err(KeyError::NotFound(_))));
    }
}
