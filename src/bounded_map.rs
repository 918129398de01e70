//! A map of at most `capacity` entries that forgets the oldest first, in constant time per
//! insert, so that a process touching more keys than it holds costs the same per key as one
//! that does not. The per-domain cache of the batch and the discovery's memory of hosts'
//! anonymous answers are built on it; what "fresh" means stays theirs.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// The map.
pub struct BoundedMap<K, V> {
    capacity: usize,
    map: HashMap<K, (V, u64)>,
    /// Keys in the order they were inserted, with the insert's number: a key inserted again
    /// leaves a stale place behind, skipped when it comes up and dropped now and then.
    order: VecDeque<(K, u64)>,
    inserted: u64,
}

impl<K: Eq + Hash + Clone, V> BoundedMap<K, V> {
    /// A map of at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            map: HashMap::new(),
            order: VecDeque::new(),
            inserted: 0,
        }
    }

    /// The value of `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key).map(|(value, _)| value)
    }

    /// Sets `key` to `value`, forgetting the oldest entries first if the map is full.
    pub fn insert(&mut self, key: K, value: V) {
        if !self.map.contains_key(&key) {
            while self.map.len() >= self.capacity {
                let Some((oldest, number)) = self.order.pop_front() else {
                    break;
                };
                if self.map.get(&oldest).is_some_and(|(_, n)| *n == number) {
                    self.map.remove(&oldest);
                }
            }
        }
        self.inserted += 1;
        self.map.insert(key.clone(), (value, self.inserted));
        self.order.push_back((key, self.inserted));
        if self.order.len() > 2 * self.capacity {
            let map = &self.map;
            self.order
                .retain(|(key, number)| map.get(key).is_some_and(|(_, n)| n == number));
        }
    }

    /// Forgets `key` if its value is `is`'s.
    pub fn remove_if<Q>(&mut self, key: &Q, is: impl FnOnce(&V) -> bool)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.map.get(key).is_some_and(|(value, _)| is(value)) {
            self.map.remove(key);
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_goes_first_and_the_order_stays_bounded() {
        let mut map = BoundedMap::new(2);
        map.insert("one", 1);
        map.insert("two", 2);
        map.insert("one", 10); // inserted again: now the newest
        map.insert("three", 3);
        assert_eq!((map.get("one"), map.get("two")), (Some(&10), None));
        for i in 0..100 {
            map.insert("again", i);
        }
        assert_eq!(map.len(), 2);
        assert!(map.order.len() <= 4, "{}", map.order.len());
        map.remove_if("again", |v| *v == 99);
        assert_eq!(map.len(), 1);
    }
}
