"""Stream providers: turn a registered camera into a URL that PyAV can open.

`UrlProvider` handles cameras and NVRs addressed by a plain URL (RTSP from the
camera itself, or an RTSP/RTMP/HTTP-FLV relay of a 雪亮/天眼 platform).
GB/T 28181 and vendor platform SDKs (海康 iSC/Artemis, 大华 ICC and the like)
hand out a URL only after a signalling exchange. Their providers are declared
here as the interface they must meet, and are not implemented.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import quote, urlsplit, urlunsplit

from media.cameras.registry import Camera, CameraError, redact_url


class ProviderError(CameraError):
    code = "camera-provider"


@dataclass(frozen=True)
class StreamSource:
    """A stream location for av.open. `url` may carry credentials, so log
    `redacted_url` only.

    `options` are FFmpeg demuxer/protocol options passed to av.open, such as
    {"rtsp_transport": "tcp"}.
    """

    url: str
    options: dict[str, str] = field(default_factory=dict)

    @property
    def redacted_url(self) -> str:
        return redact_url(self.url)

    def __repr__(self) -> str:
        return f"StreamSource(url={self.redacted_url!r}, options={self.options!r})"


class StreamProvider(Protocol):
    """Resolves a camera's stream ("main" or "sub") to something PyAV opens.

    Called again before every reconnect, so a provider may hand out short-lived
    URLs. Raises ProviderError when the stream cannot be had.
    """

    async def resolve(self, camera: Camera, stream: str) -> StreamSource: ...


def with_credentials(url: str, username: str, password: str) -> str:
    """Insert percent-encoded user:password@ into a URL (FFmpeg's RTSP client
    takes credentials only from the URL)."""
    if not username:
        return url
    parts = urlsplit(url)
    if not parts.hostname:
        return url
    userinfo = quote(username, safe="")
    if password:
        userinfo += ":" + quote(password, safe="")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{userinfo}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class UrlProvider:
    """Provider for cameras registered with plain stream URLs."""

    async def resolve(self, camera: Camera, stream: str) -> StreamSource:
        url = camera.url(stream)
        if not url:
            raise ProviderError(
                f"camera {camera.id!r} has no URL for the {stream} stream; set main_url"
            )
        options: dict[str, str] = {}
        if url.startswith(("rtsp://", "rtsps://")):
            options["rtsp_transport"] = camera.transport
        return StreamSource(
            url=with_credentials(url, camera.username, camera.secret()),
            options=options,
        )


class Gb28181Provider:
    """GB/T 28181 provider: interface only.

    A real one registers with the platform over SIP, sends INVITE for the
    camera's 20-digit device id and receives RTP (PS-muxed H.264/H.265) on a
    local port, then returns that port as the source. Not implemented.
    """

    async def resolve(self, camera: Camera, stream: str) -> StreamSource:
        raise ProviderError(
            f"camera {camera.id!r} uses provider 'gb28181', which this hub does not "
            "implement; register the camera's RTSP URL with provider 'url' instead"
        )


class PlatformProvider:
    """Vendor video-platform provider (a REST call that returns a stream URL):
    interface only, not implemented."""

    async def resolve(self, camera: Camera, stream: str) -> StreamSource:
        raise ProviderError(
            f"camera {camera.id!r} uses provider 'platform', which this hub does not "
            "implement; register the RTSP URL the platform hands out with "
            "provider 'url' instead"
        )


def default_providers() -> dict[str, StreamProvider]:
    return {
        "url": UrlProvider(),
        "gb28181": Gb28181Provider(),
        "platform": PlatformProvider(),
    }
