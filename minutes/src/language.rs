//! The two languages the built-in summariser knows, French and English, with
//! their stop words and a detector.
//!
//! The detector trusts the `lang` the speech engine put on each segment; when
//! segments carry no usable language it counts stop words of each language.

use crate::meeting::TranscriptSegment;
use crate::text::words;

/// A language the built-in summariser understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Language {
    English,
    French,
}

impl Language {
    /// ISO 639-1 code.
    pub fn code(self) -> &'static str {
        match self {
            Language::English => "en",
            Language::French => "fr",
        }
    }

    /// Parses a language code such as `fr`, `fr-FR`, `en_GB`, `english`.
    pub fn from_code(code: &str) -> Option<Language> {
        let code = code.trim().to_ascii_lowercase();
        let primary = code.split(['-', '_']).next().unwrap_or("");
        match primary {
            "fr" | "fra" | "fre" | "french" | "français" | "francais" => Some(Language::French),
            "en" | "eng" | "english" | "anglais" => Some(Language::English),
            _ => None,
        }
    }

    /// Whether a lowercase word is a stop word of this language.
    pub fn is_stop_word(self, word: &str) -> bool {
        let list = match self {
            Language::English => ENGLISH_STOP_WORDS,
            Language::French => FRENCH_STOP_WORDS,
        };
        list.binary_search(&word).is_ok()
    }
}

/// Detects the language of a transcript: the most frequent segment `lang`
/// (weighted by text length), else stop-word counts; English when nothing says.
pub fn detect(segments: &[TranscriptSegment]) -> Language {
    let (mut fr, mut en) = (0usize, 0usize);
    for segment in segments {
        match Language::from_code(&segment.lang) {
            Some(Language::French) => fr += segment.text.len(),
            Some(Language::English) => en += segment.text.len(),
            None => {}
        }
    }
    if fr + en > 0 {
        return if fr > en {
            Language::French
        } else {
            Language::English
        };
    }
    let text: Vec<&str> = segments.iter().map(|s| s.text.as_str()).collect();
    detect_text(&text.join(" "))
}

/// Detects the language of a text from its stop words; English on a tie.
pub fn detect_text(text: &str) -> Language {
    let (mut fr, mut en) = (0usize, 0usize);
    for word in words(text) {
        if FRENCH_MARKERS.contains(&word.as_str()) {
            fr += 1;
        }
        if ENGLISH_MARKERS.contains(&word.as_str()) {
            en += 1;
        }
    }
    if fr > en {
        Language::French
    } else {
        Language::English
    }
}

/// Frequent words that exist in one language only, for detection.
const FRENCH_MARKERS: &[&str] = &[
    "le", "la", "les", "des", "est", "et", "une", "pour", "que", "qui", "dans", "pas", "nous",
    "vous", "je", "on", "sur", "avec", "ce", "c'est", "du", "au", "mais", "donc", "alors", "oui",
    "très", "bien", "ça", "il", "elle", "j'ai", "d'accord",
];
const ENGLISH_MARKERS: &[&str] = &[
    "the", "and", "is", "are", "to", "of", "that", "we", "you", "it", "for", "with", "this",
    "will", "i'll", "be", "have", "what", "so", "yes", "yeah", "okay", "was", "do", "don't",
    "it's", "they", "but", "not", "can",
];

