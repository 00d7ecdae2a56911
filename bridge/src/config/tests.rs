//! The config loader's tests: defaults, the shipped example, and that every
//! refusal names its key.

use super::*;

const MINIMAL: &str = r#"
[homeserver]
url = "http://127.0.0.1:8008"
server_name = "example.org"
[appservice]
[web]
public_url = "https://visio.example.org/"
"#;

fn err_of(text: &str) -> String {
    Config::from_toml(text, Path::new("/tmp"))
        .expect_err("should be refused")
        .to_string()
}

#[test]
fn minimal_config_gets_documented_defaults() {
    let cfg = Config::from_toml(MINIMAL, Path::new("/srv/salon")).unwrap();
    assert_eq!(cfg.bot_user_id().as_str(), "@visio:example.org");
    assert_eq!(cfg.permissions.start_power_level, 0);
    assert_eq!(cfg.permissions.stop_power_level, 50);
    assert_eq!(cfg.storage.path, PathBuf::from("/srv/salon/data"));
    assert_eq!(cfg.appservice.url.as_str(), "http://127.0.0.1:9009/");
    assert_eq!(
        cfg.call_url("abc"),
        "https://visio.example.org/call/abc".to_string()
    );
    assert!(cfg.appservice.tokens.is_none());
    assert!(
        cfg.tokens()
            .unwrap_err()
            .to_string()
            .contains("generate-registration")
    );
}

#[test]
fn the_shipped_example_config_is_valid() {
    let manifest = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into()),
    );
    let root = manifest.parent().unwrap();
    let cfg = Config::load(&root.join("config.example.toml")).expect("config.example.toml");
    // It reads the example registration next to it.
    assert_eq!(cfg.tokens().unwrap().sender_localpart, "_salon_example");
    assert_eq!(cfg.web.public_url.as_str(), "https://visio.example.org/");
}

#[test]
fn bad_values_name_the_key() {
    let bad_url = MINIMAL.replace("http://127.0.0.1:8008", "ftp://nope");
    assert!(err_of(&bad_url).contains("homeserver.url"));
    let bad_bind = MINIMAL.replace("[appservice]", "[appservice]\nbind = \"localhost\"");
    assert!(err_of(&bad_bind).contains("appservice.bind"));
    let bad_local = MINIMAL.replace(
        "[appservice]",
        "[appservice]\nbot_localpart = \"Visio Bot\"",
    );
    assert!(err_of(&bad_local).contains("appservice.bot_localpart"));
    let bad_server = MINIMAL.replace("example.org", "exa mple");
    assert!(err_of(&bad_server).contains("homeserver.server_name"));
}

#[test]
fn transcription_and_minutes_settings_are_checked() {
    let cfg = Config::from_toml(MINIMAL, Path::new("/srv/salon")).unwrap();
    assert!(cfg.transcription.enabled);
    assert_eq!(cfg.permissions.transcribe_power_level, 50);
    assert!(matches!(
        &cfg.transcription.engine,
        SpeechEngineConfig::Builtin { model } if model == Path::new("/srv/salon/models/base")
    ));
    assert!(matches!(cfg.minutes.engine, SummaryEngineConfig::Builtin));
    let with = |section: &str, extra: &str| format!("{MINIMAL}[{section}]\n{extra}");
    assert!(err_of(&with("transcription", "engine = \"cloud\"")).contains("transcription.engine"));
    assert!(
        err_of(&with("transcription", "engine = \"remote\"")).contains("transcription.remote_url")
    );
    assert!(
        err_of(&with("transcription", "language = \"french\"")).contains("transcription.language")
    );
    assert!(err_of(&with("transcription", "workers = 0")).contains("transcription.workers"));
    let missing_key = with(
        "transcription",
        "engine = \"remote\"\nremote_url = \"http://gpu:8000\"\nremote_api_key_env = \"SALON_TEST_UNSET_KEY_VAR\"",
    );
    assert!(err_of(&missing_key).contains("SALON_TEST_UNSET_KEY_VAR"));
    assert!(err_of(&with("minutes", "engine = \"llm\"")).contains("minutes.llm_url"));
    let llm = Config::from_toml(
        &with(
            "minutes",
            "engine = \"llm\"\nllm_url = \"http://llm:8000/v1\"\nllm_model = \"m\"",
        ),
        Path::new("/tmp"),
    )
    .unwrap();
    assert!(
        matches!(llm.minutes.engine, SummaryEngineConfig::Llm { ref model, .. } if model == "m")
    );
}

