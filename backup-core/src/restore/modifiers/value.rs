//! The `value` of a JSON patch operation or of a match, read as Velero reads it.
//!
//! Velero declares these values as strings and writes each into the JSON patch it builds, quoted or not by
//! what the text looks like: `null`, `true`, `false`, numbers and text that starts with `{` or `[` go in as
//! JSON, anything else as a string, and text wrapped in double quotes as the string inside them. So
//! `value: "3"` and `value: 3` both mean the number 3, and `value: '"3"'` means the string "3". A YAML
//! null (or no value at all) is the empty string. Cairn also takes a YAML mapping or list as the JSON value
//! it spells (Velero refuses those: it wants a string).

use serde_json::Value;

/// The JSON value a patch or match `value` stands for; the problem, if any, is a phrase for an error
/// message that says how to write the value instead.
pub(super) fn read(value: Option<&Value>) -> Result<Value, String> {
    match value {
        None | Some(Value::Null) => Ok(Value::String(String::new())),
        Some(Value::String(text)) => read_text(text),
        Some(other) => Ok(other.clone()),
    }
}

fn read_text(text: &str) -> Result<Value, String> {
    if text.starts_with('"') && text.ends_with('"') {
        let inner = &text[1..];
        return Ok(Value::String(inner.strip_suffix('"').unwrap_or(inner).to_owned()));
    }
    match text {
        "null" => return Ok(Value::Null),
        "true" => return Ok(Value::Bool(true)),
        "false" => return Ok(Value::Bool(false)),
        _ => {}
    }
    if text.eq_ignore_ascii_case("true") || text.eq_ignore_ascii_case("false") {
        return Err(format!(
            "is a boolean in another case than JSON's; write true or false, or {:?} for the text",
            format!("\"{text}\"")
        ));
    }
    if text.starts_with(['{', '[']) {
        return serde_json::from_str(text).map_err(|e| {
            format!(
                "starts with {{ or [, so it is read as JSON, but it is not valid JSON ({e}); fix it, or wrap it \
                 in double quotes inside the YAML string to mean the text"
            )
        });
    }
    if text.parse::<f64>().is_ok() {
        return match serde_json::from_str::<Value>(text) {
            Ok(number @ Value::Number(_)) => Ok(number),
            _ => Err(format!(
                "reads as a number but is not a JSON number; write it as one (such as 0.5), or write {:?} for \
                 the text",
                format!("\"{text}\"")
            )),
        };
    }
    Ok(Value::String(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn text(value: &str) -> Result<Value, String> {
        read(Some(&json!(value)))
    }

    #[test]
    fn text_values_are_json_when_they_look_like_json_as_in_velero() {
        assert_eq!(text("premium"), Ok(json!("premium")));
        assert_eq!(text("3"), Ok(json!(3)));
        assert_eq!(text("0.5"), Ok(json!(0.5)));
        assert_eq!(text("true"), Ok(json!(true)));
        assert_eq!(text("null"), Ok(Value::Null));
        assert_eq!(text(r#"{"name": "nginx"}"#), Ok(json!({"name": "nginx"})));
        assert_eq!(text(r#"["a"]"#), Ok(json!(["a"])));
        assert_eq!(text(r#""3""#), Ok(json!("3")));
        assert_eq!(text(r#""true""#), Ok(json!("true")));
        assert_eq!(text(""), Ok(json!("")));
    }

    #[test]
    fn yaml_scalars_keep_their_type_and_null_is_the_empty_string() {
        assert_eq!(read(Some(&json!(3))), Ok(json!(3)));
        assert_eq!(read(Some(&json!(false))), Ok(json!(false)));
        assert_eq!(read(Some(&Value::Null)), Ok(json!("")));
        assert_eq!(read(None), Ok(json!("")));
        assert_eq!(read(Some(&json!({"a": 1}))), Ok(json!({"a": 1})));
    }

    #[test]
    fn text_that_velero_would_send_as_broken_json_is_refused_with_the_fix() {
        assert!(text("True").unwrap_err().contains(r#"write true or false, or "\"True\"""#));
        assert!(text("{name: x}").unwrap_err().contains("not valid JSON"));
        assert!(text("1.").unwrap_err().contains("not a JSON number"));
        assert!(text("inf").unwrap_err().contains("not a JSON number"));
    }
}
