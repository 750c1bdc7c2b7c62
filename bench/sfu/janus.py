"""Set up Debian's Janus (1.1.2) for the benchmark: config folder and shim.

Janus runs with its own config folder under the output folder. It loads the
HTTP transport, bound to 127.0.0.1, and the VideoRoom plugin with one VP8
room. No other plugin, transport, logger or event handler is loaded, because
their folders contain only the two modules that are used. ICE gathers on
`lo` only, with the `getifaddrs_lo.c` shim preloaded so Janus does not skip
it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .clients import JANUS_ROOM

JANUS_BINARY = "/usr/bin/janus"
JANUS_LIBRARY_DIR = Path("/usr/lib/x86_64-linux-gnu/janus")
SHIM_SOURCE = Path(__file__).with_name("getifaddrs_lo.c")


def build_shim(out_dir: Path) -> Path:
    """Compile the getifaddrs shim with gcc and return the .so path."""
    target = out_dir / "getifaddrs_lo.so"
    gcc = shutil.which("gcc")
    if gcc is None:
        raise RuntimeError("gcc not found; install Debian's gcc to run Janus here")
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O2", "-Wall", "-o", str(target), str(SHIM_SOURCE)]
        + ["-ldl"],
        check=True,
    )
    return target


def _module_folder(folder: Path, source: Path, module: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.iterdir():
        stale.unlink()
    library = source / module
    if not library.exists():
        raise RuntimeError(f"Janus module {library} not found; install Debian's janus")
    (folder / module).symlink_to(library)
    return folder


def write_config(config_dir: Path, port: int) -> None:
    """Write janus.jcfg and the two module configs into `config_dir`."""
    config_dir.mkdir(parents=True, exist_ok=True)
    plugins = _module_folder(
        config_dir / "plugins", JANUS_LIBRARY_DIR / "plugins", "libjanus_videoroom.so"
    )
    transports = _module_folder(
        config_dir / "transports", JANUS_LIBRARY_DIR / "transports", "libjanus_http.so"
    )
    empty = config_dir / "empty"
    empty.mkdir(exist_ok=True)
    (config_dir / "janus.jcfg").write_text(
        f"""general: {{
	configs_folder = "{config_dir}"
	plugins_folder = "{plugins}"
	transports_folder = "{transports}"
	events_folder = "{empty}"
	loggers_folder = "{empty}"
	debug_level = 4
	server_name = "sfu-bench"
	interface = "127.0.0.1"
	session_timeout = 120
}}
media: {{
	ipv6 = false
}}
nat: {{
	ice_enforce_list = "lo"
	nice_debug = false
	full_trickle = false
	ice_lite = false
}}
plugins: {{
}}
transports: {{
}}
events: {{
	broadcast = false
}}
"""
    )
    (config_dir / "janus.transport.http.jcfg").write_text(
        f"""general: {{
	json = "plain"
	base_path = "/janus"
	http = true
	port = {port}
	ip = "127.0.0.1"
	https = false
}}
admin: {{
	admin_http = false
	admin_https = false
}}
"""
    )
    (config_dir / "janus.plugin.videoroom.jcfg").write_text(
        f"""general: {{
}}
room-{JANUS_ROOM}: {{
	description = "SFU benchmark"
	publishers = 1
	bitrate = 0
	fir_freq = 0
	videocodec = "vp8"
	audiocodec = "opus"
	notify_joining = false
	record = false
}}
"""
    )


def command(config_dir: Path) -> list[str]:
    return [
        JANUS_BINARY,
        "--configs-folder",
        str(config_dir),
        "--config",
        str(config_dir / "janus.jcfg"),
        "--disable-colors",
    ]
