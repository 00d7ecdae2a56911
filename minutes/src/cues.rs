//! Word lists and small matchers shared by the cue detectors: hedges and
//! hypotheticals, negations, reported speech, affirmative and unsure replies.

use crate::text::Token;

/// The word at `at`, or "" past the end.
pub fn word(tokens: &[Token], at: usize) -> &str {
    tokens.get(at).map(|t| t.word.as_str()).unwrap_or("")
}

/// Whether the words starting at `at` are exactly `words`.
pub fn seq(tokens: &[Token], at: usize, words: &[&str]) -> bool {
    words
        .iter()
        .enumerate()
        .all(|(i, w)| word(tokens, at + i) == *w)
}

/// The first position at or after `from` where `words` occur.
pub fn find_seq(tokens: &[Token], from: usize, words: &[&str]) -> Option<usize> {
    (from..tokens.len()).find(|&at| seq(tokens, at, words))
}

/// Polite conditionals that do not make a sentence hypothetical.
const POLITE_CONDITIONS: &[&[&str]] = &[
    &["if", "that's", "ok"],
    &["if", "that's", "okay"],
    &["if", "that's", "fine"],
    &["if", "that", "works"],
    &["if", "that", "helps"],
    &["if", "you", "want"],
    &["if", "you", "like"],
    &["si", "ça", "vous", "va"],
    &["si", "ça", "te", "va"],
    &["si", "vous", "voulez"],
    &["si", "tu", "veux"],
];

/// Words that make a statement a hypothesis, a wish or a hedge rather than a
/// commitment or a decision.
const HYPOTHETICAL: &[&str] = &[
    "if",
    "unless",
    "suppose",
    "supposing",
    "imagine",
    "hypothetically",
    "maybe",
    "perhaps",
    "might",
    "assuming",
    "ideally",
    "wish",
    "s'il",
    "s'ils",
    "peut-être",
    "éventuellement",
    "imaginons",
    "admettons",
    "supposons",
    "idéalement",
    "pourrait",
    "pourrais",
    "pourrions",
    "pourriez",
    "pourraient",
    "faudrait",
    "serait",
    "ferait",
    "aurait",
    "devrait",
    "devrais",
    "devrions",
    "voudrais",
];

/// French words after which `si` opens a condition.
const SI_SUBJECTS: &[&str] = &[
    "on",
    "tu",
    "vous",
    "nous",
    "je",
    "il",
    "elle",
    "ils",
    "elles",
    "jamais",
    "c'est",
    "ça",
    "le",
    "la",
    "les",
    "personne",
    "quelqu'un",
];

/// Whether a sentence is a hypothesis or hedge (polite "if that's ok" aside).
pub fn is_hypothetical(tokens: &[Token]) -> bool {
    let mut skip = vec![false; tokens.len()];
    for phrase in POLITE_CONDITIONS {
        let mut from = 0;
        while let Some(at) = find_seq(tokens, from, phrase) {
            for s in skip.iter_mut().skip(at).take(phrase.len()) {
                *s = true;
            }
            from = at + 1;
        }
    }
    tokens.iter().enumerate().any(|(i, t)| {
        if skip[i] {
            return false;
        }
        let w = t.word.as_str();
        if HYPOTHETICAL.contains(&w)
            || seq(tokens, i, &["au", "cas", "où"])
            || seq(tokens, i, &["in", "case"])
        {
            return true;
        }
        // "si on…", "et si…": a condition, not the adverb "si" of "si simple".
        w == "si"
            && (SI_SUBJECTS.contains(&word(tokens, i + 1))
                || word(tokens, i + 1).starts_with("j'")
                || word(tokens, i + 1).starts_with("l'"))
    })
}

/// Words that, placed before a commitment or a decision, make it reported
/// speech or a memory rather than something settled now.
const REPORTING: &[&str] = &[
    "said",
    "told",
    "promised",
    "mentioned",
    "thought",
    "claimed",
    "supposed",
    "dit",
    "disait",
    "avait",
    "pensais",
    "pensait",
    "promis",
    "croyais",
    "croyait",
    "disais",
];

/// Whether any word before `at` reports someone else's or an earlier statement.
pub fn is_reported(tokens: &[Token], at: usize) -> bool {
    tokens[..at.min(tokens.len())]
        .iter()
        .any(|t| REPORTING.contains(&t.word.as_str()))
}

/// Negating words.
pub const NEGATIONS: &[&str] = &[
    "not", "never", "no", "don't", "didn't", "haven't", "hasn't", "isn't", "wasn't", "aren't",
    "weren't", "won't", "can't", "cannot", "nobody", "nothing", "ne", "n'a", "n'est", "n'ont",
    "n'avons", "pas", "jamais", "rien", "personne", "n'y", "n'en",
];

/// Whether any of the `window` words before `at` negates.
pub fn negated_before(tokens: &[Token], at: usize, window: usize) -> bool {
    tokens[at.saturating_sub(window)..at.min(tokens.len())]
        .iter()
        .any(|t| NEGATIONS.contains(&t.word.as_str()))
}

