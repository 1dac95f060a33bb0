//! JSON pointers (RFC 6901), as patches and matches name a place in an object, and the `test` comparison with
//! Velero's meaning of a place that is not there.

use serde_json::Value;

/// A checked JSON pointer: `/`-separated keys, with `~1` for `/` and `~0` for `~` inside a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pointer {
    text: String,
    tokens: Vec<String>,
}

impl Pointer {
    /// Checks `text`; the problem, if any, is a phrase for an error message.
    pub(super) fn parse(text: &str) -> Result<Pointer, String> {
        if text.is_empty() {
            return Err("is empty".to_owned());
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err("does not start with /".to_owned());
        };
        let tokens = rest.split('/').map(decode).collect::<Result<_, _>>()?;
        Ok(Pointer { text: text.to_owned(), tokens })
    }

    /// The pointer as written.
    pub(super) fn as_str(&self) -> &str {
        &self.text
    }
}

/// Decodes one reference token.
fn decode(token: &str) -> Result<String, String> {
    let mut decoded = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c != '~' {
            decoded.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => decoded.push('~'),
            Some('1') => decoded.push('/'),
            _ => return Err(format!("has a ~ not followed by 0 or 1 in {token:?}")),
        }
    }
    Ok(decoded)
}

/// How a `test` came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Test {
    /// The value at the place equals the expected one (or the place is absent and `null` was expected).
    Passed,
    /// The value differs, or the place is absent and something else than `null` was expected.
    Failed,
    /// A parent of the place is absent or not an object or list.
    Missing,
}

/// Tests that `pointer` holds `expected` in `document`, as Velero's JSON patch library does: a key absent
/// from an existing object reads as `null`, an absent parent is [`Test::Missing`], and an index that is not
/// a number or past the end of an existing list is an error.
pub(super) fn test(document: &Value, pointer: &Pointer, expected: &Value) -> Result<Test, String> {
    let Some((last, parents)) = pointer.tokens.split_last() else { return Ok(Test::Missing) };
    let mut parent = document;
    for token in parents {
        let next = match parent {
            Value::Object(map) => map.get(token),
            Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        match next {
            Some(value @ (Value::Object(_) | Value::Array(_))) => parent = value,
            _ => return Ok(Test::Missing),
        }
    }
    let actual = match parent {
        Value::Object(map) => map.get(last).filter(|v| !v.is_null()),
        Value::Array(items) => {
            let index = last
                .parse::<usize>()
                .map_err(|_| format!("{}: {last:?} is not an index of the list there", pointer.as_str()))?;
            let item = items.get(index).ok_or_else(|| {
                format!("{}: the list there has {} items, no index {index}", pointer.as_str(), items.len())
            })?;
            Some(item).filter(|v| !v.is_null())
        }
        _ => return Ok(Test::Missing),
    };
    let passed = match actual {
        None => expected.is_null(),
        Some(actual) => actual == expected,
    };
    Ok(if passed { Test::Passed } else { Test::Failed })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pointer(text: &str) -> Pointer {
        Pointer::parse(text).unwrap()
    }

    #[test]
    fn pointers_must_start_with_a_slash_and_escape_tildes() {
        assert_eq!(Pointer::parse("").unwrap_err(), "is empty");
        assert_eq!(Pointer::parse("spec/replicas").unwrap_err(), "does not start with /");
        assert!(Pointer::parse("/metadata/labels/a~2b").unwrap_err().contains("~ not followed by 0 or 1"));
        assert_eq!(pointer("/metadata/annotations/a~1b~0c").tokens, ["metadata", "annotations", "a/b~c"]);
    }

    #[test]
    fn test_reads_an_absent_key_as_null_and_an_absent_parent_as_missing() {
        let pvc = json!({"spec": {"storageClassName": "gp2", "accessModes": ["ReadWriteOnce"]}});
        assert_eq!(test(&pvc, &pointer("/spec/storageClassName"), &json!("gp2")), Ok(Test::Passed));
        assert_eq!(test(&pvc, &pointer("/spec/storageClassName"), &json!("gp3")), Ok(Test::Failed));
        assert_eq!(test(&pvc, &pointer("/spec/volumeName"), &json!("pv-1")), Ok(Test::Failed));
        assert_eq!(test(&pvc, &pointer("/spec/volumeName"), &Value::Null), Ok(Test::Passed));
        assert_eq!(test(&pvc, &pointer("/status/phase"), &json!("Bound")), Ok(Test::Missing));
        assert_eq!(test(&pvc, &pointer("/spec/accessModes/0"), &json!("ReadWriteOnce")), Ok(Test::Passed));
        assert!(test(&pvc, &pointer("/spec/accessModes/3"), &json!("x")).unwrap_err().contains("no index 3"));
    }
}
