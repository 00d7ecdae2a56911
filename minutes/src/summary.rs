//! Extractive summary: the most central sentences of the meeting, in the
//! order they were said, each attributed to its speaker.
//!
//! Sentences are compared by TF-IDF cosine over their content words (stop
//! words of the meeting's language removed, crude suffix stemming), ranked by
//! TextRank (PageRank over that similarity graph), and picked greedily while
//! skipping near-duplicates of sentences already picked. Everything is
//! ordered by index on ties, so the same transcript gives the same summary.

use std::collections::BTreeMap;

use crate::cues::strip_fillers;
use crate::dialogue::Dialogue;
use crate::language::Language;
use crate::text::tidy;

/// Fewest and most sentences in a summary.
pub const MIN_SENTENCES: usize = 3;
pub const MAX_SENTENCES: usize = 8;

/// A sentence needs this many content words to be a summary candidate.
const MIN_CONTENT_WORDS: usize = 4;
const DAMPING: f64 = 0.85;
const ITERATIONS: usize = 50;
/// Candidates more similar than this to a picked sentence are skipped.
const REDUNDANCY: f64 = 0.3;

/// Summarises a dialogue in 3 to 8 sentences (fewer only if the transcript
/// has fewer sentences worth keeping), one more per five minutes of talk.
pub fn summarize(dialogue: &Dialogue<'_>) -> Vec<String> {
    let candidates: Vec<(usize, Vec<String>)> = dialogue
        .sentences
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.is_question())
        .map(|(i, s)| (i, content_words(&s.text, dialogue.lang)))
        .filter(|(_, words)| words.len() >= MIN_CONTENT_WORDS)
        .collect();
    if candidates.is_empty() {
        return Vec::new();
    }
    let vectors = tf_idf(&candidates);
    let n = vectors.len();
    let mut similarity = vec![vec![0.0f64; n]; n];
    for i in 0..n {
        for j in i + 1..n {
            let s = cosine(&vectors[i], &vectors[j]);
            similarity[i][j] = s;
            similarity[j][i] = s;
        }
    }
    let scores = text_rank(&similarity);

    let segments = &dialogue.meeting.segments;
    let talk_ms = segments.last().map(|s| s.end_ms).unwrap_or(0)
        - segments.first().map(|s| s.start_ms).unwrap_or(0);
    let wanted = (MIN_SENTENCES + (talk_ms / 240_000) as usize).min(MAX_SENTENCES);

    // Informative sentences (more content words, up to a point) rank higher.
    let scores: Vec<f64> = scores
        .iter()
        .zip(&candidates)
        .map(|(score, (_, words))| score * (words.len().min(12) as f64 / 12.0).sqrt())
        .collect();

    // One sentence per stretch of the meeting, so that every topic gets its
    // turn: the best of each window, then the best left over.
    let mut picked: Vec<usize> = Vec::new();
    let window = n.div_ceil(wanted);
    for chunk in (0..n).collect::<Vec<_>>().chunks(window) {
        let best = chunk
            .iter()
            .copied()
            .filter(|&c| picked.iter().all(|&p| similarity[p][c] < REDUNDANCY))
            .max_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(b.cmp(&a)));
        if let Some(best) = best {
            picked.push(best);
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    for threshold in [REDUNDANCY, 0.6, 1.1] {
        for &candidate in &order {
            if picked.len() >= wanted {
                break;
            }
            if !picked.contains(&candidate)
                && picked.iter().all(|&p| similarity[p][candidate] < threshold)
            {
                picked.push(candidate);
            }
        }
    }
    picked.sort_unstable();
    picked
        .into_iter()
        .map(|c| {
            let sentence = &dialogue.sentences[candidates[c].0];
            let text = tidy(strip_fillers(&sentence.text, &sentence.tokens()));
            format!("{}: {}", dialogue.speaker_name(sentence), text)
        })
        .collect()
}

