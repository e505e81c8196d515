//! Key-range reads over the `(namespace, name)`-ordered maps, and the merge that rebuilds the
//! state at a past revision.

use super::*;

pub(super) fn ns_range<'a, V>(
    m: &'a BTreeMap<Key, V>,
    ns: &'a str,
    start: Option<&Key>,
) -> impl Iterator<Item = (&'a Key, &'a V)> + 'a {
    range_iter(m, Some(ns), start)
}

/// Keys of a namespace (or all) after `start`, in order.
pub(super) fn range_iter<'a, V>(
    m: &'a BTreeMap<Key, V>,
    ns: Option<&'a str>,
    start: Option<&Key>,
) -> Box<dyn Iterator<Item = (&'a Key, &'a V)> + 'a> {
    let lower = match (start, ns) {
        (Some(k), _) => Bound::Excluded(k.clone()),
        (None, Some(ns)) => Bound::Included((ns.to_string(), String::new())),
        (None, None) => Bound::Unbounded,
    };
    let it = m.range((lower, Bound::Unbounded));
    match ns {
        None => Box::new(it),
        Some(ns) => Box::new(it.take_while(move |(k, _)| k.0 == ns)),
    }
}

/// Merges the current objects with overrides (the state at a past revision) in key order.
pub(super) struct MergeOverride<'a, A, B>
where
    A: Iterator<Item = (&'a Key, Option<&'a Arc<Stored>>)>,
    B: Iterator<Item = (&'a Key, Option<&'a Arc<Stored>>)>,
{
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<'a, A, B> MergeOverride<'a, A, B>
where
    A: Iterator<Item = (&'a Key, Option<&'a Arc<Stored>>)>,
    B: Iterator<Item = (&'a Key, Option<&'a Arc<Stored>>)>,
{
    pub(super) fn new(a: A, b: B) -> Self {
        MergeOverride {
            a: a.peekable(),
            b: b.peekable(),
        }
    }
}

impl<'a, A, B> Iterator for MergeOverride<'a, A, B>
where
    A: Iterator<Item = (&'a Key, Option<&'a Arc<Stored>>)>,
    B: Iterator<Item = (&'a Key, Option<&'a Arc<Stored>>)>,
{
    type Item = &'a Arc<Stored>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let next = match (self.a.peek(), self.b.peek()) {
                (None, None) => return None,
                (Some(_), None) => self.a.next()?.1,
                (None, Some(_)) => self.b.next()?.1,
                (Some((ka, _)), Some((kb, _))) => match ka.cmp(kb) {
                    std::cmp::Ordering::Less => self.a.next()?.1,
                    std::cmp::Ordering::Greater => self.b.next()?.1,
                    std::cmp::Ordering::Equal => {
                        self.a.next();
                        self.b.next()?.1
                    }
                },
            };
            if let Some(o) = next {
                return Some(o);
            }
        }
    }
}
