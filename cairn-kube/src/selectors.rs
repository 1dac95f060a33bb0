//! Label selectors in kubectl's text form (`app=web,tier!=db,env in (a,b),!legacy`), parsed into the
//! Kubernetes `LabelSelector` type that specs store, and matched through kube's `Selector`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kube::core::{Selector, SelectorExt};

/// A label selector that cannot be read or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid label selector {selector:?}: {problem}")]
pub struct SelectorError {
    /// The selector as given.
    pub selector: String,
    /// What is wrong with it.
    pub problem: String,
}

/// Parses kubectl's selector syntax into a `LabelSelector`.
pub fn parse_label_selector(text: &str) -> Result<LabelSelector, SelectorError> {
    let invalid = |problem: &str| SelectorError { selector: text.to_owned(), problem: problem.to_owned() };
    let mut match_labels = BTreeMap::new();
    let mut expressions = Vec::new();
    for term in split_terms(text) {
        let term = term.trim();
        if term.is_empty() {
            return Err(invalid("empty requirement (a stray comma?)"));
        }
        let requirement = |key: &str, operator: &str, values: Option<Vec<String>>| {
            let key = key.trim();
            check_key(key).map_err(|p| invalid(&p))?;
            for value in values.iter().flatten() {
                check_value(value).map_err(|p| invalid(&p))?;
            }
            Ok::<_, SelectorError>(LabelSelectorRequirement {
                key: key.to_owned(),
                operator: operator.to_owned(),
                values,
            })
        };
        if let Some(key) = term.strip_prefix('!') {
            expressions.push(requirement(key, "DoesNotExist", None)?);
        } else if let Some((key, value)) = term.split_once("!=") {
            expressions.push(requirement(key, "NotIn", Some(vec![value.trim().to_owned()]))?);
        } else if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
            let (key, value) = (key.trim(), value.trim());
            check_key(key).map_err(|p| invalid(&p))?;
            check_value(value).map_err(|p| invalid(&p))?;
            match_labels.insert(key.to_owned(), value.to_owned());
        } else if let Some((key, operator, values)) = set_requirement(term) {
            let values = values.split(',').map(|v| v.trim().to_owned()).collect();
            expressions.push(requirement(key, operator, Some(values))?);
        } else if term.contains(['(', ')', ' ']) {
            return Err(invalid(&format!(
                "cannot read {term:?}; use key=value, key!=value, key in (a,b), key notin (a,b), key or !key"
            )));
        } else {
            expressions.push(requirement(term, "Exists", None)?);
        }
    }
    Ok(LabelSelector {
        match_labels: (!match_labels.is_empty()).then_some(match_labels),
        match_expressions: (!expressions.is_empty()).then_some(expressions),
    })
}

/// Splits on commas outside parentheses.
fn split_terms(text: &str) -> Vec<&str> {
    let (mut terms, mut depth, mut start) = (Vec::new(), 0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    terms
}

/// `key in (a,b)` or `key notin (a,b)` -> (key, operator, "a,b").
fn set_requirement(term: &str) -> Option<(&str, &'static str, &str)> {
    let open = term.find('(')?;
    let inner = term[open + 1..].strip_suffix(')')?;
    let head = term[..open].trim_end();
    if let Some(key) = head.strip_suffix(" notin") {
        Some((key, "NotIn", inner))
    } else {
        head.strip_suffix(" in").map(|key| (key, "In", inner))
    }
}

fn check_key(key: &str) -> Result<(), String> {
    let valid = !key.is_empty()
        && key.len() <= 317
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if valid { Ok(()) } else { Err(format!("{key:?} is not a valid label key")) }
}

/// The longest label value Kubernetes accepts.
const VALUE_MAX: usize = 63;

/// Checks a label value as the API server does: empty, or at most 63 characters that begin and end with a
/// letter or digit and have only letters, digits, `-`, `_` and `.` between.
fn check_value(value: &str) -> Result<(), String> {
    let valid = crate::names::is_label_value(value);
    if valid {
        return Ok(());
    }
    let hint = if value.contains(" or ") {
        "; to match any of several selectors, separate them with \" or \" in --or-selector"
    } else {
        ""
    };
    Err(format!(
        "{value:?} is not a valid label value (at most {VALUE_MAX} letters, digits, '-', '_' or '.', beginning and \
         ending with a letter or digit){hint}"
    ))
}

/// A compiled selector that matches label sets.
#[derive(Debug, Clone)]
pub struct LabelMatcher(Selector);

impl LabelMatcher {
    /// Compiles a `LabelSelector`.
    pub fn new(selector: &LabelSelector) -> Result<LabelMatcher, SelectorError> {
        Selector::try_from(selector.clone())
            .map(LabelMatcher)
            .map_err(|e| SelectorError { selector: format!("{selector:?}"), problem: e.to_string() })
    }

    /// Whether `labels` satisfy the selector.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.matches(labels)
    }

    /// The selector in the API server's query form (`labelSelector=`).
    pub fn query(&self) -> String {
        self.0.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn kubectl_selector_syntax_matches_like_kubectl() {
        let selector = parse_label_selector("app=web, tier!=db, env in (prod,stage), !legacy, team").unwrap();
        let matcher = LabelMatcher::new(&selector).unwrap();
        assert!(matcher.matches(&labels(&[("app", "web"), ("env", "prod"), ("team", "x")])));
        assert!(!matcher.matches(&labels(&[("app", "web"), ("env", "prod"), ("team", "x"), ("tier", "db")])));
        assert!(!matcher.matches(&labels(&[("app", "web"), ("env", "dev"), ("team", "x")])));
        assert!(!matcher.matches(&labels(&[("app", "web"), ("env", "prod"), ("team", "x"), ("legacy", "")])));
        assert!(!matcher.matches(&labels(&[("app", "web"), ("env", "prod")])));
    }

    #[test]
    fn label_values_follow_the_api_server_rule() {
        for good in ["app=", "app=web", "v=1.2_3-rc", "env in (a,b-c)", "tier!=db"] {
            assert!(parse_label_selector(good).is_ok(), "{good}");
        }
        let long = format!("app={}", "a".repeat(64));
        for bad in ["app=-web", "app=web.", "app=a b", "app=web!", "env in (a,b c)", "tier!=x/y", long.as_str()] {
            let error = parse_label_selector(bad).unwrap_err().to_string();
            assert!(error.contains("not a valid label value"), "{bad}: {error}");
        }
        assert!(parse_label_selector(&format!("app={}", "a".repeat(63))).is_ok());
    }

    #[test]
    fn a_velero_or_selector_given_to_a_single_selector_is_refused_with_a_hint() {
        let error = parse_label_selector("app=a or app=b").unwrap_err().to_string();
        assert!(
            error.contains("\"a or app=b\" is not a valid label value") && error.contains("--or-selector"),
            "{error}"
        );
    }

    #[test]
    fn malformed_selectors_are_refused_with_the_problem() {
        for text in ["app=web,", "a b", "bad key!=x", "env in (a"] {
            let error = parse_label_selector(text).unwrap_err().to_string();
            assert!(error.contains(text), "{text}: {error}");
        }
    }
}
