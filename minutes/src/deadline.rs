//! Deadlines as people say them: "by Friday", "next week", "before the 15th",
//! "d'ici vendredi", "avant le 15", "la semaine prochaine".
//!
//! The deadline is kept as it was said; turning it into a date would need the
//! meeting's calendar and would be a guess.

use crate::text::Token;

const WEEKDAYS: &[&str] = &[
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "lundi",
    "mardi",
    "mercredi",
    "jeudi",
    "vendredi",
    "samedi",
    "dimanche",
];
const MONTHS: &[&str] = &[
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "janvier",
    "février",
    "fevrier",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "aout",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
    "decembre",
];
const PERIODS: &[&str] = &[
    "day",
    "week",
    "month",
    "sprint",
    "quarter",
    "year",
    "journée",
    "semaine",
    "mois",
    "trimestre",
    "année",
];
/// Words that introduce a deadline.
const PREPOSITIONS: &[&str] = &[
    "by", "before", "until", "till", "due", "on", "for", "d'ici", "avant", "pour", "jusqu'à",
    "jusqu'au", "au",
];
const COUNTS: &[&str] = &[
    "a", "one", "two", "three", "four", "five", "six", "ten", "un", "une", "deux", "trois",
    "quatre", "cinq", "dix", "quinze",
];

/// The byte range of the first deadline in a run of tokens, if any.
pub fn find(tokens: &[Token]) -> Option<(usize, usize)> {
    for at in 0..tokens.len() {
        let word = tokens[at].word.as_str();
        if PREPOSITIONS.contains(&word) {
            if let Some(len) = time(tokens, at + 1) {
                // "d'ici à vendredi"
                return Some((tokens[at].start, tokens[at + len].end));
            }
            if word == "d'ici"
                && is(tokens, at + 1, &["à"])
                && let Some(len) = time(tokens, at + 2)
            {
                return Some((tokens[at].start, tokens[at + 1 + len].end));
            }
        }
        if let Some(len) = standalone(tokens, at) {
            return Some((tokens[at].start, tokens[at + len - 1].end));
        }
    }
    None
}

fn word(tokens: &[Token], at: usize) -> &str {
    tokens.get(at).map(|t| t.word.as_str()).unwrap_or("")
}

fn is(tokens: &[Token], at: usize, options: &[&str]) -> bool {
    options.contains(&word(tokens, at))
}

fn seq(tokens: &[Token], at: usize, words: &[&str]) -> bool {
    words
        .iter()
        .enumerate()
        .all(|(i, w)| word(tokens, at + i) == *w)
}

fn is_day_number(word: &str) -> bool {
    let digits: String = word.chars().take_while(char::is_ascii_digit).collect();
    let rest = &word[digits.len()..];
    !digits.is_empty()
        && digits.len() <= 2
        && matches!(rest, "" | "st" | "nd" | "rd" | "th" | "er" | "e" | "ème")
        || word == "premier"
}

/// A time expression at `at`, as a number of tokens.
fn time(tokens: &[Token], at: usize) -> Option<usize> {
    let w = word(tokens, at);
    if WEEKDAYS.contains(&w) {
        let extra = usize::from(is(
            tokens,
            at + 1,
            &[
                "prochain",
                "matin",
                "soir",
                "midi",
                "morning",
                "afternoon",
                "evening",
                "noon",
            ],
        ));
        return Some(1 + extra);
    }
    if matches!(w, "tomorrow" | "demain") {
        let extra = usize::from(is(
            tokens,
            at + 1,
            &["morning", "afternoon", "evening", "matin", "soir", "midi"],
        ));
        return Some(1 + extra);
    }
    if matches!(
        w,
        "tonight" | "today" | "eod" | "eow" | "noon" | "midi" | "aujourd'hui"
    ) {
        return Some(1);
    }
    if w == "next"
        && (WEEKDAYS.contains(&word(tokens, at + 1))
            || is(tokens, at + 1, PERIODS)
            || is(tokens, at + 1, &["meeting"]))
    {
        return Some(2);
    }
    if w == "this"
        && (WEEKDAYS.contains(&word(tokens, at + 1))
            || is(tokens, at + 1, &["week", "afternoon", "evening", "month"]))
    {
        return Some(2);
    }
    if matches!(w, "ce" | "cet" | "cette")
        && is(
            tokens,
            at + 1,
            &["soir", "semaine", "mois", "après-midi", "trimestre"],
        )
    {
        return Some(2);
    }
    // end of (the) week / la fin de la semaine / fin du mois
    for prefix in [
        &["end", "of", "the"][..],
        &["end", "of"],
        &["the", "end", "of", "the"],
        &["the", "end", "of"],
    ] {
        if seq(tokens, at, prefix)
            && (is(tokens, at + prefix.len(), PERIODS)
                || is(tokens, at + prefix.len(), &["next", "our"]))
        {
            let extra = usize::from(is(tokens, at + prefix.len(), &["next", "our"]));
            return Some(prefix.len() + 1 + extra);
        }
    }
    for prefix in [
        &["la", "fin", "de", "la"][..],
        &["la", "fin", "du"],
        &["la", "fin", "de"],
        &["fin", "de", "la"],
        &["fin", "du"],
        &["fin", "de"],
    ] {
        if seq(tokens, at, prefix) && is(tokens, at + prefix.len(), PERIODS) {
            let extra = usize::from(is(
                tokens,
                at + prefix.len() + 1,
                &["prochain", "prochaine"],
            ));
            return Some(prefix.len() + 1 + extra);
        }
    }
    if seq(tokens, at, &["la", "semaine", "prochaine"])
        || seq(tokens, at, &["le", "mois", "prochain"])
    {
        return Some(3);
    }
    if seq(tokens, at, &["la", "prochaine", "réunion"])
        || seq(tokens, at, &["the", "next", "meeting"])
        || seq(tokens, at, &["our", "next", "meeting"])
    {
        return Some(3);
    }
    // the 15th (of March) / le 15 (mars) / March 15 / 15 March
    let (skip, n) = if matches!(w, "the" | "le") {
        (1, word(tokens, at + 1))
    } else {
        (0, w)
    };
    if is_day_number(n) {
        let after = at + skip + 1;
        if MONTHS.contains(&word(tokens, after)) {
            return Some(skip + 2);
        }
        if word(tokens, after) == "of" && MONTHS.contains(&word(tokens, after + 1)) {
            return Some(skip + 3);
        }
        if skip == 1 {
            return Some(2);
        }
        return None;
    }
    if MONTHS.contains(&w) && w != "may" && w != "mars" {
        if is_day_number(word(tokens, at + 1)) {
            return Some(2);
        }
        return Some(1);
    }
    if (w == "may" || w == "mars") && is_day_number(word(tokens, at + 1)) {
        return Some(2);
    }
    None
}

