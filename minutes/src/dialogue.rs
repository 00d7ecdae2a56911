//! A meeting prepared for cue detection: its sentences in order, who said
//! each, and the names by which participants can be addressed or mentioned.
//!
//! Consecutive segments of one speaker form a turn; "the next turn" is the
//! first later segment spoken by somebody else.

use crate::language::Language;
use crate::meeting::Meeting;
use crate::text::{Sentence, Token, split_sentences, tokens};

/// Sentences of a meeting with their speakers and the participants' names.
#[derive(Debug)]
pub struct Dialogue<'a> {
    pub meeting: &'a Meeting,
    pub lang: Language,
    pub sentences: Vec<Sentence>,
    /// For each segment, the index of its first sentence in `sentences`.
    first_sentence: Vec<usize>,
    names: Vec<Name>,
}

/// One way of naming a participant: a run of lowercase words.
#[derive(Debug, Clone)]
struct Name {
    words: Vec<String>,
    mxid: String,
}

impl<'a> Dialogue<'a> {
    pub fn new(meeting: &'a Meeting, lang: Language) -> Dialogue<'a> {
        let mut sentences = Vec::new();
        let mut first_sentence = Vec::with_capacity(meeting.segments.len());
        for (index, segment) in meeting.segments.iter().enumerate() {
            first_sentence.push(sentences.len());
            sentences.extend(split_sentences(&segment.text, index));
        }
        Dialogue {
            meeting,
            lang,
            sentences,
            first_sentence,
            names: names_of(meeting),
        }
    }

    /// The speaker (mxid) of a sentence.
    pub fn speaker(&self, sentence: &Sentence) -> &'a str {
        &self.meeting.segments[sentence.segment].speaker
    }

    /// The display name of the speaker of a sentence.
    pub fn speaker_name(&self, sentence: &Sentence) -> &'a str {
        self.meeting
            .speaker_name(&self.meeting.segments[sentence.segment])
    }

    /// The sentences of one segment.
    pub fn sentences_of(&self, segment: usize) -> &[Sentence] {
        let start = self.first_sentence[segment];
        let end = self
            .first_sentence
            .get(segment + 1)
            .copied()
            .unwrap_or(self.sentences.len());
        &self.sentences[start..end]
    }

    /// The later segments, up to `limit`, that are spoken by someone other
    /// than the speaker of `segment`, skipping that speaker's own follow-ups.
    pub fn replies(&self, segment: usize, limit: usize) -> Vec<usize> {
        let speaker = &self.meeting.segments[segment].speaker;
        (segment + 1..self.meeting.segments.len())
            .filter(|&i| &self.meeting.segments[i].speaker != speaker)
            .take(limit)
            .collect()
    }

    /// Whether this sentence ends its speaker's turn: it is the last sentence
    /// of its segment and the next segment (if any) is someone else's.
    pub fn ends_turn(&self, sentence: &Sentence) -> bool {
        let last = self.sentences_of(sentence.segment).last() == Some(sentence);
        let next_same = self
            .meeting
            .segments
            .get(sentence.segment + 1)
            .is_some_and(|next| next.speaker == self.meeting.segments[sentence.segment].speaker);
        last && !next_same
    }

    /// The participant named by the words starting at `tokens[at]`, and how
    /// many words the name takes. The longest name wins.
    pub fn name_at(&self, tokens: &[Token], at: usize) -> Option<(&str, usize)> {
        self.names
            .iter()
            .filter(|name| {
                name.words.len() <= tokens.len().saturating_sub(at)
                    && name
                        .words
                        .iter()
                        .zip(&tokens[at..])
                        .all(|(w, t)| *w == t.word)
            })
            .max_by_key(|name| name.words.len())
            .map(|name| (name.mxid.as_str(), name.words.len()))
    }
}

/// The ways participants can be named: the full display name, its first word
/// and the user id's localpart. A word shared by two people names nobody, and
/// a word that is also a common word ("Will", "Bon") is not used alone.
fn names_of(meeting: &Meeting) -> Vec<Name> {
    let mut names: Vec<Name> = Vec::new();
    for participant in meeting.everyone() {
        let mut forms: Vec<Vec<String>> = Vec::new();
        if let Some(display) = participant.display_name.as_deref() {
            let words: Vec<String> = tokens(display).into_iter().map(|t| t.word).collect();
            if !words.is_empty() {
                forms.push(vec![words[0].clone()]);
                forms.push(words);
            }
        }
        let localpart = participant
            .mxid
            .trim_start_matches('@')
            .split(':')
            .next()
            .unwrap_or("");
        let localpart: Vec<String> = tokens(localpart).into_iter().map(|t| t.word).collect();
        if localpart.len() == 1 {
            forms.push(localpart);
        }
        forms.dedup();
        for words in forms {
            if words.len() == 1 && is_common_word(&words[0]) {
                continue;
            }
            names.push(Name {
                words,
                mxid: participant.mxid.clone(),
            });
        }
    }
    // Drop forms that name more than one person.
    let ambiguous: Vec<Vec<String>> = names
        .iter()
        .filter(|a| names.iter().any(|b| a.words == b.words && a.mxid != b.mxid))
        .map(|a| a.words.clone())
        .collect();
    names.retain(|n| !ambiguous.contains(&n.words));
    names.sort_by(|a, b| a.words.cmp(&b.words).then(a.mxid.cmp(&b.mxid)));
    names.dedup_by(|a, b| a.words == b.words && a.mxid == b.mxid);
    names
}

fn is_common_word(word: &str) -> bool {
    word.chars().count() < 2
        || Language::English.is_stop_word(word)
        || Language::French.is_stop_word(word)
}
