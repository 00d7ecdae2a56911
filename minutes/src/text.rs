//! Plain text handling shared by the summarisers: splitting a segment into
//! sentences and a sentence into lowercase words with their positions.
//!
//! Typographic apostrophes are folded to `'` so that cue phrases such as
//! "on a décidé" or "I'll" match however the speech engine spelled them.

/// A sentence of one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sentence {
    /// The sentence, trimmed, with apostrophes folded and spaces collapsed.
    pub text: String,
    /// Index of the segment it comes from.
    pub segment: usize,
    /// Position of the sentence inside its segment.
    pub position: usize,
}

impl Sentence {
    /// Whether the sentence ends with a question mark.
    pub fn is_question(&self) -> bool {
        self.text.trim_end().ends_with('?')
    }

    /// The sentence's words, lowercase, with their byte ranges in `text`.
    pub fn tokens(&self) -> Vec<Token> {
        tokens(&self.text)
    }
}

/// A lowercase word and where it sits in the text it was cut from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub word: String,
    pub start: usize,
    pub end: usize,
}

/// Folds typographic apostrophes and collapses runs of white space.
pub fn normalize(text: &str) -> String {
    let folded: String = text
        .chars()
        .map(|c| match c {
            '\u{2019}' | '\u{2018}' | '\u{02BC}' | '`' => '\'',
            '\u{00A0}' | '\u{202F}' => ' ',
            c => c,
        })
        .collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
}

/// Cuts a text into lowercase words. Apostrophes and hyphens inside a word
/// keep it whole ("i'll", "c'est", "peut-être").
pub fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        if !is_word_char(chars[i].1) {
            i += 1;
            continue;
        }
        let start = chars[i].0;
        let mut j = i + 1;
        while j < chars.len() {
            let c = chars[j].1;
            if is_word_char(c) {
                j += 1;
            } else if (c == '\'' || c == '-' || c == '\u{2019}')
                && j + 1 < chars.len()
                && is_word_char(chars[j + 1].1)
            {
                j += 2;
            } else {
                break;
            }
        }
        let end = if j < chars.len() {
            chars[j].0
        } else {
            text.len()
        };
        out.push(Token {
            word: text[start..end].to_lowercase().replace('\u{2019}', "'"),
            start,
            end,
        });
        i = j;
    }
    out
}

/// The lowercase words of a text.
pub fn words(text: &str) -> Vec<String> {
    tokens(&normalize(text))
        .into_iter()
        .map(|t| t.word)
        .collect()
}

/// Words after which a full stop does not end the sentence.
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "st", "vs", "etc", "e.g", "i.e", "cf", "m", "mme", "mlle", "p.ex",
    "no", "n°", "approx", "inc", "ltd",
];

/// Splits a segment's text into sentences on `.`, `!`, `?` and `…` followed
/// by a space or the end; French spacing before `?` and `!` is kept inside the
/// sentence.
pub fn split_sentences(text: &str, segment: usize) -> Vec<Sentence> {
    let text = normalize(text);
    let mut sentences = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut start = 0usize;
    let mut i = 0usize;
    while i < chars.len() {
        let c = chars[i].1;
        if matches!(c, '.' | '!' | '?' | '…') {
            // Take the whole run of terminal punctuation and closing quotes.
            let mut j = i + 1;
            while j < chars.len() && matches!(chars[j].1, '.' | '!' | '?' | '…' | '"' | '»' | ')')
            {
                j += 1;
            }
            let at_end = j >= chars.len();
            let before_space = !at_end && chars[j].1.is_whitespace();
            if (at_end || before_space)
                && !(c == '.' && j == i + 1 && is_abbreviation(&text[..chars[i].0]))
            {
                let end = if at_end { text.len() } else { chars[j].0 };
                push_sentence(&mut sentences, &text[start..end], segment);
                start = end;
            }
            i = j;
        } else {
            i += 1;
        }
    }
    push_sentence(&mut sentences, &text[start..], segment);
    sentences
}

fn push_sentence(sentences: &mut Vec<Sentence>, text: &str, segment: usize) {
    let text = text.trim();
    if text.chars().any(char::is_alphanumeric) {
        let position = sentences.len();
        sentences.push(Sentence {
            text: text.to_string(),
            segment,
            position,
        });
    }
}

/// Whether the text before a full stop ends with an abbreviation or an initial.
fn is_abbreviation(before: &str) -> bool {
    let last = before
        .rsplit(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or("");
    if last.chars().count() == 1 && last.chars().all(char::is_uppercase) {
        return true;
    }
    ABBREVIATIONS.contains(&last.to_lowercase().as_str())
}

/// Capitalises the first letter and drops a trailing comma or semicolon.
pub fn tidy(text: &str) -> String {
    let text = text
        .trim()
        .trim_end_matches([',', ';', ':', '-', '–'])
        .trim();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().collect::<String>() + chars.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> Vec<String> {
        split_sentences(text, 0)
            .into_iter()
            .map(|s| s.text)
            .collect()
    }

    #[test]
    fn splits_on_terminal_punctuation_with_french_spacing() {
        assert_eq!(
            texts("Bon, c'est validé ? Oui ! On part sur mars. Parfait…"),
            vec![
                "Bon, c'est validé ?",
                "Oui !",
                "On part sur mars.",
                "Parfait…"
            ]
        );
    }

    #[test]
    fn keeps_abbreviations_and_decimals_inside_a_sentence() {
        assert_eq!(
            texts("Mr. Smith said 3.5 percent, e.g. in March. Fine."),
            vec!["Mr. Smith said 3.5 percent, e.g. in March.", "Fine."]
        );
    }

    #[test]
    fn tokens_keep_contractions_and_fold_apostrophes() {
        let words = words("I\u{2019}ll send it d'ici vendredi, peut-être.");
        assert_eq!(
            words,
            vec!["i'll", "send", "it", "d'ici", "vendredi", "peut-être"]
        );
    }
}
