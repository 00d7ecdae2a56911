//! Action items: who said they would do what, and by when.
//!
//! Only commitments that were said are kept. A first-person promise ("I'll…",
//! "je vais…", "je m'en occupe") belongs to the speaker of that turn; a named
//! one ("Alice will…", "Bob va…", "Claire se charge de…") to the person named;
//! a request ("Bob, can you…?", "tu peux…?") only when the person asked
//! accepts in their next turn. Questions, negations, hypotheses, hedges,
//! reported speech and past tense give no action, and nobody is guessed as an
//! owner: "he will" or "we'll" are left out rather than attributed.
//!
//! A promise that only points back ("I'll do it", "je m'en occupe") takes its
//! text from the open request it answers ("Who can book the room?"); with no
//! such request, it is dropped.

use crate::cues::{NEGATIONS, accepts, find_seq, is_hypothetical, is_reported, seq, word};
use crate::deadline;
use crate::dialogue::Dialogue;
use crate::language::Language;
use crate::minutes::Action;
use crate::text::{Sentence, Token, tidy, tokens};

/// A commitment found in a sentence, before its text is cut out.
#[derive(Debug)]
struct Commitment {
    owners: Vec<String>,
    /// Token where the action's text starts (usually the verb).
    verb: usize,
    /// Words to put before the text ("s'occuper" for "je m'occupe du budget").
    prefix: Option<&'static str>,
    /// The phrase only points back ("I'm on it", "je m'en occupe").
    points_back: bool,
    /// A present tense that is a commitment only with a deadline ("je l'envoie jeudi").
    needs_deadline: bool,
}

/// Finds the action items of a dialogue, in the order they were said.
pub fn find(dialogue: &Dialogue<'_>) -> Vec<Action> {
    let mut actions: Vec<Action> = Vec::new();
    // Segments whose pointing-back promise answered a request already counted.
    let mut answered: Vec<usize> = Vec::new();
    for (index, sentence) in dialogue.sentences.iter().enumerate() {
        let tokens = sentence.tokens();
        if sentence.is_question() {
            if let Some((action, reply)) = accepted_request(dialogue, sentence, &tokens) {
                answered.push(reply);
                push(&mut actions, action);
            }
            continue;
        }
        if is_hypothetical(&tokens) {
            continue;
        }
        for commitment in commitments(dialogue, sentence, &tokens) {
            let Some((text, due, points_back)) = cut(dialogue, sentence, &tokens, &commitment)
            else {
                continue;
            };
            let (text, due) = if points_back {
                if answered.contains(&sentence.segment) {
                    continue;
                }
                match antecedent(dialogue, index) {
                    Some((antecedent_text, antecedent_due)) => {
                        (antecedent_text, due.or(antecedent_due))
                    }
                    None => continue,
                }
            } else {
                (text, due)
            };
            for owner in &commitment.owners {
                push(
                    &mut actions,
                    Action {
                        owner: Some(owner.clone()),
                        text: text.clone(),
                        due: due.clone(),
                    },
                );
            }
        }
    }
    actions
}

/// Adds an action unless the same owner already has one saying the same
/// (a recap at the end of a meeting repeats earlier promises); a repeat may
/// bring the deadline the first mention lacked.
fn push(actions: &mut Vec<Action>, action: Action) {
    let words = content_words(&action.text);
    for existing in actions.iter_mut() {
        if existing.owner != action.owner {
            continue;
        }
        let other = content_words(&existing.text);
        let shared = words.iter().filter(|w| other.contains(w)).count();
        let smaller = words.len().min(other.len()).max(1);
        if shared * 3 >= smaller * 2 {
            if existing.due.is_none() {
                existing.due = action.due;
            }
            return;
        }
    }
    actions.push(action);
}

fn content_words(text: &str) -> Vec<String> {
    let mut words: Vec<String> = tokens(text)
        .into_iter()
        .map(|t| t.word)
        .filter(|w| !is_empty_word(w))
        .map(|w| stem(&w))
        .collect();
    words.sort();
    words.dedup();
    words
}

fn stem(word: &str) -> String {
    let word = word.rsplit('\'').next().unwrap_or(word);
    for suffix in ["ing", "ed", "es", "s", "er", "é", "ée", "és", "ées"] {
        if word.chars().count() > suffix.chars().count() + 3
            && let Some(stripped) = word.strip_suffix(suffix)
        {
            return stripped.to_string();
        }
    }
    word.to_string()
}

