//! The SQL of the embedded job queue.

use rusqlite::{Connection, OptionalExtension, params};

use super::Error;

/// A claimed job.
#[derive(Debug, Clone)]
pub struct ClaimedRow {
    /// The job id.
    pub job_id: String,
    /// The input line.
    pub input: String,
    /// Attempts so far, this one included.
    pub attempts: u32,
}

/// A job's state as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobStatus {
    /// The job id.
    pub id: String,
    /// The input.
    pub input: String,
    /// `queued`, `running`, `done` or `dead`.
    pub state: String,
    /// Attempts so far.
    pub attempts: u32,
    /// The result (a report), once done.
    pub result: Option<serde_json::Value>,
    /// Why it is dead.
    pub reason: Option<String>,
}

/// What an intake came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intake {
    /// Every job was queued.
    Queued,
    /// Nothing was queued: the queue would hold more than its bound.
    Full,
}

/// Queues `jobs` for `client_id`, all or none: none when the queue would then hold more than
/// `max_queued` jobs that are not finished.
pub fn enqueue(
    c: &mut Connection,
    client_id: &str,
    jobs: &[(String, String)],
    max_queued: u64,
    now: i64,
) -> Result<Intake, Error> {
    let tx = c.transaction()?;
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

pub fn claim(c: &mut Connection, now: i64, lease: i64) -> Result<Option<ClaimedRow>, Error> {
    Ok(c.query_row(
        "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = ?1 + ?2,
                 updated_at = ?1
             WHERE id = (
                 SELECT id FROM jobs
                 WHERE (state = 'queued' AND not_before <= ?1)
                    OR (state = 'running' AND lease_until <= ?1)
                 ORDER BY id LIMIT 1)
             RETURNING job_id, input, attempts",
        params![now, lease],
        |row| {
            Ok(ClaimedRow {
                job_id: row.get(0)?,
                input: row.get(1)?,
                attempts: row.get(2)?,
            })
        },
    )
    .optional()?)
}

pub fn complete(c: &mut Connection, job_id: &str, result: &str, now: i64) -> Result<(), Error> {
    c.execute(
        "UPDATE jobs SET state = 'done', result = ?2, lease_until = 0, updated_at = ?3
         WHERE job_id = ?1 AND state = 'running'",
        params![job_id, result, now],
    )?;
    Ok(())
}

pub fn bury(c: &mut Connection, job_id: &str, reason: &str, now: i64) -> Result<(), Error> {
    c.execute(
        "UPDATE jobs SET state = 'dead', reason = ?2, lease_until = 0, updated_at = ?3
         WHERE job_id = ?1",
        params![job_id, reason, now],
    )?;
    Ok(())
}

pub fn release(c: &mut Connection, job_id: &str, now: i64) -> Result<(), Error> {
    c.execute(
        "UPDATE jobs SET state = 'queued', attempts = max(attempts - 1, 0), lease_until = 0,
             updated_at = ?2
         WHERE job_id = ?1 AND state = 'running'",
        params![job_id, now],
    )?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::sqlite::prepare(&mut c).unwrap();
        let jobs = [
            ("j1".into(), "a@example.test".into()),
            ("j2".into(), "b.test".into()),
        ];
        assert_eq!(
            enqueue(&mut c, "cli_a", &jobs, 2, 0).unwrap(),
            Intake::Queued
        );
        assert_eq!(
            enqueue(&mut c, "cli_a", &[("j3".into(), "c.test".into())], 2, 0).unwrap(),
            Intake::Full,
            "the bound counts every client's waiting jobs"
        );
        c
    }

    #[test]
    fn a_claimed_job_is_claimable_again_when_its_lease_runs_out() {
        let mut c = queue();
        let first = claim(&mut c, 100, 30).unwrap().unwrap();
        assert_eq!(first.job_id, "j1");
        assert_eq!(claim(&mut c, 100, 30).unwrap().unwrap().job_id, "j2");
        assert!(claim(&mut c, 110, 30).unwrap().is_none(), "both leased");
        let again = claim(&mut c, 131, 30).unwrap().unwrap();
        assert_eq!(
            (again.job_id.as_str(), again.attempts),
            ("j1", 2),
            "the dead worker's job"
        );
        complete(&mut c, "j1", r#"{"ok":true}"#, 132).unwrap();
        assert_eq!(
            status(&mut c, "cli_a", "j1").unwrap().unwrap().state,
            "done"
        );
        assert!(
            status(&mut c, "cli_b", "j1").unwrap().is_none(),
            "another client's job"
        );
        assert_eq!(delete_finished(&c, 132).unwrap(), 0, "not old enough");
        assert_eq!(delete_finished(&c, 133).unwrap(), 1);
        assert!(status(&mut c, "cli_a", "j1").unwrap().is_none());
        assert!(status(&mut c, "cli_a", "j2").unwrap().is_some(), "running");
    }

    #[test]
    fn a_buried_job_is_a_dead_letter_with_its_reason() {
        let mut c = queue();
        claim(&mut c, 100, 30).unwrap().unwrap();
        bury(&mut c, "j1", "invalid_address", 101).unwrap();
        let dead = status(&mut c, "cli_a", "j1").unwrap().unwrap();
        assert_eq!(
            (dead.state.as_str(), dead.reason.as_deref()),
            ("dead", Some("invalid_address"))
        );
        assert_eq!(claim(&mut c, 200, 30).unwrap().unwrap().job_id, "j2");
    }
}
