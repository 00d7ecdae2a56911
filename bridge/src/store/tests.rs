//! The store's tests: each part's records survive a reopen, and an event is
//! queued once and handled once.

use std::collections::BTreeSet;

use ruma::{OwnedEventId, OwnedRoomId, owned_event_id, owned_room_id, owned_user_id};

use super::*;
use crate::calls::{Call, CallState, EndReason};

fn event(room: &str, id: &str) -> QueuedEvent {
    QueuedEvent {
        room_id: OwnedRoomId::try_from(room).unwrap(),
        event_id: OwnedEventId::try_from(id).unwrap(),
        sender: owned_user_id!("@a:x"),
        kind: EventKind::Text {
            body: format!("!visio {id}"),
            mentions: Vec::new(),
        },
    }
}

fn call(id: &str) -> Call {
    Call {
        id: id.into(),
        room_id: owned_room_id!("!room:example.org"),
        state: CallState::Active,
        started_by: owned_user_id!("@alice:example.org"),
        started_by_event: None,
        started_at: 1,
        ended_at: None,
        end_reason: None,
        ended_by: None,
        ended_by_event: None,
        participants: BTreeSet::new(),
        attendees: BTreeSet::new(),
        empty_since: None,
        minutes_event_id: None,
        transcribing: false,
        transcript_thread: None,
        transcription_sessions: 0,
        minutes_owed: false,
        room_view: crate::calls::RoomView::Current,
        origin: crate::calls::CallOrigin::Command,
        bot_membership: None,
        bot_membership_at: None,
        locked_by: None,
        removed: BTreeSet::new(),
        moderation: Vec::new(),
    }
}

fn segment(call_id: &str, speaker: &str, text: &str) -> salon_minutes::TranscriptSegment {
    salon_minutes::TranscriptSegment {
        call_id: call_id.into(),
        speaker: speaker.into(),
        speaker_name: None,
        start_ms: 0,
        end_ms: 1000,
        lang: "en".into(),
        text: text.into(),
    }
}

#[tokio::test]
async fn transcripts_owed_minutes_and_room_settings_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let a = store
            .append_segment(&segment("c1", "@a:x", "one"))
            .await
            .unwrap();
        store
            .append_segment(&segment("c10", "@b:x", "other call"))
            .await
            .unwrap();
        store
            .append_segment(&segment("c1", "@b:x", "two"))
            .await
            .unwrap();
        store
            .segment_posted("c1", a, owned_event_id!("$posted"))
            .await
            .unwrap();
        let mut ended = call("c1");
        ended.join(&owned_user_id!("@b:x"));
        assert!(ended.end(5, EndReason::Stopped, None));
        store.save_call(&ended).await.unwrap();
        let mut failed = call("c2");
        failed.room_id = owned_room_id!("!other:example.org");
        failed.join(&owned_user_id!("@b:x"));
        assert!(failed.end(6, EndReason::Failed, None));
        store.save_call(&failed).await.unwrap();
        store
            .update_room_settings(&ended.room_id, |s| s.transcription_auto = true)
            .await
            .unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let c1 = store.segments("c1").unwrap();
    let texts: Vec<&str> = c1.iter().map(|r| r.segment.text.as_str()).collect();
    assert_eq!(texts, ["one", "two"], "only c1's, in order");
    assert_eq!(c1[0].event_id, Some(owned_event_id!("$posted")));
    assert_eq!(c1[1].event_id, None);
    let owed: Vec<String> = store
        .calls_owing_minutes()
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(owed, ["c1"], "a failed call owes no minutes");
    let settings = store
        .room_settings(&owned_room_id!("!room:example.org"))
        .unwrap();
    assert!(settings.transcription_auto);
    assert_eq!(settings.current_call.as_deref(), Some("c1"));
}