/// Words that carry no content of their own in an action's text.
const GENERIC: &[&str] = &[
    "care",
    "it",
    "that",
    "this",
    "one",
    "ça",
    "cela",
    "faire",
    "do",
    "handle",
    "take",
    "s'en",
    "m'en",
    "occuper",
    "charger",
    "prendre",
    "action",
    "sujet",
    "point",
    "truc",
    "thing",
    "stuff",
    "l'action",
    "point",
    "le",
    "la",
    "les",
    "l'envoyer",
    "l'envoie",
];

fn is_empty_word(word: &str) -> bool {
    Language::English.is_stop_word(word)
        || Language::French.is_stop_word(word)
        || GENERIC.contains(&word)
}

/// English verbs that, after "I'll" and the like, do not make a task.
const ENGLISH_NOT_TASKS: &[&str] = &[
    "be",
    "see",
    "know",
    "need",
    "think",
    "like",
    "want",
    "miss",
    "remember",
    "say",
    "start",
    "begin",
    "summarize",
    "summarise",
    "recap",
    "wrap",
    "hand",
    "pass",
    "show",
    "explain",
    "present",
    "go",
    "keep",
    "stop",
    "leave",
    "talk",
    "mention",
    "admit",
    "repeat",
    "jump",
    "hear",
    "stay",
    "let",
    "drop",
    "hop",
    "continue",
    "turn",
    "walk",
    "wait",
    "guess",
    "bet",
    "note",
    "tell",
    "have",
    "love",
    "hate",
    "agree",
    "disagree",
    "bring",
    "read",
    "share",
];

/// French infinitives that, after "je vais" and the like, do not make a task.
const FRENCH_NOT_TASKS: &[&str] = &[
    "être",
    "avoir",
    "devoir",
    "pouvoir",
    "falloir",
    "vouloir",
    "dire",
    "commencer",
    "résumer",
    "récapituler",
    "conclure",
    "couper",
    "laisser",
    "présenter",
    "montrer",
    "expliquer",
    "partir",
    "arrêter",
    "parler",
    "répéter",
    "reprendre",
    "enchaîner",
    "continuer",
    "passer",
    "rester",
    "croire",
    "penser",
    "savoir",
    "partager",
    "aimer",
    "noter",
];

/// Phrases of running the meeting itself, not tasks for after it.
const MEETING_TALK: &[&str] = &[
    "screen",
    "écran",
    "the floor",
    "la parole",
    "tour de table",
    "move on",
    "next point",
    "next item",
    "next topic",
    "point suivant",
    "sujet suivant",
    "faire court",
    "faire vite",
    "go first",
    "keep it short",
    "be quick",
    "hand over",
    "in a minute",
    "dans une minute",
    "on mute",
    "le micro",
    "my mic",
];

const ENGLISH_ADVERBS: &[&str] = &[
    "also",
    "just",
    "then",
    "definitely",
    "certainly",
    "quickly",
    "personally",
    "happily",
    "gladly",
    "probably",
    "first",
    "still",
    "actually",
    "really",
    "now",
    "both",
    "all",
];

const FRENCH_ADVERBS: &[&str] = &[
    "aussi",
    "également",
    "bien",
    "juste",
    "rapidement",
    "vite",
    "d'abord",
    "ensuite",
    "donc",
    "personnellement",
    "directement",
];

/// French object pronouns that may sit between the subject and the verb.
const CLITICS: &[&str] = &[
    "le", "la", "les", "lui", "leur", "en", "y", "vous", "te", "me", "nous", "se", "l'", "t'", "m'",
];

/// French verbs in the first person present that are a commitment when a deadline follows.
const FRENCH_PRESENT_FIRST: &[&str] = &[
    "envoie",
    "prépare",
    "fais",
    "regarde",
    "relance",
    "rédige",
    "mets",
    "contacte",
    "appelle",
    "écris",
    "organise",
    "vérifie",
    "transmets",
    "réserve",
    "finalise",
    "termine",
    "planifie",
    "commande",
    "publie",
    "corrige",
    "gère",
    "lance",
    "boucle",
    "cale",
    "programme",
    "rappelle",
];
const FRENCH_PRESENT_THIRD: &[&str] = &[
    "envoie",
    "prépare",
    "fait",
    "regarde",
    "relance",
    "rédige",
    "met",
    "contacte",
    "appelle",
    "écrit",
    "organise",
    "vérifie",
    "transmet",
    "réserve",
    "finalise",
    "termine",
    "planifie",
    "commande",
    "publie",
    "corrige",
    "gère",
    "lance",
    "boucle",
    "cale",
    "programme",
    "rappelle",
];
const FRENCH_NOT_FUTURE: &[&str] = &[
    "serai", "aurai", "pourrai", "devrai", "saurai", "voudrai", "faudrai", "vrai", "sera", "aura",
    "pourra", "devra", "faudra", "saura", "voudra", "seras", "auras", "pourras", "devras", "serez",
    "aurez", "pourrez", "devrez", "verra", "verrai", "verras", "verrez", "seront", "auront",
    "pourront", "devront", "sauront", "voudront", "verront", "faudront",
];

