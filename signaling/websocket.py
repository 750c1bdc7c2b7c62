"""The WebSocket endpoint at /ws: frames in, checked messages to the
signaling service, the participant's outbox out."""

from __future__ import annotations

import asyncio
import logging
import uuid

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from hub.errors import HubError, Unauthorized
from hub.rooms import Participant
from signaling import messages
from signaling.service import CloseRequest, SignalingService

logger = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401
CLOSE_IDLE = 4408


class SignalingEndpoint:
    def __init__(
        self, service: SignalingService, max_message_bytes: int, idle_timeout: float
    ) -> None:
        self.service = service
        self.max_message_bytes = max_message_bytes
        self.idle_timeout = idle_timeout

    async def __call__(self, scope, receive, send) -> None:
        websocket = WebSocket(scope, receive=receive, send=send)
        await websocket.accept()
        client = websocket.client
        where = f"{client.host}:{client.port}" if client else "unknown"
        connection = _Connection(self, websocket, where)
        await connection.run()


class _Connection:
    def __init__(self, endpoint: SignalingEndpoint, websocket: WebSocket, where: str):
        self.endpoint = endpoint
        self.service = endpoint.service
        self.websocket = websocket
        self.where = where
        self.participant: Participant | None = None
        self.writer: asyncio.Task | None = None
        self.close_code = 1000
        self.rejected = 0
        self.close_reason = ""

    def _log_prefix(self) -> str:
        p = self.participant
        if p is None:
            return f"client={self.where}"
        return f"room={p.room.id} peer={p.id}"

    async def _send(self, message: dict) -> None:
        if self.websocket.application_state == WebSocketState.CONNECTED:
            await self.websocket.send_json(message)

    async def _write_outbox(self, participant: Participant) -> None:
        try:
            while True:
                message = await participant.outbox.get()
                if message is None:
                    # The participant left from elsewhere (removed by a host,
                    # media failed): close its socket now.
                    code = participant.close_code or CLOSE_IDLE
                    await self.websocket.close(code, "left")
                    return
                await self._send(message)
        except (WebSocketDisconnect, RuntimeError, ConnectionError):
            pass

    async def run(self) -> None:
        reason = "disconnected"
        try:
            reason = await self._read_loop()
        finally:
            if self.participant is not None:
                await self.service.leave(self.participant, reason)
                # Flush what is already queued (the leave confirmation).
                await self._drain()
            if self.writer is not None:
                self.writer.cancel()
            if self.websocket.application_state == WebSocketState.CONNECTED:
                try:
                    await self.websocket.close(self.close_code, self.close_reason)
                except (RuntimeError, WebSocketDisconnect):
                    pass

    async def _drain(self) -> None:
        participant = self.participant
        while participant is not None and not participant.outbox.empty():
            message = participant.outbox.get_nowait()
            if message is None:
                continue
            try:
                await self._send(message)
            except Exception:
                break

    async def _read_loop(self) -> str:
        endpoint = self.endpoint
        while True:
            try:
                event = await asyncio.wait_for(
                    self.websocket.receive(), timeout=endpoint.idle_timeout
                )
            except TimeoutError:
                logger.info(
                    "%s no message for %.0f s, dropping",
                    self._log_prefix(),
                    endpoint.idle_timeout,
                )
                self.close_code, self.close_reason = CLOSE_IDLE, "idle timeout"
                return "timeout"
            if event["type"] == "websocket.disconnect":
                return "disconnected"
            frame = event.get("text")
            if frame is None:
                frame = event.get("bytes") or b""
            try:
                message = messages.parse(frame, endpoint.max_message_bytes)
                result = await self.service.handle(self.participant, message)
            except CloseRequest as request:
                self.close_code, self.close_reason = request.code, request.reason
                return "left"
            except Unauthorized as exc:
                logger.info("%s join refused: %s", self._log_prefix(), exc.message)
                await self._send(exc.to_message(messages.request_id_of(frame)))
                self.close_code, self.close_reason = CLOSE_UNAUTHORIZED, "unauthorized"
                return "unauthorized"
            except HubError as exc:
                self.rejected += 1
                # The first few per socket at INFO, then one in a hundred, so
                # a misbehaving client shows without flooding the log.
                if self.rejected <= 5 or self.rejected % 100 == 0:
                    logger.info(
                        "%s rejected message #%d (%s): %s",
                        self._log_prefix(),
                        self.rejected,
                        exc.code,
                        exc.message,
                    )
                await self._send(exc.to_message(messages.request_id_of(frame)))
                continue
            except Exception:
                error_id = uuid.uuid4().hex[:12]
                logger.exception("%s internal error %s", self._log_prefix(), error_id)
                reply = {
                    "type": "error",
                    "code": "internal",
                    "message": f"internal error; quote {error_id} to the operator",
                }
                request_id = messages.request_id_of(frame)
                if request_id is not None:
                    reply["id"] = request_id
                await self._send(reply)
                continue
            if isinstance(result, Participant):
                self.participant = result
                self.writer = asyncio.ensure_future(self._write_outbox(result))
            elif isinstance(result, dict):
                await self._send(result)
