//! The preference race of one address: every candidate at once, the protocol's order decides.
//!
//! The most preferred candidate that has not failed for good wins as soon as it answers. Once
//! a less preferred candidate has answered, the more preferred ones still pending get a short
//! patience ([`PreferenceWait`]); then they are cancelled (`superseded` in the trail), so a
//! black hole costs a fraction of the answer's own time instead of a timeout.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::Pipeline;
use super::candidates::{Candidate, Start, Wave, candidates_for};
use super::steps::{CandidateOutcome, Found, RunState, run_candidate};
use crate::code::Code;
use crate::domain::EmailAddress;
use crate::report::{Attempt, Method, Outcome, Step};

/// The patience granted to preferred candidates once a less preferred one has answered:
/// `factor` times the time that answer took, clamped to `min..=max`.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct PreferenceWait {
    /// Fraction of the answer's time. Default: 0.1.
    pub factor: f64,
    /// Lower bound (a timer's grain, not a policy: the proportional part is the rule).
    /// Default: 2 ms.
    pub min: Duration,
    /// Upper bound. Default: 1 s.
    pub max: Duration,
}

impl Default for PreferenceWait {
    fn default() -> Self {
        Self {
            factor: 0.1,
            min: Duration::from_millis(2),
            max: Duration::from_secs(1),
        }
    }
}

impl PreferenceWait {
    fn after(&self, answered_in: Duration) -> Duration {
        answered_in
            .mul_f64(self.factor.max(0.0))
            .clamp(self.min, self.max.max(self.min))
    }
}

impl Pipeline {
    /// Runs every candidate for one address and lets the preference order decide.
    pub(super) async fn race(&self, run: Arc<RunState>, started: Instant) -> RaceEnd {
        let candidates = candidates_for(run.address.domain());
        {
            let mut hops = run.hops.lock().unwrap_or_else(|e| e.into_inner());
            for candidate in &candidates {
                if let Start::Pox(url) = &candidate.start {
                    hops.visit_start(url);
                }
            }
        }
        if self.shared.config.sequential {
            return self.one_after_another(run, &candidates).await;
        }
        let mut set = JoinSet::new();
        let mut rank_of_task = HashMap::new();
        // Later waves wait until every candidate of the earlier ones has failed, or their
        // delay: a domain whose POX answers never pays for the plain-HTTP redirect and SRV,
        // nor one whose Autodiscover answers for the ActiveSync host probes.
        let second_wave = CancellationToken::new();
        let fallback_wave = CancellationToken::new();
        let config = &self.shared.config;
        for (rank, candidate) in candidates.iter().cloned().enumerate() {
            let (go, delay) = match candidate.wave() {
                Wave::First => (None, Duration::ZERO),
                Wave::Second => (Some(second_wave.clone()), config.second_wave_delay),
                Wave::Fallback => (Some(fallback_wave.clone()), config.fallback_delay),
            };
            let task = run_candidate(self.shared.clone(), run.clone(), candidate);
            let handle = set.spawn(
                async move {
                    if let Some(go) = go {
                        tokio::select! {
                            () = tokio::time::sleep(delay) => {}
                            () = go.cancelled() => {}
                        }
                    }
                    task.await
                }
                .in_current_span(),
            );
            rank_of_task.insert(handle.id(), rank);
        }
        let mut slots: Vec<Option<CandidateOutcome>> = candidates.iter().map(|_| None).collect();
        let mut patience: Option<tokio::time::Instant> = None;
        loop {
            let failed_before = |wave: Wave| {
                candidates
                    .iter()
                    .zip(&slots)
                    .filter(|(c, _)| c.wave() < wave)
                    .all(|(_, slot)| slot.as_ref().is_some_and(CandidateOutcome::is_failure))
            };
            if failed_before(Wave::Second) {
                second_wave.cancel();
            }
            if failed_before(Wave::Fallback) {
                fallback_wave.cancel();
            }
            match decide(&slots) {
                Decision::Take(rank) => {
                    set.abort_all();
                    self.record_cancelled(&run, &candidates, &slots, started);
                    let method = candidates[rank].method;
                    return match slots[rank].take() {
                        Some(CandidateOutcome::Found(found)) => RaceEnd::Found {
                            rank_method: method,
                            found,
                        },
                        Some(CandidateOutcome::RedirectAddr { address, trusted }) => {
                            RaceEnd::RedirectAddr { address, trusted }
                        }
                        _ => unreachable!("decide takes only answered slots"),
                    };
                }
                Decision::AllFailed => {
                    let codes = candidates
                        .iter()
                        .zip(&slots)
                        .map(|(candidate, slot)| {
                            let code = slot
                                .as_ref()
                                .and_then(CandidateOutcome::failure_code)
                                .unwrap_or(Code::Cancelled);
                            (candidate.carries_password(), code)
                        })
                        .collect();
                    return RaceEnd::AllFailed { codes };
                }
                Decision::Wait {
                    answered_below: true,
                } if patience.is_none() => {
                    let wait = self.shared.config.preference_wait.after(started.elapsed());
                    patience = Some(tokio::time::Instant::now() + wait);
                }
                Decision::Wait { .. } => {}
            }
            let joined = match patience {
                Some(until) => tokio::select! {
                    joined = set.join_next_with_id() => joined,
                    () = tokio::time::sleep_until(until) => {
                        // Patience is over: every pending preferred candidate fails for good.
                        for slot in slots.iter_mut().filter(|s| s.is_none()) {
                            *slot = Some(CandidateOutcome::Failed { code: Code::Superseded });
                        }
                        patience = None;
                        continue;
                    }
                },
                None => set.join_next_with_id().await,
            };
            match joined {
                Some(Ok((id, outcome))) => {
                    if let Some(rank) = rank_of_task.get(&id) {
                        slots[*rank] = Some(outcome);
                    }
                }
                Some(Err(join_error)) => {
                    if let Some(rank) = rank_of_task.get(&join_error.id()) {
                        slots[*rank] = Some(CandidateOutcome::Failed {
                            code: Code::Internal,
                        });
                    }
                }
                None => {
                    // Every task ended; mark anything left as failed so decide concludes.
                    for slot in slots.iter_mut().filter(|s| s.is_none()) {
                        *slot = Some(CandidateOutcome::Failed {
                            code: Code::Internal,
                        });
                    }
                }
            }
        }
    }