/// Subjects that start a new clause after a comma or "and".
const SUBJECTS: &[&str] = &[
    "i", "i'll", "i'm", "we", "we'll", "you", "you'll", "he", "she", "they", "it", "je", "on",
    "nous", "tu", "vous", "il", "elle", "ils", "elles", "ça", "c'est",
];
/// Words that end the clause of an action.
const CLAUSE_ENDS: &[&str] = &[
    "but",
    "mais",
    "because",
    "parce",
    "car",
    "although",
    "though",
    "while",
    "whereas",
    "tandis",
    "sinon",
    "otherwise",
    "so",
    "donc",
    "comme",
];

fn is_infinitive(word: &str) -> bool {
    word.chars().count() >= 4
        && ["er", "ir", "re", "oir"].iter().any(|s| word.ends_with(s))
        && word.chars().all(|c| c.is_alphabetic() || c == '-')
}

/// Strips an elided pronoun glued to a verb: "l'envoyer" gives "envoyer".
fn bare(word: &str) -> &str {
    for prefix in ["l'", "m'", "t'", "s'", "j'", "d'", "n'"] {
        if let Some(rest) = word.strip_prefix(prefix) {
            return rest;
        }
    }
    word
}

fn is_future(word: &str, endings: &[&str]) -> bool {
    let word = bare(word);
    word.chars().count() > 4
        && endings.iter().any(|e| word.ends_with(e))
        && !FRENCH_NOT_FUTURE.contains(&word)
        && word.chars().all(char::is_alphabetic)
}

fn skip_clitics(tokens: &[Token], mut at: usize) -> usize {
    while at < tokens.len() && CLITICS.contains(&word(tokens, at)) {
        at += 1;
    }
    at
}

/// The first commitment-bearing verb from `at`, for English.
fn english_verb(tokens: &[Token], mut at: usize) -> Option<usize> {
    loop {
        if ENGLISH_ADVERBS.contains(&word(tokens, at)) {
            at += 1;
        } else if seq(tokens, at, &["try", "to"]) {
            at += 2;
        } else if seq(tokens, at, &["go", "ahead", "and"]) {
            at += 3;
        } else {
            break;
        }
    }
    let verb = word(tokens, at);
    if verb.is_empty()
        || NEGATIONS.contains(&verb)
        || ENGLISH_NOT_TASKS.contains(&verb)
        || !verb.chars().all(|c| c.is_alphabetic() || c == '-')
    {
        return None;
    }
    Some(at)
}

/// The infinitive after "vais", "va", "peux"…, past clitics, "aller" and "essayer de".
fn french_infinitive(tokens: &[Token], at: usize) -> Option<usize> {
    let mut at = skip_clitics(tokens, at);
    loop {
        let w = word(tokens, at);
        if FRENCH_ADVERBS.contains(&w) || w == "aller" {
            at = skip_clitics(tokens, at + 1);
        } else if w == "essayer" && word(tokens, at + 1) == "de" {
            at = skip_clitics(tokens, at + 2);
        } else if w == "essayer" && word(tokens, at + 1).starts_with("d'") {
            at += 1;
        } else {
            break;
        }
    }
    let verb = bare(word(tokens, at));
    if !is_infinitive(verb) || FRENCH_NOT_TASKS.contains(&verb) {
        return None;
    }
    if matches!(word(tokens, at + 1), "que" | "qu'") || word(tokens, at + 1).starts_with("qu'") {
        return None;
    }
    Some(at)
}

/// After "m'occupe", "se charge": "de réserver" gives the infinitive,
/// "du budget" gives "s'occuper du budget".
fn of_what(
    tokens: &[Token],
    at: usize,
    prefix: &'static str,
) -> Option<(usize, Option<&'static str>)> {
    let w = word(tokens, at);
    if w == "de" {
        if let Some(verb) = french_infinitive(tokens, at + 1)
            .filter(|&v| v == at + 1 || v == skip_clitics(tokens, at + 1))
        {
            return Some((verb, None));
        }
        return Some((at, Some(prefix)));
    }
    if w.starts_with("d'") && is_infinitive(bare(w)) {
        return Some((at, None));
    }
    if matches!(w, "du" | "des") || w.starts_with("d'") {
        return Some((at, Some(prefix)));
    }
    None
}

