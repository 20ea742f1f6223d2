//! One Redis pub/sub subscription kept alive: the chat backplane and the
//! shared revocation denylist both listen through it.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;

/// What to listen to: one channel, or every channel starting with a prefix.
pub(crate) enum Channels {
    Exact(String),
    Prefix(String),
}

/// Listens on `channels` forever, reconnecting with backoff when Redis goes
/// away. After every (re)subscription, and before any message is read,
/// `caught_up` runs: a listener that must not miss what was published
/// while it was away reads it there. Then `ready` turns true, and each
/// message goes to `deliver` (channel name, payload). `failed` is told of
/// every failure (it counts them).
pub(crate) async fn listen<Caught>(
    client: redis::Client,
    channels: Channels,
    ready: watch::Sender<bool>,
    mut caught_up: impl FnMut() -> Caught,
    mut deliver: impl FnMut(&str, &[u8]),
    failed: impl Fn(&redis::RedisError),
) where
    Caught: Future<Output = redis::RedisResult<()>>,
{
    let mut backoff = Duration::from_millis(100);
    loop {
        let subscribed = async {
            let mut ps = client.get_async_pubsub().await?;
            match &channels {
                Channels::Exact(c) => ps.subscribe(c).await?,
                Channels::Prefix(p) => ps.psubscribe(format!("{p}*")).await?,
            }
            caught_up().await?;
            redis::RedisResult::Ok(ps)
        };
        match subscribed.await {
            Ok(ps) => {
                backoff = Duration::from_millis(100);
                ready.send_replace(true);
                let mut messages = ps.into_on_message();
                while let Some(m) = messages.next().await {
                    deliver(m.get_channel_name(), m.get_payload_bytes());
                }
                ready.send_replace(false);
                tracing::warn!("Redis subscription lost; reconnecting");
            }
            Err(e) => {
                failed(&e);
                tracing::warn!(error = %e, "Redis pub/sub unavailable; retrying");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
