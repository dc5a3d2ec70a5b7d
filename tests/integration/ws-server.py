#!/usr/bin/python3
# WebSocket peers for tests/integration/test-ss-ws.c, on 127.0.0.1 only.
#
#   ws-server.py [--cert PEM --key PEM] MODE:PORT...
#
# Modes served by python3-websockets (a real, independent implementation):
#   echo       every message back, same type (subprotocol chat.v1; TLS with --cert)
#   fragments  three messages sent fragmented: text "fragmented text", binary
#              00 01 02 ff (with an empty fragment), and an empty text message
#   close      closes at once with code 4001, reason "bye"
# Modes with hand-made frames (what a well-behaved library will not send):
#   silent     never answers anything, pings included; logs "ping" per ping
#   interleave a text message "hello" in two frames with a PING "p1" between
#              them; answers our PONG with "pong:<payload>" and each text
#              message with "masked:<0|1>:<text>"
#   masked     a masked text frame (servers must not mask)
#   badutf8    a text frame that is not UTF-8
# Hand-made modes log "close <code>" when the client's CLOSE arrives.
# Prints "ready" once every listener is up.
import asyncio
import base64
import hashlib
import ssl
import sys

import websockets

from ws_frame import frame

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def log(line):
    print(line, flush=True)


async def echo(ws, path=None):
    async for message in ws:
        await ws.send(message)


async def fragments(ws, path=None):
    await ws.send(["frag", "mented ", "text"])
    await ws.send([b"\x00\x01", b"", b"\x02\xff"])
    await ws.send("")
    async for _ in ws:
        pass


async def close(ws, path=None):
    await ws.close(4001, "bye")


async def read_frame(reader):
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    masked = bool(b1 & 0x80)
    key = await reader.readexactly(4) if masked else b"\0\0\0\0"
    data = await reader.readexactly(n)
    return b0 & 0x0F, masked, bytes(b ^ key[i % 4] for i, b in enumerate(data))


async def raw(mode, reader, writer):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        headers = {}
        for line in head.decode("latin-1").split("\r\n")[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        key = headers["sec-websocket-key"].encode()
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        response = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n" % accept)
        if "sec-websocket-protocol" in headers:
            chosen = headers["sec-websocket-protocol"].split(",")[0].strip()
            response += "Sec-WebSocket-Protocol: %s\r\n" % chosen
        writer.write((response + "\r\n").encode())
        if mode == "masked":
            writer.write(frame(0x1, b"hello", mask=True))
        elif mode == "badutf8":
            writer.write(frame(0x1, b"ok \xc3\x28"))
        elif mode == "interleave":
            writer.write(frame(0x1, b"hel", fin=False))
            writer.write(frame(0x9, b"p1"))
            writer.write(frame(0x0, b"lo"))
        await writer.drain()
        while True:
            opcode, masked, data = await read_frame(reader)
            if opcode == 0x8:
                code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
                log("close %d" % code)
                if mode != "silent":
                    writer.write(frame(0x8, data[:2]))
                    await writer.drain()
                break
            if mode == "silent":
                if opcode == 0x9:
                    log("ping")
                continue
            if mode == "interleave":
                if opcode == 0xA:
                    writer.write(frame(0x1, b"pong:" + data))
                elif opcode == 0x1:
                    writer.write(frame(0x1, b"masked:%d:" % int(masked) + data))
                elif opcode == 0x9:
                    writer.write(frame(0xA, data))
                await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, KeyError):
        pass
    finally:
        writer.close()


async def main(argv):
    tls = None
    if len(argv) >= 4 and argv[0] == "--cert" and argv[2] == "--key":
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(argv[1], argv[3])
        argv = argv[4:]
    handlers = {"echo": echo, "fragments": fragments, "close": close}
    servers = []
    for spec in argv:
        mode, port = spec.split(":")
        if mode in handlers:
            servers.append(await websockets.serve(
                handlers[mode], "127.0.0.1", int(port), subprotocols=["chat.v1"],
                max_size=None, ping_interval=None, ssl=tls))
        else:
            servers.append(await asyncio.start_server(
                lambda r, w, m=mode: raw(m, r, w), "127.0.0.1", int(port)))
    log("ready")
    await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1:]))
    except KeyboardInterrupt:
        pass