/// Names joined by "and"/"et" starting at `at`: their user ids and where they end.
fn names_at(dialogue: &Dialogue<'_>, tokens: &[Token], at: usize) -> Option<(Vec<String>, usize)> {
    let (first, len) = dialogue.name_at(tokens, at)?;
    let mut owners = vec![first.to_string()];
    let mut end = at + len;
    while matches!(word(tokens, end), "and" | "et") {
        match dialogue.name_at(tokens, end + 1) {
            Some((next, len)) => {
                owners.push(next.to_string());
                end += 1 + len;
            }
            None => break,
        }
    }
    Some((owners, end))
}

/// The participant named at the very end of a sentence ("…, Bob?").
fn trailing_name(dialogue: &Dialogue<'_>, tokens: &[Token]) -> Option<(String, usize)> {
    (1..=3.min(tokens.len())).rev().find_map(|len| {
        let at = tokens.len() - len;
        dialogue
            .name_at(tokens, at)
            .filter(|(_, l)| *l == len)
            .map(|(mxid, _)| (mxid.to_string(), at))
    })
}

/// All commitments in a statement.
fn commitments(dialogue: &Dialogue<'_>, sentence: &Sentence, tokens: &[Token]) -> Vec<Commitment> {
    let speaker = dialogue.speaker(sentence).to_string();
    let mut found = Vec::new();
    let mut at = 0;
    while at < tokens.len() {
        let commitment = match dialogue.lang {
            Language::English => english_commitment(dialogue, tokens, at, &speaker),
            Language::French => french_commitment(dialogue, tokens, at, &speaker),
        };
        match commitment {
            Some(c) if !is_reported(tokens, at) => {
                at = c.verb + 1;
                found.push(c);
            }
            _ => at += 1,
        }
    }
    found
}

fn simple(owner: &str, verb: usize) -> Commitment {
    Commitment {
        owners: vec![owner.to_string()],
        verb,
        prefix: None,
        points_back: false,
        needs_deadline: false,
    }
}

fn pointing_back(owner: &str, verb: usize) -> Commitment {
    Commitment {
        points_back: true,
        ..simple(owner, verb)
    }
}

const ENGLISH_POINTING_BACK: &[&[&str]] = &[
    &["i'm", "on", "it"],
    &["leave", "it", "with", "me"],
    &["i", "can", "do", "that"],
    &["i", "can", "do", "it"],
    &["i", "can", "take", "that"],
    &["i", "can", "take", "it"],
    &["i", "can", "handle", "that"],
    &["i", "can", "handle", "it"],
    &["i", "volunteer"],
    &["count", "me", "in"],
];

fn english_commitment(
    dialogue: &Dialogue<'_>,
    tokens: &[Token],
    at: usize,
    speaker: &str,
) -> Option<Commitment> {
    if ENGLISH_POINTING_BACK.iter().any(|p| seq(tokens, at, p)) {
        return Some(pointing_back(speaker, at));
    }
    let first_person = if word(tokens, at) == "i'll" {
        Some(at + 1)
    } else if seq(tokens, at, &["i", "will"])
        || seq(tokens, at, &["let", "me"])
        || seq(tokens, at, &["i'm", "gonna"])
    {
        Some(at + 2)
    } else if seq(tokens, at, &["i'm", "going", "to"]) {
        Some(at + 3)
    } else if seq(tokens, at, &["i", "am", "going", "to"]) {
        Some(at + 4)
    } else {
        None
    };
    if let Some(after) = first_person {
        return english_verb(tokens, after).map(|verb| simple(speaker, verb));
    }
    // "please send the slides, Bob" / "Bob, please send the slides"
    if word(tokens, at) == "please" && at == 0 {
        let (owner, _) = trailing_name(dialogue, tokens)?;
        return english_verb(tokens, at + 1).map(|verb| simple(&owner, verb));
    }
    let (owners, end) = names_at(dialogue, tokens, at)?;
    let after = if word(tokens, end) == "will"
        || word(tokens, end) == "you'll"
        || word(tokens, end) == "please"
    {
        end + 1
    } else if seq(tokens, end, &["is", "going", "to"])
        || seq(tokens, end, &["are", "going", "to"])
        || seq(tokens, end, &["you", "will"])
    {
        end + 2 + usize::from(word(tokens, end + 1) == "going")
    } else if seq(tokens, end, &["is", "gonna"]) || seq(tokens, end, &["you're", "going", "to"]) {
        end + 2 + usize::from(word(tokens, end) == "you're")
    } else if seq(tokens, end, &["you", "are", "going", "to"]) {
        end + 4
    } else {
        return None;
    };
    // "Bob, please…" and "Bob, you'll…" only when Bob opens the sentence.
    if matches!(word(tokens, end), "please" | "you'll" | "you" | "you're") && at != 0 {
        return None;
    }
    let verb = english_verb(tokens, after)?;
    Some(Commitment {
        owners,
        ..simple("", verb)
    })
}

