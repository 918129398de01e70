//! DNS SRV records for `_autodiscover._tcp.DOMAIN` and their RFC 2782 order.
//!
//! Order: the lowest priority value first; within one priority, a weighted random choice
//! repeated until the records run out (records of weight 0 are placed first and have a very
//! small chance). A single record whose target is `.` means "no service". Only records on an
//! allowed port (443 unless configured otherwise, rule 13) are kept.
//!
//! `step.rs`: the SRV step, which looks the records up and tries each target in that order.

mod step;

use super::error::Error;

/// One SRV record, target in lower-case ASCII without the trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    /// Lower is preferred.
    pub priority: u16,
    /// Relative weight among records of equal priority.
    pub weight: u16,
    /// TCP port of the service.
    pub port: u16,
    /// Target host; empty for the root (`.`).
    pub target: String,
}

/// Orders `records` per RFC 2782 and drops unusable ones. `random(n)` returns a uniform value in
/// `0..=n` (injected so that tests are deterministic).
pub fn order_records(
    name: &str,
    mut records: Vec<SrvRecord>,
    allowed_ports: &[u16],
    mut random: impl FnMut(u32) -> u32,
) -> Result<Vec<SrvRecord>, Error> {
    if records.len() == 1 && records[0].target.is_empty() {
        return Err(Error::SrvNoService {
            name: name.to_owned(),
        });
    }
    records.retain(|r| !r.target.is_empty() && allowed_ports.contains(&r.port));
    if records.is_empty() {
        return Err(Error::SrvNoUsableTarget {
            name: name.to_owned(),
        });
    }
    records.sort_by_key(|r| r.priority);
    let mut ordered = Vec::with_capacity(records.len());
    for group in records.chunk_by(|a, b| a.priority == b.priority) {
        let mut pending: Vec<SrvRecord> = group.to_vec();
        // Weight-0 records go first in the running sum, as the RFC asks.
        pending.sort_by_key(|r| r.weight != 0);
        while !pending.is_empty() {
            let total: u32 = pending.iter().map(|r| u32::from(r.weight)).sum();
            let pick = random(total);
            let mut running = 0;
            let index = pending
                .iter()
                .position(|r| {
                    running += u32::from(r.weight);
                    running >= pick
                })
                .unwrap_or(0);
            ordered.push(pending.remove(index));
        }
    }
    Ok(ordered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(priority: u16, weight: u16, port: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port,
            target: target.into(),
        }
    }

    #[test]
    fn lowest_priority_value_comes_first() {
        let records = vec![
            rec(20, 0, 443, "backup.example.test"),
            rec(10, 0, 443, "main.example.test"),
        ];
        let ordered = order_records("n", records, &[443], |_| 0).unwrap();
        assert_eq!(ordered[0].target, "main.example.test");
        assert_eq!(ordered[1].target, "backup.example.test");
    }

    #[test]
    fn weights_split_equal_priorities() {
        let records = vec![
            rec(10, 1, 443, "light.example.test"),
            rec(10, 99, 443, "heavy.example.test"),
        ];
        let mut heavy_first = 0;
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..1000 {
            let ordered = order_records("n", records.clone(), &[443], |n| rng.u32(0..=n)).unwrap();
            assert_eq!(ordered.len(), 2);
            if ordered[0].target == "heavy.example.test" {
                heavy_first += 1;
            }
        }
        assert!(
            heavy_first > 900,
            "heavy first {heavy_first} times out of 1000"
        );
    }

    #[test]
    fn weight_zero_records_sit_first_in_the_running_sum() {
        let records = vec![
            rec(10, 5, 443, "five.example.test"),
            rec(10, 0, 443, "zero.example.test"),
        ];
        let ordered = order_records("n", records, &[443], |_| 0).unwrap();
        assert_eq!(ordered[0].target, "zero.example.test");
    }

    #[test]
    fn dot_target_means_no_service() {
        let err = order_records("n", vec![rec(0, 0, 0, "")], &[443], |_| 0).unwrap_err();
        assert_eq!(err.code(), "srv_no_service");
    }

    #[test]
    fn other_ports_are_dropped_unless_allowed() {
        let records = vec![rec(10, 0, 8443, "odd.example.test")];
        let err = order_records("n", records.clone(), &[443], |_| 0).unwrap_err();
        assert_eq!(err.code(), "srv_no_usable_target");
        assert_eq!(
            order_records("n", records, &[443, 8443], |_| 0)
                .unwrap()
                .len(),
            1
        );
    }
}