/// Content words: not stop words of either language, two letters or more,
/// with plural and common verb endings cut.
fn content_words(text: &str, lang: Language) -> Vec<String> {
    crate::text::words(text)
        .into_iter()
        .map(|w| w.rsplit('\'').next().unwrap_or(&w).to_string())
        .filter(|w| {
            w.chars().count() >= 2
                && !lang.is_stop_word(w)
                && !Language::English.is_stop_word(w)
                && !Language::French.is_stop_word(w)
                && !TALK_WORDS.contains(&w.as_str())
        })
        .map(|w| stem(&w))
        .collect()
}

fn stem(word: &str) -> String {
    for suffix in [
        "ements", "ement", "ations", "ation", "ing", "ies", "es", "s", "ed", "er", "ée", "és", "é",
        "e",
    ] {
        if word.chars().count() >= suffix.chars().count() + 4
            && let Some(stripped) = word.strip_suffix(suffix)
        {
            return stripped.to_string();
        }
    }
    word.to_string()
}

/// Words of time and talk that recur in any meeting and say nothing of its topics.
const TALK_WORDS: &[&str] = &[
    "week",
    "weeks",
    "day",
    "days",
    "today",
    "tomorrow",
    "yesterday",
    "time",
    "last",
    "next",
    "lot",
    "bit",
    "minute",
    "minutes",
    "morning",
    "afternoon",
    "everyone",
    "guys",
    "thanks",
    "said",
    "told",
    "agree",
    "agreed",
    "mean",
    "look",
    "looks",
    "semaine",
    "semaines",
    "jour",
    "jours",
    "aujourd'hui",
    "demain",
    "hier",
    "mois",
    "fois",
    "temps",
    "dernier",
    "dernière",
    "prochain",
    "prochaine",
    "truc",
    "chose",
    "choses",
    "merci",
    "d'ailleurs",
    "dis",
    "crois",
    "pense",
    "déjà",
    "an",
    "ans",
    "année",
    "contre",
    "environ",
    "par",
    "carrément",
];

type Vector = BTreeMap<String, f64>;

fn tf_idf(candidates: &[(usize, Vec<String>)]) -> Vec<Vector> {
    let n = candidates.len() as f64;
    let mut document_frequency: BTreeMap<&str, f64> = BTreeMap::new();
    for (_, words) in candidates {
        let mut seen: Vec<&str> = words.iter().map(String::as_str).collect();
        seen.sort_unstable();
        seen.dedup();
        for w in seen {
            *document_frequency.entry(w).or_default() += 1.0;
        }
    }
    candidates
        .iter()
        .map(|(_, words)| {
            let mut vector = Vector::new();
            for w in words {
                *vector.entry(w.clone()).or_default() += 1.0;
            }
            for (w, weight) in vector.iter_mut() {
                let df = document_frequency[w.as_str()];
                *weight *= (n / df).ln() + 1.0;
            }
            vector
        })
        .collect()
}

fn cosine(a: &Vector, b: &Vector) -> f64 {
    let dot: f64 = a.iter().filter_map(|(w, x)| b.get(w).map(|y| x * y)).sum();
    let norm = |v: &Vector| v.values().map(|x| x * x).sum::<f64>().sqrt();
    let denominator = norm(a) * norm(b);
    if denominator == 0.0 {
        0.0
    } else {
        dot / denominator
    }
}

/// PageRank over a weighted, undirected similarity graph.
fn text_rank(similarity: &[Vec<f64>]) -> Vec<f64> {
    let n = similarity.len();
    let out_weight: Vec<f64> = similarity.iter().map(|row| row.iter().sum()).collect();
    let mut scores = vec![1.0 / n as f64; n];
    for _ in 0..ITERATIONS {
        let mut next = vec![(1.0 - DAMPING) / n as f64; n];
        for (i, score) in next.iter_mut().enumerate() {
            let incoming: f64 = (0..n)
                .filter(|&j| j != i && out_weight[j] > 0.0)
                .map(|j| similarity[j][i] / out_weight[j] * scores[j])
                .sum();
            *score += DAMPING * incoming;
        }
        scores = next;
    }
    scores
}