const FRENCH_POINTING_BACK: &[&[&str]] = &[
    &["m'en", "occupe"],
    &["m'en", "charge"],
    &["prends", "ça"],
    &["prends", "l'action"],
    &["prends", "cette", "action"],
    &["prends", "le", "sujet"],
    &["prends", "ce", "point"],
    &["peux", "m'en", "occuper"],
    &["peux", "m'en", "charger"],
    &["peux", "le", "faire"],
    &["le", "fais"],
    &["vais", "le", "faire"],
    &["vais", "m'en", "occuper"],
    &["vais", "m'en", "charger"],
];

fn french_commitment(
    dialogue: &Dialogue<'_>,
    tokens: &[Token],
    at: usize,
    speaker: &str,
) -> Option<Commitment> {
    let w = word(tokens, at);
    if w == "je" {
        let next = at + 1;
        if FRENCH_POINTING_BACK.iter().any(|p| seq(tokens, next, p)) {
            return Some(pointing_back(speaker, next));
        }
        if word(tokens, next) == "m'occupe" {
            let (verb, prefix) = of_what(tokens, next + 1, "s'occuper")?;
            return Some(Commitment {
                prefix,
                ..simple(speaker, verb)
            });
        }
        if seq(tokens, next, &["me", "charge"]) {
            let (verb, prefix) = of_what(tokens, next + 2, "se charger")?;
            return Some(Commitment {
                prefix,
                ..simple(speaker, verb)
            });
        }
        if word(tokens, next) == "vais" {
            return french_infinitive(tokens, next + 1).map(|verb| simple(speaker, verb));
        }
        let verb = skip_clitics(tokens, next);
        return french_conjugated(tokens, verb, &["rai"], FRENCH_PRESENT_FIRST).map(
            |needs_deadline| Commitment {
                needs_deadline,
                ..simple(speaker, verb)
            },
        );
    }
    if w.starts_with("j'") {
        return french_conjugated(tokens, at, &["rai"], FRENCH_PRESENT_FIRST).map(
            |needs_deadline| Commitment {
                needs_deadline,
                ..simple(speaker, at)
            },
        );
    }
    // "c'est Alice qui…" names the owner too.
    let (owners, end) = if w == "c'est" {
        let (owners, end) = names_at(dialogue, tokens, at + 1)?;
        if word(tokens, end) != "qui" {
            return None;
        }
        (owners, end + 1)
    } else {
        names_at(dialogue, tokens, at)?
    };
    let named = |verb: usize, prefix: Option<&'static str>, needs_deadline: bool| Commitment {
        owners: owners.clone(),
        verb,
        prefix,
        points_back: false,
        needs_deadline,
    };
    match word(tokens, end) {
        "va" | "vont" => return french_infinitive(tokens, end + 1).map(|v| named(v, None, false)),
        "s'occupe" | "s'occupent" => {
            let (verb, prefix) = of_what(tokens, end + 1, "s'occuper")?;
            return Some(named(verb, prefix, false));
        }
        "se" if matches!(word(tokens, end + 1), "charge" | "chargent") => {
            let (verb, prefix) = of_what(tokens, end + 2, "se charger")?;
            return Some(named(verb, prefix, false));
        }
        // Vocative: "Bob, tu vas…", "Bob, vous allez…", "Bob, merci de…"
        "tu" | "vous" | "merci" if at == 0 => {
            let you = end + 1;
            return match word(tokens, you) {
                "vas" | "allez" => {
                    french_infinitive(tokens, you + 1).map(|v| named(v, None, false))
                }
                "t'occupes" => {
                    of_what(tokens, you + 1, "s'occuper").map(|(v, p)| named(v, p, false))
                }
                "te" | "vous" if matches!(word(tokens, you + 1), "charges" | "chargez") => {
                    of_what(tokens, you + 2, "se charger").map(|(v, p)| named(v, p, false))
                }
                "vous" if word(tokens, you + 1) == "occupez" => {
                    of_what(tokens, you + 2, "s'occuper").map(|(v, p)| named(v, p, false))
                }
                "de" => french_infinitive(tokens, you + 1)
                    .filter(|&v| v == you + 1)
                    .map(|v| named(v, None, false)),
                w if w.starts_with("d'") && is_infinitive(bare(w)) => Some(named(you, None, false)),
                _ => {
                    let verb = skip_clitics(tokens, you);
                    french_conjugated(tokens, verb, &["ras", "rez"], &[])
                        .map(|_| named(verb, None, false))
                }
            };
        }
        _ => {}
    }
    let verb = skip_clitics(tokens, end);
    french_conjugated(tokens, verb, &["ra", "ront"], FRENCH_PRESENT_THIRD)
        .map(|needs_deadline| named(verb, None, needs_deadline))
}

