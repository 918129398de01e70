//! A bounded memory of what hosts answered, by URL, for `ttl`, shared by a pipeline's
//! discoveries ([`super::activesync::shared_probes`], the anonymous 401s of Autodiscover
//! URLs). At most `capacity` URLs: past it, the oldest go ([`crate::bounded_map`]).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::bounded_map::BoundedMap;

/// The memory. `V` is cheap to clone.
pub struct Memo<V> {
    ttl: Duration,
    entries: Mutex<BoundedMap<String, (V, Instant)>>,
}

impl<V: Clone> Memo<V> {
    /// Remembers for `ttl` (zero: nothing), at most `capacity` URLs.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            entries: Mutex::new(BoundedMap::new(capacity)),
        }
    }

    /// How long a value is remembered.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The value of `url` and its age, if it is still fresh.
    pub fn get(&self, url: &str) -> Option<(V, Duration)> {
        let entries = self.lock();
        self.fresh(&entries, url)
    }

    /// The fresh value of `url`, or `make()` remembered now (one lock: callers at the same
    /// moment get the same value).
    pub fn get_or_insert_with(&self, url: &str, make: impl FnOnce() -> V) -> V {
        let mut entries = self.lock();
        if let Some((value, _)) = self.fresh(&entries, url) {
            return value;
        }
        let value = make();
        if !self.ttl.is_zero() {
            entries.insert(url.to_owned(), (value.clone(), Instant::now()));
        }
        value
    }

    /// Remembers `value` for `url` from now.
    pub fn insert(&self, url: &str, value: V) {
        if !self.ttl.is_zero() {
            self.lock().insert(url.to_owned(), (value, Instant::now()));
        }
    }

    /// Forgets `url` if its value is `is`'s.
    pub fn forget_if(&self, url: &str, is: impl FnOnce(&V) -> bool) {
        self.lock().remove_if(url, |(value, _)| is(value));
    }

    fn fresh(
        &self,
        entries: &BoundedMap<String, (V, Instant)>,
        url: &str,
    ) -> Option<(V, Duration)> {
        let (value, at) = entries.get(url)?;
        let age = at.elapsed();
        (age < self.ttl).then(|| (value.clone(), age))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BoundedMap<String, (V, Instant)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
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