    /// The candidates in preference order, each to its end before the next starts.
    async fn one_after_another(&self, run: Arc<RunState>, candidates: &[Candidate]) -> RaceEnd {
        let mut codes = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            match run_candidate(self.shared.clone(), run.clone(), candidate.clone()).await {
                CandidateOutcome::Found(found) => {
                    return RaceEnd::Found {
                        rank_method: candidate.method,
                        found,
                    };
                }
                CandidateOutcome::RedirectAddr { address, trusted } => {
                    return RaceEnd::RedirectAddr { address, trusted };
                }
                failure => codes.extend(
                    failure
                        .failure_code()
                        .map(|code| (candidate.carries_password(), code)),
                ),
            }
        }
        RaceEnd::AllFailed { codes }
    }

    fn record_cancelled(
        &self,
        run: &RunState,
        candidates: &[Candidate],
        slots: &[Option<CandidateOutcome>],
        started: Instant,
    ) {
        let pending_ms = started.elapsed().as_millis() as u64;
        let race_start_ms = (run.started.elapsed().as_millis() as u64).saturating_sub(pending_ms);
        let mut trail = run.trail.lock().unwrap_or_else(|e| e.into_inner());
        for (candidate, slot) in candidates.iter().zip(slots) {
            let superseded = matches!(
                slot,
                Some(CandidateOutcome::Failed {
                    code: Code::Superseded
                })
            );
            if slot.is_some() && !superseded {
                continue;
            }
            trail.push(Attempt {
                step: match candidate.start {
                    Start::Pox(_) => Step::Pox,
                    Start::HttpRedirect(_) => Step::HttpRedirect,
                    Start::Srv(_) => Step::Srv,
                    Start::AutodiscoverV2 => Step::AutodiscoverV2,
                    Start::ActiveSync(_) => Step::ActiveSync,
                },
                method: candidate.method,
                target: candidate.target(),
                outcome: Outcome::Cancelled,
                code: Some(if superseded {
                    Code::Superseded
                } else {
                    Code::Cancelled
                }),
                detail: Some("a preferred answer was chosen".to_owned()),
                authenticated: false,
                ms: pending_ms,
                start_ms: race_start_ms,
            });
        }
    }
}

pub(super) enum RaceEnd {
    Found {
        rank_method: Method,
        found: Box<Found>,
    },
    RedirectAddr {
        address: EmailAddress,
        trusted: bool,
    },
    AllFailed {
        /// Each candidate's last code, with whether the candidate could carry the password.
        codes: Vec<(bool, Code)>,
    },
}

#[derive(Debug, PartialEq, Eq)]
enum Decision {
    /// The slot at this rank answered and nothing preferred is pending.
    Take(usize),
    /// A preferred candidate is pending; `answered_below` when a less preferred one answered.
    Wait { answered_below: bool },
    /// Every candidate failed.
    AllFailed,
}

fn decide(slots: &[Option<CandidateOutcome>]) -> Decision {
    for (rank, slot) in slots.iter().enumerate() {
        match slot {
            Some(outcome) if outcome.is_failure() => continue,
            Some(_) => return Decision::Take(rank),
            None => {
                let answered_below = slots[rank + 1..].iter().any(|s| {
                    matches!(
                        s,
                        Some(CandidateOutcome::Found(_) | CandidateOutcome::RedirectAddr { .. })
                    )
                });
                return Decision::Wait { answered_below };
            }
        }
    }
    Decision::AllFailed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Evidence;

    fn found() -> CandidateOutcome {
        CandidateOutcome::Found(Box::new(Found {
            host: "mail.example.test".into(),
            evidence: Evidence::Settings,
            confirmed: true,
            settings: None,
            probe: None,
            answered_password: true,
        }))
    }

    fn fail() -> CandidateOutcome {
        CandidateOutcome::Failed {
            code: Code::Timeout,
        }
    }

    #[test]
    fn preference_order_decides() {
        assert_eq!(
            decide(&[None, Some(found()), None, None]),
            Decision::Wait {
                answered_below: true
            }
        );
        assert_eq!(
            decide(&[Some(fail()), Some(found()), None, None]),
            Decision::Take(1)
        );
        assert_eq!(
            decide(&[Some(found()), Some(found()), None, None]),
            Decision::Take(0)
        );
        assert_eq!(
            decide(&[None, None, None, None]),
            Decision::Wait {
                answered_below: false
            }
        );
        assert_eq!(decide(&[Some(fail()), Some(fail())]), Decision::AllFailed);
    }

    #[test]
    fn patience_is_proportional_and_bounded() {
        let wait = PreferenceWait::default();
        assert_eq!(
            wait.after(Duration::from_millis(500)),
            Duration::from_millis(50)
        );
        assert_eq!(
            wait.after(Duration::from_millis(1)),
            Duration::from_millis(2)
        );
        assert_eq!(wait.after(Duration::from_secs(60)), Duration::from_secs(1));
    }
}
