//! Glob patterns with Velero's syntax (that of the Go `gobwas/glob` library it uses): `*`, `**`, `?`,
//! `[abc]`, `[a-z]`, `[!a-z]`, `{one,other}` and `\` before a character to take it literally.
//!
//! With a separator (`.` for groupResource), `*` and `?` do not cross it and `**` does: `*.apps` matches
//! `deployments.apps`, `*` matches `pods` but not `deployments.apps`, and `*.*` matches `deployments.apps`
//! but not `rolebindings.rbac.authorization.k8s.io` (use `**` for that).

/// A compiled glob.
#[derive(Debug, Clone)]
pub(super) struct Glob {
    /// One token sequence for each expansion of the `{..}` alternatives.
    alternatives: Vec<Vec<Token>>,
    separator: Option<char>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Literal(char),
    /// `*`: any characters but the separator.
    Star,
    /// `**`: any characters.
    SuperStar,
    /// `?`: one character but the separator.
    Single,
    /// `[..]`: one character in (or, negated, not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Glob {
    /// Compiles `pattern`; the problem, if any, is a phrase for an error message.
    pub(super) fn new(pattern: &str, separator: Option<char>) -> Result<Glob, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut position = 0;
        let alternatives = parse(&chars, &mut position, false)?;
        Ok(Glob { alternatives, separator })
    }

    /// Whether the whole of `text` matches.
    pub(super) fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        self.alternatives.iter().any(|tokens| matches_here(tokens, &text, self.separator))
    }
}

/// Parses up to the end (or, inside braces, up to the closing `}`), expanding alternatives.
fn parse(chars: &[char], position: &mut usize, in_braces: bool) -> Result<Vec<Vec<Token>>, String> {
    let mut finished: Vec<Vec<Token>> = Vec::new();
    let mut current: Vec<Vec<Token>> = vec![Vec::new()];
    loop {
        let Some(&c) = chars.get(*position) else {
            if in_braces {
                return Err("a { is not closed".to_owned());
            }
            finished.append(&mut current);
            return Ok(finished);
        };
        *position += 1;
        let token = match c {
            ',' if in_braces => {
                finished.append(&mut current);
                current = vec![Vec::new()];
                continue;
            }
            '}' if in_braces => {
                finished.append(&mut current);
                return Ok(finished);
            }
            '{' => {
                let inner = parse(chars, position, true)?;
                current = current
                    .iter()
                    .flat_map(|head| inner.iter().map(move |tail| [head.as_slice(), tail].concat()))
                    .collect();
                continue;
            }
            '*' if chars.get(*position) == Some(&'*') => {
                *position += 1;
                Token::SuperStar
            }
            '*' => Token::Star,
            '?' => Token::Single,
            '[' => class(chars, position)?,
            '\\' => {
                let escaped = chars.get(*position).ok_or("it ends with a lone \\")?;
                *position += 1;
                Token::Literal(*escaped)
            }
            c => Token::Literal(c),
        };
        for tokens in &mut current {
            tokens.push(token.clone());
        }
    }
}

/// Parses a character class after its `[`.
fn class(chars: &[char], position: &mut usize) -> Result<Token, String> {
    let negated = chars.get(*position) == Some(&'!');
    if negated {
        *position += 1;
    }
    let mut ranges = Vec::new();
    loop {
        let Some(&c) = chars.get(*position) else { return Err("a [ is not closed".to_owned()) };
        *position += 1;
        if c == ']' {
            break;
        }
        if chars.get(*position) == Some(&'-') && chars.get(*position + 1).is_some_and(|&end| end != ']') {
            let end = chars[*position + 1];
            if end < c {
                return Err(format!("the range {c}-{end} runs backwards"));
            }
            ranges.push((c, end));
            *position += 2;
        } else {
            ranges.push((c, c));
        }
    }
    if ranges.is_empty() {
        return Err("it has an empty []".to_owned());
    }
    Ok(Token::Class { negated, ranges })
}

fn matches_here(tokens: &[Token], text: &[char], separator: Option<char>) -> bool {
    let Some((token, rest)) = tokens.split_first() else { return text.is_empty() };
    let one = |accept: &dyn Fn(char) -> bool| {
        text.first().is_some_and(|&c| accept(c)) && matches_here(rest, &text[1..], separator)
    };
    match token {
        Token::Literal(literal) => one(&|c| c == *literal),
        Token::Single => one(&|c| Some(c) != separator),
        Token::Class { negated, ranges } => {
            one(&|c| ranges.iter().any(|&(low, high)| (low..=high).contains(&c)) != *negated)
        }
        Token::SuperStar => (0..=text.len()).any(|skip| matches_here(rest, &text[skip..], separator)),
        Token::Star => {
            let reach = text.iter().position(|&c| Some(c) == separator).unwrap_or(text.len());
            (0..=reach).any(|skip| matches_here(rest, &text[skip..], separator))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(pattern: &str) -> Glob {
        Glob::new(pattern, Some('.')).unwrap()
    }

    #[test]
    fn a_star_stays_within_one_part_of_a_group_resource() {
        assert!(group("*").matches("pods"));
        assert!(!group("*").matches("deployments.apps"));
        assert!(group("*.apps").matches("deployments.apps"));
        assert!(!group("*.apps").matches("pods"));
        assert!(group("*.*").matches("jobs.batch"));
        assert!(!group("*.*").matches("rolebindings.rbac.authorization.k8s.io"));
        assert!(group("**").matches("rolebindings.rbac.authorization.k8s.io"));
        assert!(group("*.rbac.**").matches("rolebindings.rbac.authorization.k8s.io"));
        assert!(group("persistentvolumeclaims").matches("persistentvolumeclaims"));
        assert!(!group("persistentvolumeclaims").matches("persistentvolumes"));
    }

    #[test]
    fn alternatives_classes_and_single_characters_match_like_gobwas() {
        assert!(group("{deployments,statefulsets}.apps").matches("statefulsets.apps"));
        assert!(!group("{deployments,statefulsets}.apps").matches("daemonsets.apps"));
        assert!(group("{pods,*.apps}").matches("replicasets.apps"));
        assert!(group("pod?").matches("pods"));
        assert!(!group("jobs?batch").matches("jobs.batch"));
        assert!(group("[a-c]*").matches("configmaps"));
        assert!(!group("[!a-c]*").matches("configmaps"));
        assert!(group(r"a\*").matches("a*"));
        let namespaces = Glob::new("team-*", None).unwrap();
        assert!(namespaces.matches("team-a.b"));
    }

    #[test]
    fn malformed_patterns_are_refused() {
        assert_eq!(Glob::new("{pods", None).unwrap_err(), "a { is not closed");
        assert_eq!(Glob::new("[a-", None).unwrap_err(), "a [ is not closed");
        assert_eq!(Glob::new("[]", None).unwrap_err(), "it has an empty []");
        assert_eq!(Glob::new("pods\\", None).unwrap_err(), "it ends with a lone \\");
        assert!(Glob::new("[z-a]", None).unwrap_err().contains("backwards"));
    }
}
