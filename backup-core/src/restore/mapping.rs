//! Namespace mappings (`--namespace-mappings old:new,...`): parsed and checked in one place, for the CLI
//! and for the engine. Pure.

use std::collections::BTreeMap;

use cairn_kube::names::is_valid_label;

use super::RestoreError;

/// Checks a mapping: every side names a namespace.
pub fn check_mapping(mapping: &BTreeMap<String, String>) -> Result<(), RestoreError> {
    match mapping.iter().find(|(from, to)| !is_valid_label(from) || !is_valid_label(to)) {
        Some((from, to)) => Err(RestoreError::Mapping(format!("{from}:{to}"))),
        None => Ok(()),
    }
}

/// Parses `old:new` pairs into a mapping. A namespace mapped twice (`a:b,a:c`) is refused rather than
/// letting one pair silently win.
pub fn parse_mappings(pairs: &[String]) -> Result<BTreeMap<String, String>, RestoreError> {
    let mut mapping: BTreeMap<String, String> = BTreeMap::new();
    for pair in pairs {
        let (from, to) = pair.split_once(':').ok_or_else(|| RestoreError::Mapping(pair.clone()))?;
        let (from, to) = (from.trim().to_owned(), to.trim().to_owned());
        if let Some(earlier) = mapping.get(&from)
            && *earlier != to
        {
            return Err(RestoreError::MappedTwice { namespace: from, first: earlier.clone(), second: to });
        }
        mapping.insert(from, to);
    }
    check_mapping(&mapping)?;
    Ok(mapping)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &[&str]) -> Vec<String> {
        text.iter().map(|p| (*p).to_owned()).collect()
    }

    #[test]
    fn mappings_must_name_namespaces() {
        assert!(check_mapping(&BTreeMap::from([("a".into(), "b".into())])).is_ok());
        assert!(check_mapping(&BTreeMap::from([("a".into(), "B_b".into())])).is_err());
        assert!(check_mapping(&BTreeMap::from([("".into(), "b".into())])).is_err());
    }

    #[test]
    fn a_namespace_mapped_twice_is_refused() {
        let message = parse_mappings(&pairs(&["a:b", "a:c"])).unwrap_err().to_string();
        assert!(message.contains("a is mapped twice") && message.contains("to b and to c"), "{message}");
        assert_eq!(parse_mappings(&pairs(&["a:b", "a:b", "c:d"])).unwrap().len(), 2);
        assert!(matches!(parse_mappings(&pairs(&["ab"])), Err(RestoreError::Mapping(_))));
    }
}
