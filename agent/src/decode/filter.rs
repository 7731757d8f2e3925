//! `include_lines` / `exclude_lines`: which events are shipped, by their message.
//!
//! Owns an input's compiled line filters. Invariant: include runs first, then exclude (Filebeat's
//! order), and a filtered event still advances the file's offset (the caller counts it).

use crate::config::PatternSet;
use regex::bytes::RegexSet;

#[derive(Debug, Default)]
pub struct LineFilter {
    include: Option<RegexSet>,
    exclude: Option<RegexSet>,
}

impl LineFilter {
    pub fn new(include: &PatternSet, exclude: &PatternSet) -> LineFilter {
        LineFilter { include: include.set().cloned(), exclude: exclude.set().cloned() }
    }

    pub fn is_empty(&self) -> bool {
        self.include.is_none() && self.exclude.is_none()
    }

    /// Whether an event with this message is shipped. An event without a message (a JSON object
    /// with no `message`) passes exclude_lines but not include_lines.
    pub fn keep(&self, message: Option<&[u8]>) -> bool {
        let included = match (&self.include, message) {
            (None, _) => true,
            (Some(set), Some(m)) => set.is_match(m),
            (Some(_), None) => false,
        };
        included && !matches!((&self.exclude, message), (Some(set), Some(m)) if set.is_match(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(list: &[&str]) -> PatternSet {
        PatternSet::new(list).unwrap()
    }

    #[test]
    fn include_first_then_exclude() {
        let f = LineFilter::new(&set(&["^ERR", "^WARN"]), &set(&["ignore me"]));
        assert!(f.keep(Some(b"ERR disk full")));
        assert!(f.keep(Some(b"WARN slow")));
        assert!(!f.keep(Some(b"INFO fine")));
        assert!(!f.keep(Some(b"ERR ignore me")));
        assert!(!f.keep(None));
        let only_exclude = LineFilter::new(&set(&[]), &set(&["^DBG"]));
        assert!(only_exclude.keep(None));
        assert!(!only_exclude.keep(Some(b"DBG x")));
        assert!(LineFilter::new(&set(&[]), &set(&[])).is_empty());
    }
}
