//! Parsing the bot's chat commands: `!visio …` and its alias `!call`.
//!
//! Parsing is a plain function from a message body to a [`Command`], so every
//! spelling is tested without a homeserver. What a command *does* lives in
//! `room.rs`.

/// A command said in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Start,
    Stop,
    Status,
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
            Command::Unknown(_) => "unknown",
        }
    }
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

/// Parses a message body; `None` if it does not address the bot.
pub fn parse(body: &str) -> Option<Command> {
    let body = strip_reply_fallback(body).trim();
    let mut words = body.split_whitespace();
    let head = words.next()?.to_lowercase();
    let prefix = PREFIXES.iter().find(|p| head == **p)?;
    let sub = words.next().map(str::to_lowercase);
    let command = match (*prefix, sub.as_deref()) {
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
        ] {
            assert!(help_text().contains(word), "{word}");
        }
    }
}