#[tokio::test]
async fn an_event_is_queued_once_and_handled_once_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let first = store
            .enqueue(vec![event("!a:x", "$1"), event("!a:x", "$2")])
            .await
            .unwrap();
        assert_eq!(first.len(), 2);
        // A replay of the same events (say, after Synapse restarted its txn ids).
        assert!(
            store
                .enqueue(vec![event("!a:x", "$1")])
                .await
                .unwrap()
                .is_empty()
        );
        store
            .complete(first[0].0, &owned_event_id!("$1"), 10)
            .await
            .unwrap();
    }
    // Reopen as after a kill: $2 is still owed, $1 is never queued again.
    let store = Store::open(dir.path()).unwrap();
    let inbox = store.inbox().unwrap();
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].1.event_id, owned_event_id!("$2"));
    assert!(store.is_handled(&owned_event_id!("$1")).unwrap());
    assert!(
        store
            .enqueue(vec![event("!a:x", "$1")])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .enqueue(vec![event("!a:x", "$2")])
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn inbox_keeps_arrival_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for i in 0..20 {
        store
            .enqueue(vec![event("!a:x", &format!("$e{i}"))])
            .await
            .unwrap();
    }
    let ids: Vec<String> = store
        .inbox()
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.event_id.to_string())
        .collect();
    let expected: Vec<String> = (0..20).map(|i| format!("$e{i}")).collect();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn calls_survive_reopen_and_rooms_know_their_call() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.save_call(&call("c1")).await.unwrap();
        let mut ended = call("c1");
        ended.state = CallState::Ended;
        ended.end_reason = Some(EndReason::Stopped);
        store.save_call(&ended).await.unwrap();
        store.save_call(&call("c2")).await.unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let room = owned_room_id!("!room:example.org");
    assert_eq!(store.room_call(&room).unwrap().unwrap().id, "c2");
    assert_eq!(
        store.call("c1").unwrap().unwrap().end_reason,
        Some(EndReason::Stopped)
    );
    let active: Vec<String> = store
        .active_calls()
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(active, vec!["c2".to_string()]);
    assert!(
        store
            .room_call(&owned_room_id!("!other:example.org"))
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn old_handled_ids_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let queued = store
        .enqueue(vec![event("!a:x", "$old"), event("!a:x", "$new")])
        .await
        .unwrap();
    store
        .complete(queued[0].0, &owned_event_id!("$old"), 100)
        .await
        .unwrap();
    store
        .complete(queued[1].0, &owned_event_id!("$new"), 900)
        .await
        .unwrap();
    assert_eq!(store.prune_handled(500).unwrap(), 1);
    assert!(!store.is_handled(&owned_event_id!("$old")).unwrap());
    assert!(store.is_handled(&owned_event_id!("$new")).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_event_queued_from_two_paths_at_once_is_queued_once() {
    // The appservice and the E2EE sync race to queue the same events. Eight
    // writers flushing at once also used to deadlock sled's `flush_async`.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let ids: Vec<String> = (0..100).map(|i| format!("$race{i}")).collect();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, ids) = (store.clone(), ids.clone());
        tasks.push(tokio::spawn(async move {
            let mut queued = 0;
            for id in &ids {
                queued += store.enqueue(vec![event("!a:x", id)]).await.unwrap().len();
            }
            queued
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    assert_eq!(total, ids.len());
    assert_eq!(store.inbox().unwrap().len(), ids.len());
}

#[tokio::test]
async fn an_inbox_left_by_an_older_bridge_is_replayed_typed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let json = r#"{"type":"m.room.message","event_id":"$old","sender":"@a:x","room_id":"!a:x","content":{"msgtype":"m.text","body":"!visio status"}}"#;
        for (seq, id, json) in [(1u64, "$old", json), (2, "$bad", "{}")] {
            let record = serde_json::json!({"room_id": "!a:x", "event_id": id, "json": json});
            store
                .inbox
                .insert(seq.to_be_bytes(), encode(&record))
                .unwrap();
            store.pending.insert(id, &seq.to_be_bytes()).unwrap();
        }
        store.flush_now().await.unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let inbox = store.inbox().unwrap();
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].1.event_id, owned_event_id!("$old"));
    assert!(matches!(&inbox[0].1.kind, EventKind::Text { body, .. } if body == "!visio status"));
    assert_eq!(
        store.inbox().unwrap().len(),
        1,
        "the unreadable record left"
    );
    let again = |id: &'static str| store.enqueue(vec![event("!a:x", id)]);
    assert_eq!(
        again("$old").await.unwrap().len(),
        0,
        "still owed, not queued twice"
    );
    assert_eq!(
        again("$bad").await.unwrap().len(),
        1,
        "dropped, not handled"
    );
}

#[tokio::test]
async fn media_rooms_and_identities_are_named_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let room = owned_room_id!("!room:example.org");
    let media = crate::rtc::room_media_name(room.as_str());
    let hashed = crate::rtc::hashed_identity("@bob:example.org", "DEV", "m1");
    {
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.media_room(&media).unwrap(), None);
        store.record_media_room(&media, &room).unwrap();
        let bob = super::MediaIdentity {
            user_id: owned_user_id!("@bob:example.org"),
            name: "Bob".into(),
        };
        store.record_identity(&hashed, &bob).unwrap();
        store.flush_now().await.unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.media_room(&media).unwrap(), Some(room));
    let bob = store.identity(&hashed).unwrap().unwrap();
    assert_eq!(
        (bob.user_id.as_str(), bob.name.as_str()),
        ("@bob:example.org", "Bob")
    );
    // unrecorded: a user id names itself, `{mxid}:{device}` its user, a hash nobody
    let page = store.identity("@alice:example.org").unwrap().unwrap();
    assert_eq!(page.user_id.as_str(), "@alice:example.org");
    let element = store.identity("@alice:example.org:DEVA").unwrap().unwrap();
    assert_eq!(element.user_id.as_str(), "@alice:example.org");
    let other = crate::rtc::hashed_identity("@eve:example.org", "D", "m");
    assert_eq!(store.identity(&other).unwrap(), None);
    // a day later, the hashed identity's record is let go
    assert_eq!(
        store
            .prune_identities(crate::clock::now_millis() - 86_400_000)
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .prune_identities(crate::clock::now_millis() + 1)
            .unwrap(),
        1
    );
    assert_eq!(store.identity(&hashed).unwrap(), None);
}
