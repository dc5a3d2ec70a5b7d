# SPDX-License-Identifier: MIT
"""WebSocket frames made by hand, for the peers of the ws tests (ws-server.py,
test-ss-ws-server.py): what a library would refuse to send."""

import os


def frame(opcode, payload, fin=True, mask=False, length=None):
    """One frame: opcode, payload, FIN unless fin is False, masked with a
    random key if mask; length overrides the length field (a lie about the
    payload that follows)."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | opcode])
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([bit | 127]) + n.to_bytes(8, "big")
    if mask:
        key = os.urandom(4)
        head += key
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + payload
