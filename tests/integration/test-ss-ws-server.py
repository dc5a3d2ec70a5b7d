#!/usr/bin/python3
# WebSocket clients for tests/integration/test-ss-ws-server.c, on 127.0.0.1 only.
#
#   test-ss-ws-server.py CASE PORT [CA_PEM]
#   test-ss-ws-server.py validity PORT - PING HUP
#
# Cases with python3-websockets (a real, independent client):
#   echo       text messages echoed byte-exact: short, empty, non-ASCII, 1 MiB
#              (it comes back in 16 KiB frames), one sent fragmented; a PING
#              answered; then the client closes with 4001 "bye" and must get
#              4001 back (with CA_PEM: over TLS)
#   binary     binary messages echoed as binary, one fragmented with an empty
#              fragment
#   servclose  "close-me" makes the application disconnect: close code 1000
#   limit      against ws_max_message 4096: a 4096-byte message echoed, then one
#              of 3000 + 1097 bytes in two fragments: CLOSE 1009
#   many       100 clients each see three increasing counter values pushed
#   appclose   "close-app" makes the application call ss_stream_ws_close() with
#              4321 "app says bye \u2603"; "close-long" with 3999 and a reason
#              of 41 snowmen (123 bytes): the client sees each code and reason
#   validity   against a server whose client must not be silent for more than
#              HUP seconds and gets a PING after PING seconds of silence: a
#              hand-made client completes the handshake and then sends nothing,
#              not even a PONG: it must get a PING no earlier than PING s after
#              its request went, then CLOSE 1001 no earlier than HUP s, then
#              EOF; meanwhile a python3-websockets client that sends nothing of
#              its own (ping_interval=None) but answers PINGs, connected since
#              before, must still echo afterwards
# Cases with hand-made bytes (what a well-behaved client will not send), each
# with a python3-websockets client connected throughout whose echo must still
# work afterwards:
#   unmasked   an unmasked frame: CLOSE 1002 back, then EOF
#   badutf8    a text frame that is not UTF-8: CLOSE 1007
#   toobig     a frame header announcing 17 MiB: CLOSE 1009 (before any payload)
#   badopcode  a frame with opcode 3: CLOSE 1002
#   drop       upgrades and closes the TCP connection without a CLOSE (1006)
#   stall      upgrades (subprotocol flood) and then reads nothing for 5 s while
#              the server sends an endless message: the server must give up on
#              its own (the C side checks when)
# Handshakes refused (the status line is checked):
#   version    Sec-WebSocket-Version: 8: 426 with Sec-WebSocket-Version: 13
#   noproto    no subprotocol offered: 400
#   badkey     a key that is not base64 of 16 bytes: 400
# Exit 0 on success; diagnostics as TAP comments.
import asyncio
import base64
import os
import socket
import ssl
import sys
import time

import websockets

from ws_frame import frame

PROTO = "echo.v1"


def diag(line):
    print("# " + line, flush=True)


def fail(why):
    diag("FAIL: " + why)
    sys.exit(1)


def url(port, ca):
    return ("wss" if ca else "ws") + "://127.0.0.1:%d/ws" % port


def ssl_context(ca):
    if not ca:
        return None
    ctx = ssl.create_default_context(cafile=ca)
    return ctx


async def connect(port, ca=None, protocols=(PROTO,)):
    return await websockets.connect(url(port, ca), subprotocols=list(protocols),
                                    ssl=ssl_context(ca), max_size=4 << 20, open_timeout=10)


async def expect_echo(ws, message):
    await ws.send(message)
    got = await asyncio.wait_for(ws.recv(), 10)
    if got != message:
        fail("echo of %d bytes: got %r..." % (len(message), got[:40]))


async def case_echo(port, ca):
    ws = await connect(port, ca)
    if ws.subprotocol != PROTO:
        fail("subprotocol %r" % ws.subprotocol)
    await expect_echo(ws, "hello")
    # Three copies, each asked for by the server's tx call that ends the one before.
    await ws.send("repeat-3")
    for i in range(3):
        got = await asyncio.wait_for(ws.recv(), 10)
        if got != "repeat-3":
            fail("copy %d of repeat-3: got %r" % (i + 1, got))
    await expect_echo(ws, "")
    await expect_echo(ws, "J\u00f6rg \u2603 \U0001f600")
    big = "".join(chr(0x41 + i % 26) for i in range(1 << 20))
    await expect_echo(ws, big)
    await ws.send(["frag", "mented ", "\u00e9t\u00e9"])
    got = await asyncio.wait_for(ws.recv(), 10)
    if got != "fragmented \u00e9t\u00e9":
        fail("fragmented echo: %r" % got)
    pong = await ws.ping(b"p1")
    await asyncio.wait_for(pong, 10)
    await ws.close(4001, "bye")
    if ws.close_code != 4001:
        fail("close code back %r" % ws.close_code)
    diag("echo ok, closed with %d" % ws.close_code)


