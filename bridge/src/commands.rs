//! Parsing the bot's chat commands: `!visio …` and its alias `!call`.
//!
//! Parsing is a plain function from a message body to a [`Command`], so every
//! spelling is tested without a homeserver. What a command *does* lives in
//! `room/` (moderation: `room/moderation.rs`, its rules in `moderation`).

use ruma::{OwnedUserId, UserId};

use crate::moderation::Action;

/// A command said in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Start,
    Stop,
    Status,
    /// `!visio transcribe on|off`; `None` when the word after it is missing or
    /// not understood (answered with the usage).
    Transcribe(Option<bool>),
    /// `!visio settings [transcription=auto|manual]`; `None` shows the settings.
    Settings(Option<Setting>),
    /// `!visio minutes`: post the last call's minutes again.
    Minutes,
    /// `!visio mute @user`, `!visio mute all`, `!visio remove @user`,
    /// `!visio lock`, `!visio unlock`. The target is `None` when none was
    /// named or mentioned (answered with the usage).
    Moderate(Action, Option<OwnedUserId>),
    /// `!visio guest [name]`: a guest link for the live call.
    Guest(Option<String>),
    /// `!visio guest revoke`: the live call's guest links stop working.
    GuestRevoke,
    /// `!visio admit [number|name]` / `!visio deny [number|name]`: a guest
    /// waiting in the lobby (the only one, when none is named).
    Lobby {
        admit: bool,
        which: Option<String>,
    },
    /// `!visio something-else`: answered with a hint, never ignored.
    Unknown(String),
}

impl Command {
    /// A short stable name, for metrics and the structured reply field.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Help => "help",
            Command::Start => "start",
            Command::Stop => "stop",
            Command::Status => "status",
            Command::Transcribe(_) => "transcribe",
            Command::Settings(_) => "settings",
            Command::Minutes => "minutes",
            Command::Moderate(action, _) => action.name(),
            Command::Guest(_) => "guest",
            Command::GuestRevoke => "guest_revoke",
            Command::Lobby { admit: true, .. } => "admit",
            Command::Lobby { admit: false, .. } => "deny",
            Command::Unknown(_) => "unknown",
        }
    }
}

/// A room setting and its new value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setting {
    /// `transcription=auto` (every call here is transcribed from its start)
    /// or `transcription=manual` (only after `!visio transcribe on`).
    TranscriptionAuto(bool),
    /// `language=fr|en|…|auto`: the language calls here are transcribed in
    /// (`None` for detection per utterance).
    Language(Option<String>),
    /// A key or value we do not know, as typed (cut to 60 characters).
    Invalid(String),
}

fn parse_on_off(word: Option<&str>) -> Option<bool> {
    match word? {
        "on" | "start" | "yes" | "oui" | "marche" => Some(true),
        "off" | "stop" | "no" | "non" | "arrêt" | "arret" => Some(false),
        _ => None,
    }
}

fn parse_setting(rest: &[&str]) -> Option<Setting> {
    if rest.is_empty() {
        return None;
    }
    let text = rest.join(" ").to_lowercase();
    let (key, value) = text
        .split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .unwrap_or_else(|| {
            (
                rest[0].to_lowercase(),
                rest.get(1).map(|v| v.to_lowercase()).unwrap_or_default(),
            )
        });
    Some(match (key.as_str(), value.as_str()) {
        ("transcription", "auto" | "on") => Setting::TranscriptionAuto(true),
        ("transcription", "manual" | "off") => Setting::TranscriptionAuto(false),
        ("language" | "langue", "auto") => Setting::Language(None),
        ("language" | "langue", "french" | "français" | "francais") => {
            Setting::Language(Some("fr".into()))
        }
        ("language" | "langue", "english" | "anglais") => Setting::Language(Some("en".into())),
        ("language" | "langue", code)
            if code.len() == 2 && code.chars().all(|c| c.is_ascii_lowercase()) =>
        {
            Setting::Language(Some(code.to_owned()))
        }
        _ => Setting::Invalid(text.chars().take(60).collect()),
    })
}

