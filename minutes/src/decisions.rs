//! Decisions: statements with a decision cue ("we agreed", "let's go with",
//! "on a décidé", "c'est validé", "on part sur"), unless they are questions,
//! hypotheses or negated ("we haven't decided", "rien n'est acté").

use crate::cues::{find_seq, is_hypothetical, is_reported, negated_before, strip_fillers};
use crate::dialogue::Dialogue;
use crate::language::Language;
use crate::text::{Token, tidy, tokens};

const ENGLISH_CUES: &[&[&str]] = &[
    &["we", "agreed"],
    &["we've", "agreed"],
    &["we", "have", "agreed"],
    &["we", "all", "agree"],
    &["we", "decided"],
    &["we've", "decided"],
    &["we", "have", "decided"],
    &["it's", "decided"],
    &["decision", "is"],
    &["let's", "go", "with"],
    &["we'll", "go", "with"],
    &["we", "will", "go", "with"],
    &["we're", "going", "with"],
    &["we", "are", "going", "with"],
    &["we'll", "stick", "with"],
    &["let's", "stick", "with"],
    &["we", "settled", "on"],
    &["that's", "decided"],
    &["that's", "settled"],
    &["it's", "settled"],
    &["is", "approved"],
    &["are", "approved"],
    &["final", "decision"],
    &["we're", "going", "ahead", "with"],
    &["we", "go", "ahead", "with"],
    &["let's", "move", "forward", "with"],
    &["we", "chose"],
    &["we've", "chosen"],
    &["we", "approve"],
    &["agreed", "then"],
];

const FRENCH_CUES: &[&[&str]] = &[
    &["on", "a", "décidé"],
    &["nous", "avons", "décidé"],
    &["on", "décide"],
    &["c'est", "décidé"],
    &["c'est", "validé"],
    &["on", "valide"],
    &["c'est", "acté"],
    &["on", "acte"],
    &["acté"],
    &["on", "part", "sur"],
    &["on", "est", "d'accord", "pour"],
    &["on", "est", "tous", "d'accord"],
    &["nous", "sommes", "d'accord"],
    &["on", "garde"],
    &["on", "retient"],
    &["on", "reste", "sur"],
    &["on", "s'est", "mis", "d'accord"],
    &["on", "s'est", "accordé"],
    &["c'est", "tranché"],
    &["on", "a", "tranché"],
    &["on", "a", "validé"],
    &["nous", "avons", "validé"],
    &["on", "a", "choisi"],
    &["nous", "avons", "choisi"],
    &["on", "adopte"],
    &["on", "opte", "pour"],
    &["décision", "prise"],
    &["c'est", "entériné"],
];

/// Finds the decisions of a dialogue, in the order they were said.
pub fn find(dialogue: &Dialogue<'_>) -> Vec<String> {
    let cues = match dialogue.lang {
        Language::English => ENGLISH_CUES,
        Language::French => FRENCH_CUES,
    };
    let mut decisions: Vec<String> = Vec::new();
    for sentence in &dialogue.sentences {
        if sentence.is_question() {
            continue;
        }
        let tokens = sentence.tokens();
        let lower = sentence.text.to_lowercase();
        let labelled = lower.starts_with("decision:")
            || lower.starts_with("décision :")
            || lower.starts_with("décision:");
        let cue = cues.iter().filter_map(|c| find_seq(&tokens, 0, c)).min();
        let Some(at) = cue.or(labelled.then_some(0)) else {
            continue;
        };
        if is_hypothetical(&tokens) || negated_before(&tokens, at, 3) || is_reported(&tokens, at) {
            continue;
        }
        let text = tidy(&label_stripped(strip_fillers(&sentence.text, &tokens)));
        if text.chars().filter(|c| c.is_alphabetic()).count() < 8 {
            continue;
        }
        if !decisions.iter().any(|d| same(d, &text)) {
            decisions.push(text);
        }
    }
    decisions
}

fn label_stripped(text: &str) -> String {
    let lower = text.to_lowercase();
    for label in ["decision:", "décision :", "décision:"] {
        if lower.starts_with(label) {
            return text[label.len()..].trim().to_string();
        }
    }
    text.trim().to_string()
}

/// Whether two decisions say the same (a recap repeats an earlier one).
fn same(a: &str, b: &str) -> bool {
    let words = |t: &str| -> Vec<String> {
        let mut w: Vec<String> = tokens(t)
            .into_iter()
            .map(|t: Token| t.word)
            .filter(|w| !Language::English.is_stop_word(w) && !Language::French.is_stop_word(w))
            .collect();
        w.sort();
        w.dedup();
        w
    };
    let (a, b) = (words(a), words(b));
    let shared = a.iter().filter(|w| b.contains(w)).count();
    let smaller = a.len().min(b.len()).max(1);
    shared * 5 >= smaller * 4
}
