//! Scoring a transcript against what was said: word error rate (recall and
//! accuracy) and inserted words (precision: words nobody said). Shared by the
//! `salon transcribe` tests and the live transcription journeys.

#![allow(dead_code)]

/// Words, lowercased, without punctuation (apostrophes kept: "we're").
pub fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'' || *c == '’')
                .map(|c| if c == '’' { '\'' } else { c })
                .collect::<String>()
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// The minimal word alignment's counts: (substitutions, deletions, insertions).
pub fn alignment(said: &str, heard: &str) -> (usize, usize, usize) {
    let (r, h) = (words(said), words(heard));
    // cost table with the operation counts carried along
    let mut prev: Vec<(usize, usize, usize, usize)> = (0..=h.len()).map(|j| (j, 0, 0, j)).collect();
    for i in 1..=r.len() {
        let mut row = vec![(i, 0, i, 0); h.len() + 1];
        for j in 1..=h.len() {
            let same = r[i - 1] == h[j - 1];
            let (c, s, d, n) = prev[j - 1];
            let diagonal = (c + usize::from(!same), s + usize::from(!same), d, n);
            let (c, s, d, n) = prev[j];
            let deletion = (c + 1, s, d + 1, n);
            let (c, s, d, n) = row[j - 1];
            let insertion = (c + 1, s, d, n + 1);
            row[j] = [diagonal, deletion, insertion]
                .into_iter()
                .min_by_key(|t| (t.0, t.3))
                .unwrap();
        }
        prev = row;
    }
    let (_, s, d, n) = prev[h.len()];
    (s, d, n)
}

/// Word error rate of `heard` against `said`.
pub fn wer(said: &str, heard: &str) -> f64 {
    let (s, d, n) = alignment(said, heard);
    (s + d + n) as f64 / words(said).len().max(1) as f64
}

/// Words heard that were never said, as a share of the words said: the
/// insertions of the minimal word alignment. A misheard word ("a" for "the")
/// is a substitution and counts in the WER; a word with nothing said under
/// it, like a sentence invented in the silence, is an insertion.
pub fn inserted_rate(said: &str, heard: &str) -> f64 {
    let (_, _, insertions) = alignment(said, heard);
    insertions as f64 / words(said).len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_count_what_was_invented_and_what_was_lost() {
        let said = "Good morning everyone. We agreed.";
        assert_eq!(wer(said, "good morning everyone, we agreed"), 0.0);
        assert_eq!(alignment(said, "everyone we agreed"), (0, 2, 0));
        let heard = "Good morning everyone. We agreed. So, the first thing.";
        assert_eq!(alignment(said, heard), (0, 0, 4));
        assert!((inserted_rate(said, heard) - 4.0 / 5.0).abs() < 1e-9);
    }
}