/// The prefixes that address the bot.
const PREFIXES: [&str; 2] = ["!visio", "!call"];

/// Removes a rich-reply fallback (`> <@user> quoted` lines and the blank line
/// after them) so that a command typed as a reply is still seen.
fn strip_reply_fallback(body: &str) -> &str {
    if !body.starts_with("> ") {
        return body;
    }
    match body.find("\n\n") {
        Some(i) => &body[i + 2..],
        None => body,
    }
}

/// The person a moderation command names: a typed mxid, else the one user
/// the message mentions (`m.mentions`: a pill shows their name in the body).
fn target(rest: &[&str], mentions: &[String]) -> Option<OwnedUserId> {
    rest.iter()
        .map(|w| w.trim_matches(|c: char| c == '<' || c == '>' || c == ',' || c == ':'))
        .find_map(|w| UserId::parse(w).ok())
        .or_else(|| match mentions {
            [one] => UserId::parse(one.as_str()).ok(),
            _ => None,
        })
}

/// The words after a command, as one string (at most 60 characters), if any.
fn words_of(rest: &[&str]) -> Option<String> {
    let text = rest.join(" ");
    let text: String = text.chars().take(60).collect();
    let text = text.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// Parses a message and the users it mentions; `None` if it does not
/// address the bot.
pub fn parse_with_mentions(body: &str, mentions: &[String]) -> Option<Command> {
    let command = parse(body)?;
    Some(match command {
        Command::Moderate(action, None) if action.needs_target() => {
            let body = strip_reply_fallback(body);
            let rest: Vec<&str> = body.split_whitespace().skip(2).collect();
            Command::Moderate(action, target(&rest, mentions))
        }
        other => other,
    })
}

/// Parses a message body; `None` if it does not address the bot.
pub fn parse(body: &str) -> Option<Command> {
    let body = strip_reply_fallback(body).trim();
    let mut words = body.split_whitespace();
    let head = words.next()?.to_lowercase();
    let prefix = PREFIXES.iter().find(|p| head == **p)?;
    let sub = words.next().map(str::to_lowercase);
    let rest: Vec<&str> = words.collect();
    let first = rest.first().map(|w| w.to_lowercase());
    let command = match (*prefix, sub.as_deref()) {
        (_, Some("transcribe" | "transcription" | "transcrire")) => {
            Command::Transcribe(parse_on_off(first.as_deref()))
        }
        (_, Some("settings" | "setting" | "réglages" | "reglages")) => {
            Command::Settings(parse_setting(&rest))
        }
        (_, Some("minutes" | "cr" | "compte-rendu")) => Command::Minutes,
        (_, Some("mute" | "muet" | "couper")) => match first.as_deref() {
            Some("all" | "everyone" | "tous" | "tout") => Command::Moderate(Action::MuteAll, None),
            _ => Command::Moderate(Action::Mute, target(&rest, &[])),
        },
        (_, Some("remove" | "kick" | "exclure" | "retirer")) => {
            Command::Moderate(Action::Remove, target(&rest, &[]))
        }
        (_, Some("lock" | "verrouiller")) => Command::Moderate(Action::Lock, None),
        (_, Some("guest" | "invité" | "invite" | "invitee")) => match first.as_deref() {
            Some("revoke" | "révoquer" | "revoquer") if rest.len() == 1 => Command::GuestRevoke,
            _ => Command::Guest(words_of(&rest)),
        },
        (_, Some(word @ ("admit" | "admettre" | "deny" | "refuser"))) => Command::Lobby {
            admit: matches!(word, "admit" | "admettre"),
            which: words_of(&rest),
        },
        (_, Some("unlock" | "déverrouiller" | "deverrouiller")) => {
            Command::Moderate(Action::Unlock, None)
        }
        (_, None) => Command::Start,
        (_, Some("start" | "démarrer" | "demarrer")) => Command::Start,
        (_, Some("stop" | "end" | "arrêter" | "arreter")) => Command::Stop,
        (_, Some("status" | "statut")) => Command::Status,
        (_, Some("help" | "aide" | "?")) => Command::Help,
        (_, Some(other)) => Command::Unknown(other.chars().take(40).collect()),
    };
    Some(command)
}

/// The help text, in the room's two working languages' spirit: English words,
/// French aliases accepted.
pub fn help_text() -> &'static str {
    "Salon (Visio) commands:\n\
     • !visio start (or !visio, !call): start a call in this room and get the join link\n\
     • !visio status: is a call live, since when, who started it, who is in it\n\
     • !visio stop: end the call (the person who started it, or a moderator)\n\
     • !visio transcribe on|off: transcribe the live call on this server, per speaker, in a thread (moderators)\n\
     • !visio settings transcription=auto|manual: transcribe every call here from its start, or only on request (moderators)\n\
     • !visio settings language=fr|en|auto: the language spoken here, or detect it per sentence (moderators)\n\
     • !visio minutes: post the last call's minutes again\n\
     • !visio mute @user:server (or mute all), !visio remove @user:server: mute or remove someone from the live call (moderators)\n\
     • !visio lock / !visio unlock: let no one but moderators join the live call, or let members in again (moderators)\n\
     • !visio guest [name]: a link for someone without a Matrix account; they wait in a lobby until admitted; !visio guest revoke ends the links (moderators)\n\
     • !visio admit [number|name] / !visio deny [number|name]: let a waiting guest in, or not (moderators)\n\
     • !visio help: this list"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_and_its_aliases() {
        for body in [
            "!visio",
            "!visio start",
            "!call",
            "!call start",
            "  !VISIO   Start  ",
        ] {
            assert_eq!(parse(body), Some(Command::Start), "{body}");
        }
    }

    #[test]
    fn the_other_commands() {
        assert_eq!(parse("!visio stop"), Some(Command::Stop));
        assert_eq!(parse("!call stop"), Some(Command::Stop));
        assert_eq!(parse("!visio status"), Some(Command::Status));
        assert_eq!(parse("!visio help"), Some(Command::Help));
        assert_eq!(parse("!visio aide"), Some(Command::Help));
        assert_eq!(
            parse("!visio dance now"),
            Some(Command::Unknown("dance".into()))
        );
    }

    #[test]
    fn ordinary_messages_are_not_commands() {
        for body in [
            "",
            "hello",
            "let's do a !visio later",
            "!visionary idea",
            "!calling",
            "visio start",
        ] {
            assert_eq!(parse(body), None, "{body}");
        }
    }

    #[test]
    fn a_command_sent_as_a_reply_is_seen() {
        let body = "> <@alice:example.org> shall we talk?\n> really\n\n!visio start";
        assert_eq!(parse(body), Some(Command::Start));
    }

    #[test]
    fn help_lists_every_command() {
        for word in [
            "!visio start",
            "!call",
            "!visio status",
            "!visio stop",
            "!visio help",
            "!visio mute",
            "!visio remove",
            "!visio lock",
            "!visio unlock",
            "!visio guest",
            "!visio admit",
            "!visio deny",
        ] {
            assert!(help_text().contains(word), "{word}");
        }
    }

    #[test]
    fn transcribe_settings_and_minutes() {
        assert_eq!(
            parse("!visio transcribe on"),
            Some(Command::Transcribe(Some(true)))
        );
        assert_eq!(
            parse("!visio transcription OFF"),
            Some(Command::Transcribe(Some(false)))
        );
        assert_eq!(parse("!visio transcribe"), Some(Command::Transcribe(None)));
        assert_eq!(
            parse("!visio transcribe maybe"),
            Some(Command::Transcribe(None))
        );
        assert_eq!(
            parse("!visio settings transcription=auto"),
            Some(Command::Settings(Some(Setting::TranscriptionAuto(true))))
        );
        assert_eq!(
            parse("!visio settings transcription = manual"),
            Some(Command::Settings(Some(Setting::TranscriptionAuto(false))))
        );
        assert_eq!(
            parse("!visio settings transcription auto"),
            Some(Command::Settings(Some(Setting::TranscriptionAuto(true))))
        );
        assert_eq!(
            parse("!visio settings colour=blue"),
            Some(Command::Settings(Some(Setting::Invalid(
                "colour=blue".into()
            ))))
        );
        assert_eq!(parse("!visio settings"), Some(Command::Settings(None)));
        assert_eq!(
            parse("!visio settings language=fr"),
            Some(Command::Settings(Some(Setting::Language(Some(
                "fr".into()
            )))))
        );
        assert_eq!(
            parse("!visio settings langue français"),
            Some(Command::Settings(Some(Setting::Language(Some(
                "fr".into()
            )))))
        );
        assert_eq!(
            parse("!visio settings language=auto"),
            Some(Command::Settings(Some(Setting::Language(None))))
        );
        assert_eq!(
            parse("!visio settings language=klingon"),
            Some(Command::Settings(Some(Setting::Invalid(
                "language=klingon".into()
            ))))
        );
        assert_eq!(parse("!visio minutes"), Some(Command::Minutes));
    }

    #[test]
    fn guest_and_lobby_commands() {
        assert_eq!(parse("!visio guest"), Some(Command::Guest(None)));
        assert_eq!(
            parse("!visio guest Mairie de Lyon"),
            Some(Command::Guest(Some("Mairie de Lyon".into())))
        );
        assert_eq!(parse("!visio guest revoke"), Some(Command::GuestRevoke));
        // A guest named "Revoke Smith" is a name, not the revoke command.
        assert_eq!(
            parse("!visio guest revoke smith"),
            Some(Command::Guest(Some("revoke smith".into())))
        );
        assert_eq!(
            parse("!visio admit"),
            Some(Command::Lobby {
                admit: true,
                which: None
            })
        );
        assert_eq!(
            parse("!visio deny 2"),
            Some(Command::Lobby {
                admit: false,
                which: Some("2".into())
            })
        );
        assert_eq!(
            parse("!visio admettre Ada"),
            Some(Command::Lobby {
                admit: true,
                which: Some("Ada".into())
            })
        );
    }

    #[test]
    fn moderation_commands_name_their_target() {
        let bob = || Some(OwnedUserId::try_from("@bob:example.org").unwrap());
        assert_eq!(
            parse("!visio mute @bob:example.org"),
            Some(Command::Moderate(Action::Mute, bob()))
        );
        assert_eq!(
            parse("!visio remove <@bob:example.org>"),
            Some(Command::Moderate(Action::Remove, bob()))
        );
        assert_eq!(
            parse("!visio mute all"),
            Some(Command::Moderate(Action::MuteAll, None))
        );
        assert_eq!(
            parse("!visio lock"),
            Some(Command::Moderate(Action::Lock, None))
        );
        assert_eq!(
            parse("!visio déverrouiller"),
            Some(Command::Moderate(Action::Unlock, None))
        );
        // A pill: the body has the name, m.mentions the mxid.
        assert_eq!(
            parse_with_mentions("!visio mute Bob", &["@bob:example.org".into()]),
            Some(Command::Moderate(Action::Mute, bob()))
        );
        // Two people mentioned and none typed: ambiguous, answered with usage.
        assert_eq!(
            parse_with_mentions(
                "!visio remove Bob Carol",
                &["@bob:example.org".into(), "@carol:example.org".into()]
            ),
            Some(Command::Moderate(Action::Remove, None))
        );
        assert_eq!(
            parse("!visio mute bob"),
            Some(Command::Moderate(Action::Mute, None))
        );
    }
}
