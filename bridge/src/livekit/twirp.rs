//! LiveKit's server API (`RoomService`, Twirp over HTTP with JSON bodies):
//! how the bridge closes a call's room, lists, mutes and removes
//! participants, and sends data into a room without joining it.
//!
//! In the flow: `LiveKitBackend` calls [`RoomService`] for `close_call`,
//! `send_data` and moderation; `doctor` calls [`RoomService::list_rooms`] to
//! check the key and secret. [`request`] builds each call (URL, bearer grant,
//! body) without a socket and is unit-tested here.

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use url::Url;

use super::token;

/// One `RoomService` call, ready to send.
#[derive(Debug)]
pub struct TwirpRequest {
    pub url: String,
    /// `Bearer <grant>`.
    pub authorization: String,
    pub body: Value,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum TwirpError {
    #[error("cannot reach LiveKit at {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("LiveKit refused the API key or secret ({status}: {message})")]
    Unauthorized { status: u16, message: String },
    #[error("LiveKit answered {status} to {method}: {message}")]
    Failed {
        method: &'static str,
        status: u16,
        message: String,
    },
}

/// The server API's base URL: the clients' `ws(s)://` URL as `http(s)://`.
pub fn api_base(url: &Url) -> String {
    let mut http = url.clone();
    let scheme = if url.scheme() == "wss" {
        "https"
    } else {
        "http"
    };
    let _ = http.set_scheme(scheme);
    http.as_str().trim_end_matches('/').to_owned()
}

/// Builds `RoomService/{method}` with `body`, signed for `room`.
pub fn request(
    base: &str,
    api_key: &str,
    api_secret: &str,
    method: &str,
    room: Option<&str>,
    body: Value,
) -> TwirpRequest {
    TwirpRequest {
        url: format!("{base}/twirp/livekit.RoomService/{method}"),
        authorization: format!("Bearer {}", token::server_api(api_key, api_secret, room)),
        body,
    }
}

/// A `RoomService` client for one cluster.
#[derive(Clone)]
pub struct RoomService {
    http: reqwest::Client,
    base: String,
    api_key: String,
    api_secret: String,
}

impl RoomService {
    pub fn new(url: &Url, api_key: &str, api_secret: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("a plain HTTP client builds");
        Self {
            http,
            base: api_base(url),
            api_key: api_key.to_owned(),
            api_secret: api_secret.to_owned(),
        }
    }

    async fn call(
        &self,
        method: &'static str,
        room: Option<&str>,
        body: Value,
    ) -> Result<Value, TwirpError> {
        let req = request(
            &self.base,
            &self.api_key,
            &self.api_secret,
            method,
            room,
            body,
        );
        let response = self
            .http
            .post(&req.url)
            .header(reqwest::header::AUTHORIZATION, &req.authorization)
            .json(&req.body)
            .send()
            .await
            .map_err(|source| TwirpError::Unreachable {
                url: self.base.clone(),
                source,
            })?;
        let status = response.status().as_u16();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(value);
        }
        // Twirp errors: {"code": "unauthenticated", "msg": "…"}.
        let message = value["msg"].as_str().unwrap_or("").to_owned();
        if status == 401
            || value["code"] == "unauthenticated"
            || value["code"] == "permission_denied"
        {
            return Err(TwirpError::Unauthorized { status, message });
        }
        Err(TwirpError::Failed {
            method,
            status,
            message,
        })
    }

    /// Every room on the cluster (names).
    pub async fn list_rooms(&self) -> Result<Vec<String>, TwirpError> {
        let v = self.call("ListRooms", None, json!({})).await?;
        Ok(names(&v["rooms"], "name"))
    }

    /// Creates `room` (or returns it if it exists), kept `empty_timeout`
    /// seconds once empty.
    pub async fn create_room(&self, room: &str, empty_timeout: u32) -> Result<(), TwirpError> {
        self.call(
            "CreateRoom",
            Some(room),
            json!({"name": room, "empty_timeout": empty_timeout}),
        )
        .await
        .map(drop)
    }

    /// Deletes `room`: everyone in it is disconnected.
    pub async fn delete_room(&self, room: &str) -> Result<(), TwirpError> {
        self.call("DeleteRoom", Some(room), json!({"room": room}))
            .await
            .map(drop)
    }

    /// Who is in `room`: (identity, name), hidden participants included.
    pub async fn list_participants(&self, room: &str) -> Result<Vec<(String, String)>, TwirpError> {
        let v = self
            .call("ListParticipants", Some(room), json!({"room": room}))
            .await?;
        Ok(identities_and_names(&v["participants"]))
    }

    /// Disconnects `identity` from `room`.
    pub async fn remove_participant(&self, room: &str, identity: &str) -> Result<(), TwirpError> {
        self.call(
            "RemoveParticipant",
            Some(room),
            json!({"room": room, "identity": identity}),
        )
        .await
        .map(drop)
    }

    /// `identity`'s published tracks in `room`: (sid, audio?, source number
    /// as in LiveKit's `TrackSource`). Empty if they are not there.
    pub async fn tracks_of(
        &self,
        room: &str,
        identity: &str,
    ) -> Result<Vec<(String, bool, i32)>, TwirpError> {
        let v = match self
            .call(
                "GetParticipant",
                Some(room),
                json!({"room": room, "identity": identity}),
            )
            .await
        {
            Err(TwirpError::Failed { status: 404, .. }) => return Ok(Vec::new()),
            other => other?,
        };
        Ok(published_tracks(&v["tracks"]))
    }

    /// Mutes (or unmutes) one of `identity`'s published tracks.
    pub async fn mute_published_track(
        &self,
        room: &str,
        identity: &str,
        track_sid: &str,
        muted: bool,
    ) -> Result<(), TwirpError> {
        self.call(
            "MutePublishedTrack",
            Some(room),
            json!({"room": room, "identity": identity, "track_sid": track_sid, "muted": muted}),
        )
        .await
        .map(drop)
    }

