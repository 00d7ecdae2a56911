//! Minutes as people read them: Markdown (for `salon summarize`), HTML for
//! the notice's `formatted_body`, and plain text for its `body`.
//!
//! The three share one layout: a title (room name and date), start, end and
//! duration, participants (linked to their Matrix ids in HTML), then the
//! summary, decisions, action items with owners, and open questions. Empty
//! sections are left out; a call without transcript says so and shows only
//! times and participants. Labels follow the minutes' language. Every piece
//! of text from the meeting is escaped for the format it goes into.

use crate::language::Language;
use crate::meeting::Meeting;
use crate::minutes::{GeneratedBy, Minutes};
use crate::time;

/// Links to the uploaded transcript files, shown under the minutes when known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TranscriptLinks {
    pub webvtt: Option<String>,
    pub markdown: Option<String>,
}

struct Labels {
    minutes: &'static str,
    start: &'static str,
    end: &'static str,
    duration: &'static str,
    participants: &'static str,
    summary: &'static str,
    decisions: &'static str,
    actions: &'static str,
    questions: &'static str,
    moderation: &'static str,
    due: &'static str,
    unassigned: &'static str,
    no_transcript: &'static str,
    transcript: &'static str,
    by_builtin: &'static str,
    by_llm: &'static str,
}

const ENGLISH: Labels = Labels {
    minutes: "Minutes",
    start: "Start",
    end: "End",
    duration: "Duration",
    participants: "Participants",
    summary: "Summary",
    decisions: "Decisions",
    actions: "Action items",
    questions: "Open questions",
    moderation: "Moderation",
    due: "due:",
    unassigned: "Unassigned",
    no_transcript: "No transcript was recorded for this call.",
    transcript: "Transcript",
    by_builtin: "Written by the built-in summariser from the transcript.",
    by_llm: "Written by a language model from the transcript.",
};

const FRENCH: Labels = Labels {
    minutes: "Compte rendu",
    start: "Début",
    end: "Fin",
    duration: "Durée",
    participants: "Participants",
    summary: "Résumé",
    decisions: "Décisions",
    actions: "Actions",
    questions: "Questions ouvertes",
    moderation: "Modération",
    due: "échéance :",
    unassigned: "Sans responsable",
    no_transcript: "Aucune transcription n'a été enregistrée pour cet appel.",
    transcript: "Transcription",
    by_builtin: "Rédigé par le résumeur intégré à partir de la transcription.",
    by_llm: "Rédigé par un modèle de langue à partir de la transcription.",
};

fn labels(minutes: &Minutes) -> &'static Labels {
    match Language::from_code(&minutes.lang) {
        Some(Language::French) => &FRENCH,
        _ => &ENGLISH,
    }
}

fn lang(minutes: &Minutes) -> Language {
    Language::from_code(&minutes.lang).unwrap_or(Language::English)
}

/// A person: display name and user id.
struct Person {
    name: String,
    mxid: Option<String>,
}

/// One action item, ready to print.
struct Item {
    owner: Option<Person>,
    text: String,
    due: Option<String>,
}

/// What every format shows, in order.
struct Layout<'a> {
    labels: &'static Labels,
    title: String,
    start: String,
    end: String,
    duration: String,
    participants: Vec<Person>,
    summary: &'a [String],
    decisions: &'a [String],
    actions: Vec<Item>,
    questions: &'a [String],
    moderation: &'a [String],
    no_transcript: bool,
    footer: &'static str,
}

fn layout<'a>(minutes: &'a Minutes, meeting: &Meeting) -> Layout<'a> {
    let labels = labels(minutes);
    let date = time::date(minutes.started_at, lang(minutes));
    let title = match meeting
        .room_name
        .as_deref()
        .filter(|r| !r.trim().is_empty())
    {
        Some(room) => format!("{} — {room} — {date}", labels.minutes),
        None => format!("{} — {date}", labels.minutes),
    };
    let person = |mxid: &str| Person {
        name: minutes
            .participants
            .iter()
            .find(|p| p.mxid == mxid)
            .map(|p| p.name().to_string())
            .unwrap_or_else(|| meeting.name_of(mxid).to_string()),
        mxid: mxid.starts_with('@').then(|| mxid.to_string()),
    };
    let participants = minutes
        .participants
        .iter()
        .map(|p| person(&p.mxid))
        .collect();
    let actions = minutes
        .actions
        .iter()
        .map(|a| Item {
            owner: a.owner.as_deref().map(person),
            text: a.text.clone(),
            // The deadline is repeated only if the text does not already say it.
            due: a
                .due
                .clone()
                .filter(|d| !a.text.to_lowercase().contains(&d.to_lowercase())),
        })
        .collect();
    Layout {
        labels,
        title,
        start: time::clock(minutes.started_at),
        end: time::clock(minutes.ended_at),
        duration: time::duration(minutes.ended_at.saturating_sub(minutes.started_at)),
        participants,
        summary: &minutes.summary,
        decisions: &minutes.decisions,
        actions,
        questions: &minutes.questions,
        moderation: &minutes.moderation,
        no_transcript: meeting.segments.is_empty(),
        footer: match minutes.generated_by {
            GeneratedBy::Builtin => labels.by_builtin,
            GeneratedBy::Llm => labels.by_llm,
        },
    }
}

