//! The LiveKit access tokens Salon signs with the cluster's key and secret,
//! besides the members' join grants (`salon_sfu::token::mint`, the same
//! claims as with the embedded SFU): the transcriber's hidden-participant
//! grant and the short server-API grants of each `RoomService` call.
//!
//! In the flow: `listener` connects the transcriber with [`transcriber`];
//! `twirp` signs each request with [`server_api`]. Pure: unit-tested here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The identity the transcriber joins calls as (never a Matrix user id, so
/// the bridge never mistakes it for a member).
pub const TRANSCRIBER_IDENTITY: &str = "salon-transcriber";

/// The `video` grant, with the fields LiveKit reads that the embedded SFU's
/// tokens do not carry.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Grant {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub room: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub room_join: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub room_create: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub room_list: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub room_admin: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_publish: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_subscribe: Option<bool>,
    /// LiveKit defaults it to `can_publish`, so a listener must say it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_publish_data: Option<bool>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub hidden: bool,
    /// LiveKit forwards `Transcription` packets from agents only.
    #[serde(default, skip_serializing_if = "is_false")]
    pub agent: bool,
}

fn is_false(b: &bool) -> bool {
    !b
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub iss: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sub: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub exp: u64,
    pub nbf: u64,
    pub video: Grant,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn sign(
    api_key: &str,
    api_secret: &str,
    sub: &str,
    name: &str,
    ttl: Duration,
    video: Grant,
) -> String {
    let now = now_secs();
    let claims = Claims {
        iss: api_key.to_owned(),
        sub: sub.to_owned(),
        name: name.to_owned(),
        exp: now + ttl.as_secs(),
        // A little slack for clocks that disagree across the cluster.
        nbf: now.saturating_sub(10),
        video,
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(api_secret.as_bytes()),
    )
    .expect("HS256 signing of plain claims cannot fail")
}

/// The transcriber's grant for `room`: hidden (members never see it), an
/// agent (so its captions are forwarded), subscribes and sends data, never
/// publishes media.
pub(crate) fn transcriber(api_key: &str, api_secret: &str, room: &str, ttl: Duration) -> String {
    sign(
        api_key,
        api_secret,
        TRANSCRIBER_IDENTITY,
        "Salon transcription",
        ttl,
        Grant {
            room: room.to_owned(),
            room_join: true,
            can_publish: Some(false),
            can_subscribe: Some(true),
            can_publish_data: Some(true),
            hidden: true,
            agent: true,
            ..Grant::default()
        },
    )
}

/// A one-minute grant for the server API, on `room` when the call names one.
pub(crate) fn server_api(api_key: &str, api_secret: &str, room: Option<&str>) -> String {
    sign(
        api_key,
        api_secret,
        "",
        "",
        Duration::from_secs(60),
        Grant {
            room: room.unwrap_or_default().to_owned(),
            room_create: true,
            room_list: true,
            room_admin: true,
            ..Grant::default()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "APIkey";
    const SECRET: &str = "a-secret-long-enough-for-livekit-0123456789";

    fn decode(token: &str) -> Claims {
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_issuer(&[KEY]);
        jsonwebtoken::decode::<Claims>(
            token,
            &jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()),
            &validation,
        )
        .expect("a valid token")
        .claims
    }

    #[test]
    fn the_transcriber_is_a_hidden_agent_that_never_publishes_media() {
        let claims = decode(&transcriber(
            KEY,
            SECRET,
            "call-1",
            Duration::from_secs(3600),
        ));
        assert_eq!(claims.sub, TRANSCRIBER_IDENTITY);
        let v = &claims.video;
        assert_eq!(v.room, "call-1");
        assert!(v.room_join && v.hidden && v.agent);
        assert_eq!(v.can_publish, Some(false));
        assert_eq!(v.can_subscribe, Some(true));
        assert_eq!(
            v.can_publish_data,
            Some(true),
            "LiveKit would default it to can_publish"
        );
        assert!(
            !v.room_admin && !v.room_create,
            "a participant, not an admin"
        );
        assert!(claims.exp > claims.nbf);
    }

    #[test]
    fn a_server_api_grant_is_short_and_names_its_room() {
        let claims = decode(&server_api(KEY, SECRET, Some("call-2")));
        assert!(claims.exp - now_secs() <= 60);
        assert_eq!(claims.video.room, "call-2");
        assert!(claims.video.room_admin && claims.video.room_create && claims.video.room_list);
        assert!(!claims.video.room_join);
        let text = serde_json::to_string(&claims.video).unwrap();
        assert!(
            text.contains("\"roomAdmin\":true"),
            "camelCase on the wire: {text}"
        );
        assert!(!text.contains("roomJoin"), "{text}");
    }
}