/// A time expression that is a deadline without a preposition.
fn standalone(tokens: &[Token], at: usize) -> Option<usize> {
    let w = word(tokens, at);
    if matches!(w, "tomorrow" | "tonight" | "demain" | "eod" | "eow") {
        return time(tokens, at);
    }
    if WEEKDAYS.contains(&w) {
        return time(tokens, at);
    }
    if matches!(w, "next" | "this" | "ce" | "cet" | "cette")
        || seq(tokens, at, &["la", "semaine"])
        || seq(tokens, at, &["le", "mois"])
    {
        return time(tokens, at);
    }
    if matches!(w, "en")
        && seq(tokens, at + 1, &["fin", "de"])
        && is(tokens, at + 3, &["semaine", "journée", "mois"])
    {
        return Some(4);
    }
    if matches!(w, "in" | "within" | "dans" | "sous")
        && (is(tokens, at + 1, COUNTS)
            || word(tokens, at + 1).chars().all(|c| c.is_ascii_digit())
                && !word(tokens, at + 1).is_empty())
        && is(
            tokens,
            at + 2,
            &[
                "days", "weeks", "day", "week", "jours", "semaines", "jour", "semaine",
            ],
        )
    {
        return Some(3);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::{normalize, tokens};

    fn deadline(text: &str) -> Option<String> {
        let text = normalize(text);
        find(&tokens(&text)).map(|(a, b)| text[a..b].to_string())
    }

    #[test]
    fn finds_english_deadlines() {
        assert_eq!(
            deadline("Alice will send the budget by Friday."),
            Some("by Friday".into())
        );
        assert_eq!(deadline("I'll do it next week"), Some("next week".into()));
        assert_eq!(
            deadline("before the 15th of March please"),
            Some("before the 15th of March".into())
        );
        assert_eq!(
            deadline("by the end of the month"),
            Some("by the end of the month".into())
        );
        assert_eq!(
            deadline("I'll send it tomorrow morning"),
            Some("tomorrow morning".into())
        );
    }

    #[test]
    fn finds_french_deadlines() {
        assert_eq!(
            deadline("je l'envoie d'ici vendredi"),
            Some("d'ici vendredi".into())
        );
        assert_eq!(
            deadline("avant le 15 si possible"),
            Some("avant le 15".into())
        );
        assert_eq!(
            deadline("ce sera fait la semaine prochaine"),
            Some("la semaine prochaine".into())
        );
        assert_eq!(
            deadline("d'ici la fin du mois"),
            Some("d'ici la fin du mois".into())
        );
        assert_eq!(
            deadline("pour jeudi prochain"),
            Some("pour jeudi prochain".into())
        );
    }

    #[test]
    fn finds_no_deadline_where_none_was_said() {
        assert_eq!(deadline("I'll send the budget."), None);
        assert_eq!(deadline("je vais préparer le budget pour l'équipe"), None);
        assert_eq!(deadline("we may need more time"), None);
    }
}
