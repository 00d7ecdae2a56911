//! The built-in summariser on two realistic meetings of about fifteen
//! minutes, one in English and one in French (fixtures written for these
//! tests, with distractors: past-tense reports, hypotheses, negations,
//! declined requests, reported speech and questions). The expected decisions
//! and actions were written from reading the dialogue, not from the output.

use salon_minutes::{Action, BuiltinSummarizer, GeneratedBy, Meeting, Minutes, load_transcript};

fn fixture(name: &str) -> Meeting {
    let path = format!(
        "{}/tests/fixtures/{name}",
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into())
    );
    load_transcript(&path).unwrap_or_else(|e| panic!("cannot load {path}: {e}"))
}

fn lower(text: &str) -> String {
    text.to_lowercase()
}

/// Finds the one action of `owner` whose text holds all `words`.
fn action<'m>(minutes: &'m Minutes, owner: &str, words: &[&str]) -> &'m Action {
    let found: Vec<&Action> = minutes
        .actions
        .iter()
        .filter(|a| words.iter().all(|w| lower(&a.text).contains(w)))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one action with {words:?}, got {:#?}",
        minutes.actions
    );
    assert_eq!(
        found[0].owner.as_deref(),
        Some(owner),
        "owner of {:?}",
        found[0].text
    );
    found[0]
}

fn assert_decision(minutes: &Minutes, words: &[&str]) {
    assert!(
        minutes
            .decisions
            .iter()
            .any(|d| words.iter().all(|w| lower(d).contains(w))),
        "no decision with {words:?} in {:#?}",
        minutes.decisions
    );
}

fn assert_question(minutes: &Minutes, words: &[&str]) {
    assert!(
        minutes
            .questions
            .iter()
            .any(|q| words.iter().all(|w| lower(q).contains(w))),
        "no open question with {words:?} in {:#?}",
        minutes.questions
    );
}

fn assert_nothing_mentions(minutes: &Minutes, words: &[&str]) {
    for a in &minutes.actions {
        for w in words {
            assert!(
                !lower(&a.text).contains(w),
                "unexpected action {a:?} ({w:?} was never promised)"
            );
        }
    }
}

#[test]
fn english_meeting_minutes_hold_the_decisions_that_were_taken() {
    let minutes = BuiltinSummarizer.summarize(&fixture("meeting_en.json"));
    assert_eq!(minutes.lang, "en");
    assert_eq!(minutes.generated_by, GeneratedBy::Builtin);
    assert_decision(&minutes, &["ship", "2.4", "march 12"]);
    assert_decision(&minutes, &["postgres 16"]);
    assert_decision(&minutes, &["on-call", "weekly"]);
    assert_decision(&minutes, &["accessibility audit", "external firm"]);
    assert_eq!(minutes.decisions.len(), 4, "{:#?}", minutes.decisions);
}

#[test]
fn english_meeting_actions_have_the_owners_who_said_them() {
    let minutes = BuiltinSummarizer.summarize(&fixture("meeting_en.json"));
    // Named by Alice: "Bob is going to write the release notes."
    action(&minutes, "@bob:example.org", &["release notes"]);
    // "Carol, can you book …?" answered "Sure, no problem." by Carol.
    let book = action(&minutes, "@carol:example.org", &["book", "load-testing"]);
    assert_eq!(book.due.as_deref(), Some("for next week"));
    // Bob, first person: "I'll update the migration runbook before the 15th."
    let runbook = action(&minutes, "@bob:example.org", &["runbook"]);
    assert_eq!(runbook.due.as_deref(), Some("before the 15th"));
    // Said by Carol: "Alice will send the updated budget by Friday."
    let budget = action(&minutes, "@alice:example.org", &["send", "budget"]);
    assert_eq!(budget.due.as_deref(), Some("by Friday"));
    // "Who can draft the on-call schedule?" answered "I'll take care of it by Wednesday." by Dan.
    let schedule = action(&minutes, "@dan:example.org", &["draft", "on-call schedule"]);
    assert_eq!(schedule.due.as_deref(), Some("by Wednesday"));
    action(&minutes, "@dan:example.org", &["batch team", "alerts"]);
    let firms = action(&minutes, "@alice:example.org", &["contact", "audit firms"]);
    assert_eq!(firms.due.as_deref(), Some("tomorrow"));
    action(&minutes, "@carol:example.org", &["legal"]);
    assert_eq!(
        minutes.actions.len(),
        8,
        "only the eight promises made: {:#?}",
        minutes.actions
    );
}

