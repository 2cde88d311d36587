//! Configuration problems: each with its key path, the machine it concerns and a hint; all reported at once.

use std::fmt;

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Key path such as `machines[2].signals.total_count.address`; empty for the whole file.
    pub path: String,
    /// Id of the machine the problem is in, when known.
    pub machine: Option<String>,
    /// What is wrong.
    pub message: String,
    /// What would be right: valid choices, a near-miss key, the expected format.
    pub hint: Option<String>,
    /// Line (1-based) in the file of the key, or of its nearest ancestor present in the file.
    pub line: Option<usize>,
}

impl ConfigIssue {
    /// A problem at `path` with no machine and no hint.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigIssue {
            path: path.into(),
            machine: None,
            message: message.into(),
            hint: None,
            line: None,
        }
    }

    /// Add a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Attach the machine id.
    pub fn machine(mut self, machine: Option<&str>) -> Self {
        self.machine = machine.map(str::to_owned);
        self
    }

    /// The path with the machine id after its index: `machines[2] (press-1).signals.total_count`.
    pub fn display_path(&self) -> String {
        match &self.machine {
            Some(id) if self.path.starts_with("machines[") => match self.path.find(']') {
                Some(end) => format!("{} ({id}){}", &self.path[..=end], &self.path[end + 1..]),
                None => self.path.clone(),
            },
            _ => self.path.clone(),
        }
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.display_path();
        if !path.is_empty() {
            write!(f, "{path}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "; {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in a configuration, in file order (problems of the whole file first). Never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigIssue>);

impl ConfigErrors {
    /// A single problem.
    pub fn one(issue: ConfigIssue) -> Self {
        ConfigErrors(vec![issue])
    }
    /// The problems.
    pub fn issues(&self) -> &[ConfigIssue] {
        &self.0
    }
    /// How many problems.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// True when there are none (never the case for a returned error).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The report `check-config` and `run` print: `N errors in FILE:`, then one indented line per problem,
    /// prefixed with the line of its key when known.
    pub fn report(&self, file: &std::path::Path) -> String {
        let n = self.0.len();
        let plural = if n == 1 { "" } else { "s" };
        let mut out = format!("{n} error{plural} in {}:\n", file.display());
        for issue in &self.0 {
            let line = issue
                .line
                .map(|l| format!("line {l}: "))
                .unwrap_or_default();
            out.push_str(&format!("  {line}{issue}\n"));
        }
        out
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

/// The closest of `candidates` to `word`, when it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&word.to_ascii_lowercase(), c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// "did you mean `x`?" for a near miss, else "valid: a, b, c".
pub fn choice_hint(word: &str, candidates: &[&str], what: &str) -> String {
    match did_you_mean(word, candidates.iter().copied()) {
        Some(best) => format!("did you mean `{best}`?"),
        None => format!("valid {what}: {}", candidates.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_prints_machine_after_its_index_and_hint_after_message() {
        let issue = ConfigIssue::new(
            "machines[2].signals.total_count.address",
            "70000 is out of range",
        )
        .hint("valid: 0–65535")
        .machine(Some("press-1"));
        assert_eq!(
            issue.to_string(),
            "machines[2] (press-1).signals.total_count.address: 70000 is out of range; valid: 0–65535"
        );
    }

    #[test]
    fn near_miss_key_gets_a_suggestion_and_far_miss_gets_the_list() {
        let keys = ["total_count", "good_count", "reject_count"];
        assert_eq!(
            choice_hint("reject_cout", &keys, "keys"),
            "did you mean `reject_count`?"
        );
        assert_eq!(
            choice_hint("zzz", &keys, "keys"),
            "valid keys: total_count, good_count, reject_count"
        );
    }
}
