//! The built-in summariser's cue phrases, one behaviour per test, on short
//! dialogues: who owns an action, when there is no action at all, deadlines,
//! decisions and open questions, in English and French.

use salon_minutes::{BuiltinSummarizer, Meeting, Minutes, Participant, TranscriptSegment};

/// A meeting from `(speaker localpart, text)` turns, with five participants
/// ("alice" is Alice Martin, "julien" is Julien Moreau, …).
fn meeting(lang: &str, turns: &[(&str, &str)]) -> Meeting {
    fn name(who: &str) -> &str {
        match who {
            "alice" => "Alice Martin",
            "bob" => "Bob Chen",
            "carol" => "Carol Diaz",
            "julien" => "Julien Moreau",
            "sophie" => "Sophie Bernard",
            other => other,
        }
    }
    let segments = turns
        .iter()
        .enumerate()
        .map(|(i, (who, text))| TranscriptSegment {
            call_id: "c".into(),
            speaker: format!("@{who}:example.org"),
            speaker_name: Some(name(who).into()),
            start_ms: i as u64 * 5000,
            end_ms: i as u64 * 5000 + 4000,
            lang: lang.into(),
            text: (*text).into(),
        })
        .collect::<Vec<_>>();
    // Everyone is in the call, whether they speak or not.
    let participants: Vec<Participant> = ["alice", "bob", "carol", "julien", "sophie"]
        .iter()
        .map(|who| Participant {
            mxid: format!("@{who}:example.org"),
            display_name: Some(name(who).into()),
        })
        .collect();
    Meeting {
        call_id: "c".into(),
        room_name: None,
        started_at: 0,
        ended_at: turns.len() as u64 * 5000,
        participants,
        segments,
    }
}

fn minutes(lang: &str, turns: &[(&str, &str)]) -> Minutes {
    BuiltinSummarizer.summarize(&meeting(lang, turns))
}

fn owners_and_texts(minutes: &Minutes) -> Vec<(String, String)> {
    minutes
        .actions
        .iter()
        .map(|a| (a.owner.clone().unwrap_or_default(), a.text.to_lowercase()))
        .collect()
}

#[test]
fn a_named_person_owns_what_someone_says_they_will_do() {
    let m = minutes("en", &[("carol", "Alice will send the budget by Friday.")]);
    assert_eq!(
        owners_and_texts(&m),
        vec![(
            "@alice:example.org".into(),
            "send the budget by friday".into()
        )]
    );
    assert_eq!(m.actions[0].due.as_deref(), Some("by Friday"));
}

#[test]
fn a_first_person_promise_belongs_to_the_speaker() {
    let m = minutes(
        "en",
        &[
            ("alice", "Okay."),
            ("bob", "I'll draft the proposal next week."),
        ],
    );
    assert_eq!(
        owners_and_texts(&m),
        vec![(
            "@bob:example.org".into(),
            "draft the proposal next week".into()
        )]
    );
    assert_eq!(m.actions[0].due.as_deref(), Some("next week"));
    let m = minutes(
        "fr",
        &[("sophie", "Je vais mettre à jour le wiki avant le 15.")],
    );
    assert_eq!(
        owners_and_texts(&m),
        vec![(
            "@sophie:example.org".into(),
            "mettre à jour le wiki avant le 15".into()
        )]
    );
}

#[test]
fn french_named_owners_with_va_and_se_charge_de() {
    let m = minutes(
        "fr",
        &[
            (
                "sophie",
                "Julien va contacter le fournisseur d'ici vendredi.",
            ),
            (
                "julien",
                "Et Sophie se charge de la réservation du traiteur.",
            ),
        ],
    );
    assert_eq!(
        owners_and_texts(&m),
        vec![
            (
                "@julien:example.org".into(),
                "contacter le fournisseur d'ici vendredi".into()
            ),
            (
                "@sophie:example.org".into(),
                "se charger de la réservation du traiteur".into()
            ),
        ]
    );
}