/// Replies that accept a request.
const AFFIRMATIVE: &[&[&str]] = &[
    &["yes"],
    &["yeah"],
    &["yep"],
    &["yup"],
    &["sure"],
    &["ok"],
    &["okay"],
    &["of", "course"],
    &["will", "do"],
    &["no", "problem"],
    &["no", "worries"],
    &["absolutely"],
    &["definitely"],
    &["sounds", "good"],
    &["i", "can"],
    &["i'll"],
    &["i", "will"],
    &["on", "it"],
    &["i'm", "on", "it"],
    &["happy", "to"],
    &["fine"],
    &["alright"],
    &["got", "it"],
    &["consider", "it", "done"],
    &["oui"],
    &["ouais"],
    &["d'accord"],
    &["bien", "sûr"],
    &["pas", "de", "souci"],
    &["pas", "de", "soucis"],
    &["pas", "de", "problème"],
    &["ça", "marche"],
    &["je", "m'en", "occupe"],
    &["je", "m'en", "charge"],
    &["entendu"],
    &["volontiers"],
    &["c'est", "noté"],
    &["noté"],
    &["carrément"],
    &["sans", "problème"],
    &["je", "peux"],
    &["je", "vais"],
    &["je", "le", "fais"],
    &["je", "prends"],
    &["ok", "je"],
    &["vas-y"],
    &["parfait"],
];

/// Replies that decline, even when they start politely.
const DECLINING: &[&[&str]] = &[
    &["no"],
    &["non"],
    &["nope"],
    &["i", "can't"],
    &["i", "cannot"],
    &["not"],
    &["je", "ne"],
    &["je", "peux", "pas"],
    &["pas", "moi"],
    &["unfortunately"],
    &["malheureusement"],
    &["i", "won't"],
    &["sorry"],
    &["désolé"],
    &["désolée"],
    &["hmm"],
    &["euh", "non"],
];

/// Whether a reply accepts: it starts with an affirmative and does not decline.
pub fn accepts(tokens: &[Token]) -> bool {
    let starts = |list: &[&[&str]]| list.iter().any(|p| seq(tokens, 0, p));
    if starts(DECLINING)
        && !seq(tokens, 0, &["no", "problem"])
        && !seq(tokens, 0, &["no", "worries"])
    {
        return false;
    }
    if !starts(AFFIRMATIVE) {
        return false;
    }
    // "Yes, but I can't this week" declines after all.
    !tokens
        .iter()
        .take(8)
        .any(|t| matches!(t.word.as_str(), "can't" | "cannot" | "won't"))
        && !seq(tokens, 1, &["but", "i", "can't"])
        && find_seq(tokens, 0, &["peux", "pas"]).is_none()
}

/// Replies that leave a question open.
const UNSURE: &[&[&str]] = &[
    &["i", "don't", "know"],
    &["i", "do", "not", "know"],
    &["no", "idea"],
    &["good", "question"],
    &["not", "sure"],
    &["i'm", "not", "sure"],
    &["hard", "to", "say"],
    &["we'll", "see"],
    &["nobody", "knows"],
    &["no", "one", "knows"],
    &["dunno"],
    &["je", "ne", "sais", "pas"],
    &["je", "sais", "pas"],
    &["aucune", "idée"],
    &["bonne", "question"],
    &["on", "verra"],
    &["pas", "sûr"],
    &["pas", "sûre"],
    &["difficile", "à", "dire"],
    &["je", "ne", "suis", "pas", "sûr"],
    &["je", "suis", "pas", "sûr"],
    &["personne", "ne", "sait"],
    &["aucune", "visibilité"],
];

/// Whether a reply says the answer is unknown, in its first words.
pub fn is_unsure(tokens: &[Token]) -> bool {
    let limit = tokens.len().min(6);
    (0..limit).any(|at| UNSURE.iter().any(|p| seq(tokens, at, p)))
}

/// Words that start a sentence without adding to it ("So, …", "Bon, …").
pub const FILLERS: &[&str] = &[
    "so",
    "ok",
    "okay",
    "alright",
    "right",
    "good",
    "great",
    "fine",
    "then",
    "and",
    "well",
    "bon",
    "alors",
    "donc",
    "parfait",
    "très",
    "bien",
    "super",
    "ben",
    "bah",
    "euh",
    "um",
    "uh",
    "voilà",
    "yes",
    "oui",
    "et",
    "perfect",
    "excellent",
    "cool",
    "yeah",
    "hm",
    "hmm",
    "allez",
    "good",
    "d'accord",
    "now",
    "maintenant",
];

/// Drops leading fillers and labels: "OK so, we agreed…" gives "we agreed…".
pub fn strip_fillers<'s>(text: &'s str, tokens: &[Token]) -> &'s str {
    let mut start = 0;
    for token in tokens {
        if FILLERS.contains(&token.word.as_str()) {
            start = token.end;
        } else {
            break;
        }
    }
    let rest = &text[start..];
    rest.trim_start_matches(|c: char| {
        c.is_whitespace() || matches!(c, ',' | ';' | ':' | '.' | '!' | '-' | '–')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::tokens;

    #[test]
    fn hypotheticals_are_recognised_but_polite_conditions_are_not() {
        assert!(is_hypothetical(&tokens(
            "if we get the budget, I'll hire someone"
        )));
        assert!(is_hypothetical(&tokens(
            "si on a le budget, je vais recruter"
        )));
        assert!(!is_hypothetical(&tokens(
            "I'll send it by Friday, if that's ok"
        )));
        assert!(!is_hypothetical(&tokens("c'est si simple")));
    }

    #[test]
    fn replies_that_accept_or_decline() {
        assert!(accepts(&tokens("sure, I'll do it by Monday")));
        assert!(accepts(&tokens("oui, pas de souci")));
        assert!(accepts(&tokens("no problem")));
        assert!(!accepts(&tokens("no, I can't this week")));
        assert!(!accepts(&tokens("yes but I can't before May")));
        assert!(!accepts(&tokens("euh, je ne peux pas")));
        assert!(!accepts(&tokens("oui mais je peux pas cette semaine")));
    }

    #[test]
    fn strips_leading_fillers() {
        let text = "OK so, we agreed to ship.";
        assert_eq!(strip_fillers(text, &tokens(text)), "we agreed to ship.");
    }
}
