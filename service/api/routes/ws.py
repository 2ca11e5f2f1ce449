"""WebSocket ``/ws``: live EmotionStates of every attached stream, or of one (``?stream=<id>``).

Messages (JSON text frames, server to client):

- ``{"type": "state", "state": {...EmotionState...}}`` per window of a live stream;
- ``{"type": "dropped", "count": n}`` when this client was too slow and its ``n`` oldest queued
  messages were dropped (its queue holds ``settings.ws_queue_size`` messages); the pipeline and
  other clients never wait for it.

The handshake is always accepted, then refused connections are closed with an application code
and a reason the client can read (a refusal before ``accept`` would reach the client only as an
HTTP 403 without a reason):

======  =======================================================================================
4401    a token is configured (``M2S_API_TOKEN``) and the request carries neither
        ``Authorization: Bearer <token>`` nor ``?token=<token>`` with it
4404    ``?stream=<id>`` names no attached stream
1013    the service is starting or shutting down, or already has ``M2S_MAX_WS_CLIENTS`` clients
        (try again later; the reason says which)
1001    the service is shutting down (sent to connected clients)
======  =======================================================================================

Messages the client sends are read and ignored (reading them is how a disconnect is noticed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import APIRouter, WebSocket

from service.api.deps import token_matches
from service.hub import HubClosed, Subscription

logger = logging.getLogger(__name__)

router = APIRouter(tags=["stream"])

CLOSE_UNAUTHORIZED = 4401
CLOSE_UNKNOWN_STREAM = 4404
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_GOING_AWAY = 1001
# Close reasons (at most 123 bytes each, a WebSocket limit); tests assert them verbatim.
REASON_UNAUTHORIZED = "Not authenticated: send 'Authorization: Bearer <token>' or ?token=<token>."
REASON_NOT_READY = "The service is starting or shutting down; reconnect later."
REASON_SHUTDOWN = "The service is shutting down."


def too_many_clients_reason(limit: int) -> str:
    """Close reason when ``M2S_MAX_WS_CLIENTS`` clients are connected already."""
    return f"The service already has {limit} WebSocket clients (M2S_MAX_WS_CLIENTS); reconnect later."


def unknown_stream_reason(stream_id: str) -> str:
    """Close reason for ``?stream=`` naming no attached stream (the id is shortened to fit the limit)."""
    shown = stream_id if len(stream_id) <= 40 else stream_id[:37] + "..."
    return f"Unknown stream {shown!r}; GET /streams lists the attached streams."


def _presented_token(websocket: WebSocket, token: str | None) -> str | None:
    header = websocket.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.casefold() == "bearer" and value.strip():
            return value.strip()
    return token


@router.websocket("/ws")
async def stream_states(websocket: WebSocket, stream: str | None = None, token: str | None = None) -> None:
    """Push live EmotionStates (all streams, or ``?stream=<id>``) until the client leaves or the service stops."""
    state = websocket.app.state
    await websocket.accept()
    settings = getattr(state, "settings", None)
    hub = getattr(state, "hub", None)
    manager = getattr(state, "manager", None)
    if settings is None or hub is None or manager is None:
        await websocket.close(CLOSE_TRY_AGAIN_LATER, REASON_NOT_READY)
        return
    if not token_matches(settings, _presented_token(websocket, token)):
        await websocket.close(CLOSE_UNAUTHORIZED, REASON_UNAUTHORIZED)
        return
    if stream is not None and stream not in manager:
        await websocket.close(CLOSE_UNKNOWN_STREAM, unknown_stream_reason(stream))
        return
    if hub.n_subscribers >= settings.max_ws_clients:  # no await until subscribe(): no race on the loop
        state.metrics.refused("ws_clients")
        await websocket.close(CLOSE_TRY_AGAIN_LATER, too_many_clients_reason(settings.max_ws_clients))
        return
    try:
        subscription = hub.subscribe(stream)
    except RuntimeError:  # hub closed: shutting down
        await websocket.close(CLOSE_TRY_AGAIN_LATER, REASON_NOT_READY)
        return
    client = f"{websocket.client.host}:{websocket.client.port}" if websocket.client else "?"
    logger.info("WebSocket client %s subscribed to %s", client, stream or "all streams")
    sender = asyncio.create_task(_send(websocket, subscription))
    receiver = asyncio.create_task(_receive_until_disconnect(websocket))
    try:
        done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        if sender in done and isinstance(sender.exception(), HubClosed):
            with contextlib.suppress(Exception):  # the client may be gone already
                await websocket.close(CLOSE_GOING_AWAY, REASON_SHUTDOWN)
    finally:
        for task in (sender, receiver):
            task.cancel()
        await asyncio.gather(sender, receiver, return_exceptions=True)
        hub.unsubscribe(subscription)
        logger.info("WebSocket client %s left (%d message(s) dropped for it)", client, subscription.n_dropped)


async def _send(websocket: WebSocket, subscription: Subscription) -> None:
    """Forward messages until the hub closes (HubClosed propagates) or sending fails (client gone)."""
    while True:
        message = await subscription.get_text()  # encoded once by the hub for every client
        try:
            await websocket.send_text(message)
        except Exception:  # disconnected mid-send (WebSocketDisconnect, ClientDisconnected, ...)
            return


async def _receive_until_disconnect(websocket: WebSocket) -> None:
    """Read and ignore client messages; return when the client disconnects."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_TRY_AGAIN_LATER",
    "CLOSE_UNAUTHORIZED",
    "CLOSE_UNKNOWN_STREAM",
    "router",
    "too_many_clients_reason",
    "unknown_stream_reason",
]