/// Minutes as Markdown, as `salon summarize` prints them.
pub fn render_markdown(minutes: &Minutes, meeting: &Meeting) -> String {
    render_markdown_with(minutes, meeting, &TranscriptLinks::default())
}

/// Minutes as Markdown, with links to the transcript files.
pub fn render_markdown_with(
    minutes: &Minutes,
    meeting: &Meeting,
    links: &TranscriptLinks,
) -> String {
    let l = layout(minutes, meeting);
    let mut out = format!("# {}\n\n", md(&l.title));
    out.push_str(&format!(
        "**{}:** {} · **{}:** {} · **{}:** {}\n\n",
        l.labels.start, l.start, l.labels.end, l.end, l.labels.duration, l.duration
    ));
    let names: Vec<String> = l.participants.iter().map(|p| md(&p.name)).collect();
    out.push_str(&format!(
        "**{}:** {}\n",
        l.labels.participants,
        names.join(", ")
    ));
    if l.no_transcript {
        out.push_str(&format!("\n_{}_\n", l.labels.no_transcript));
    }
    let mut section = |title: &str, items: Vec<String>| {
        if !items.is_empty() {
            out.push_str(&format!("\n## {title}\n\n"));
            for item in items {
                out.push_str(&format!("- {item}\n"));
            }
        }
    };
    section(l.labels.summary, l.summary.iter().map(|s| md(s)).collect());
    section(
        l.labels.decisions,
        l.decisions.iter().map(|s| md(s)).collect(),
    );
    section(
        l.labels.actions,
        l.actions
            .iter()
            .map(|a| {
                let owner = a
                    .owner
                    .as_ref()
                    .map(|p| md(&p.name))
                    .unwrap_or_else(|| l.labels.unassigned.to_string());
                let due = a
                    .due
                    .as_ref()
                    .map(|d| format!(" _({} {})_", l.labels.due, md(d)))
                    .unwrap_or_default();
                format!("**{owner}** — {}{due}", md(&a.text))
            })
            .collect(),
    );
    section(
        l.labels.questions,
        l.questions.iter().map(|s| md(s)).collect(),
    );
    section(
        l.labels.moderation,
        l.moderation.iter().map(|s| md(s)).collect(),
    );
    let files = link_list(links, |label, url| {
        format!("[{label}](<{}>)", url.replace('>', "%3E"))
    });
    if !files.is_empty() {
        out.push_str(&format!(
            "\n{}: {}\n",
            l.labels.transcript,
            files.join(" · ")
        ));
    }
    if !l.no_transcript {
        out.push_str(&format!("\n_{}_\n", l.footer));
    }
    out
}

/// Minutes as HTML for the notice's `formatted_body`.
pub fn render_html(minutes: &Minutes, meeting: &Meeting) -> String {
    render_html_with(minutes, meeting, &TranscriptLinks::default())
}