    /// Sends a reliable data packet on `topic` to everyone in `room`.
    pub async fn send_data(
        &self,
        room: &str,
        topic: &str,
        payload: &[u8],
    ) -> Result<(), TwirpError> {
        self.call("SendData", Some(room), send_data_body(room, topic, payload))
            .await
            .map(drop)
    }
}

/// `SendDataRequest` as protojson: bytes are base64, the kind is by name.
fn send_data_body(room: &str, topic: &str, payload: &[u8]) -> Value {
    json!({
        "room": room,
        "data": base64::engine::general_purpose::STANDARD.encode(payload),
        "kind": "RELIABLE",
        "topic": topic,
    })
}

/// (identity, name) of each participant listed (a missing name is empty).
fn identities_and_names(list: &Value) -> Vec<(String, String)> {
    let Some(all) = list.as_array() else {
        return Vec::new();
    };
    all.iter()
        .filter_map(|p| {
            let identity = p["identity"].as_str()?.to_owned();
            let name = p["name"].as_str().unwrap_or_default().to_owned();
            Some((identity, name))
        })
        .collect()
}

/// `ParticipantInfo.tracks` as Twirp's JSON writes them (enums by name, or
/// by number from other encoders): (sid, audio?, source number).
fn published_tracks(list: &Value) -> Vec<(String, bool, i32)> {
    use salon_lkclient::proto::{TrackSource, TrackType};
    let Some(all) = list.as_array() else {
        return Vec::new();
    };
    all.iter()
        .filter_map(|t| {
            let sid = t["sid"].as_str()?.to_owned();
            let audio = match &t["type"] {
                Value::String(name) => name == TrackType::Audio.as_str_name(),
                number => number.as_i64() == Some(TrackType::Audio as i64),
            };
            let source = match &t["source"] {
                Value::String(name) => TrackSource::from_str_name(name)
                    .map(|s| s as i32)
                    .unwrap_or(0),
                number => number.as_i64().unwrap_or(0) as i32,
            };
            Some((sid, audio, source))
        })
        .collect()
}

fn names(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .map(|all| {
            all.iter()
                .filter_map(|item| item[field].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "APIkey";
    const SECRET: &str = "a-secret-long-enough-for-livekit-0123456789";

    #[test]
    fn the_api_is_the_clients_url_over_http() {
        let base = |u: &str| api_base(&Url::parse(u).unwrap());
        assert_eq!(
            base("wss://livekit.example.org"),
            "https://livekit.example.org"
        );
        assert_eq!(base("ws://127.0.0.1:7880/"), "http://127.0.0.1:7880");
        assert_eq!(
            base("wss://example.org/livekit/"),
            "https://example.org/livekit"
        );
    }

    #[test]
    fn a_call_is_a_signed_json_post_to_its_twirp_method() {
        let req = request(
            "https://lk.example.org",
            KEY,
            SECRET,
            "DeleteRoom",
            Some("call-1"),
            json!({"room": "call-1"}),
        );
        assert_eq!(
            req.url,
            "https://lk.example.org/twirp/livekit.RoomService/DeleteRoom"
        );
        assert_eq!(req.body, json!({"room": "call-1"}));
        let token = req
            .authorization
            .strip_prefix("Bearer ")
            .expect("a bearer grant");
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_issuer(&[KEY]);
        let claims = jsonwebtoken::decode::<token::Claims>(
            token,
            &jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()),
            &validation,
        )
        .expect("signed with the secret")
        .claims;
        assert_eq!(claims.video.room, "call-1");
        assert!(claims.video.room_admin && claims.video.room_create);
    }

    #[test]
    fn data_goes_as_base64_with_its_topic() {
        let body = send_data_body("call-1", "salon.banner", b"{\"on\":true}");
        assert_eq!(body["data"], "eyJvbiI6dHJ1ZX0=");
        assert_eq!(body["topic"], "salon.banner");
        assert_eq!(body["kind"], "RELIABLE");
    }

    #[test]
    fn lists_are_read_by_field() {
        let v =
            json!({"participants": [{"identity": "@a:x"}, {"sid": "PA_2"}, {"identity": "@b:x"}]});
        assert_eq!(names(&v["participants"], "identity"), vec!["@a:x", "@b:x"]);
        assert!(names(&Value::Null, "identity").is_empty());
        let people =
            json!([{"identity": "@a:x", "name": "A"}, {"identity": "@b:x"}, {"sid": "PA_3"}]);
        assert_eq!(
            identities_and_names(&people),
            vec![("@a:x".into(), "A".into()), ("@b:x".into(), String::new())]
        );
    }

    #[test]
    fn published_tracks_are_read_by_name_or_number() {
        // As LiveKit's Twirp JSON writes a ParticipantInfo's tracks.
        let tracks = json!([
            {"sid": "TR_mic", "type": "AUDIO", "source": "MICROPHONE", "muted": false},
            {"sid": "TR_cam", "type": "VIDEO", "source": "CAMERA"},
            {"sid": "TR_scr", "type": "AUDIO", "source": "SCREEN_SHARE_AUDIO"},
            {"sid": "TR_num", "type": 0, "source": 2},
            {"type": "AUDIO"}
        ]);
        assert_eq!(
            published_tracks(&tracks),
            vec![
                ("TR_mic".into(), true, 2),
                ("TR_cam".into(), false, 1),
                ("TR_scr".into(), true, 4),
                ("TR_num".into(), true, 2),
            ]
        );
        assert!(published_tracks(&Value::Null).is_empty());
    }
}