async def case_binary(port, ca):
    ws = await connect(port, ca)
    await expect_echo(ws, bytes(range(256)) * 3)
    await ws.send([b"\x00\x01", b"", b"\x02\xff"])
    got = await asyncio.wait_for(ws.recv(), 10)
    if got != b"\x00\x01\x02\xff":
        fail("fragmented binary echo: %r" % got)
    await ws.close()


async def case_limit(port, ca):
    ws = await connect(port, ca)
    await expect_echo(ws, bytes(4096))
    await ws.send([bytes(3000), bytes(1097)])
    try:
        await asyncio.wait_for(ws.recv(), 10)
        fail("an echo instead of the close")
    except websockets.ConnectionClosed as e:
        if e.rcvd is None or e.rcvd.code != 1009:
            fail("close from the server: %r" % e.rcvd)
    diag("4097 bytes in two fragments: closed with 1009")


async def case_servclose(port, ca):
    ws = await connect(port, ca)
    await ws.send("close-me")
    try:
        await asyncio.wait_for(ws.recv(), 10)
        fail("a message instead of the close")
    except websockets.ConnectionClosed as e:
        if e.rcvd is None or e.rcvd.code != 1000:
            fail("close from the server: %r" % e.rcvd)
    diag("server closed with 1000")


async def one_counter_client(port, ca, n, results):
    ws = await connect(port, ca, ("counter",))
    seen = []
    try:
        while len(seen) < 3:
            v = int(await asyncio.wait_for(ws.recv(), 20))
            if seen and v <= seen[-1]:
                raise Exception("counter went from %d to %d" % (seen[-1], v))
            seen.append(v)
        results[n] = seen
    finally:
        await ws.close()


async def case_many(port, ca):
    results = {}
    await asyncio.gather(*(one_counter_client(port, ca, i, results) for i in range(100)))
    if len(results) != 100:
        fail("%d clients saw three values" % len(results))
    diag("100 clients, first saw %r" % results[0])


async def expect_app_close(port, ca, message, code, reason):
    ws = await connect(port, ca)
    await ws.send(message)
    try:
        await asyncio.wait_for(ws.recv(), 10)
        fail("a message instead of the close")
    except websockets.ConnectionClosed as e:
        if e.rcvd is None or e.rcvd.code != code or e.rcvd.reason != reason:
            fail("close from the server: %r, want %d %r" % (e.rcvd, code, reason))
    diag("%s: closed with %d and a reason of %d bytes" %
         (message, code, len(reason.encode())))


async def case_appclose(port, ca):
    await expect_app_close(port, ca, "close-app", 4321, "app says bye \u2603")
    await expect_app_close(port, ca, "close-long", 3999, "\u2603" * 41)


# ---- hand-made clients ------------------------------------------------------------------------

def raw_handshake(port, extra=None, version="13", protocol=PROTO,
                  key=base64.b64encode(os.urandom(16)).decode(), before=""):
    """BEFORE: requests sent ahead of the upgrade in the same write (pipelined)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = before + ("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: %s\r\n"
            % (port, key, version))
    if protocol:
        head += "Sec-WebSocket-Protocol: %s\r\n" % protocol
    head += "\r\n"
    s.sendall(head.encode())
    answer = b""
    while answer.count(b"\r\n\r\n") < 1 + before.count("\r\n\r\n"):
        b = s.recv(4096)
        if not b:
            break
        answer += b
    return s, answer


def read_close(s):
    """The CLOSE frame's code from the server, then EOF; None when none came."""
    data = b""
    while True:
        try:
            b = s.recv(65536)
        except OSError as e:
            diag("recv: %s" % e)
            break
        if not b:
            break
        data += b
    if len(data) < 4 or data[0] != 0x88:
        diag("got %r" % data[:20])
        return None
    return int.from_bytes(data[2:4], "big")


async def case_bad(port, ca, how, want):
    good = await connect(port, ca)
    await expect_echo(good, "before")
    s, answer = raw_handshake(port)
    if not answer.startswith(b"HTTP/1.1 101 "):
        fail("handshake: %r" % answer[:60])
    if how == "unmasked":
        s.sendall(frame(1, b"plain", mask=False))
    elif how == "badutf8":
        s.sendall(frame(1, b"ok \xc3\x28 not utf-8", mask=True))
    elif how == "toobig":
        s.sendall(frame(2, b"", mask=True, length=17 << 20))
    elif how == "badopcode":
        s.sendall(frame(3, b"x", mask=True))
    code = await asyncio.get_running_loop().run_in_executor(None, read_close, s)
    s.close()
    if code != want:
        fail("%s: close code %r, want %d" % (how, code, want))
    await expect_echo(good, "after")
    await good.close()
    diag("%s: CLOSE %d, the other client still echoed" % (how, code))


