//! The SQL of the embedded job queue.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::store::Error;
use crate::store::records::{ClaimedRow, Intake, JobStatus};

/// Queues `jobs` for `client_id`, all or none: none when the queue would then hold more than
/// `max_queued` jobs that are not finished.
pub fn enqueue(
    c: &mut Connection,
    client_id: &str,
    jobs: &[(String, String)],
    max_queued: u64,
    now: i64,
) -> Result<Intake, Error> {
    // The count and the inserts under one write lock: two processes cannot both fit.
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let waiting: u64 = tx.query_row(
        "SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')",
        [],
        |row| row.get(0),
    )?;
    if waiting + jobs.len() as u64 > max_queued {
        return Ok(Intake::Full);
    }
    for (job_id, input) in jobs {
        tx.execute(
            "INSERT INTO jobs (job_id, input, client_id, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?4)",
            params![job_id, input, client_id, now],
        )?;
    }
    tx.commit()?;
    Ok(Intake::Queued)
}

/// Claims the oldest claimable job under a new lease (one statement: two workers never get
/// the same job).
pub fn claim(
    c: &mut Connection,
    lease: &str,
    now: i64,
    lease_seconds: i64,
) -> Result<Option<ClaimedRow>, Error> {
    Ok(c.query_row(
        "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = ?1 + ?2,
                 lease_id = ?3, updated_at = ?1
             WHERE id = (
                 SELECT id FROM jobs
                 WHERE (state = 'queued' AND not_before <= ?1)
                    OR (state = 'running' AND lease_until <= ?1)
                 ORDER BY id LIMIT 1)
             RETURNING job_id, input, attempts, lease_id",
        params![now, lease_seconds, lease],
        |row| {
            Ok(ClaimedRow {
                job_id: row.get(0)?,
                input: row.get(1)?,
                attempts: row.get(2)?,
                lease: row.get(3)?,
            })
        },
    )
    .optional()?)
}

/// Stores the result of a job still leased to `lease`; whether it was (a worker whose lease
/// was taken over stores nothing).
pub fn complete(
    c: &mut Connection,
    job_id: &str,
    lease: &str,
    result: &str,
    now: i64,
) -> Result<bool, Error> {
    Ok(c.execute(
        "UPDATE jobs SET state = 'done', result = ?3, lease_until = 0, lease_id = '',
             updated_at = ?4
         WHERE job_id = ?1 AND lease_id = ?2 AND state = 'running'",
        params![job_id, lease, result, now],
    )? > 0)
}

/// Makes a job leased to `lease` a dead letter; whether it was.
pub fn bury(
    c: &mut Connection,
    job_id: &str,
    lease: &str,
    reason: &str,
    now: i64,
) -> Result<bool, Error> {
    Ok(c.execute(
        "UPDATE jobs SET state = 'dead', reason = ?3, lease_until = 0, lease_id = '',
             updated_at = ?4
         WHERE job_id = ?1 AND lease_id = ?2 AND state = 'running'",
        params![job_id, lease, reason, now],
    )? > 0)
}

/// Gives a job leased to `lease` back, this delivery uncounted; whether it was.
pub fn release(c: &mut Connection, job_id: &str, lease: &str, now: i64) -> Result<bool, Error> {
    Ok(c.execute(
        "UPDATE jobs SET state = 'queued', attempts = max(attempts - 1, 0), lease_until = 0,
             lease_id = '', updated_at = ?3
         WHERE job_id = ?1 AND lease_id = ?2 AND state = 'running'",
        params![job_id, lease, now],
    )? > 0)
}

/// A job's state, only for the client that queued it.
pub fn status(
    c: &mut Connection,
    client_id: &str,
    job_id: &str,
) -> Result<Option<JobStatus>, Error> {
    Ok(c.query_row(
        "SELECT job_id, input, state, attempts, result, reason FROM jobs
         WHERE job_id = ?1 AND client_id = ?2",
        params![job_id, client_id],
        |row| {
            let result: String = row.get(4)?;
            let reason: String = row.get(5)?;
            Ok(JobStatus {
                id: row.get(0)?,
                input: row.get(1)?,
                state: row.get(2)?,
                attempts: row.get(3)?,
                result: serde_json::from_str(&result).ok(),
                reason: Some(reason).filter(|r| !r.is_empty()),
            })
        },
    )
    .optional()?)
}

/// Deletes finished jobs (done or dead) last touched before `before`; returns how many.
pub fn delete_finished(c: &Connection, before: i64) -> Result<usize, Error> {
    Ok(c.execute(
        "DELETE FROM jobs WHERE state IN ('done', 'dead') AND updated_at < ?1",
        params![before],
    )?)
}

pub fn depth(c: &mut Connection) -> Result<Vec<(String, u64)>, Error> {
    let mut statement = c.prepare("SELECT state, count(*) FROM jobs GROUP BY state")?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}
