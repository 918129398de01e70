//! The SQL behind [`super::Store`] on the embedded SQLite file, as plain statements on one
//! connection. Every write transaction takes the write lock first (`BEGIN IMMEDIATE`), so
//! that two processes sharing the file keep the guarantees one has: a code is spent once, the
//! intake bound holds, and a job has one lease holder.

pub mod jobs;

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::Error;
use super::records::{
    self, ACCOUNT_COLUMNS, AccountColumns, ClientInfo, ClientRecord, CodeBinding, NewCode,
    NewToken, RedeemChecks, Redemption, Swept, TokenInfo, account_columns_of, from_json_column,
    to_json_column,
};
use crate::account::{Account, CachedDiscovery, NewAccount};

/// Migrations, numbered and append-only. `PRAGMA user_version` holds the last one applied.
pub(super) const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/sqlite/0001_init.sql"),
    include_str!("../migrations/sqlite/0002_jobs.sql"),
    include_str!("../migrations/sqlite/0003_grants.sql"),
    include_str!("../migrations/sqlite/0004_code_binding.sql"),
    include_str!("../migrations/sqlite/0005_key_check.sql"),
    include_str!("../migrations/sqlite/0006_job_leases.sql"),
    include_str!("../migrations/sqlite/0007_sync_proof.sql"),
];

/// How long a statement waits for a lock held elsewhere.
pub const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Connection settings and migrations.
pub fn prepare(connection: &mut Connection) -> Result<(), Error> {
    // The wait first: processes starting together on one file meet at the switch to WAL and
    // at the migrations, and each must wait for the other's lock rather than fail.
    connection.busy_timeout(BUSY_TIMEOUT)?;
    // WAL is kept in the file: only the first opener switches to it. The switch takes the
    // file's exclusive lock, for which SQLite does not always wait: a busy switch is tried
    // again (a process starting while another creates the file).
    let mut tries = 0;
    loop {
        let mode: String = connection.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        if mode.eq_ignore_ascii_case("wal") {
            break;
        }
        match connection.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && tries < 50 =>
            {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other?,
        }
    }
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    // Under the write lock, the version read again: two processes starting together apply
    // each migration once.
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let applied: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied.max(0) as usize) {
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", (index + 1) as i64)?;
    }
    tx.commit()?;
    Ok(())
}

pub fn add_client(c: &mut Connection, client: &ClientRecord) -> Result<(), Error> {
    let uris = to_json_column(&client.redirect_uris, "uris")?;
    c.execute(
        "INSERT INTO clients (client_id, name, secret_hash, redirect_uris, created_at)
         VALUES (?1, ?2, ?3, ?4, unixepoch())",
        params![client.client_id, client.name, client.secret_hash, uris],
    )?;
    Ok(())
}

pub fn list_clients(c: &mut Connection) -> Result<Vec<ClientInfo>, Error> {
    let mut statement =
        c.prepare("SELECT client_id, name, redirect_uris, created_at FROM clients ORDER BY id")?;
    let rows = statement.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get(1)?,
            row.get::<_, String>(2)?,
            row.get(3)?,
        ))
    })?;
    let mut clients = Vec::new();
    for row in rows {
        let (client_id, name, uris, created_at) = row?;
        let redirect_uris = from_json_column(&uris, "uris")?;
        clients.push(ClientInfo {
            client_id,
            name,
            redirect_uris,
            created_at,
        });
    }
    Ok(clients)
}

pub fn find_client(c: &mut Connection, client_id: &str) -> Result<Option<ClientRecord>, Error> {
    let row = c
        .query_row(
            "SELECT client_id, secret_hash, redirect_uris, name FROM clients WHERE client_id = ?1",
            params![client_id],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, Vec<u8>>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                ))
            },
        )
        .optional()?;
    row.map(|(client_id, secret_hash, uris, name)| {
        let redirect_uris = from_json_column(&uris, "uris")?;
        Ok(ClientRecord {
            client_id,
            name,
            secret_hash,
            redirect_uris,
        })
    })
    .transpose()
}

