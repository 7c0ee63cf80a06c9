//! [`PerBackend`]: a value per backend, kept by group then address, so that
//! the applier finds one group's backends without walking the others', and
//! looks a backend up by `&str` without building a key.

use std::collections::HashMap;
use std::sync::Arc;

use crate::published::BackendKey;

/// A value per backend, by group then address.
pub(crate) struct PerBackend<T>(HashMap<Arc<str>, HashMap<Arc<str>, T>>);

impl<T> Default for PerBackend<T> {
    fn default() -> Self {
        PerBackend(HashMap::new())
    }
}

// === impl PerBackend ===

impl<T> PerBackend<T> {
    pub fn get(&self, group: &str, addr: &str) -> Option<&T> {
        self.0.get(group)?.get(addr)
    }

    pub fn get_mut(&mut self, group: &str, addr: &str) -> Option<&mut T> {
        self.0.get_mut(group)?.get_mut(addr)
    }

    pub fn insert(&mut self, (group, addr): BackendKey, value: T) -> Option<T> {
        self.0.entry(group).or_default().insert(addr, value)
    }

    pub fn remove(&mut self, group: &str, addr: &str) -> Option<T> {
        let of_group = self.0.get_mut(group)?;
        let value = of_group.remove(addr);
        if of_group.is_empty() {
            self.0.remove(group);
        }
        value
    }

    /// One group's values, by address.
    pub fn group(&self, group: &str) -> Option<&HashMap<Arc<str>, T>> {
        self.0.get(group)
    }

    /// One group's values, by address, to change in place (an emptied
    /// group is dropped by [`Self::tidy`]).
    pub fn group_mut(&mut self, group: &Arc<str>) -> &mut HashMap<Arc<str>, T> {
        self.0.entry(group.clone()).or_default()
    }

    /// Forgets `group` if it holds nothing.
    pub fn tidy(&mut self, group: &str) {
        if self.0.get(group).is_some_and(HashMap::is_empty) {
            self.0.remove(group);
        }
    }

    /// Every value, taken out.
    pub fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.0.drain().flat_map(|(_, m)| m.into_values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_found_by_group_and_address_and_empty_groups_go() {
        let mut m = PerBackend::default();
        let key = |g: &str, a: &str| (Arc::from(g), Arc::from(a));
        assert!(m.insert(key("web", "a:1"), 1).is_none());
        m.insert(key("web", "b:1"), 2);
        m.insert(key("api", "a:1"), 3);
        assert_eq!(m.get("web", "a:1"), Some(&1));
        assert_eq!(m.get("api", "a:1"), Some(&3));
        assert_eq!(m.group("web").map(HashMap::len), Some(2));
        assert_eq!(m.remove("api", "a:1"), Some(3));
        assert!(m.group("api").is_none());
        m.group_mut(&Arc::from("web")).clear();
        m.tidy("web");
        assert!(m.group("web").is_none());
    }
}
