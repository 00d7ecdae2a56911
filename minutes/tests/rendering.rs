//! The minutes notice as people read it: HTML `formatted_body`, plain `body`
//! and Markdown for `salon summarize`.

use salon_minutes::render::{render_html_with, render_plain_with};
use salon_minutes::{
    Action, BuiltinSummarizer, GeneratedBy, Meeting, Minutes, Participant, TranscriptLinks,
    load_transcript, render_html, render_markdown, render_plain,
};

fn fixture(name: &str) -> Meeting {
    load_transcript(format!(
        "{}/tests/fixtures/{name}",
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into())
    ))
    .unwrap()
}

#[test]
fn html_minutes_show_title_times_linked_participants_and_sections() {
    let meeting = fixture("meeting_en.json");
    let minutes = BuiltinSummarizer.summarize(&meeting);
    let html = render_html(&minutes, &meeting);
    assert!(
        html.starts_with("<h3>Minutes — Platform weekly sync — 5 March 2026</h3>"),
        "{html}"
    );
    assert!(
        html.contains(
            "<b>Start:</b> 14:00 UTC<br><b>End:</b> 14:15 UTC<br><b>Duration:</b> 15 min"
        ),
        "{html}"
    );
    assert!(html.contains(r#"<a href="https://matrix.to/#/@alice:example.org">Alice Martin</a>"#));
    for section in [
        "<h4>Summary</h4>",
        "<h4>Decisions</h4>",
        "<h4>Action items</h4>",
        "<h4>Open questions</h4>",
    ] {
        assert!(html.contains(section), "{section} missing");
    }
    assert!(html.contains("<li>We agreed to ship release 2.4 on March 12.</li>"));
    assert!(html.contains(
        r#"<li><b><a href="https://matrix.to/#/@dan:example.org">Dan Okafor</a></b> — Draft the on-call schedule for the second quarter <i>(due: by Wednesday)</i></li>"#
    ), "{html}");
}

#[test]
fn french_minutes_are_labelled_in_french() {
    let meeting = fixture("meeting_fr.json");
    let minutes = BuiltinSummarizer.summarize(&meeting);
    let plain = render_plain(&minutes, &meeting);
    assert!(
        plain.starts_with(
            "Compte rendu — Comité refonte du site de la médiathèque — 2 avril 2026\n"
        ),
        "{plain}"
    );
    assert!(
        plain.contains("\nDécisions\n- On part sur l'hébergement mutualisé"),
        "{plain}"
    );
    assert!(
        plain.contains(
            "Karim Haddad: Prévenir l'agence de la date retenue (échéance : cet après-midi)"
        ),
        "{plain}"
    );
    assert!(plain.contains("Questions ouvertes"));
}

#[test]
fn everything_from_the_meeting_is_escaped_in_html() {
    let meeting = Meeting {
        call_id: "c".into(),
        room_name: Some("<script>alert(1)</script>".into()),
        started_at: 0,
        ended_at: 60_000,
        participants: vec![Participant {
            mxid: "@eve\"><img:evil.org".into(),
            display_name: Some("Eve <b>".into()),
        }],
        segments: vec![],
    };
    let minutes = Minutes {
        call_id: "c".into(),
        started_at: 0,
        ended_at: 60_000,
        participants: meeting.participants.clone(),
        summary: vec!["a < b & c".into()],
        decisions: vec!["<i>x</i>".into()],
        actions: vec![Action {
            owner: Some("@eve\"><img:evil.org".into()),
            text: "<a href=x>".into(),
            due: Some("<now>".into()),
        }],
        questions: vec!["\"quoted\"?".into()],
        moderation: vec!["@mod:x removed @eve\"><img:evil.org".into()],
        lang: "en".into(),
        generated_by: GeneratedBy::Llm,
    };
    let html = render_html(&minutes, &meeting);
    assert!(
        !html.contains("<script>")
            && !html.contains("<img")
            && !html.contains("<a href=x>")
            && !html.contains("<i>x</i>"),
        "{html}"
    );
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("a &lt; b &amp; c"));
    assert!(
        html.contains(r#"href="https://matrix.to/#/@eve%22%3E%3Cimg:evil.org""#),
        "{html}"
    );
    assert!(html.contains("<h4>Moderation</h4>"), "{html}");
    let markdown = render_markdown(&minutes, &meeting);
    assert!(markdown.contains(r"\<script\>"), "{markdown}");
    assert!(markdown.contains("Moderation"), "{markdown}");
    let plain = render_plain(&minutes, &meeting);
    assert!(
        plain.contains("Moderation\n- @mod:x removed @eve"),
        "{plain}"
    );
}

#[test]
fn a_call_without_transcript_shows_only_duration_and_participants() {
    let mut meeting = fixture("meeting_en.json");
    meeting.segments.clear();
    let minutes = BuiltinSummarizer.summarize(&meeting);
    for text in [
        render_plain(&minutes, &meeting),
        render_markdown(&minutes, &meeting),
        render_html(&minutes, &meeting),
    ] {
        assert!(text.contains("15 min"), "{text}");
        assert!(text.contains("Carol Diaz"));
        assert!(text.contains("No transcript was recorded for this call."));
        for section in [
            "Summary",
            "Decisions",
            "Action items",
            "Open questions",
            "Moderation",
            "summariser",
        ] {
            assert!(
                !text.contains(section),
                "{section} in minutes without transcript:\n{text}"
            );
        }
    }
}

#[test]
fn transcript_links_are_shown_when_given() {
    let meeting = fixture("meeting_en.json");
    let minutes = BuiltinSummarizer.summarize(&meeting);
    let links = TranscriptLinks {
        webvtt: Some("https://hs.example.org/media/a.vtt?x=1&y=2".into()),
        markdown: Some("https://hs.example.org/media/a.md".into()),
    };
    let html = render_html_with(&minutes, &meeting, &links);
    assert!(
        html.contains(r#"<a href="https://hs.example.org/media/a.vtt?x=1&amp;y=2">WebVTT</a>"#),
        "{html}"
    );
    let plain = render_plain_with(&minutes, &meeting, &links);
    assert!(plain.contains("Transcript: WebVTT https://hs.example.org/media/a.vtt?x=1&y=2 · Markdown https://hs.example.org/media/a.md"));
}