#[test]
fn sfu_settings_are_checked() {
    let with = |extra: &str| MINIMAL.to_owned() + "[sfu]\n" + extra;
    let cfg = Config::from_toml(
        &with("udp_port_min = 50000\nudp_port_max = 50100\n"),
        Path::new("."),
    )
    .unwrap();
    assert_eq!((cfg.sfu.udp_port_min, cfg.sfu.udp_port_max), (50000, 50100));
    assert!(cfg.sfu.api_secret.is_none());
    assert_eq!(cfg.sfu_ws_url(), "wss://visio.example.org");
    assert!(err_of(&with("bind_ip = \"0.0.0.0\"\n")).contains("sfu.bind_ip"));
    assert!(err_of(&with("udp_port_min = 50000\n")).contains("sfu.udp_port_min"));
    assert!(err_of(&with("api_secret = \"short\"\n")).contains("sfu.api_secret"));
    assert!(err_of(&with("[[sfu.turn]]\nurls = [\"http://x\"]\n")).contains("sfu.turn"));
}

#[test]
fn unknown_keys_and_missing_sections_are_refused() {
    let typo = MINIMAL.replace("[web]", "[web]\npublic_ulr = \"x\"");
    let msg = err_of(&typo);
    assert!(msg.contains("public_ulr"), "{msg}");
    let missing = MINIMAL.replace("[web]\npublic_url = \"https://visio.example.org/\"", "");
    assert!(err_of(&missing).contains("web"));
}

#[test]
fn tokens_from_registration_file_and_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let reg = "id: salon\nas_token: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\nhs_token: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\nsender_localpart: _salon_x\n";
    std::fs::write(dir.path().join("appservice.yaml"), reg).unwrap();
    let text = MINIMAL.replace(
        "[appservice]",
        "[appservice]\nregistration = \"appservice.yaml\"",
    );
    let cfg = Config::from_toml(&text, dir.path()).unwrap();
    let tokens = cfg.tokens().unwrap();
    assert_eq!(tokens.sender_localpart, "_salon_x");
    assert_eq!(tokens.hs_token.expose().len(), 36);
    let debug = format!("{cfg:?}");
    assert!(!debug.contains("aaaaaaaa"), "as_token leaked: {debug}");
    assert!(!debug.contains("bbbbbbbb"), "hs_token leaked: {debug}");
}

#[test]
fn short_or_mixed_token_sources_are_refused() {
    let short = MINIMAL.replace(
        "[appservice]",
        "[appservice]\nas_token = \"short\"\nhs_token = \"alsoshort\"\nsender_localpart = \"s\"",
    );
    assert!(err_of(&short).contains("at least 32"));
    let mixed = MINIMAL.replace(
        "[appservice]",
        "[appservice]\nas_token = \"x\"\nregistration = \"r.yaml\"",
    );
    assert!(err_of(&mixed).contains("one way only"));
}

#[test]
fn the_example_lists_every_default_as_it_is() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(manifest.join("../config.example.toml")).unwrap();
    let example = raw::parse(&text).unwrap();
    // Sections the example shows with their defaults, key for key.
    assert_eq!(example.bot, raw::RawBot::default());
    assert_eq!(example.permissions, raw::RawPermissions::default());
    assert_eq!(example.calls, raw::RawCalls::default());
    assert_eq!(example.sfu, raw::RawSfu::default());
    assert_eq!(example.transcription, raw::RawTranscription::default());
    assert_eq!(example.minutes, raw::RawMinutes::default());
    assert_eq!(example.storage, raw::RawStorage::default());
    assert_eq!(example.logging, raw::RawLogging::default());
    assert_eq!(example.e2ee, raw::RawE2ee::default());
}

#[test]
fn a_bad_value_in_the_file_names_its_key_and_line() {
    let text = format!("{MINIMAL}[transcription]\nengine = \"cloud\"\n");
    let msg = err_of(&text);
    assert!(msg.contains("`transcription.engine` (line 9)"), "{msg}");
    assert!(
        msg.contains("`builtin`, `remote`") || msg.contains("`builtin` or `remote`"),
        "{msg}"
    );
    let turn = format!("{MINIMAL}[[sfu.turn]]\nurls = \"turn:x\"\n");
    assert!(
        err_of(&turn).contains("`sfu.turn.urls`"),
        "{}",
        err_of(&turn)
    );
}

