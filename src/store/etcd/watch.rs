//! Watching the prefix: one gRPC watch stream at a time, resumed on another
//! member from the last revision seen when its member goes away, ended for
//! the caller when history is compacted or no member accepts a watch.
//!
//! It must never send an event twice or out of order, and never spin
//! against a cluster that no member answers for.

use std::time::Duration;

use etcd_rpc::etcdserverpb::watch_request::RequestUnion;
use etcd_rpc::etcdserverpb::{WatchCreateRequest, WatchRequest, WatchResponse};
use etcd_rpc::mvccpb;
use etcd_rpc::mvccpb::event::EventType as EtcdEventType;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use super::client::{prefix_end, timed, unavailable};
use super::{CALL_TIMEOUT, EtcdStore};
use crate::store::{Event, EventType, Object, StoreError, WatchReceiver};

type Sender = mpsc::Sender<Result<Event, StoreError>>;

/// How one watch stream ended.
enum WatchEnd {
    /// The stream broke after its member confirmed it: resume elsewhere.
    Broken(StoreError),
    /// Tell the caller and stop: no member answers, or history is compacted.
    Final(StoreError),
}

/// An open watch stream. `_requests` keeps the request side open: etcd
/// ends the whole stream when the client closes it.
struct Stream {
    member: usize,
    responses: Streaming<WatchResponse>,
    _requests: mpsc::Sender<WatchRequest>,
}

impl EtcdStore {
    /// Every event after `from_revision`, in order, once. When the member
    /// it follows goes away, it resumes from the last revision seen on
    /// another member, so a member restart costs no event and repeats none.
    /// It ends with an error when no member accepts a watch (`Unavailable`:
    /// the caller is behind and lists again later) or after a compaction
    /// (`Compacted`: the caller lists again).
    pub async fn watch(&self, from_revision: u64) -> Result<WatchReceiver, StoreError> {
        let (tx, rx) = mpsc::channel(1024);
        let store = self.clone();
        tokio::spawn(async move {
            let mut last = from_revision;
            loop {
                match store.watch_once(&tx, &mut last).await {
                    Ok(()) => return,
                    Err(WatchEnd::Broken(e)) => {
                        if tx.is_closed() {
                            return;
                        }
                        tracing::warn!(error = %e, "etcd watch interrupted; resuming from revision {} on a member that answers", last + 1);
                        // Only a member that confirmed a watch can break
                        // one, so this cannot spin against a dead cluster.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(WatchEnd::Final(e)) => {
                        if matches!(e, StoreError::Unavailable(_)) {
                            tracing::warn!(error = %e, "no etcd member accepts a watch; ending it so the caller knows it is behind");
                        }
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }

    /// Opens a watch from `start` on a member that confirms it, and that
    /// confirmation (etcd's first response).
    async fn open_watch(&self, start: i64) -> Result<(Stream, WatchResponse), StoreError> {
        let key = self.opts.prefix.clone().into_bytes();
        let create = WatchCreateRequest {
            range_end: prefix_end(&key),
            key,
            start_revision: start,
            progress_notify: true,
            prev_kv: true,
            ..WatchCreateRequest::default()
        };
        let (member, (responses, requests, first)) = self
            .on_any_member(|m| {
                let create = create.clone();
                async move {
                    let (requests, rx) = mpsc::channel(1);
                    let req = WatchRequest {
                        request_union: Some(RequestUnion::CreateRequest(create)),
                    };
                    requests
                        .send(req)
                        .await
                        .map_err(|_| unavailable("watch", "request stream closed"))?;
                    let mut client = m.watch();
                    let call = client.watch(ReceiverStream::new(rx));
                    let mut responses = timed("watch", call).await?;
                    // A member answers once it confirms the watch.
                    let first = match tokio::time::timeout(CALL_TIMEOUT, responses.message()).await
                    {
                        Ok(Ok(Some(m))) => m,
                        Ok(Ok(None)) => return Err(unavailable("watch", "stream ended")),
                        Ok(Err(e)) => return Err(unavailable("watch", e.message())),
                        Err(_) => return Err(unavailable("watch", "timed out after 5 s")),
                    };
                    Ok((responses, requests, first))
                }
            })
            .await?;
        let stream = Stream {
            member,
            responses,
            _requests: requests,
        };
        Ok((stream, first))
    }

    /// One watch stream from `last + 1`; Ok(()) when the receiver is gone.
    async fn watch_once(&self, tx: &Sender, last: &mut u64) -> Result<(), WatchEnd> {
        let start = i64::try_from(*last + 1).unwrap_or(i64::MAX);
        let (mut stream, first) = self.open_watch(start).await.map_err(WatchEnd::Final)?;
        let mut next = Some(first);
        loop {
            let resp = match next.take() {
                Some(r) => r,
                None => {
                    let msg = tokio::select! {
                        m = stream.responses.message() => m,
                        _ = tx.closed() => return Ok(()),
                    };
                    match msg {
                        Ok(Some(r)) => r,
                        Ok(None) => {
                            self.avoid(stream.member);
                            return Err(WatchEnd::Broken(unavailable("watch", "stream ended")));
                        }
                        Err(e) => {
                            self.avoid(stream.member);
                            return Err(WatchEnd::Broken(unavailable("watch", e.message())));
                        }
                    }
                }
            };
            if resp.compact_revision > 0 {
                return Err(WatchEnd::Final(StoreError::Compacted {
                    revision: u64::try_from(resp.compact_revision).unwrap_or(0),
                }));
            }
            if resp.canceled {
                return Err(WatchEnd::Final(unavailable(
                    "watch",
                    format!("canceled: {}", resp.cancel_reason),
                )));
            }
            if !self.forward(tx, resp.events, last).await {
                return Ok(());
            }
        }
    }

    /// Sends the events of one response; `false` when the receiver is gone.
    async fn forward(&self, tx: &Sender, events: Vec<mvccpb::Event>, last: &mut u64) -> bool {
        for ev in events {
            let Some((revision, event)) = self.event(&ev) else {
                continue;
            };
            // A stream starts at `last + 1` and etcd sends revisions in
            // order (all events of one revision in one response).
            *last = revision;
            let Some(event) = event else { continue };
            if tx.send(Ok(event)).await.is_err() {
                return false;
            }
        }
        true
    }

    /// The revision of one etcd event and, if its object can be read, the
    /// store's event.
    fn event(&self, ev: &mvccpb::Event) -> Option<(u64, Option<Event>)> {
        let kv = ev.kv.as_ref()?;
        let revision = u64::try_from(kv.mod_revision).unwrap_or(0);
        let (event_type, object) = match ev.r#type() {
            EtcdEventType::Put => {
                let t = if kv.create_revision == kv.mod_revision {
                    EventType::Added
                } else {
                    EventType::Modified
                };
                (t, self.decode(kv))
            }
            EtcdEventType::Delete => {
                let obj = ev
                    .prev_kv
                    .as_ref()
                    .and_then(|p| self.decode(p))
                    .or_else(|| {
                        self.parse_key(&kv.key).map(|key| Object {
                            key,
                            resource_version: 0,
                            value: Vec::new(),
                        })
                    });
                (EventType::Deleted, obj)
            }
        };
        let event = object.map(|mut object| {
            object.resource_version = revision;
            Event {
                revision,
                event_type,
                object,
            }
        });
        Some((revision, event))
    }
}
