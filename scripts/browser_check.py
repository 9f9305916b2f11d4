"""Open a replay-check recording in Rerun's web viewer in headless Chromium and check that it shows something.

Serves the .rrd with `rerun --serve-web --bind 127.0.0.1` (this machine only), takes screenshots at two
timeline positions (clicks on the time panel's scrub bar, sent over the DevTools protocol) and of the 3-D view alone (a
blueprint file holding only that view, served next to the recording), and fails when a screenshot looks like
an error page or an empty view: too few distinct colours, too little saturated content (the camera images,
the curves and the scene are colourful, the viewer's chrome is grey), or two timeline positions that look the
same. Screenshots are kept in --out. Used by `nox -s browser`; needs Debian's `chromium`.

    python scripts/browser_check.py reports/<dataset>/episode_000000/recording.rrd --out <folder>
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import numpy as np

from replay_check.cli.view import rerun_command

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = ["--headless=new", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-sandbox",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-first-run", "--hide-scrollbars", "--window-size=1920,1080"]
LOAD_TIMEOUT_S = 240.0  # the viewer needs ~25 s to load on 2 cores with software rendering, more when loaded
CALL_TIMEOUT_S = 300.0  # one DevTools call (a screenshot waits for a frame: slow on a loaded machine)
TIMELINE_X, TIMELINE_Y = (300, 1712), 1065  # the time panel's scrub bar in a 1920x1080 window
MIN_COLOURS = 200  # distinct (quantised) colours in a screenshot that shows data
MIN_SATURATED = 0.004  # fraction of strongly coloured pixels (images, curves, scene)
MIN_DRAWN = 0.05  # fraction of pixels far from the background colour (a mostly grey 3-D scene has few coloured ones)
MIN_CHANGED = 0.002  # fraction of pixels that differ between the two timeline positions


def find_chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def serve(files: list[Path], timeout_s: float = 60.0):
    """`rerun --serve-web` on 127.0.0.1 with free ports; yields (web_port, grpc_port); stops the server after."""
    web, grpc = free_port(), free_port()
    argv = [*rerun_command(), "--serve-web", "--bind", "127.0.0.1", "--web-viewer-port", str(web),
            "--port", str(grpc), *map(str, files)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout_s
        while not (_listening(web) and _listening(grpc)):
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode(errors="replace")[-500:] if proc.stderr else ""
                raise RuntimeError(f"rerun --serve-web did not start (ports {web}/{grpc}): {err}")
            time.sleep(0.2)
        yield web, grpc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def viewer_url(web: int, grpc: int) -> str:
    target = f"rerun+http://127.0.0.1:{grpc}/proxy"
    return f"http://127.0.0.1:{web}/?url={urllib.parse.quote(target, safe='')}"


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (fds 3/4: no websocket client needed)."""

    def __init__(self, chromium: str, url: str, profile: str):
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def wire() -> None:  # runs in the child: the protocol pipe must be fds 3 (read) and 4 (write)
            os.dup2(to_child_r, 3)
            os.dup2(from_child_w, 4)

        argv = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe", url]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=wire, pass_fds=(3, 4))
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._id = 0
        try:
            target = next(t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
            self.session = self.call("Target.attachToTarget", targetId=target["targetId"],
                                     flatten=True)["sessionId"]
            # the page, not the window, must be 1920x1080: the scrub bar's position depends on it
            self.call("Emulation.setDeviceMetricsOverride", session=self.session, width=1920, height=1080,
                      deviceScaleFactor=1, mobile=False)
        except BaseException:
            self.close()
            raise

    def call(self, method: str, session: str | None = None, timeout_s: float = CALL_TIMEOUT_S, **params) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout_s
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._id:
                    if "error" in reply:
                        raise RuntimeError(f"chromium {method}: {reply['error']}")
                    return reply.get("result", {})
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"chromium did not answer {method}")
            ready, _, _ = select.select([self._from_child], [], [], 1.0)
            if ready:
                self._buffer += os.read(self._from_child, 1 << 20)

    def screenshot(self, out: Path) -> Path:
        data = self.call("Page.captureScreenshot", session=self.session, format="png")["data"]
        out.write_bytes(base64.b64decode(data))
        return out

    def click(self, x: float, y: float) -> None:
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", session=self.session, type=kind, x=x, y=y, button="left",
                      clickCount=1)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._to_child)
        os.close(self._from_child)


@contextlib.contextmanager
def browser(chromium: str, url: str):
    with tempfile.TemporaryDirectory(prefix="rc_chromium_", ignore_cleanup_errors=True) as profile:
        opened = Browser(chromium, url, profile)
        try:
            yield opened
        finally:
            opened.close()


