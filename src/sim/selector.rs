//! Label and field selectors, as the apiserver parses them from `labelSelector=` and
//! `fieldSelector=` (k8s.io/apimachinery/pkg/labels and pkg/fields).

use crate::status::Status;

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed `labelSelector`; empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<LabelReq>);

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (f,g),h notin (i),j,!k`.
    pub fn parse(s: &str) -> Result<Self, Status> {
        let mut reqs = Vec::new();
        for term in split_top_level(s) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            reqs.push(parse_label_term(term).ok_or_else(|| {
                Status::bad_request(format!(
                    "unable to parse requirement: invalid label selector {term:?}"
                ))
            })?);
        }
        Ok(LabelSelector(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches<K: AsRef<str>, V: AsRef<str>>(&self, labels: &[(K, V)]) -> bool {
        let get = |k: &str| {
            labels
                .iter()
                .find(|(lk, _)| lk.as_ref() == k)
                .map(|(_, v)| v.as_ref())
        };
        self.0.iter().all(|r| match r {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
        })
    }
}

/// Splits on commas outside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn parse_label_term(t: &str) -> Option<LabelReq> {
    if let Some(k) = t.strip_prefix('!') {
        let k = k.trim();
        return valid_key(k).then(|| LabelReq::NotExists(k.into()));
    }
    if let Some(open) = t.find('(') {
        let close = t.rfind(')')?;
        let head = t[..open].trim();
        let values: Vec<String> = t[open + 1..close]
            .split(',')
            .map(|v| v.trim().to_string())
            .collect();
        let (key, op) = head.rsplit_once(char::is_whitespace)?;
        let key = key.trim();
        if !valid_key(key) {
            return None;
        }
        return match op {
            "in" => Some(LabelReq::In(key.into(), values)),
            "notin" => Some(LabelReq::NotIn(key.into(), values)),
            _ => None,
        };
    }
    let (k, v, neg) = if let Some((k, v)) = t.split_once("!=") {
        (k, v, true)
    } else if let Some((k, v)) = t.split_once("==") {
        (k, v, false)
    } else if let Some((k, v)) = t.split_once('=') {
        (k, v, false)
    } else {
        return valid_key(t).then(|| LabelReq::Exists(t.into()));
    };
    let (k, v) = (k.trim(), v.trim());
    if !valid_key(k) {
        return None;
    }
    Some(if neg {
        LabelReq::NotEq(k.into(), v.into())
    } else {
        LabelReq::Eq(k.into(), v.into())
    })
}

/// The fields the emulator indexes for field selectors.
pub const SELECTABLE_FIELDS: [&str; 4] = [
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "status.phase",
];

/// A parsed `fieldSelector` (`=`, `==`, `!=` on [`SELECTABLE_FIELDS`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, Status> {
        let mut reqs = Vec::new();
        for term in s.split(',') {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let (k, eq, v) = if let Some((k, v)) = term.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = term.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = term.split_once('=') {
                (k, true, v)
            } else {
                return Err(Status::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                )));
            };
            let k = k.trim();
            if !SELECTABLE_FIELDS.contains(&k) {
                return Err(Status::bad_request(format!(
                    "field label not supported: {k}"
                )));
            }
            reqs.push((k.to_string(), eq, v.trim().to_string()));
        }
        Ok(FieldSelector(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The name this selector pins with `metadata.name=…` (single-object lists and watches).
    pub fn pinned_name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, eq, _)| k == "metadata.name" && *eq)
            .map(|(_, _, v)| v.as_str())
    }

    /// `field` returns the object's value of a field (None is the empty string, as the
    /// apiserver's field sets do for absent fields).
    pub fn matches<'a>(&self, field: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.0.iter().all(|(k, eq, v)| {
            let actual = field(k).unwrap_or("");
            (actual == v) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_operators() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&l);
        assert!(m(""));
        assert!(m("app=web"));
        assert!(m("app==web"));
        assert!(!m("app!=web"));
        assert!(m("app in (db, web)"));
        assert!(!m("app notin (db,web)"));
        assert!(m("env notin (prod)"));
        assert!(m("tier"));
        assert!(!m("!tier"));
        assert!(m("!env,app=web,tier in (front)"));
        assert!(!m("app=web,tier=back"));
    }

    #[test]
    fn label_garbage_is_a_bad_request() {
        let err = LabelSelector::parse("app in db").unwrap_err();
        assert_eq!(err.code, 400);
        assert!(LabelSelector::parse("a b=c").is_err());
    }

    #[test]
    fn field_selectors() {
        let f = |k: &str| match k {
            "metadata.name" => Some("p1"),
            "spec.nodeName" => Some("node-1"),
            _ => None,
        };
        let m = |s: &str| FieldSelector::parse(s).unwrap().matches(f);
        assert!(m("metadata.name=p1"));
        assert!(m("spec.nodeName==node-1,metadata.name!=p2"));
        assert!(!m("status.phase=Running"));
        assert!(m("status.phase="));
        assert_eq!(
            FieldSelector::parse("metadata.name=x")
                .unwrap()
                .pinned_name(),
            Some("x")
        );
        let err = FieldSelector::parse("spec.foo=1").unwrap_err();
        assert_eq!(err.message, "field label not supported: spec.foo");
    }
}
