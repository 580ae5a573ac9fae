"""The watch page on a phone profile: time to the first video frame and to a Buy button
one can press, before and after the phone-first layout (issue 16, "Measure").

    python bench/phone_watch.py                          # this tree only
    python bench/phone_watch.py --baseline /tmp/old      # and another checkout, side by side

For each tree: one `livemall serve` (SQLite, the demo data; its own static files and
templates), a host going live from the studio page in Chromium with its fake camera
(simulcast, as a phone viewer meets it) and pinning the KF94 masks, then `--loads`
cold loads of `/shows/1` by a signed-in buyer, each in a new browser context (empty
cache) emulating a phone: 390×844 at 3×, touch, a phone's user agent, Chromium's CPU
throttled ×4 (CDP `Emulation.setCPUThrottlingRate`) and its network to 1.6 Mbit/s down,
750 kbit/s up, 150 ms round trip (CDP `Network.emulateNetworkConditions`). Chromium's
network emulation shapes HTTP and WebSocket, not WebRTC's UDP: the video itself is not
held to 1.6 Mbit/s, the page, scripts, styles, WHEP offer/answer and the socket are.

Times are from navigation start (`performance.now()` in the page):
- first frame: the video's first `requestVideoFrameCallback` (a decoded frame painted);
- Buy: the first moment the Buy button is shown, enabled, with the card's product name
  filled (checked on every DOM change).

Runs in a loopback-only network namespace, like tests/run (aioice skips 127.0.0.1, so
media flows over 127.0.0.2 and never leaves the machine).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.chat import SECRET, free_port, wait_http  # noqa: E402
from bench.harness import percentile  # noqa: E402
from bench.relay import ensure_loopback_namespace  # noqa: E402

CHROMIUM = os.environ.get("LIVEMALL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
    "--no-first-run", "--allow-loopback-in-peer-connection",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]
PASSWORD = "livemall-demo"
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 3,
    "is_mobile": True,
    "has_touch": True,
    "user_agent": ("Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
                   "Chrome/131.0.0.0 Mobile Safari/537.36"),
}
CPU_SLOWDOWN = 4
LINK = {"offline": False, "latency": 150, "downloadThroughput": 1_600_000 / 8, "uploadThroughput": 750_000 / 8}
TARGET_FIRST_FRAME_P95 = 1.5  # seconds, issue 16

# Runs before the page's own scripts: marks the first decoded frame and the first moment
# the Buy button can be pressed, on the page's clock (0 = navigation start).
PROBE = """
(() => {
  window.__bench = {frame: null, loadeddata: null, buy: null};
  const buyReady = () => {
    const form = document.getElementById('buy-form');
    const button = document.getElementById('buy-button');
    const name = document.getElementById('pin-name');
    if (!form || !button || !name || form.hidden || button.disabled) return false;
    const box = button.getBoundingClientRect();
    return box.width > 0 && box.height > 0 && name.textContent.trim() !== '';
  };
  const check = () => {
    if (window.__bench.buy === null && buyReady()) window.__bench.buy = performance.now();
  };
  new MutationObserver(check).observe(document, {subtree: true, childList: true, attributes: true,
                                                 characterData: true});
  document.addEventListener('DOMContentLoaded', () => {
    const video = document.getElementById('video');
    if (!video) return;
    video.addEventListener('loadeddata', () => { window.__bench.loadeddata ??= performance.now(); });
    video.requestVideoFrameCallback(() => { window.__bench.frame ??= performance.now(); });
    check();
  });
})();
"""


# Where a load spent its time (--verbose): document milestones and the requests that
# matter, each as [name, ms from navigation start] (a request at its response's end).
STEPS = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const steps = [['html', nav.responseEnd], ['dcl', nav.domContentLoadedEventEnd], ['load', nav.loadEventEnd]];
  for (const r of performance.getEntriesByType('resource')) {
    const path = new URL(r.name).pathname;
    const name = path.split('/').pop() || path;
    if (/whep|ice-servers|socket.io|\\.js$|\\.css$/.test(path)) steps.push([name, r.responseEnd]);
    if (/whep/.test(path)) steps.push(['whep-sent', r.startTime]);
  }
  steps.push(['frame', window.__bench.frame ?? NaN], ['buy', window.__bench.buy ?? NaN]);
  return steps.sort((a, b) => a[1] - b[1]);
}"""


