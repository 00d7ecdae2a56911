//! Transcript files: what we write in WebVTT and Markdown reads back as the
//! same meeting, through the same `load_transcript` that `salon summarize`
//! uses, and a WebVTT file from another tool is read too.

use salon_minutes::transcript::{parse_markdown, parse_webvtt};
use salon_minutes::{
    BuiltinSummarizer, Meeting, MinutesError, load_transcript, transcript_markdown,
    transcript_webvtt,
};

fn fixture(name: &str) -> Meeting {
    load_transcript(format!(
        "{}/tests/fixtures/{name}",
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into())
    ))
    .unwrap()
}

fn scratch(name: &str, contents: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("salon-minutes-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn webvtt_and_markdown_files_read_back_as_the_same_meeting() {
    for name in ["meeting_en.json", "meeting_fr.json"] {
        let meeting = fixture(name);
        let vtt = scratch(&name.replace(".json", ".vtt"), &transcript_webvtt(&meeting));
        assert_eq!(
            load_transcript(&vtt).unwrap(),
            meeting,
            "{name} through WebVTT"
        );
        let md = scratch(
            &name.replace(".json", ".md"),
            &transcript_markdown(&meeting),
        );
        assert_eq!(
            load_transcript(&md).unwrap(),
            meeting,
            "{name} through Markdown"
        );
    }
}

#[test]
fn summarize_gives_the_same_minutes_from_every_format() {
    let meeting = fixture("meeting_fr.json");
    let from_json = BuiltinSummarizer.summarize(&meeting);
    let from_vtt =
        BuiltinSummarizer.summarize(&parse_webvtt(&transcript_webvtt(&meeting)).unwrap());
    let from_md =
        BuiltinSummarizer.summarize(&parse_markdown(&transcript_markdown(&meeting)).unwrap());
    assert_eq!(from_vtt, from_json);
    assert_eq!(from_md, from_json);
}

#[test]
fn webvtt_cues_are_tagged_with_the_speaker_and_escaped() {
    let mut meeting = fixture("meeting_en.json");
    meeting.segments.truncate(2);
    meeting.segments[1].text = "Use <b>bold</b> & see".into();
    meeting.segments[1].lang = "fr".into();
    let vtt = transcript_webvtt(&meeting);
    assert!(vtt.starts_with("WEBVTT\n"));
    assert!(vtt.contains("00:00:01.500 --> "), "{vtt}");
    assert!(
        vtt.contains("<v Alice Martin>Hi everyone, can you hear me okay?\n"),
        "{vtt}"
    );
    assert!(
        vtt.contains("<v Bob Chen><lang fr>Use &lt;b&gt;bold&lt;/b&gt; &amp; see</lang>\n"),
        "{vtt}"
    );
    let back = parse_webvtt(&vtt).unwrap();
    assert_eq!(back.segments[1].text, "Use <b>bold</b> & see");
    assert_eq!(back.segments[1].lang, "fr");
    assert_eq!(back.segments[1].speaker, "@bob:example.org");
}

#[test]
fn markdown_transcript_shows_speaker_time_and_text() {
    let meeting = fixture("meeting_fr.json");
    let md = transcript_markdown(&meeting);
    assert!(
        md.starts_with(
            "# Transcription — Comité refonte du site de la médiathèque — 2 avril 2026\n"
        ),
        "{}",
        &md[..200]
    );
    assert!(md.contains("- Élodie Petit (@elodie:example.org)\n"));
    assert!(md.contains("- **[00:00:01.500 → "), "{}", &md[..800]);
    assert!(md.contains("] Camille Laurent:** Bonjour à tous, vous m'entendez bien ?\n"));
}

#[test]
fn json_arrays_of_transcript_events_load_as_a_meeting() {
    let path = scratch(
        "segments.json",
        r#"[{"call_id":"c1","speaker":"@b:x.org","start_ms":4000,"end_ms":6000,"lang":"en","text":"I'll send the report by Monday."},
            {"call_id":"c1","speaker":"@a:x.org","start_ms":1000,"end_ms":3000,"lang":"en","text":"Who can send the report?"}]"#,
    );
    let meeting = load_transcript(&path).unwrap();
    assert_eq!(meeting.call_id, "c1");
    assert_eq!(
        meeting.segments[0].speaker, "@a:x.org",
        "segments are put in time order"
    );
    assert_eq!(meeting.participants.len(), 2);
    let minutes = BuiltinSummarizer.summarize(&meeting);
    assert_eq!(minutes.actions.len(), 1, "{:?}", minutes.actions);
    assert_eq!(minutes.actions[0].owner.as_deref(), Some("@b:x.org"));
    assert_eq!(minutes.actions[0].due.as_deref(), Some("by Monday"));
}

#[test]
fn webvtt_from_another_tool_is_read_with_its_voices() {
    let path = scratch(
        "other.vtt",
        "\u{feff}WEBVTT - exported\r\n\r\nSTYLE\r\n::cue { color: white }\r\n\r\n00:01.000 --> 00:04.000 align:start\r\n<v.loud Esme>It's a <i>blue</i> apple tree!\r\n\r\nintro\r\n00:05.000 --> 00:07.500\r\n<v Mary>No way!</v>\r\n",
    );
    let meeting = load_transcript(&path).unwrap();
    assert_eq!(meeting.segments.len(), 2);
    assert_eq!(meeting.segments[0].speaker_name.as_deref(), Some("Esme"));
    assert_eq!(meeting.segments[0].text, "It's a blue apple tree!");
    assert_eq!(
        (meeting.segments[1].start_ms, meeting.segments[1].end_ms),
        (5000, 7500)
    );
    assert_eq!(meeting.duration_ms(), 7500);
}

#[test]
fn unreadable_transcripts_say_what_is_wrong() {
    let bad_time = scratch("bad.vtt", "WEBVTT\n\n00:01.000 --> soon\n<v A>hello\n");
    let error = load_transcript(&bad_time).unwrap_err();
    assert!(
        matches!(
            error,
            MinutesError::Syntax {
                format: "WebVTT",
                line: 3,
                ..
            }
        ),
        "{error}"
    );
    let not_vtt = scratch("not.vtt", "hello\n");
    assert!(
        load_transcript(&not_vtt)
            .unwrap_err()
            .to_string()
            .contains("WEBVTT")
    );
    let unknown = scratch("notes.txt", "hello");
    assert!(matches!(
        load_transcript(&unknown),
        Err(MinutesError::UnknownFormat { .. })
    ));
    assert!(matches!(
        load_transcript("/nonexistent/x.json"),
        Err(MinutesError::Read { .. })
    ));
}