/// Records `value` as the database's key check if none is, and says whether the recorded one
/// is `value` (compared in constant time).
pub fn check_key(c: &mut Connection, value: &[u8]) -> Result<bool, Error> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "INSERT OR IGNORE INTO key_check (id, value) VALUES (1, ?1)",
        params![value],
    )?;
    let recorded: Vec<u8> =
        tx.query_row("SELECT value FROM key_check WHERE id = 1", [], |row| {
            row.get(0)
        })?;
    tx.commit()?;
    Ok(crate::secrets::hashes_match(&recorded, value))
}

pub fn save_account(c: &Connection, a: &NewAccount) -> Result<String, Error> {
    let account_id: String = c.query_row(
        "INSERT INTO accounts (account_id, client_id, email, name, provider, exchange_server_host,
             discovery_method, activesync_versions, scopes, username, sealed_secret, created_at,
             updated_at, sync_version, sync_device_id, sync_checked_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, ?13, ?14, ?15)
         ON CONFLICT (client_id, email) DO UPDATE SET
             name = excluded.name,
             provider = excluded.provider,
             exchange_server_host = excluded.exchange_server_host,
             discovery_method = excluded.discovery_method,
             activesync_versions = excluded.activesync_versions,
             scopes = excluded.scopes,
             username = excluded.username,
             sealed_secret = excluded.sealed_secret,
             updated_at = excluded.updated_at,
             sync_version = excluded.sync_version,
             sync_device_id = excluded.sync_device_id,
             sync_checked_at = excluded.sync_checked_at
         RETURNING account_id",
        params![
            a.account_id.as_str(),
            a.client_id.as_str(),
            a.email,
            a.name,
            a.provider.as_str(),
            a.exchange_server_host,
            a.origin.as_str(),
            String::from(a.activesync_versions.clone()),
            a.scopes.as_str(),
            a.username,
            a.sealed_secret,
            a.now,
            a.sync.as_ref().map_or("", |s| s.protocol_version.as_str()),
            a.sync.as_ref().map_or("", |s| s.device_id.as_str()),
            a.sync.as_ref().map_or(0, |s| s.checked_at)
        ],
        |row| row.get(0),
    )?;
    Ok(account_id)
}

/// An account row: its columns read here, converted once (`records::AccountColumns`); a row
/// the model cannot read fails as a conversion, which [`Error`] names corrupt.
fn account_row(row: &Row<'_>) -> rusqlite::Result<Account> {
    AccountColumns {
        account_id: row.get(0)?,
        client_id: row.get(1)?,
        email: row.get(2)?,
        name: row.get(3)?,
        provider: row.get(4)?,
        exchange_server_host: row.get(5)?,
        discovery_method: row.get(6)?,
        activesync_versions: row.get(7)?,
        scopes: row.get(8)?,
        username: row.get(9)?,
        created_at: row.get(10)?,
        updated_at: row.get(11)?,
        sync_version: row.get(12)?,
        sync_device_id: row.get(13)?,
        sync_checked_at: row.get(14)?,
    }
    .into_account()
    .map_err(|err| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, err.into())
    })
}

pub fn find_account(c: &mut Connection, account_id: &str) -> Result<Option<Account>, Error> {
    let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE account_id = ?1");
    Ok(c.query_row(&sql, params![account_id], account_row)
        .optional()?)
}

pub fn find_account_by_email(
    c: &mut Connection,
    client_id: &str,
    email: &str,
) -> Result<Option<Account>, Error> {
    let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE client_id = ?1 AND email = ?2");
    Ok(c.query_row(&sql, params![client_id, email], account_row)
        .optional()?)
}

pub fn create_code(c: &mut Connection, code: &NewCode) -> Result<(), Error> {
    let pending = to_json_column(&code.account, "pending")?;
    c.execute(
        "INSERT INTO codes (code_hash, client_id, account_id, expires_at, pending, pending_secret,
             redirect_uri, code_challenge, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, unixepoch())",
        params![
            code.code_hash,
            code.client_id.as_str(),
            code.account.account_id.as_str(),
            code.expires_at,
            pending,
            code.account.sealed_secret,
            code.binding.redirect_uri,
            code.binding.code_challenge
        ],
    )?;
    Ok(())
}

