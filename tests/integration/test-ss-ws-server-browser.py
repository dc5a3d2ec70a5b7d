#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# A real browser against examples/ws-counter (issue 11), TAP: the example runs
# with its policy on a free port and a certificate made by its own
# ws-counter-certs.sh; headless Chromium (Debian's /usr/bin/chromium, driven
# over the DevTools protocol with python3-websockets) loads https://localhost:PORT/
# trusting only that certificate's key (--ignore-certificate-errors-spki-list),
# the page opens its wss connection, and the counter text must change at least
# three times; a screenshot goes to $OUT_DIR/ws-counter-browser.png.
#
# Environment: WS_COUNTER (the binary), WS_COUNTER_CERTS (ws-counter-certs.sh),
# WS_COUNTER_POLICY_IN (ws-counter.json.in), OUT_DIR (where the picture goes).
import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

DEADLINE = 25  # seconds for the browser part, ends early on success

n = 0
failed = False


def tap(cond, name):
    global n, failed
    n += 1
    print("%s %d - %s" % ("ok" if cond else "not ok", n, name), flush=True)
    if not cond:
        failed = True
    return cond


def diag(text):
    for line in str(text).splitlines():
        print("# " + line, flush=True)


def skip_all(why):
    print("TAP version 13\n1..0 # SKIP " + why, flush=True)
    sys.exit(0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def spki_pin(cert):
    out = subprocess.run(["certtool", "--certificate-info", "--infile", cert],
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("pin-sha256:"):
            return line[len("pin-sha256:"):]
    return None


class Cdp:
    """The DevTools protocol over one page's WebSocket."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0

    async def call(self, method, **params):
        self.next_id += 1
        my_id = self.next_id
        await self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            msg = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError("%s: %s" % (method, msg["error"]))
                return msg.get("result", {})

    async def text(self, element_id):
        try:
            r = await self.call("Runtime.evaluate", returnByValue=True,
                                expression="(e => e ? e.textContent : null)"
                                           "(document.getElementById(%s))" % json.dumps(element_id))
        except RuntimeError as e:
            # The page listed but its document not created yet (still navigating): not yet.
            if "Cannot find default execution context" in str(e):
                return None
            raise
        return r.get("result", {}).get("value")


async def drive(devtools_port, page_url, png):
    import websockets

    end = time.monotonic() + DEADLINE
    target = None
    while time.monotonic() < end and not target:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % devtools_port,
                                        timeout=2) as f:
                for t in json.load(f):
                    if t.get("type") == "page" and t.get("url", "").startswith(page_url):
                        target = t
        except OSError:
            pass
        if not target:
            await asyncio.sleep(0.1)
    if not tap(target is not None, "chromium opened the page " + page_url):
        return
    async with websockets.connect(target["webSocketDebuggerUrl"], max_size=64 << 20) as ws:
        cdp = Cdp(ws)
        values = []
        status = None
        while time.monotonic() < end:
            text = await cdp.text("counter")
            status = await cdp.text("status")
            if text is not None and text.isdigit() and (not values or values[-1] != int(text)):
                values.append(int(text))
            if len(values) >= 4:
                break
            await asyncio.sleep(0.1)
        diag("counter values seen: %r, status %r" % (values, status))
        tap(len(values) >= 4, "the counter text changed at least three times")
        tap(all(b > a for a, b in zip(values, values[1:])), "and only went up")
        tap(status == "connected", "the page says its wss connection is up")
        shot = await cdp.call("Page.captureScreenshot", format="png")
        data = base64.b64decode(shot.get("data", ""))
        with open(png, "wb") as f:
            f.write(data)
        tap(data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000,
            "screenshot saved (%d bytes)" % len(data))
        diag("screenshot: " + png)


def main():
    print("TAP version 13", flush=True)
    binary = os.environ.get("WS_COUNTER")
    certs = os.environ.get("WS_COUNTER_CERTS")
    policy_in = os.environ.get("WS_COUNTER_POLICY_IN")
    out_dir = os.environ.get("OUT_DIR") or "."
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not binary or not certs or not policy_in:
        skip_all("WS_COUNTER, WS_COUNTER_CERTS or WS_COUNTER_POLICY_IN not set")
    if not os.access(chromium, os.X_OK):
        skip_all("chromium is not installed")
    if not shutil.which("certtool"):
        skip_all("certtool is not installed")
    try:
        import websockets  # noqa: F401
    except ImportError:
        skip_all("python3-websockets is not installed")

    work = tempfile.mkdtemp(prefix="ws-counter-browser.")
    server = browser = None
    try:
        tap(subprocess.run(["sh", certs, work + "/certs"]).returncode == 0,
            "ws-counter-certs.sh made a certificate")
        port = free_port()
        with open(policy_in) as f:
            policy = f.read().replace("@CERTDIR@", work + "/certs").replace("7681", str(port))
        with open(work + "/policy.json", "w") as f:
            f.write(policy)
        log = open(work + "/ws-counter.log", "w+")
        server = subprocess.Popen([binary, work + "/policy.json"], stderr=log)
        if not tap(wait_port(port, server, 10), "ws-counter listens on %d" % port):
            return
        ctx = ssl.create_default_context(cafile=work + "/certs/ca.pem")
        page_url = "https://localhost:%d/" % port
        with urllib.request.urlopen(page_url, context=ctx, timeout=10) as f:
            body = f.read().decode()
            tap(f.status == 200 and "new WebSocket" in body and
                f.headers.get("content-type", "").startswith("text/html"),
                "GET / over TLS gives the HTML page")

        pin = spki_pin(work + "/certs/server.pem")
        tap(pin is not None, "the certificate's SPKI pin")
        profile = work + "/profile"
        browser = subprocess.Popen(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", "--user-data-dir=" + profile,
             "--remote-debugging-port=0", "--remote-allow-origins=*", "--window-size=800,600",
             "--ignore-certificate-errors-spki-list=" + (pin or ""), page_url],
            stdout=subprocess.DEVNULL, stderr=open(work + "/chromium.log", "w"),
            start_new_session=True)
        devtools_port = None
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end and browser.poll() is None:
            try:
                with open(profile + "/DevToolsActivePort") as f:
                    devtools_port = int(f.readline())
                    break
            except (OSError, ValueError):
                time.sleep(0.1)
        if not tap(devtools_port is not None, "chromium is up with DevTools"):
            return
        png = os.path.join(out_dir, "ws-counter-browser.png")
        asyncio.run(drive(devtools_port, page_url, png))
        log.seek(0)
        tap("a page connected" in log.read(), "ws-counter saw the page connect")
    except Exception as e:  # a failure of the harness itself
        tap(False, "no exception: %r" % e)
    finally:
        if browser:
            try:
                os.killpg(browser.pid, signal.SIGKILL)  # its helpers too
            except ProcessLookupError:
                pass
            browser.wait()
        if server:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
                try:
                    server.wait(10)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
            tap(server.returncode == 0, "ws-counter stops cleanly on SIGTERM (exit %r)"
                % server.returncode)
            if failed:
                with open(work + "/ws-counter.log") as f:
                    diag(f.read())
        if failed and os.path.exists(work + "/chromium.log"):
            with open(work + "/chromium.log") as f:
                diag(f.read()[-3000:])
        shutil.rmtree(work, ignore_errors=True)
    print("1..%d" % n, flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