/// A conjugated verb at `at`: a future tense (`Some(false)`), a present tense
/// that needs a deadline (`Some(true)`), or nothing. Negated forms give nothing.
fn french_conjugated(
    tokens: &[Token],
    at: usize,
    future_endings: &[&str],
    present: &[&str],
) -> Option<bool> {
    let w = word(tokens, at);
    if w.starts_with("n'") || matches!(word(tokens, at + 1), "pas" | "jamais" | "plus" | "rien") {
        return None;
    }
    if is_future(w, future_endings) {
        return Some(false);
    }
    if present.contains(&bare(w)) {
        return Some(true);
    }
    None
}

/// Cuts the action's text out of the sentence: from the verb to the end of
/// its clause. Gives the text, the deadline, and whether the text only
/// points back ("do it", "le faire").
fn cut(
    dialogue: &Dialogue<'_>,
    sentence: &Sentence,
    tokens: &[Token],
    commitment: &Commitment,
) -> Option<(String, Option<String>, bool)> {
    let start = commitment.verb;
    let mut end = start + 1;
    while end < tokens.len() {
        let w = word(tokens, end);
        let gap = &sentence.text[tokens[end - 1].end..tokens[end].start];
        let after_comma = gap.contains([',', ';', ':', '—', '–']);
        let subject_next = |at: usize| {
            SUBJECTS.contains(&word(tokens, at))
                || word(tokens, at).starts_with("j'")
                || dialogue.name_at(tokens, at).is_some()
        };
        if CLAUSE_ENDS.contains(&w)
            || (after_comma && subject_next(end))
            || (matches!(w, "and" | "et" | "puis" | "then") && subject_next(end + 1))
        {
            break;
        }
        end += 1;
    }
    let clause = &tokens[start..end];
    let (text_start, text_end) = (clause[0].start, clause[clause.len() - 1].end);
    let mut text = sentence.text[text_start..text_end].to_string();
    if dialogue.lang == Language::French {
        let verb = bare(&clause[0].word);
        if !is_infinitive(verb)
            && let Some(infinitive) = french_infinitive_of(verb)
        {
            let rest = &sentence.text[clause[0].end..text_end];
            text = format!("{infinitive}{rest}");
        }
    }
    let lower = text.to_lowercase();
    if MEETING_TALK.iter().any(|m| lower.contains(m)) {
        return None;
    }
    let due_range = deadline::find(clause);
    if commitment.needs_deadline && due_range.is_none() {
        return None;
    }
    let due = due_range.map(|(a, b)| sentence.text[a..b].to_string());
    let points_back = commitment.points_back
        || clause.iter().skip(1).all(|t| {
            is_empty_word(&t.word) || due_range.is_some_and(|(a, b)| t.start >= a && t.end <= b)
        });
    if let Some(prefix) = commitment.prefix {
        text = format!("{prefix} {text}");
    }
    Some((tidy(&text), due, points_back))
}

/// The open request a pointing-back promise answers: the latest request by
/// someone else in the few turns before ("Who can book the room?",
/// "Someone needs to call the venue", "qui peut réserver la salle ?").
fn antecedent(dialogue: &Dialogue<'_>, index: usize) -> Option<(String, Option<String>)> {
    let sentence = &dialogue.sentences[index];
    let speaker = dialogue.speaker(sentence);
    let earliest = sentence.segment.saturating_sub(4);
    dialogue.sentences[..index]
        .iter()
        .rev()
        .take_while(|s| s.segment >= earliest)
        .filter(|s| dialogue.speaker(s) != speaker)
        .find_map(|s| open_request(&s.text, &s.tokens()))
}

const OPEN_REQUESTS: &[&[&str]] = &[
    &["who", "can"],
    &["who", "could"],
    &["who", "will"],
    &["who", "wants", "to"],
    &["who's", "going", "to"],
    &["who", "is", "going", "to"],
    &["can", "someone"],
    &["could", "someone"],
    &["can", "anyone"],
    &["could", "anyone"],
    &["can", "somebody"],
    &["someone", "needs", "to"],
    &["somebody", "needs", "to"],
    &["someone", "has", "to"],
    &["someone", "should"],
    &["someone", "must"],
    &["we", "need", "someone", "to"],
    &["we", "need", "somebody", "to"],
    &["a", "volunteer", "to"],
    &["we", "need", "to"],
    &["we", "still", "need", "to"],
    &["we", "have", "to"],
    &["we", "should"],
    &["qui", "peut"],
    &["qui", "pourrait"],
    &["qui", "veut"],
    &["qui", "va"],
    &["qui", "se", "charge", "de"],
    &["qui", "s'occupe", "de"],
    &["quelqu'un", "peut"],
    &["quelqu'un", "pourrait"],
    &["quelqu'un", "doit"],
    &["il", "faut", "que", "quelqu'un"],
    &["il", "faudrait", "que", "quelqu'un"],
    &["il", "faut"],
    &["il", "faudrait"],
    &["on", "doit"],
    &["on", "devrait"],
    &["il", "reste", "à"],
];