pub fn redeem_code(
    c: &mut Connection,
    code_hash: &[u8],
    client_id: &str,
    token: &NewToken,
    checks: RedeemChecks,
    now: i64,
) -> Result<Redemption, Error> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let code = tx
        .query_row(
            "SELECT id, client_id, account_id, expires_at, used_at, pending, pending_secret,
                 redirect_uri, code_challenge
             FROM codes WHERE code_hash = ?1",
            params![code_hash],
            |row| {
                let binding = CodeBinding {
                    redirect_uri: row.get(7)?,
                    code_challenge: row.get(8)?,
                };
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, i64>(4)?,
                    row.get::<_, String>(5)?,
                    row.get::<_, Vec<u8>>(6)?,
                    binding,
                ))
            },
        )
        .optional()?;
    let Some((code_id, owner, account_id, expires_at, used_at, pending, secret, binding)) = code
    else {
        return Ok(Redemption::Unknown);
    };
    if owner != client_id {
        return Ok(Redemption::Unknown);
    }
    if used_at != 0 {
        // A replay: whoever holds the first token may hold a stolen code's fruit (RFC 6749
        // 4.1.2, RFC 9700 4.5): revoke it.
        tx.execute(
            "UPDATE tokens SET revoked = 1 WHERE code_id = ?1",
            params![code_id],
        )?;
        tx.commit()?;
        return Ok(Redemption::Replayed);
    }
    if expires_at <= now {
        return Ok(Redemption::Expired);
    }
    // Spent from here on, whatever follows; the account it carried is no longer kept. One
    // conditional write, as on PostgreSQL: only an unspent code is spent.
    let spent = tx.execute(
        "UPDATE codes SET used_at = ?2, pending = '', pending_secret = x''
         WHERE id = ?1 AND used_at = 0",
        params![code_id, now.max(1)],
    )?;
    if spent != 1 {
        return Ok(Redemption::Replayed);
    }
    if let Err(reason) = (checks.binding)(&binding) {
        tx.commit()?;
        return Ok(Redemption::Refused(reason));
    }
    let may_replace = checks.may_replace;
    if !pending.is_empty() {
        let mut account: NewAccount = from_json_column(&pending, "pending")?;
        account.sealed_secret = secret;
        let sql =
            format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE client_id = ?1 AND email = ?2");
        let existing = tx
            .query_row(
                &sql,
                params![account.client_id.as_str(), account.email],
                account_row,
            )
            .optional()?;
        if let Err(reason) = may_replace(existing.as_ref(), &account) {
            tx.commit()?;
            return Ok(Redemption::Refused(reason));
        }
        account.now = now;
        save_account(&tx, &account)?;
        // The account's earlier tokens open what it was before: they end now.
        tx.execute(
            "UPDATE tokens SET revoked = 1 WHERE account_id = ?1",
            params![account_id],
        )?;
    }
    tx.execute(
        "INSERT INTO tokens (token_hash, client_id, account_id, code_id, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            token.token_hash,
            client_id,
            account_id,
            code_id,
            now,
            token.expires_at
        ],
    )?;
    let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE account_id = ?1");
    let account = tx
        .query_row(&sql, params![account_id], account_row)
        .optional()?;
    let Some(account) = account else {
        return Ok(Redemption::Unknown);
    };
    tx.commit()?;
    Ok(Redemption::Issued(Box::new(account)))
}

pub fn account_for_token(
    c: &mut Connection,
    token_hash: &[u8],
    now: i64,
) -> Result<Option<Account>, Error> {
    let sql = format!(
        "SELECT {} FROM accounts a JOIN tokens t ON t.account_id = a.account_id
         WHERE t.token_hash = ?1 AND t.revoked = 0 AND t.expires_at > ?2",
        account_columns_of("a")
    );
    Ok(c.query_row(&sql, params![token_hash, now], account_row)
        .optional()?)
}

/// Revokes one token of `client_id` (by hash); whether there was one to revoke.
pub fn revoke_token(
    c: &mut Connection,
    token_hash: &[u8],
    client_id: Option<&str>,
) -> Result<bool, Error> {
    let changed = c.execute(
        "UPDATE tokens SET revoked = 1
         WHERE token_hash = ?1 AND revoked = 0 AND (?2 IS NULL OR client_id = ?2)",
        params![token_hash, client_id],
    )?;
    Ok(changed > 0)
}