def read_frames(s, t0, limit):
    """The server's frames as (seconds since t0, opcode, payload) until EOF."""
    s.settimeout(limit)
    frames, data = [], b""
    while True:
        try:
            b = s.recv(65536)
        except OSError as e:
            diag("recv: %s" % e)
            return frames, False
        if not b:
            return frames, True
        data += b
        # Server frames are unmasked and, here, short: 2 bytes of header.
        while len(data) >= 2 and len(data) >= 2 + (data[1] & 0x7f):
            n = data[1] & 0x7f
            frames.append((time.monotonic() - t0, data[0] & 0x0f, data[2:2 + n]))
            data = data[2 + n:]


async def case_validity(port, ping, hup):
    quiet = await websockets.connect(url(port, None), subprotocols=[PROTO], ping_interval=None,
                                     open_timeout=10)
    await expect_echo(quiet, "before")
    t0 = time.monotonic()
    s, answer = raw_handshake(port)
    if not answer.startswith(b"HTTP/1.1 101 "):
        fail("handshake: %r" % answer[:60])
    frames, eof = await asyncio.get_running_loop().run_in_executor(
        None, read_frames, s, t0, hup + 30)
    s.close()
    for f in frames:
        diag("silent client: at %.2f s opcode %d payload %r" % f)
    if not eof:
        fail("the silent client was not closed")
    pings = [f for f in frames if f[1] == 0x9]
    closes = [f for f in frames if f[1] == 0x8]
    if not pings or pings[0][0] < ping:
        fail("no PING, or one before %d s" % ping)
    if len(closes) != 1 or closes[0][2][:2] != (1001).to_bytes(2, "big"):
        fail("no CLOSE 1001")
    if closes[0][0] < hup or closes[0][0] > hup + 20:
        fail("CLOSE at %.2f s, want %d s (at most 20 s later)" % (closes[0][0], hup))
    # The quiet client sends nothing either, only PONGs, for clearly longer than HUP.
    await asyncio.sleep(max(0, t0 + hup + 2 - time.monotonic()))
    await expect_echo(quiet, "after")
    await quiet.close()
    if quiet.close_code != 1000:
        fail("quiet client closed with %r" % quiet.close_code)
    diag("quiet client connected for %.1f s, still echoes" % (time.monotonic() - t0))


def case_pipelined(port):
    """Two plain requests and an upgrade in one write: an upgrade is only taken as the
    first request of a connection, so 200, 200, then 400 and the close, all in order."""
    plain = "GET /page HTTP/1.1\r\nHost: x\r\n\r\n"
    s, answer = raw_handshake(port, before=plain * 2)
    while True:
        b = s.recv(4096)
        if not b:
            break
        answer += b
    s.close()
    heads = answer.split(b"\r\n\r\n")
    if not (len(heads) == 4 and heads[0].startswith(b"HTTP/1.1 200 ") and
            heads[1].startswith(b"HTTP/1.1 200 ") and heads[2].startswith(b"HTTP/1.1 400 ") and
            b"\r\nConnection: close" in heads[2] and heads[3] == b""):
        fail("pipelined: %r" % answer[:300])
    diag("pipelined: %s" % b", ".join(h.split(b"\r\n")[0] for h in heads[:3]).decode())


def case_refused(port, how):
    if how == "version":
        s, answer = raw_handshake(port, version="8")
        ok = (answer.startswith(b"HTTP/1.1 426 ") and
              b"\r\nSec-WebSocket-Version: 13\r\n" in answer)
    elif how == "noproto":
        s, answer = raw_handshake(port, protocol=None)
        ok = answer.startswith(b"HTTP/1.1 400 ")
    else:
        s, answer = raw_handshake(port, key="c2hvcnQ=")
        ok = answer.startswith(b"HTTP/1.1 400 ")
    s.close()
    if not ok:
        fail("%s: %r" % (how, answer[:120]))
    diag("%s: %s" % (how, answer.split(b"\r\n")[0].decode()))


def main():
    case, port = sys.argv[1], int(sys.argv[2])
    ca = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] != "-" else None
    if case == "validity":
        coro = case_validity(port, int(sys.argv[4]), int(sys.argv[5]))
        asyncio.run(asyncio.wait_for(coro, 80))
        return
    if case == "drop":
        s, answer = raw_handshake(port)
        if not answer.startswith(b"HTTP/1.1 101 "):
            fail("handshake: %r" % answer[:60])
        s.close()
        return
    if case == "stall":
        s, answer = raw_handshake(port, protocol="flood")
        if not answer.startswith(b"HTTP/1.1 101 "):
            fail("handshake: %r" % answer[:60])
        time.sleep(5)
        s.close()
        return
    if case == "pipelined":
        case_pipelined(port)
        return
    if case in ("version", "noproto", "badkey"):
        case_refused(port, case)
        return
    bad = {"unmasked": 1002, "badutf8": 1007, "toobig": 1009, "badopcode": 1002}
    if case in bad:
        coro = case_bad(port, ca, case, bad[case])
    else:
        coro = globals()["case_" + case](port, ca)
    asyncio.run(asyncio.wait_for(coro, 60))


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except BaseException as e:
        fail("%s: %r" % (type(e).__name__, e))