@dataclass
class Result:
    label: str
    frames: list[float] = field(default_factory=list)
    buys: list[float] = field(default_factory=list)
    failures: int = 0


def start_node(tree: Path, tmp: Path) -> tuple[subprocess.Popen, int, Path]:
    database = f"sqlite+aiosqlite:///{tmp / 'phone.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEMALL_")}
    env.update(PYTHONPATH=str(tree), LIVEMALL_SECRET=SECRET, LIVEMALL_DATABASE=database,
               LIVEMALL_RECORDINGS_DIR=str(tmp / "recordings"), LIVEMALL_DRAIN_SETTLE="0")
    for command in (["db", "upgrade"], ["demo"]):
        subprocess.run([sys.executable, "-m", "web.cli", *command], env=env, cwd=tree, check=True,
                       stdout=subprocess.DEVNULL)
    port = free_port()
    log = tmp / "node.log"
    proc = subprocess.Popen([sys.executable, "-m", "web.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, cwd=tree, stdout=log.open("w"), stderr=subprocess.STDOUT)
    wait_http(f"http://127.0.0.1:{port}/healthz", proc, log)
    return proc, port, log


async def signed_in(browser, url: str, email: str, **options):
    context = await browser.new_context(**options)
    response = await context.request.post(f"{url}/api/auth/login", data={"email": email, "password": PASSWORD})
    assert response.status == 200, await response.text()
    return context


async def go_live(browser, url: str):
    """The host goes live from the studio (fake camera) and pins the masks."""
    context = await signed_in(browser, url, "host@livemall.example", viewport={"width": 1280, "height": 800})
    studio = await context.new_page()
    problems: list[str] = []
    studio.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    studio.on("pageerror", lambda e: problems.append(str(e)))
    await studio.goto(f"{url}/studio/1")
    try:
        await studio.locator('#studio[data-connected="true"]').wait_for(timeout=30_000)
    except Exception:
        raise SystemExit("the studio did not connect: " + "; ".join(problems)[:2000]) from None
    await studio.wait_for_function("() => document.getElementById('preview').videoWidth > 0", timeout=30_000)
    await studio.click("#go-live")
    await studio.get_by_test_id("air-status").filter(has_text="On air").wait_for(timeout=30_000)
    await studio.locator(".lineup li", has_text="KF94 Mask").locator("button.pin").click()
    await studio.locator('.lineup li button.pin[aria-pressed="true"]').wait_for(timeout=10_000)
    return context


async def one_load(browser, url: str, cookies: list[dict], verbose: bool = False) -> tuple[float | None, float | None]:
    context = await browser.new_context(**PHONE)
    await context.add_cookies(cookies)
    await context.add_init_script(PROBE)
    page = await context.new_page()
    cdp = await context.new_cdp_session(page)
    await cdp.send("Emulation.setCPUThrottlingRate", {"rate": CPU_SLOWDOWN})
    await cdp.send("Network.enable")
    await cdp.send("Network.emulateNetworkConditions", LINK)
    try:
        await page.goto(f"{url}/shows/1", wait_until="commit")
        await page.wait_for_function("() => window.__bench && window.__bench.frame !== null "
                                     "&& window.__bench.buy !== null", timeout=30_000, polling=100)
    except Exception as exc:  # noqa: BLE001 - a load that never got there is counted, not fatal
        print(f"  load failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}", flush=True)
    marks = await page.evaluate("() => window.__bench || {}")
    if verbose:
        steps = await page.evaluate(STEPS)
        print("   ", "  ".join(f"{name} {at / 1000:.2f}" for name, at in steps), flush=True)
    await context.close()
    ms = lambda key: marks.get(key) / 1000 if marks.get(key) is not None else None  # noqa: E731
    return ms("frame"), ms("buy")


async def measure(tree: Path, label: str, loads: int, verbose: bool = False) -> Result:
    from playwright.async_api import async_playwright

    result = Result(label)
    with tempfile.TemporaryDirectory(prefix="phone-watch-") as tmp:
        proc, port, log = start_node(tree, Path(tmp))
        url = f"http://127.0.0.1:{port}"
        try:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                host = await go_live(browser, url)
                buyer = await signed_in(browser, url, "buyer@livemall.example")
                cookies = await buyer.cookies()
                await buyer.close()
                await asyncio.sleep(3)  # the publisher's layers settle; the first keyframes are out
                for n in range(loads):
                    frame, buy = await one_load(browser, url, cookies, verbose)
                    print(f"  {label} load {n + 1:2d}: first frame {fmt(frame)}  Buy {fmt(buy)}", flush=True)
                    if frame is None or buy is None:
                        result.failures += 1
                    if frame is not None:
                        result.frames.append(frame)
                    if buy is not None:
                        result.buys.append(buy)
                await host.close()
                await browser.close()
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    return result


def fmt(value: float | None) -> str:
    return f"{value:6.2f} s" if value is not None else "     –  "


def summary(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    ordered = sorted(values)
    return percentile(ordered, 0.5), percentile(ordered, 0.95)  # nearest rank: p95 of 10 is the slowest


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loads", type=int, default=10)
    parser.add_argument("--baseline", type=Path, help="another checkout (e.g. `git worktree add /tmp/old 31b4dd6`)")
    parser.add_argument("--baseline-label", default="before (31b4dd6)")
    parser.add_argument("--verbose", action="store_true", help="print each load's milestones")
    args = parser.parse_args()
    ensure_loopback_namespace()

    print(f"load average at start: {load_average()}", flush=True)
    started = time.monotonic()
    results = []
    if args.baseline:
        results.append(asyncio.run(measure(args.baseline.resolve(), args.baseline_label, args.loads, args.verbose)))
    results.append(asyncio.run(measure(ROOT, "after (this tree)", args.loads, args.verbose)))
    print(f"load average at end: {load_average()} ({time.monotonic() - started:.0f} s)\n")

    print(f"phone profile: 390x844 @3x, CPU x{CPU_SLOWDOWN}, 1.6 Mbit/s down / 750 kbit/s up, 150 ms RTT; "
          f"{args.loads} cold loads each")
    print(f"{'page':20} {'first frame p50':>15} {'p95':>7} {'Buy p50':>8} {'p95':>7} {'failed':>7}")
    rows = {}
    for result in results:
        frame50, frame95 = summary(result.frames)
        buy50, buy95 = summary(result.buys)
        rows[result.label] = (frame50, frame95, buy50, buy95)
        print(f"{result.label:20} {fmt(frame50):>15} {fmt(frame95):>7} {fmt(buy50):>8} {fmt(buy95):>7} "
              f"{result.failures:>7}")
    if len(results) == 2:
        before, after = rows[results[0].label], rows[results[1].label]
        ratios = [f"{b / a:.2f}x" if a and b else "–" for b, a in zip(before, after)]
        print(f"{'before / after':20} {ratios[0]:>15} {ratios[1]:>7} {ratios[2]:>8} {ratios[3]:>7}")
    frame95 = rows[results[-1].label][1]
    verdict = "met" if frame95 is not None and frame95 < TARGET_FIRST_FRAME_P95 else "NOT met"
    print(f"target: first frame under {TARGET_FIRST_FRAME_P95} s at p95 — {verdict}")


if __name__ == "__main__":
    main()