#[test]
fn english_meeting_gives_no_action_for_what_was_not_promised() {
    let minutes = BuiltinSummarizer.summarize(&fixture("meeting_en.json"));
    assert_nothing_mentions(
        &minutes,
        &[
            "escalate",      // "If the vendor slips again, I'll escalate…" (hypothesis)
            "script",        // "Maybe I'll write a script…" (hedge)
            "certificate",   // "Dan, could you handle the certificate…?" "No, sorry, I can't…"
            "dashboards",    // "I won't have time to look at the dashboards" (negation)
            "thresholds",    // "Last week Carol said she would look at…" (reported, past)
            "queries",       // "I sent the comparison queries…" (past)
            "screen",        // "Let me share my screen." (running the meeting)
            "kickoff", // "Dan is not going to join the audit kickoff, right?" (negation, question)
            "extra meeting", // "I'm not going to schedule an extra meeting" (negation)
            "failover", // "I can help with the failover part" (an offer, no commitment)
        ],
    );
    assert!(minutes.actions.iter().all(|a| a.owner.is_some()));
}

#[test]
fn english_meeting_open_questions_are_the_unanswered_ones() {
    let minutes = BuiltinSummarizer.summarize(&fixture("meeting_en.json"));
    assert_question(&minutes, &["hosting budget", "open question"]);
    assert_question(&minutes, &["legacy api customers"]);
    assert_question(&minutes, &["training platform"]);
    // Answered in the next turn, so not open.
    assert!(
        !minutes
            .questions
            .iter()
            .any(|q| lower(q).contains("blocker"))
    );
    assert!(
        !minutes
            .questions
            .iter()
            .any(|q| lower(q).contains("mobile apps"))
    );
}

#[test]
fn french_meeting_minutes_hold_the_decisions_that_were_taken() {
    let minutes = BuiltinSummarizer.summarize(&fixture("meeting_fr.json"));
    assert_eq!(minutes.lang, "fr");
    assert_decision(&minutes, &["on part sur", "hébergeur de la région"]);
    assert_decision(&minutes, &["validé", "3 juin"]);
    assert_decision(&minutes, &["audit d'accessibilité", "prestataire externe"]);
    assert_decision(&minutes, &["deux sessions"]);
    assert_eq!(minutes.decisions.len(), 4, "{:#?}", minutes.decisions);
}

#[test]
fn french_meeting_actions_have_the_owners_who_said_them() {
    let minutes = BuiltinSummarizer.summarize(&fixture("meeting_fr.json"));
    // Said by Camille: "Julien va envoyer le devis signé d'ici vendredi."
    let devis = action(&minutes, "@julien:example.org", &["devis"]);
    assert_eq!(devis.due.as_deref(), Some("d'ici vendredi"));
    // "Karim, tu peux prévenir l'agence… ?" "Oui, pas de souci, je leur écris cet après-midi."
    let agence = action(&minutes, "@karim:example.org", &["prévenir l'agence"]);
    assert_eq!(agence.due.as_deref(), Some("cet après-midi"));
    // "Élodie se charge de relancer les trois prestataires la semaine prochaine."
    let relance = action(
        &minutes,
        "@elodie:example.org",
        &["relancer", "prestataires"],
    );
    assert_eq!(relance.due.as_deref(), Some("la semaine prochaine"));
    // Sophie: "Je vais préparer le planning de formation avant le 15."
    let planning = action(&minutes, "@sophie:example.org", &["planning de formation"]);
    assert_eq!(planning.due.as_deref(), Some("avant le 15"));
    // "Qui peut réserver la salle du conseil… ?" Karim: "Je m'en occupe."
    action(
        &minutes,
        "@karim:example.org",
        &["réserver la salle du conseil"],
    );
    // Julien: "Je m'occupe de la migration des contenus avec l'agence."
    action(&minutes, "@julien:example.org", &["migration des contenus"]);
    // Julien: "Oui, je leur enverrai la liste."
    action(&minutes, "@julien:example.org", &["envoyer la liste"]);
    // "Camille, tu peux envoyer le compte rendu aux élus ?" "Oui, pas de souci, d'ici lundi."
    let compte_rendu = action(&minutes, "@camille:example.org", &["compte rendu"]);
    assert_eq!(compte_rendu.due.as_deref(), Some("d'ici lundi"));
    assert_eq!(
        minutes.actions.len(),
        8,
        "only the eight promises made: {:#?}",
        minutes.actions
    );
}

