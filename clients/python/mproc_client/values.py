"""Messages as tag/value pairs (docs/protocol.md section 3), actors, typed values."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    """An actor of a node: [node, id] on the wire."""
    node: int
    id: int


@dataclass(frozen=True)
class Typed:
    """A value with the tag it travels under, e.g. Typed("i32", 7)."""
    tag: str
    value: object


def typed(tag, x):
    return Typed(tag, x)


def _tagger(tag):
    return lambda x: Typed(tag, x)


i8, i16, i32, i64 = (_tagger(t) for t in ("i8", "i16", "i32", "i64"))
u8, u16, u32, u64 = (_tagger(t) for t in ("u8", "u16", "u32", "u64"))
f32, f64 = _tagger("f32"), _tagger("f64")
value = _tagger("value")  # any msgpack value: mproc::value


def _element(x):
    if isinstance(x, Typed):
        return x.tag, x.value
    if isinstance(x, Actor):
        return "actor", [x.node, x.id]
    if isinstance(x, bool):
        return "bool", x
    if isinstance(x, int):
        return "i64", x
    if isinstance(x, float):
        return "f64", x
    if isinstance(x, str):
        return "str", x
    if isinstance(x, (bytes, bytearray)):
        return "bytes", bytes(x)
    raise TypeError("no mproc tag for %r: wrap it, e.g. typed('i32', x) or value(x)" % (x,))


def encode_message(args):
    out = []
    for x in args:
        out.extend(_element(x))
    return out


def decode_message(pairs):
    """The values of a message, in order; actors as Actor."""
    if len(pairs) % 2:
        raise ValueError("a message has an odd number of elements")
    values = []
    for tag, v in zip(pairs[0::2], pairs[1::2]):
        if tag in ("actor", "actor_ptr") and v is not None:
            v = Actor(*v)
        values.append(v)
    return values
