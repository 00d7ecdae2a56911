//! Open questions: what was explicitly left open ("open question", "still
//! to be decided", "à voir", "reste à définir") and questions that got no
//! answer, either because nobody spoke after them or because the reply was
//! "I don't know" / "bonne question".

use crate::cues::{NEGATIONS, find_seq, is_unsure, negated_before, strip_fillers, word};
use crate::dialogue::Dialogue;
use crate::language::Language;
use crate::text::{Sentence, tidy};

const OPEN_CUES: &[&[&str]] = &[
    &["open", "question"],
    &["still", "open"],
    &["to", "be", "determined"],
    &["tbd"],
    &["to", "be", "decided"],
    &["remains", "to", "be", "seen"],
    &["still", "need", "to", "figure", "out"],
    &["still", "need", "to", "decide"],
    &["don't", "know", "yet"],
    &["haven't", "decided"],
    &["not", "decided", "yet"],
    &["still", "unclear"],
    &["unresolved"],
    &["to", "be", "confirmed"],
    &["à", "voir"],
    &["reste", "à", "définir"],
    &["reste", "à", "voir"],
    &["reste", "à", "décider"],
    &["reste", "à", "trancher"],
    &["question", "ouverte"],
    &["à", "trancher"],
    &["pas", "encore", "tranché"],
    &["pas", "encore", "décidé"],
    &["sait", "pas", "encore"],
    &["à", "définir"],
    &["à", "clarifier"],
    &["en", "suspens"],
    &["point", "ouvert"],
    &["à", "confirmer"],
];

/// Questions about the call itself, never open questions of the meeting.
const SMALL_TALK: &[&str] = &[
    "hear me",
    "see my screen",
    "see me",
    "everyone here",
    "m'entendez",
    "m'entends",
    "mon écran",
    "tout le monde est là",
    "ça va",
    "how are you",
    "right?",
    "ok?",
    "okay?",
    "non ?",
    "d'accord ?",
];

/// Finds the open questions of a dialogue, in the order they were said.
pub fn find(dialogue: &Dialogue<'_>) -> Vec<String> {
    let mut questions: Vec<String> = Vec::new();
    for sentence in &dialogue.sentences {
        let tokens = sentence.tokens();
        let cue = OPEN_CUES
            .iter()
            .filter_map(|c| find_seq(&tokens, 0, c).map(|at| (at, *c)))
            .find(|&(at, c)| {
                word(&tokens, at.wrapping_sub(1)) != "rien" && !cue_negated(&tokens, at, c)
            });
        let open = match cue {
            Some(_) => content_words(sentence) >= 3,
            None => sentence.is_question() && is_unanswered(dialogue, sentence),
        };
        if !open {
            continue;
        }
        let text = tidy(strip_fillers(&sentence.text, &tokens));
        if !questions.contains(&text) {
            questions.push(text);
        }
    }
    questions
}

/// "It's not an open question any more": a cue negated from outside. Cues
/// that are negative themselves ("not decided yet", "on ne sait pas encore")
/// stay open.
fn cue_negated(tokens: &[crate::text::Token], at: usize, cue: &[&str]) -> bool {
    !cue.iter().any(|w| NEGATIONS.contains(w)) && negated_before(tokens, at, 2)
}

/// A real question (not small talk, not a one-word check) that ends its
/// speaker's turn and gets no answer.
fn is_unanswered(dialogue: &Dialogue<'_>, sentence: &Sentence) -> bool {
    let lower = sentence.text.to_lowercase();
    if SMALL_TALK.iter().any(|s| lower.contains(s)) {
        return false;
    }
    if content_words(sentence) < 3 || !dialogue.ends_turn(sentence) {
        return false;
    }
    match dialogue.replies(sentence.segment, 1).first() {
        None => true,
        Some(&reply) => dialogue
            .sentences_of(reply)
            .first()
            .is_some_and(|first| is_unsure(&first.tokens())),
    }
}

/// Words of a sentence that are not stop words of either language.
fn content_words(sentence: &Sentence) -> usize {
    sentence
        .tokens()
        .iter()
        .filter(|t| {
            !Language::English.is_stop_word(&t.word) && !Language::French.is_stop_word(&t.word)
        })
        .count()
}