#[test]
fn french_meeting_gives_no_action_for_what_was_not_promised() {
    let minutes = BuiltinSummarizer.summarize(&fixture("meeting_fr.json"));
    assert_nothing_mentions(
        &minutes,
        &[
            "html",              // "Si on a du budget en plus, je vais faire refaire…" (hypothèse)
            "maquette",          // "Peut-être que je ferai une maquette…"
            "recette",           // "Je ne vais pas pouvoir assister à la recette…" (négation)
            "pictogrammes",      // "Je vais pas refaire les pictogrammes…" (négation familière)
            "traductions",       // "Karim, tu pourrais… ?" "Non, désolé…" (refus)
            "newsletter", // "tu m'avais dit que Sophie va gérer la newsletter" (discours rapporté)
            "imprimeur",  // "Karim a déjà relancé l'imprimeur" (passé)
            "cahier",     // "J'ai envoyé le cahier des charges hier." (passé)
            "écran",      // "Je vais partager mon écran." (conduite de réunion)
            "supports",   // "je ne m'occupe pas des supports de formation" (négation)
            "conseil municipal", // "Est-ce que Julien va présenter le budget… ?" (question)
        ],
    );
}

#[test]
fn french_meeting_open_questions_are_the_unanswered_ones() {
    let minutes = BuiltinSummarizer.summarize(&fixture("meeting_fr.json"));
    assert_question(&minutes, &["anciens pdf", "reste à définir"]);
    assert_question(&minutes, &["prestataire de traduction"]);
    assert_question(&minutes, &["archives photo"]);
    assert!(
        !minutes
            .questions
            .iter()
            .any(|q| lower(q).contains("adresses mail"))
    );
}

#[test]
fn summaries_have_three_to_eight_sentences_in_the_order_they_were_said() {
    for name in ["meeting_en.json", "meeting_fr.json"] {
        let meeting = fixture(name);
        let minutes = BuiltinSummarizer.summarize(&meeting);
        let n = minutes.summary.len();
        assert!(
            (3..=8).contains(&n),
            "{name}: {n} summary sentences: {:#?}",
            minutes.summary
        );
        // Each entry is "Speaker: sentence", and the sentences appear in transcript order.
        let transcript: String = meeting
            .segments
            .iter()
            .map(|s| format!("{} ", s.text))
            .collect();
        let mut last = 0;
        for entry in &minutes.summary {
            let (speaker, sentence) = entry.split_once(": ").expect("speaker prefix");
            assert!(
                meeting
                    .participants
                    .iter()
                    .any(|p| p.display_name.as_deref() == Some(speaker))
            );
            let at = transcript[last..].find(sentence).unwrap_or_else(|| {
                panic!("{name}: {sentence:?} is not in the transcript after position {last}")
            });
            last += at + sentence.len();
        }
    }
}

#[test]
fn the_same_transcript_gives_the_same_minutes() {
    for name in ["meeting_en.json", "meeting_fr.json"] {
        let meeting = fixture(name);
        let first = serde_json::to_string(&BuiltinSummarizer.summarize(&meeting)).unwrap();
        for _ in 0..3 {
            let again =
                serde_json::to_string(&BuiltinSummarizer.summarize(&meeting.clone())).unwrap();
            assert_eq!(first, again, "{name}");
        }
    }
}

#[test]
fn a_call_without_transcript_gets_only_times_and_participants() {
    let mut meeting = fixture("meeting_en.json");
    meeting.segments.clear();
    let minutes = BuiltinSummarizer.summarize(&meeting);
    assert!(minutes.is_bare(), "{minutes:#?}");
    assert_eq!(minutes.participants.len(), 4);
    assert_eq!(minutes.started_at, meeting.started_at);
    assert_eq!(minutes.ended_at, meeting.ended_at);
}

#[test]
fn minutes_serialise_to_the_org_salon_minutes_schema() {
    let minutes = BuiltinSummarizer.summarize(&fixture("meeting_en.json"));
    let value = serde_json::to_value(&minutes).unwrap();
    for key in [
        "call_id",
        "started_at",
        "ended_at",
        "participants",
        "summary",
        "decisions",
        "actions",
        "questions",
    ] {
        assert!(value.get(key).is_some(), "missing {key} in {value}");
    }
    assert_eq!(value["call_id"], "call-en-platform-sync");
    assert!(value["started_at"].is_u64());
    assert_eq!(value["participants"][0]["mxid"], "@alice:example.org");
    assert_eq!(value["actions"][0]["owner"], "@bob:example.org");
    assert!(value["actions"][0]["text"].is_string());
    assert_eq!(value["generated_by"], "builtin");
    let back: Minutes = serde_json::from_value(value).unwrap();
    assert_eq!(back, minutes);
}