/// The task of an open request, and its deadline.
fn open_request(text: &str, tokens: &[Token]) -> Option<(String, Option<String>)> {
    let (at, len) = OPEN_REQUESTS
        .iter()
        .filter_map(|p| find_seq(tokens, 0, p).map(|at| (at, p.len())))
        .min_by_key(|&(at, len)| (at, usize::MAX - len))?;
    let start = skip_clitics(tokens, at + len);
    let end = (start..tokens.len())
        .find(|&i| {
            CLAUSE_ENDS.contains(&word(tokens, i))
                || matches!(word(tokens, i), "please" | "svp" | "stp")
        })
        .unwrap_or(tokens.len());
    if start >= end {
        return None;
    }
    let clause = &tokens[start..end];
    if clause.iter().all(|t| is_empty_word(&t.word)) {
        return None;
    }
    let task = &text[clause[0].start..clause[clause.len() - 1].end];
    let due = deadline::find(clause).map(|(a, b)| text[a..b].to_string());
    Some((tidy(task), due))
}

/// English and French ways of asking someone to do something.
fn request_verb(tokens: &[Token]) -> Option<usize> {
    for at in 0..tokens.len() {
        let w = word(tokens, at);
        let english =
            matches!(w, "can" | "could" | "would" | "will") && word(tokens, at + 1) == "you";
        if english {
            let mut verb = at + 2;
            while matches!(
                word(tokens, verb),
                "please" | "maybe" | "also" | "just" | "quickly"
            ) {
                verb += 1;
            }
            let v = word(tokens, verb);
            if matches!(
                v,
                "hear"
                    | "see"
                    | "repeat"
                    | "explain"
                    | "mind"
                    | "remind"
                    | "tell"
                    | "clarify"
                    | "walk"
                    | "confirm"
                    | "share"
                    | "say"
                    | "speak"
                    | "give"
                    | "imagine"
            ) || v.is_empty()
            {
                return None;
            }
            return Some(verb);
        }
        let french = (w == "tu" && matches!(word(tokens, at + 1), "peux" | "pourrais" | "pourras"))
            || (w == "vous" && matches!(word(tokens, at + 1), "pouvez" | "pourriez" | "pourrez"));
        let inverted = matches!(
            w,
            "peux-tu" | "pourrais-tu" | "pouvez-vous" | "pourriez-vous" | "pourras-tu"
        );
        if french || inverted {
            let after = at + if inverted { 1 } else { 2 };
            let verb = french_infinitive(tokens, after)?;
            if matches!(
                bare(word(tokens, verb)),
                "répéter"
                    | "expliquer"
                    | "confirmer"
                    | "préciser"
                    | "rappeler"
                    | "entendre"
                    | "voir"
            ) {
                return None;
            }
            return Some(verb);
        }
    }
    None
}

/// A request in a question, accepted by the person asked in their next turn.
/// Gives the action and the segment of the reply.
fn accepted_request(
    dialogue: &Dialogue<'_>,
    sentence: &Sentence,
    tokens: &[Token],
) -> Option<(Action, usize)> {
    let verb = request_verb(tokens)?;
    let asker = dialogue.speaker(sentence);
    let leading = dialogue
        .name_at(tokens, 0)
        .map(|(mxid, _)| mxid.to_string());
    let trailing = trailing_name(dialogue, tokens).filter(|(_, at)| *at > verb);
    let addressee = leading.or_else(|| trailing.as_ref().map(|(m, _)| m.clone()));
    if addressee.is_none() && names_someone_absent(&sentence.text) {
        // "Can you…, Dave?" with no Dave in the call: nobody here can accept for him.
        return None;
    }
    if addressee.as_deref() == Some(asker) {
        return None;
    }
    let mut end = trailing.as_ref().map(|(_, at)| *at).unwrap_or(tokens.len());
    if let Some(please) = (verb..end).find(|&i| {
        matches!(word(tokens, i), "please" | "svp" | "stp")
            || seq(tokens, i, &["s'il", "te", "plaît"])
            || seq(tokens, i, &["s'il", "vous", "plaît"])
    }) {
        end = please;
    }
    if end <= verb {
        return None;
    }
    let clause = &tokens[verb..end];
    let text = &sentence.text[clause[0].start..clause[clause.len() - 1].end];
    if MEETING_TALK.iter().any(|m| text.to_lowercase().contains(m)) {
        return None;
    }
    let replies = dialogue.replies(sentence.segment, 4);
    let reply = match &addressee {
        Some(mxid) => replies
            .into_iter()
            .find(|&r| dialogue.meeting.segments[r].speaker == *mxid)?,
        None => replies.into_iter().next()?,
    };
    let reply_sentences = dialogue.sentences_of(reply);
    let first = reply_sentences.first()?;
    if !accepts(&first.tokens()) {
        return None;
    }
    let due = deadline::find(clause)
        .map(|(a, b)| sentence.text[a..b].to_string())
        .or_else(|| {
            reply_sentences
                .iter()
                .take(2)
                .find_map(|s| deadline::find(&s.tokens()).map(|(a, b)| s.text[a..b].to_string()))
        });
    Some((
        Action {
            owner: Some(dialogue.meeting.segments[reply].speaker.clone()),
            text: tidy(text),
            due,
        },
        reply,
    ))
}

