//! The embedded job queue on PostgreSQL: a claim is one `UPDATE` of a row picked with
//! `FOR UPDATE SKIP LOCKED` (workers on every instance pass each other by), and a lease id
//! fences the finish.

use super::{Db, Error, INTAKE_LOCK};
use crate::store::records::{ClaimedRow, Intake, JobStatus};

impl Db {
    pub async fn enqueue(
        &self,
        client_id: &str,
        jobs: &[(String, String)],
        max_queued: u64,
        now: i64,
    ) -> Result<Intake, Error> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // Every instance counts under the same lock: the bound holds for all of them.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&INTAKE_LOCK])
            .await?;
        let waiting: i64 = tx
            .query_one(
                "SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')",
                &[],
            )
            .await?
            .get(0);
        if waiting.max(0) as u64 + jobs.len() as u64 > max_queued {
            return Ok(Intake::Full);
        }
        let insert = tx
            .prepare(
                "INSERT INTO jobs (job_id, input, client_id, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $4)",
            )
            .await?;
        for (job_id, input) in jobs {
            tx.execute(&insert, &[job_id, input, &client_id, &now])
                .await?;
        }
        tx.commit().await?;
        Ok(Intake::Queued)
    }

    pub async fn claim(
        &self,
        lease: &str,
        now: i64,
        lease_seconds: i64,
    ) -> Result<Option<ClaimedRow>, Error> {
        let row = self
            .pool
            .get()
            .await?
            .query_opt(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1,
                     lease_until = $1 + $2, lease_id = $3, updated_at = $1
                 WHERE id = (
                     SELECT id FROM jobs
                     WHERE (state = 'queued' AND not_before <= $1)
                        OR (state = 'running' AND lease_until <= $1)
                     ORDER BY id LIMIT 1
                     FOR UPDATE SKIP LOCKED)
                 RETURNING job_id, input, attempts, lease_id",
                &[&now, &lease_seconds, &lease],
            )
            .await?;
        Ok(row.map(|row| ClaimedRow {
            job_id: row.get(0),
            input: row.get(1),
            attempts: row.get::<_, i64>(2).clamp(0, u32::MAX as i64) as u32,
            lease: row.get(3),
        }))
    }

    pub async fn complete(
        &self,
        job_id: &str,
        lease: &str,
        result: &str,
        now: i64,
    ) -> Result<bool, Error> {
        self.finish(
            "UPDATE jobs SET state = 'done', result = $3, lease_until = 0, lease_id = '',
                 updated_at = $4
             WHERE job_id = $1 AND lease_id = $2 AND state = 'running'",
            job_id,
            lease,
            result,
            now,
        )
        .await
    }

    pub async fn bury(
        &self,
        job_id: &str,
        lease: &str,
        reason: &str,
        now: i64,
    ) -> Result<bool, Error> {
        self.finish(
            "UPDATE jobs SET state = 'dead', reason = $3, lease_until = 0, lease_id = '',
                 updated_at = $4
             WHERE job_id = $1 AND lease_id = $2 AND state = 'running'",
            job_id,
            lease,
            reason,
            now,
        )
        .await
    }

    pub async fn release(&self, job_id: &str, lease: &str, now: i64) -> Result<bool, Error> {
        let changed = self
            .pool
            .get()
            .await?
            .execute(
                "UPDATE jobs SET state = 'queued', attempts = greatest(attempts - 1, 0),
                     lease_until = 0, lease_id = '', updated_at = $3
                 WHERE job_id = $1 AND lease_id = $2 AND state = 'running'",
                &[&job_id, &lease, &now],
            )
            .await?;
        Ok(changed > 0)
    }

    async fn finish(
        &self,
        sql: &str,
        job_id: &str,
        lease: &str,
        text: &str,
        now: i64,
    ) -> Result<bool, Error> {
        let changed = self
            .pool
            .get()
            .await?
            .execute(sql, &[&job_id, &lease, &text, &now])
            .await?;
        Ok(changed > 0)
    }

    pub async fn job_status(
        &self,
        client_id: &str,
        job_id: &str,
    ) -> Result<Option<JobStatus>, Error> {
        let row = self
            .pool
            .get()
            .await?
            .query_opt(
                "SELECT job_id, input, state, attempts, result, reason FROM jobs
                 WHERE job_id = $1 AND client_id = $2",
                &[&job_id, &client_id],
            )
            .await?;
        Ok(row.map(|row| {
            let result: String = row.get(4);
            let reason: String = row.get(5);
            JobStatus {
                id: row.get(0),
                input: row.get(1),
                state: row.get(2),
                attempts: row.get::<_, i64>(3).clamp(0, u32::MAX as i64) as u32,
                result: serde_json::from_str(&result).ok(),
                reason: Some(reason).filter(|r| !r.is_empty()),
            }
        }))
    }

    pub async fn queue_depth(&self) -> Result<Vec<(String, u64)>, Error> {
        let rows = self
            .pool
            .get()
            .await?
            .query("SELECT state, count(*) FROM jobs GROUP BY state", &[])
            .await?;
        Ok(rows
            .iter()
            .map(|row| (row.get(0), row.get::<_, i64>(1).max(0) as u64))
            .collect())
    }
}
