//! A bounded memory of what hosts answered, by URL, for `ttl`, shared by a pipeline's
//! discoveries ([`super::activesync::shared_probes`], the anonymous 401s of Autodiscover
//! URLs). At most `capacity` URLs: past it, expired ones go first, then the oldest.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The memory. `V` is cheap to clone.
pub struct Memo<V> {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<String, (V, Instant)>>,
}

impl<V: Clone> Memo<V> {
    /// Remembers for `ttl` (zero: nothing), at most `capacity` URLs.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// How long a value is remembered.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The value of `url` and its age, if it is still fresh.
    pub fn get(&self, url: &str) -> Option<(V, Duration)> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (value, at) = entries.get(url)?;
        let age = at.elapsed();
        (age < self.ttl).then(|| (value.clone(), age))
    }

    /// The fresh value of `url`, or `make()` remembered now.
    pub fn get_or_insert_with(&self, url: &str, make: impl FnOnce() -> V) -> V {
        if let Some((value, _)) = self.get(url) {
            return value;
        }
        let value = make();
        self.insert(url, value.clone());
        value
    }

    /// Remembers `value` for `url` from now.
    pub fn insert(&self, url: &str, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(url) {
            let ttl = self.ttl;
            entries.retain(|_, (_, at)| at.elapsed() < ttl);
            while entries.len() >= self.capacity {
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(url, _)| url.clone());
                let Some(oldest) = oldest else { break };
                entries.remove(&oldest);
            }
        }
        entries.insert(url.to_owned(), (value, Instant::now()));
    }

    /// Forgets `url` if its value is `is`'s.
    pub fn forget_if(&self, url: &str, is: impl FnOnce(&V) -> bool) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.get(url).is_some_and(|(value, _)| is(value)) {
            entries.remove(url);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_expiring() {
        let memo = Memo::new(Duration::from_secs(60), 2);
        memo.insert("a", 1);
        memo.insert("b", 2);
        memo.insert("c", 3);
        assert!(memo.get("a").is_none(), "the oldest goes first");
        assert_eq!(memo.get("c").map(|(v, _)| v), Some(3));
        let off = Memo::new(Duration::ZERO, 2);
        off.insert("a", 1);
        assert!(off.get("a").is_none(), "a zero ttl remembers nothing");
    }
}
