//! One task per call for work that follows a call after it leaves the
//! speech engine: captions and transcript notices, and the minutes.
//!
//! The engine's workers hand results to one router; the router only sorts
//! them by call and never waits on a call's work, so a call whose room is slow
//! (a rate-limiting homeserver, an encrypted room posting through the bot's
//! device) holds back only its own items. Each call's items keep their order.
//! A call's task ends when its channel has been idle for a while, and is
//! started again by the next item.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;

/// A call's task lets go after this long without an item.
pub const IDLE: Duration = Duration::from_secs(600);

/// Sorts items by call onto one ordered task per call.
pub struct PerCall<T> {
    tasks: HashMap<String, mpsc::UnboundedSender<T>>,
}

impl<T: Send + 'static> Default for PerCall<T> {
    fn default() -> Self {
        PerCall {
            tasks: HashMap::new(),
        }
    }
}

impl<T: Send + 'static> PerCall<T> {
    /// Hands `item` to `call_id`'s task, starting it with `start` when the
    /// call has none (or its task ended). `start` gets the task's receiver.
    pub fn send<F, Fut>(&mut self, call_id: &str, item: T, start: F)
    where
        F: FnOnce(mpsc::UnboundedReceiver<T>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.tasks.retain(|_, tx| !tx.is_closed());
        let item = match self.tasks.get(call_id) {
            Some(tx) => match tx.send(item) {
                Ok(()) => return,
                // it ended between the check and the send
                Err(mpsc::error::SendError(item)) => item,
            },
            None => item,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(item);
        tokio::spawn(start(rx));
        self.tasks.insert(call_id.to_owned(), tx);
    }

    /// Calls with a running task.
    pub fn len(&self) -> usize {
        self.tasks.values().filter(|tx| !tx.is_closed()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The next item of a call's task, or `None` once it has been idle for
/// [`IDLE`] (or the router is gone): the task should end.
pub async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>, idle: Duration) -> Option<T> {
    match tokio::time::timeout(idle, rx.recv()).await {
        Ok(item) => item,
        Err(_) => {
            rx.close();
            // an item that raced the close is still handled
            rx.try_recv().ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    type Log = Arc<Mutex<Vec<(String, u32, Duration)>>>;

    /// A call's task: room "slow" takes 300 ms per item (a homeserver that
    /// rate-limits), the others take none.
    fn task(
        call: &str,
        log: Log,
        started: Instant,
    ) -> impl FnOnce(mpsc::UnboundedReceiver<u32>) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>>
    {
        let call = call.to_owned();
        move |mut rx| {
            Box::pin(async move {
                while let Some(n) = next(&mut rx, Duration::from_secs(5)).await {
                    if call == "slow" {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    log.lock()
                        .unwrap()
                        .push((call.clone(), n, started.elapsed()));
                }
            })
        }
    }

    #[tokio::test]
    async fn a_slow_call_holds_back_only_itself_and_each_call_keeps_its_order() {
        let log: Log = Arc::default();
        let started = Instant::now();
        let mut router = PerCall::default();
        for n in 0..3 {
            router.send("slow", n, task("slow", log.clone(), started));
            router.send("quick", n, task("quick", log.clone(), started));
        }
        assert_eq!(router.len(), 2);
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let log = log.lock().unwrap().clone();
        let of = |call: &str| -> Vec<(u32, Duration)> {
            log.iter()
                .filter(|(c, _, _)| c == call)
                .map(|&(_, n, at)| (n, at))
                .collect()
        };
        let quick = of("quick");
        assert_eq!(quick.iter().map(|x| x.0).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(
            quick.iter().all(|&(_, at)| at < Duration::from_millis(150)),
            "the quick call waited for the slow one: {quick:?}"
        );
        let slow = of("slow");
        assert_eq!(slow.iter().map(|x| x.0).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(slow[2].1 >= Duration::from_millis(900), "{slow:?}");
    }

    #[tokio::test]
    async fn an_idle_task_ends_and_the_next_item_starts_a_new_one() {
        let (tx, mut rx) = mpsc::unbounded_channel::<u32>();
        tx.send(1).unwrap();
        assert_eq!(next(&mut rx, Duration::from_millis(50)).await, Some(1));
        assert_eq!(next(&mut rx, Duration::from_millis(50)).await, None);
        assert!(tx.is_closed());

        let log: Log = Arc::default();
        let mut router = PerCall::default();
        let started = Instant::now();
        router.send("a", 1, task("a", log.clone(), started));
        tokio::time::sleep(Duration::from_millis(50)).await;
        // the task is still waiting for more: no second task
        router.send("a", 2, task("a", log.clone(), started));
        assert_eq!(router.len(), 1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let seen: Vec<u32> = log.lock().unwrap().iter().map(|x| x.1).collect();
        assert_eq!(seen, [1, 2]);
    }
}