/// Minutes as HTML, with links to the transcript files.
pub fn render_html_with(minutes: &Minutes, meeting: &Meeting, links: &TranscriptLinks) -> String {
    let l = layout(minutes, meeting);
    let person = |p: &Person| match &p.mxid {
        Some(mxid) => format!(
            "<a href=\"https://matrix.to/#/{}\">{}</a>",
            html(&matrix_to_path(mxid)),
            html(&p.name)
        ),
        None => html(&p.name),
    };
    let mut out = format!("<h3>{}</h3>\n", html(&l.title));
    out.push_str(&format!(
        "<p><b>{}:</b> {}<br><b>{}:</b> {}<br><b>{}:</b> {}</p>\n",
        l.labels.start, l.start, l.labels.end, l.end, l.labels.duration, l.duration
    ));
    let names: Vec<String> = l.participants.iter().map(person).collect();
    out.push_str(&format!(
        "<p><b>{}:</b> {}</p>\n",
        l.labels.participants,
        names.join(", ")
    ));
    if l.no_transcript {
        out.push_str(&format!("<p><i>{}</i></p>\n", l.labels.no_transcript));
    }
    let mut section = |title: &str, items: Vec<String>| {
        if !items.is_empty() {
            out.push_str(&format!("<h4>{title}</h4>\n<ul>\n"));
            for item in items {
                out.push_str(&format!("<li>{item}</li>\n"));
            }
            out.push_str("</ul>\n");
        }
    };
    section(
        l.labels.summary,
        l.summary.iter().map(|s| html(s)).collect(),
    );
    section(
        l.labels.decisions,
        l.decisions.iter().map(|s| html(s)).collect(),
    );
    section(
        l.labels.actions,
        l.actions
            .iter()
            .map(|a| {
                let owner = a
                    .owner
                    .as_ref()
                    .map(person)
                    .unwrap_or_else(|| format!("<i>{}</i>", l.labels.unassigned));
                let due = a
                    .due
                    .as_ref()
                    .map(|d| format!(" <i>({} {})</i>", l.labels.due, html(d)))
                    .unwrap_or_default();
                format!("<b>{owner}</b> — {}{due}", html(&a.text))
            })
            .collect(),
    );
    section(
        l.labels.questions,
        l.questions.iter().map(|s| html(s)).collect(),
    );
    section(
        l.labels.moderation,
        l.moderation.iter().map(|s| html(s)).collect(),
    );
    let files = link_list(links, |label, url| {
        format!("<a href=\"{}\">{label}</a>", html(url))
    });
    if !files.is_empty() {
        out.push_str(&format!(
            "<p>{}: {}</p>\n",
            l.labels.transcript,
            files.join(" · ")
        ));
    }
    if !l.no_transcript {
        out.push_str(&format!("<p><i>{}</i></p>\n", l.footer));
    }
    out
}

/// Minutes as plain text for the notice's `body`.
pub fn render_plain(minutes: &Minutes, meeting: &Meeting) -> String {
    render_plain_with(minutes, meeting, &TranscriptLinks::default())
}

/// Minutes as plain text, with links to the transcript files.
pub fn render_plain_with(minutes: &Minutes, meeting: &Meeting, links: &TranscriptLinks) -> String {
    let l = layout(minutes, meeting);
    let mut out = format!("{}\n", l.title);
    out.push_str(&format!(
        "{}: {} · {}: {} · {}: {}\n",
        l.labels.start, l.start, l.labels.end, l.end, l.labels.duration, l.duration
    ));
    let names: Vec<String> = l
        .participants
        .iter()
        .map(|p| match &p.mxid {
            Some(mxid) if *mxid != p.name => format!("{} ({mxid})", p.name),
            _ => p.name.clone(),
        })
        .collect();
    out.push_str(&format!(
        "{}: {}\n",
        l.labels.participants,
        names.join(", ")
    ));
    if l.no_transcript {
        out.push_str(&format!("\n{}\n", l.labels.no_transcript));
    }
    let mut section = |title: &str, items: Vec<String>| {
        if !items.is_empty() {
            out.push_str(&format!("\n{title}\n"));
            for item in items {
                out.push_str(&format!("- {item}\n"));
            }
        }
    };
    section(l.labels.summary, l.summary.to_vec());
    section(l.labels.decisions, l.decisions.to_vec());
    section(
        l.labels.actions,
        l.actions
            .iter()
            .map(|a| {
                let owner = a
                    .owner
                    .as_ref()
                    .map(|p| p.name.clone())
                    .unwrap_or_else(|| l.labels.unassigned.to_string());
                let due = a
                    .due
                    .as_ref()
                    .map(|d| format!(" ({} {d})", l.labels.due))
                    .unwrap_or_default();
                format!("{owner}: {}{due}", a.text)
            })
            .collect(),
    );
    section(l.labels.questions, l.questions.to_vec());
    section(l.labels.moderation, l.moderation.to_vec());
    let files = link_list(links, |label, url| format!("{label} {url}"));
    if !files.is_empty() {
        out.push_str(&format!(
            "\n{}: {}\n",
            l.labels.transcript,
            files.join(" · ")
        ));
    }
    out
}

fn link_list(links: &TranscriptLinks, link: impl Fn(&str, &str) -> String) -> Vec<String> {
    [("WebVTT", &links.webvtt), ("Markdown", &links.markdown)]
        .into_iter()
        .filter_map(|(label, url)| url.as_deref().map(|url| link(label, url)))
        .collect()
}

/// Escapes text for HTML content and attribute values.
pub fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes Markdown's inline markup.
pub fn md(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '*' | '_' | '`' | '[' | ']' | '<' | '>' | '#' | '|'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Percent-encodes a Matrix id for a matrix.to link, keeping `@` and `:`.
fn matrix_to_path(mxid: &str) -> String {
    let mut out = String::new();
    for byte in mxid.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'@' | b':' | b'.' | b'-' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