/// Irregular French futures and presents, and their infinitives.
const FRENCH_IRREGULAR: &[(&str, &str)] = &[
    ("enverrai", "envoyer"),
    ("enverra", "envoyer"),
    ("enverras", "envoyer"),
    ("enverrez", "envoyer"),
    ("enverront", "envoyer"),
    ("ferai", "faire"),
    ("fera", "faire"),
    ("feras", "faire"),
    ("ferez", "faire"),
    ("feront", "faire"),
    ("irai", "aller"),
    ("ira", "aller"),
    ("fais", "faire"),
    ("fait", "faire"),
    ("mets", "mettre"),
    ("met", "mettre"),
    ("écris", "écrire"),
    ("écrit", "écrire"),
    ("transmets", "transmettre"),
    ("transmet", "transmettre"),
    ("envoie", "envoyer"),
    ("appelle", "appeler"),
    ("rappelle", "rappeler"),
    ("appellerai", "appeler"),
    ("appellera", "appeler"),
    ("rappellerai", "rappeler"),
    ("rappellera", "rappeler"),
    ("tiendrai", "tenir"),
    ("tiendra", "tenir"),
    ("viendrai", "venir"),
    ("viendra", "venir"),
    ("reviendrai", "revenir"),
    ("reviendra", "revenir"),
];

/// The infinitive of a conjugated French verb, for an action's text:
/// "enverrai" gives "envoyer", "préparera" gives "préparer", "relance"
/// gives "relancer". Unknown forms are kept as said.
fn french_infinitive_of(verb: &str) -> Option<String> {
    if let Some((_, infinitive)) = FRENCH_IRREGULAR.iter().find(|(form, _)| *form == verb) {
        return Some((*infinitive).to_string());
    }
    for (ending, replacement) in [
        ("crirai", "crire"),
        ("crira", "crire"),
        ("drai", "dre"),
        ("dra", "dre"),
        ("trai", "tre"),
        ("tra", "tre"),
        ("erai", "er"),
        ("era", "er"),
        ("erons", "er"),
        ("eront", "er"),
        ("irai", "ir"),
        ("ira", "ir"),
        ("iront", "ir"),
    ] {
        if let Some(stem) = verb.strip_suffix(ending)
            && stem.chars().count() >= 2
        {
            return Some(format!("{stem}{replacement}"));
        }
    }
    if FRENCH_PRESENT_FIRST.contains(&verb) || FRENCH_PRESENT_THIRD.contains(&verb) {
        if verb.ends_with('e') {
            return Some(format!("{verb}r"));
        }
        if let Some(stem) = verb.strip_suffix("is") {
            return Some(format!("{stem}ir"));
        }
    }
    None
}

/// Whether a request is addressed by name ("…, Dave?", "Dave, can you…")
/// to someone who is not a participant: one or two capitalised words set off
/// by a comma at either end of the sentence.
fn names_someone_absent(text: &str) -> bool {
    let looks_like_name = |part: &str| {
        let words: Vec<&str> = part.split_whitespace().collect();
        (1..=2).contains(&words.len())
            && words.iter().all(|w| {
                w.chars().next().is_some_and(char::is_uppercase)
                    && w.chars().all(|c| c.is_alphabetic() || c == '-')
            })
            && !words
                .iter()
                .any(|w| crate::cues::FILLERS.contains(&w.to_lowercase().as_str()))
    };
    let trimmed = text.trim_end_matches(|c: char| c == '?' || c.is_whitespace());
    let trailing = trimmed
        .rsplit_once(',')
        .is_some_and(|(_, tail)| looks_like_name(tail));
    let leading = trimmed
        .split_once(',')
        .is_some_and(|(head, _)| looks_like_name(head));
    trailing || leading
}