/// Sorted, lowercase; apostrophes are ASCII.
const ENGLISH_STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "alright",
    "also",
    "am",
    "an",
    "and",
    "any",
    "anyway",
    "are",
    "aren't",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "can't",
    "cannot",
    "could",
    "couldn't",
    "did",
    "didn't",
    "do",
    "does",
    "doesn't",
    "doing",
    "don't",
    "down",
    "during",
    "each",
    "else",
    "even",
    "ever",
    "every",
    "few",
    "for",
    "from",
    "further",
    "get",
    "go",
    "going",
    "gonna",
    "good",
    "got",
    "great",
    "had",
    "hadn't",
    "has",
    "hasn't",
    "have",
    "haven't",
    "having",
    "he",
    "he'd",
    "he'll",
    "he's",
    "her",
    "here",
    "here's",
    "hers",
    "herself",
    "hi",
    "him",
    "himself",
    "his",
    "how",
    "how's",
    "i",
    "i'd",
    "i'll",
    "i'm",
    "i've",
    "if",
    "in",
    "into",
    "is",
    "isn't",
    "it",
    "it's",
    "its",
    "itself",
    "just",
    "know",
    "let",
    "let's",
    "like",
    "maybe",
    "me",
    "mean",
    "might",
    "more",
    "most",
    "much",
    "must",
    "mustn't",
    "my",
    "myself",
    "need",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "oh",
    "ok",
    "okay",
    "on",
    "once",
    "one",
    "only",
    "or",
    "other",
    "ought",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "perhaps",
    "pretty",
    "probably",
    "quite",
    "really",
    "right",
    "said",
    "same",
    "say",
    "see",
    "shall",
    "shan't",
    "she",
    "she'd",
    "she'll",
    "she's",
    "should",
    "shouldn't",
    "so",
    "some",
    "something",
    "still",
    "such",
    "sure",
    "than",
    "thank",
    "thanks",
    "that",
    "that's",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "there's",
    "these",
    "they",
    "they'd",
    "they'll",
    "they're",
    "they've",
    "thing",
    "things",
    "think",
    "this",
    "those",
    "though",
    "through",
    "to",
    "too",
    "uh",
    "um",
    "under",
    "until",
    "up",
    "us",
    "very",
    "want",
    "was",
    "wasn't",
    "way",
    "we",
    "we'd",
    "we'll",
    "we're",
    "we've",
    "well",
    "were",
    "weren't",
    "what",
    "what's",
    "when",
    "when's",
    "where",
    "where's",
    "which",
    "while",
    "who",
    "who's",
    "whom",
    "why",
    "why's",
    "will",
    "with",
    "won't",
    "would",
    "wouldn't",
    "yeah",
    "yes",
    "yet",
    "you",
    "you'd",
    "you'll",
    "you're",
    "you've",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

/// Sorted by byte order, lowercase; apostrophes are ASCII.
const FRENCH_STOP_WORDS: &[&str] = &[
    "a",
    "ai",
    "aie",
    "ainsi",
    "alors",
    "as",
    "au",
    "aucun",
    "aussi",
    "autre",
    "aux",
    "avait",
    "avant",
    "avec",
    "avez",
    "avoir",
    "avons",
    "bah",
    "ben",
    "bien",
    "bon",
    "c",
    "c'est",
    "c'était",
    "ce",
    "cela",
    "celle",
    "celui",
    "ces",
    "cet",
    "cette",
    "ceux",
    "chaque",
    "chez",
    "comme",
    "comment",
    "d",
    "d'accord",
    "dans",
    "de",
    "des",
    "deux",
    "dire",
    "dit",
    "donc",
    "dont",
    "du",
    "elle",
    "elles",
    "en",
    "encore",
    "entre",
    "es",
    "est",
    "et",
    "euh",
    "eux",
    "faire",
    "fait",
    "faut",
    "hein",
    "ici",
    "il",
    "ils",
    "j",
    "j'ai",
    "je",
    "juste",
    "l",
    "la",
    "le",
    "les",
    "leur",
    "leurs",
    "lui",
    "m",
    "ma",
    "mais",
    "me",
    "mes",
    "moi",
    "moins",
    "mon",
    "même",
    "n",
    "ne",
    "ni",
    "non",
    "nos",
    "notre",
    "nous",
    "on",
    "ont",
    "ou",
    "oui",
    "où",
    "par",
    "parce",
    "pas",
    "peu",
    "peut",
    "peut-être",
    "plus",
    "pour",
    "pourquoi",
    "quand",
    "que",
    "quel",
    "quelle",
    "quelque",
    "qui",
    "quoi",
    "s",
    "sa",
    "sans",
    "se",
    "sera",
    "ses",
    "si",
    "son",
    "sont",
    "sur",
    "ta",
    "te",
    "tes",
    "toi",
    "ton",
    "tous",
    "tout",
    "toute",
    "toutes",
    "très",
    "tu",
    "un",
    "une",
    "va",
    "vais",
    "voilà",
    "vos",
    "votre",
    "vous",
    "vraiment",
    "y",
    "à",
    "ça",
    "étaient",
    "était",
    "été",
    "être",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_word_lists_are_sorted_for_binary_search() {
        for list in [ENGLISH_STOP_WORDS, FRENCH_STOP_WORDS] {
            for pair in list.windows(2) {
                assert!(pair[0] < pair[1], "{:?} is out of order", pair);
            }
        }
    }

    #[test]
    fn detects_french_and_english_text() {
        assert_eq!(
            detect_text("Bon, on a décidé que la migration se fera en mars, c'est validé."),
            Language::French
        );
        assert_eq!(
            detect_text("Okay so we agreed that the migration will happen in March."),
            Language::English
        );
    }

    #[test]
    fn parses_language_codes() {
        assert_eq!(Language::from_code("fr-FR"), Some(Language::French));
        assert_eq!(Language::from_code("en_GB"), Some(Language::English));
        assert_eq!(Language::from_code("de"), None);
    }
}
