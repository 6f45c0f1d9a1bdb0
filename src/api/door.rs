//! Reading a prediction's body at its model's door ([`crate::serving::decoding`]):
//! one place for the order of the checks, used by `/predict`, the named routes
//! and OIP v2's infer.
//!
//! A request first waits its turn at the door (at most [`DECODE_WAIT`], then
//! 429); inside, a model at its admission bound turns it away (429) before its
//! rows are parsed. A body still arriving after [`SLOW_BODY`] inside is read on
//! outside the door, then waits its turn again, so a client slow to send holds
//! no one up. A body turned away is still read (within its limits), so the client
//! gets its 429 on a connection it can reuse, not a broken pipe while it sends.

use std::future::Future;

use axum::extract::Request;
use bytes::BytesMut;
use futures::FutureExt;
use tokio::sync::OwnedSemaphorePermit;

use super::ApiError;
use super::extract::read_limited;
use crate::config::ServerConfig;
use crate::serving::decoding::{DECODE_WAIT, SLOW_BODY};
use crate::serving::infer::Inference;

/// A body read inside the door; the door stays held until it is dropped, so
/// the caller parses it inside.
pub struct Inside {
    pub bytes: BytesMut,
    _permit: OwnedSemaphorePermit,
}

/// Reads `request`'s body with `read` at the door of the model `inference`
/// serves.
pub async fn read_at_door<F>(
    inference: &Inference,
    server: &ServerConfig,
    request: Request,
    read: impl FnOnce(Request) -> F,
) -> Result<Inside, ApiError>
where
    F: Future<Output = Result<BytesMut, ApiError>>,
{
    let door = inference.door();
    let Some(permit) = door.enter(DECODE_WAIT).await else {
        read_limited(request, server).await?;
        return Err(ApiError::QueueFull);
    };
    if inference.is_full() {
        // Turned away: its body is read outside the door, however slow.
        drop(permit);
        read_limited(request, server).await?;
        return Err(ApiError::QueueFull);
    }
    let read = read(request);
    tokio::pin!(read);
    // Most bodies are there already: no timer for them.
    if let Some(bytes) = (&mut read).now_or_never() {
        return Ok(Inside {
            bytes: bytes?,
            _permit: permit,
        });
    }
    tokio::select! {
        bytes = &mut read => Ok(Inside { bytes: bytes?, _permit: permit }),
        _ = tokio::time::sleep(SLOW_BODY) => {
            drop(permit);
            let bytes = read.await?;
            let permit = door.enter(DECODE_WAIT).await.ok_or(ApiError::QueueFull)?;
            Ok(Inside { bytes, _permit: permit })
        }
    }
}