#[test]
fn je_m_en_occupe_takes_the_task_from_the_open_request_it_answers() {
    let m = minutes(
        "fr",
        &[
            ("julien", "Qui peut relire la convention avant jeudi ?"),
            ("sophie", "Je m'en occupe."),
        ],
    );
    assert_eq!(
        owners_and_texts(&m),
        vec![(
            "@sophie:example.org".into(),
            "relire la convention avant jeudi".into()
        )]
    );
    assert_eq!(m.actions[0].due.as_deref(), Some("avant jeudi"));
}

#[test]
fn a_pointing_back_promise_with_nothing_to_point_to_gives_no_action() {
    let m = minutes(
        "en",
        &[
            ("alice", "The weather is nice today."),
            ("bob", "I'll do it."),
        ],
    );
    assert!(m.actions.is_empty(), "{:?}", m.actions);
}

#[test]
fn a_request_is_an_action_only_when_the_person_asked_accepts() {
    let asked = [("alice", "Can you update the release checklist, Bob?")];
    let accepted = minutes("en", &[asked[0], ("bob", "Sure, by tomorrow.")]);
    assert_eq!(
        owners_and_texts(&accepted),
        vec![(
            "@bob:example.org".into(),
            "update the release checklist".into()
        )]
    );
    assert_eq!(accepted.actions[0].due.as_deref(), Some("by tomorrow"));
    let declined = minutes("en", &[asked[0], ("bob", "No, sorry, I can't this week.")]);
    assert!(declined.actions.is_empty(), "{:?}", declined.actions);
    let unanswered = minutes("en", &[asked[0], ("carol", "Yes, good idea.")]);
    assert!(
        unanswered.actions.is_empty(),
        "Carol cannot accept for Bob: {:?}",
        unanswered.actions
    );
    let someone_absent = minutes(
        "en",
        &[
            ("alice", "Can you renew the certificate, Dave?"),
            ("carol", "Sure."),
        ],
    );
    assert!(
        someone_absent.actions.is_empty(),
        "Dave is not in the call: {:?}",
        someone_absent.actions
    );
    let anyone = minutes(
        "en",
        &[
            ("alice", "Okay, can you renew the certificate?"),
            ("carol", "Sure."),
        ],
    );
    assert_eq!(
        owners_and_texts(&anyone),
        vec![("@carol:example.org".into(), "renew the certificate".into())]
    );
    let french = minutes(
        "fr",
        &[
            ("julien", "Sophie, tu peux envoyer l'invitation ?"),
            ("sophie", "Oui, d'accord."),
        ],
    );
    assert_eq!(
        owners_and_texts(&french),
        vec![("@sophie:example.org".into(), "envoyer l'invitation".into())]
    );
}

#[test]
fn past_tense_is_not_an_action() {
    for (lang, text) in [
        ("en", "I sent it yesterday."),
        ("en", "Alice sent the budget last week."),
        ("en", "I was going to send the slides."),
        ("fr", "J'ai envoyé le budget hier."),
        ("fr", "Julien a déjà contacté le fournisseur."),
    ] {
        let m = minutes(lang, &[("bob", text)]);
        assert!(m.actions.is_empty(), "{text:?} gave {:?}", m.actions);
    }
}

#[test]
fn negations_are_not_actions() {
    for (lang, text) in [
        ("en", "I won't send the report."),
        ("en", "I will not update the wiki."),
        ("en", "Alice is not going to review it."),
        ("fr", "Je ne vais pas envoyer le rapport."),
        ("fr", "Je vais pas refaire la maquette."),
        ("fr", "Julien ne va pas contacter le client."),
        ("fr", "Je n'enverrai pas le devis."),
    ] {
        let m = minutes(lang, &[("bob", text)]);
        assert!(m.actions.is_empty(), "{text:?} gave {:?}", m.actions);
    }
}

