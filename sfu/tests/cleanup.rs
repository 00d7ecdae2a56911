//! Participants who leave, or vanish without a word, are cleaned up within
//! seconds: the room empties, and the SFU's sockets and tasks return to what
//! they were before they came. Runs in its own test binary, alone, so the
//! process-wide counts it reads are its own.

mod common;

use std::sync::Arc;
use std::time::Duration;

use salon_sfu::RoomEvent;
use salon_sfu::testing::{TestClient, WAIT};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| dir.count())
        .unwrap_or(0)
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

async fn one_call(server: &common::Server, room: &str, vanish: bool) {
    let alice = TestClient::connect(&server.ws, &common::token(room, "alice"))
        .await
        .expect("alice");
    let bob = TestClient::connect(&server.ws, &common::token(room, "bob"))
        .await
        .expect("bob");
    let mic = Arc::new(alice.publish(true).await.expect("publish"));
    let sending = {
        let mic = mic.clone();
        tokio::spawn(async move {
            loop {
                mic.send(b"audio", 127).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let mut track = bob.next_track(WAIT).await.expect("track");
    tokio::time::timeout(WAIT, track.packets.recv())
        .await
        .expect("audio in time")
        .expect("audio");
    sending.abort();
    drop(track);
    drop(mic);
    if vanish {
        // No leave message: sockets just go away.
        alice.vanish().await;
        bob.vanish().await;
    } else {
        alice.leave().await;
        bob.leave().await;
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} not reached within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leavers_and_vanished_clients_leave_no_sockets_or_tasks_behind() {
    let server = common::start().await;
    let mut events = server.sfu.events();
    // Warm up once so lazily created pools and statics are in the baseline.
    one_call(&server, "warmup", false).await;
    wait_until("warm-up room closed", || server.sfu.rooms().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fds = open_fds();
    let tasks = alive_tasks();

    for (round, vanish) in [(0, false), (1, true), (2, false), (3, true)] {
        let room = format!("round-{round}");
        one_call(&server, &room, vanish).await;
        wait_until("room emptied", || server.sfu.participants(&room).is_empty()).await;
    }
    wait_until("all rooms closed", || server.sfu.rooms().is_empty()).await;
    wait_until("file descriptors back to baseline", || open_fds() <= fds).await;
    wait_until("tasks back to baseline", || alive_tasks() <= tasks).await;

    let mut closed = 0;
    while let Ok(event) = events.try_recv() {
        if matches!(event, RoomEvent::RoomClosed { .. }) {
            closed += 1;
        }
    }
    assert_eq!(closed, 5, "every room announced closed");
}