#[test]
fn sfu_settings_follow_the_sfu_s_own_rules() {
    let with = |extra: &str| format!("{MINIMAL}[sfu]\n{extra}\n");
    let min = salon_sfu::config::rules::MIN_API_SECRET_LEN;
    let secret = |len: usize| with(&format!("api_secret = \"{}\"", "s".repeat(len)));
    assert!(err_of(&secret(min - 1)).contains("sfu.api_secret"));
    assert!(Config::from_toml(&secret(min), Path::new("/tmp")).is_ok());
    assert!(err_of(&with("bind_ip = \"::\"")).contains("sfu.bind_ip"));
    assert!(err_of(&with("max_bitrate_kbps = 63")).contains("sfu.max_bitrate_kbps"));
    assert!(err_of(&with("max_participants = 0")).contains("sfu.max_participants"));
    assert!(err_of(&with("api_key = \"\"")).contains("sfu.api_key"));
}

#[test]
fn the_focus_path_and_attempt_limit_are_configurable_and_checked() {
    let cfg = Config::from_toml(MINIMAL, Path::new("/srv/salon")).unwrap();
    assert_eq!(cfg.web.focus_path, "/livekit/jwt");
    assert_eq!(cfg.web.attempts_per_minute, 20);
    let with = |lines: &str| MINIMAL.replace("[web]", &format!("[web]\n{lines}"));
    let cfg = Config::from_toml(
        &with("focus_path = \"/rtc-focus/jwt/\"\nattempts_per_minute = 60"),
        Path::new("/srv/salon"),
    )
    .unwrap();
    assert_eq!(cfg.web.focus_path, "/rtc-focus/jwt");
    assert_eq!(cfg.web.attempts_per_minute, 60);
    for bad in [
        "focus_path = \"livekit/jwt\"",
        "focus_path = \"/\"",
        "focus_path = \"/a b\"",
        "focus_path = \"/a/../b\"",
        "focus_path = \"/a?x=1\"",
        "focus_path = \"/rtc/jwt\"",
        "focus_path = \"/_salon/jwt\"",
    ] {
        assert!(err_of(&with(bad)).contains("web.focus_path"), "{bad}");
    }
    assert!(err_of(&with("attempts_per_minute = 0")).contains("web.attempts_per_minute"));
}

#[test]
fn the_livekit_backend_needs_a_url_and_a_secret_and_never_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "a-livekit-secret-that-is-long-enough-0123456789";
    std::fs::write(dir.path().join("lk_secret"), format!("{secret}\n")).unwrap();
    let with = |extra: &str| MINIMAL.to_owned() + "[sfu]\n" + extra;
    let parse = |text: &str| Config::from_toml(text, dir.path());

    let cfg = parse(&with(
        "backend = \"livekit\"\nurl = \"https://livekit.example.org\"\napi_key = \"APIsalon\"\napi_secret_file = \"lk_secret\"\n",
    ))
    .unwrap();
    let SfuBackend::LiveKit { url } = &cfg.sfu.backend else {
        panic!("backend is livekit");
    };
    assert_eq!(url.as_str(), "wss://livekit.example.org/");
    assert_eq!(cfg.sfu.api_secret.as_ref().unwrap().expose(), secret);
    assert!(
        !format!("{cfg:?}").contains(secret),
        "the secret is never printed"
    );
    assert_eq!(parse(MINIMAL).unwrap().sfu.backend, SfuBackend::Embedded);

    let refused = |extra: &str| {
        parse(&with(extra))
            .expect_err("should be refused")
            .to_string()
    };
    let no_url = refused("backend = \"livekit\"\napi_secret_file = \"lk_secret\"\n");
    assert!(
        no_url.contains("sfu.url") && no_url.contains("wss://"),
        "{no_url}"
    );
    let no_secret = refused("backend = \"livekit\"\nurl = \"wss://lk.example.org\"\n");
    assert!(no_secret.contains("sfu.api_secret_file"), "{no_secret}");
    let bad_scheme = refused(
        "backend = \"livekit\"\nurl = \"ftp://lk.example.org\"\napi_secret_file = \"lk_secret\"\n",
    );
    assert!(bad_scheme.contains("sfu.url"), "{bad_scheme}");
    let missing_file = refused(
        "backend = \"livekit\"\nurl = \"wss://lk.example.org\"\napi_secret_file = \"nope\"\n",
    );
    assert!(
        missing_file.contains("sfu.api_secret_file"),
        "{missing_file}"
    );
    let stray_url = refused("url = \"wss://lk.example.org\"\n");
    assert!(
        stray_url.contains("sfu.url") && stray_url.contains("backend"),
        "{stray_url}"
    );
    assert!(refused("backend = \"cluster\"\n").contains("sfu.backend"));
}