#[test]
fn hypotheses_and_hedges_are_not_actions() {
    for (lang, text) in [
        ("en", "If the vendor is late, I'll call their manager."),
        ("en", "Maybe I'll write a script for it."),
        ("en", "I might update the docs."),
        ("fr", "Si on a le budget, je vais recruter un stagiaire."),
        ("fr", "Peut-être que je ferai une maquette."),
        ("fr", "Au cas où, Julien va prévenir la sécurité."),
    ] {
        let m = minutes(lang, &[("bob", text)]);
        assert!(m.actions.is_empty(), "{text:?} gave {:?}", m.actions);
    }
}

#[test]
fn nobody_is_guessed_as_owner() {
    for (lang, text) in [
        ("en", "He will send the contract."),
        ("en", "We'll see."),
        ("en", "They will deliver the servers next week."),
        ("en", "Will Alice present the results?"),
        ("fr", "Il va envoyer le contrat."),
        ("fr", "On va voir."),
        ("fr", "Est-ce que Julien va présenter le budget ?"),
    ] {
        let m = minutes(lang, &[("bob", text)]);
        assert!(m.actions.is_empty(), "{text:?} gave {:?}", m.actions);
    }
}

#[test]
fn decisions_from_english_and_french_cue_phrases() {
    for (lang, text) in [
        ("en", "So we decided to keep the current vendor."),
        ("en", "Decision: the pilot starts in May."),
        ("en", "Let's go with the blue design."),
        ("en", "OK, we agreed that the office stays open in August."),
        ("fr", "Bon, on a décidé de garder le prestataire actuel."),
        ("fr", "Nous avons décidé de reporter la formation."),
        ("fr", "C'est validé, la réunion passe au mardi."),
        ("fr", "On part sur la version deux du logo."),
    ] {
        let m = minutes(lang, &[("alice", text)]);
        assert_eq!(m.decisions.len(), 1, "{text:?} gave {:?}", m.decisions);
        assert!(
            !m.decisions[0].starts_with("So ") && !m.decisions[0].starts_with("Bon"),
            "fillers are dropped: {:?}",
            m.decisions
        );
    }
}

#[test]
fn questions_and_negations_are_not_decisions() {
    for (lang, text) in [
        ("en", "We haven't decided yet."),
        ("en", "Did we agree on the date?"),
        ("en", "If we go with the blue design, it costs more."),
        ("fr", "Rien n'est acté pour l'instant."),
        ("fr", "On part sur la version deux ?"),
        ("fr", "On n'a pas décidé de la date."),
    ] {
        let m = minutes(lang, &[("alice", text), ("bob", "Okay.")]);
        assert!(m.decisions.is_empty(), "{text:?} gave {:?}", m.decisions);
    }
}

#[test]
fn open_questions_are_explicit_or_unanswered() {
    let m = minutes(
        "fr",
        &[
            ("julien", "Le budget de la phase deux reste à définir."),
            ("sophie", "Oui."),
        ],
    );
    assert_eq!(
        m.questions,
        vec!["Le budget de la phase deux reste à définir."]
    );
    let m = minutes(
        "en",
        &[
            ("alice", "Who will pay for the extra servers?"),
            ("bob", "No idea, honestly."),
        ],
    );
    assert_eq!(m.questions, vec!["Who will pay for the extra servers?"]);
    let m = minutes(
        "en",
        &[
            ("alice", "Who will pay for the extra servers?"),
            ("bob", "Finance will, it's in their budget."),
        ],
    );
    assert!(m.questions.is_empty(), "answered: {:?}", m.questions);
    let m = minutes(
        "en",
        &[
            ("alice", "Okay that's all."),
            (
                "bob",
                "What about the licence renewal for the design tools?",
            ),
        ],
    );
    assert_eq!(
        m.questions.len(),
        1,
        "the last question of the meeting got no answer"
    );
}