/// `client_id`'s accounts, oldest first, `limit` from `offset`.
pub fn list_accounts(
    c: &mut Connection,
    client_id: &str,
    offset: u64,
    limit: u64,
) -> Result<Vec<Account>, Error> {
    let sql = format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE client_id = ?1 ORDER BY id LIMIT ?2 OFFSET ?3"
    );
    let mut statement = c.prepare(&sql)?;
    let rows = statement.query_map(params![client_id, limit as i64, offset as i64], account_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Deletes `client_id`'s account `account_id` with its sealed secret, its tokens and the codes
/// that would create it again; whether there was one.
pub fn delete_account(
    c: &mut Connection,
    client_id: &str,
    account_id: &str,
) -> Result<bool, Error> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let deleted = tx.execute(
        "DELETE FROM accounts WHERE client_id = ?1 AND account_id = ?2",
        params![client_id, account_id],
    )?;
    if deleted > 0 {
        tx.execute(
            "DELETE FROM tokens WHERE account_id = ?1",
            params![account_id],
        )?;
        tx.execute(
            "DELETE FROM codes WHERE account_id = ?1",
            params![account_id],
        )?;
    }
    tx.commit()?;
    Ok(deleted > 0)
}

/// Revokes every live token of `client_id`'s account `account_id` but the one whose hash is
/// `keep`; how many.
pub fn revoke_all(
    c: &mut Connection,
    client_id: &str,
    account_id: &str,
    keep: Option<&[u8]>,
) -> Result<usize, Error> {
    Ok(c.execute(
        "UPDATE tokens SET revoked = 1
         WHERE client_id = ?1 AND account_id = ?2 AND revoked = 0
           AND (?3 IS NULL OR token_hash != ?3)",
        params![client_id, account_id, keep],
    )?)
}

/// What a token of `client_id`'s account `account_id` is: when it was made, and whether it is
/// still good at `now`; `None` for a token that is not that account's.
pub fn token_info(
    c: &mut Connection,
    client_id: &str,
    account_id: &str,
    token_hash: &[u8],
    now: i64,
) -> Result<Option<TokenInfo>, Error> {
    Ok(c.query_row(
        "SELECT created_at, revoked = 0 AND expires_at > ?4 FROM tokens
         WHERE client_id = ?1 AND account_id = ?2 AND token_hash = ?3",
        params![client_id, account_id, token_hash, now],
        |row| {
            Ok(TokenInfo {
                created_at: row.get(0)?,
                valid: row.get(1)?,
            })
        },
    )
    .optional()?)
}

/// Deletes codes past their end, tokens that expired or were revoked, and finished jobs last
/// touched before `jobs_before`.
pub fn sweep(c: &mut Connection, now: i64, jobs_before: i64) -> Result<Swept, Error> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let codes = tx.execute("DELETE FROM codes WHERE expires_at <= ?1", params![now])?;
    let tokens = tx.execute(
        "DELETE FROM tokens WHERE revoked = 1 OR expires_at <= ?1",
        params![now],
    )?;
    let jobs = jobs::delete_finished(&tx, jobs_before)?;
    tx.commit()?;
    Ok(Swept {
        codes,
        tokens,
        jobs,
    })
}

pub fn cached_discovery(
    c: &mut Connection,
    domain: &str,
    now: i64,
) -> Result<Option<CachedDiscovery>, Error> {
    let row = c
        .query_row(
            "SELECT domain, host, method, activesync_url, provider, expires_at
                 FROM discovery_cache WHERE domain = ?1 AND expires_at > ?2",
            params![domain, now],
            |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                ))
            },
        )
        .optional()?;
    row.map(records::cached_discovery).transpose()
}

pub fn cache_discovery(c: &mut Connection, e: &CachedDiscovery) -> Result<(), Error> {
    c.execute(
        "INSERT INTO discovery_cache (domain, host, method, activesync_url, provider, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (domain) DO UPDATE SET host = excluded.host, method = excluded.method,
             activesync_url = excluded.activesync_url, provider = excluded.provider,
             expires_at = excluded.expires_at",
        params![
            e.domain,
            e.host,
            e.method.as_str(),
            e.activesync_url,
            e.provider.as_str(),
            e.expires_at
        ],
    )?;
    Ok(())
}

pub fn forget_discovery(c: &mut Connection, domain: &str) -> Result<(), Error> {
    c.execute(
        "DELETE FROM discovery_cache WHERE domain = ?1",
        params![domain],
    )?;
    Ok(())
}