def wait_until_drawn(page: Browser, out: Path, timeout_s: float, settle_s: float = 10.0) -> Path:
    """Screenshot every few seconds until the page shows data (then let images finish loading), or time out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(5)
        shot = page.screenshot(out)
        if has_time_panel(shot) and not problems("", pixel_stats(shot)):
            time.sleep(settle_s)
            break
    return page.screenshot(out)


def pixel_stats(png: Path) -> dict[str, float]:
    """Distinct colours (quantised to 5 bits) and the fraction of strongly saturated pixels."""
    import cv2

    bgr = cv2.imread(str(png), cv2.IMREAD_COLOR)
    if bgr is None:
        raise RuntimeError(f"cannot read {png}")
    quantised = (bgr >> 3).reshape(-1, 3).astype(np.int32)
    codes = quantised[:, 0] * 1024 + quantised[:, 1] * 32 + quantised[:, 2]
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
    saturated = (hsv[..., 1] > 120) & (hsv[..., 2] > 80)
    values, counts = np.unique(codes, return_counts=True)
    background = bgr.reshape(-1, 3)[codes == values[counts.argmax()]].mean(axis=0)
    drawn = np.abs(bgr.reshape(-1, 3).astype(np.int16) - background).max(axis=1) > 48
    return {"colours": float(values.size), "saturated": float(saturated.mean()), "drawn": float(drawn.mean()),
            "height": float(bgr.shape[0]), "width": float(bgr.shape[1])}


def has_time_panel(png: Path) -> bool:
    """A recording is open: the time panel's scrub bar (dark on light) spans the bottom rows. The welcome
    page and the loading screen have no such bar."""
    import cv2

    gray = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
    if gray is None:
        return False
    x0, x1 = TIMELINE_X
    band = gray[TIMELINE_Y - 6 : TIMELINE_Y + 6, x0:x1]
    return band.size > 0 and float((band < 90).mean()) > 0.2 and float((band > 180).mean()) > 0.2


def changed_fraction(a: Path, b: Path) -> float:
    import cv2

    x, y = cv2.imread(str(a)), cv2.imread(str(b))
    if x is None or y is None or x.shape != y.shape:
        return 1.0
    return float((np.abs(x.astype(np.int16) - y.astype(np.int16)).max(axis=2) > 24).mean())


def problems(name: str, stats: dict[str, float]) -> list[str]:
    found = []
    if stats["colours"] < MIN_COLOURS:
        found.append(f"{name}: only {stats['colours']:.0f} distinct colours (an error page or an empty view)")
    if stats["saturated"] < MIN_SATURATED and stats["drawn"] < MIN_DRAWN:
        found.append(f"{name}: {100 * stats['saturated']:.2f}% coloured and {100 * stats['drawn']:.1f}% drawn pixels "
                     f"(expected >= {100 * MIN_SATURATED:.1f}% or >= {100 * MIN_DRAWN:.0f}%: nothing drawn)")
    return found


def scene_blueprint(rrd: Path, out: Path) -> Path:
    """A blueprint file with only the 3-D view, for the recording's application id."""
    import rerun.blueprint as rrb
    from rerun.chunk import RrdReader

    store = RrdReader(rrd).recordings()
    app_id = str(store[0].application_id) if store and hasattr(store[0], "application_id") else "replay-check"
    blueprint = rrb.Blueprint(rrb.Spatial3DView(name="3-D scene", origin="/", contents=["+ /scene/**",
                                                                                        "+ /recorded/**"]),
                              collapse_panels=True)
    blueprint.save(app_id, str(out))
    return out


def click_timeline(page: Browser, fraction: float, settle_s: float = 8.0) -> None:
    """Move the time cursor by clicking the time panel's scrub bar at `fraction` of its length."""
    x0, x1 = TIMELINE_X
    page.click(x0 + fraction * (x1 - x0), TIMELINE_Y)
    time.sleep(settle_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rrd", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="folder receiving the screenshots")
    parser.add_argument("--positions", default="0.1,0.8",
                        help="two timeline positions as fractions of the scrub bar, comma-separated")
    parser.add_argument("--timeout", type=float, default=LOAD_TIMEOUT_S, help="seconds to wait for the viewer")
    args = parser.parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        print("browser check: chromium not found; install it with `sudo apt-get install -y chromium` "
              "(Debian/Ubuntu) and run again", file=sys.stderr)
        return 2
    if not args.rrd.is_file():
        print(f"browser check: {args.rrd} does not exist; expected a .rrd written by replay-check run",
              file=sys.stderr)
        return 2
    positions = [float(p) for p in args.positions.split(",") if p]
    args.out.mkdir(parents=True, exist_ok=True)
    shots: list[tuple[str, Path]] = []
    with serve([args.rrd]) as (web, grpc), browser(chromium, viewer_url(web, grpc)) as page:
        wait_until_drawn(page, args.out / "viewer_loaded.png", args.timeout)
        for fraction in positions:
            click_timeline(page, fraction)
            shots.append((f"layout at {fraction:.0%} of the timeline",
                          page.screenshot(args.out / f"viewer_at_{round(100 * fraction):02d}pct.png")))
    blueprint = scene_blueprint(args.rrd, args.out / "scene_only.rbl")
    with serve([args.rrd, blueprint]) as (web, grpc), browser(chromium, viewer_url(web, grpc)) as page:
        png = wait_until_drawn(page, args.out / "viewer_3d_scene.png", args.timeout)
        if positions:
            click_timeline(page, positions[-1])
            png = page.screenshot(png)
        shots.append(("3-D view", png))
    found = []
    for name, png in shots:
        stats = pixel_stats(png)
        print(f"{png.name}: {stats['colours']:.0f} colours, {100 * stats['saturated']:.2f}% coloured, "
              f"{100 * stats['drawn']:.1f}% drawn pixels")
        found += problems(name, stats)
    if len(positions) >= 2:
        changed = changed_fraction(shots[0][1], shots[1][1])
        print(f"timeline {positions[0]:.0%} vs {positions[1]:.0%}: {100 * changed:.2f}% of pixels changed")
        if changed < MIN_CHANGED:
            found.append(f"moving the time cursor changed {100 * changed:.2f}% of the pixels (expected >= "
                         f"{100 * MIN_CHANGED:.1f}%): the viewer did not follow")
    for problem in found:
        print(f"browser check: {problem}", file=sys.stderr)
    print(f"screenshots in {args.out}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
