"""A Python client for mproc nodes, written from docs/protocol.md alone.

    from mproc_client import Client, i32
    with Client(("127.0.0.1", 7000), authkey=b"...16 bytes or more...") as c:
        square = c.spawn("squarer")
        print(c.request(square, i32(7), timeout=1.0))       # 49

It speaks the protocol over TCP: the handshake (section 8), then frames of msgpack
envelopes. Values travel as (tag, value) pairs: a Python int goes as "i64", a float as "f64",
str, bytes and bool as themselves; wrap a value to choose its tag (i32(7), typed("u8", 3)).
"""

from .client import (Actor, AuthError, Client, MprocError, Typed, f32, f64, i8, i16, i32, i64,
                      typed, u8, u16, u32, u64, value)

__all__ = ["Actor", "AuthError", "Client", "MprocError", "Typed", "typed", "value",
           "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "f32", "f64"]
