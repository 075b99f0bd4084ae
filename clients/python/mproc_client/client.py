"""The client: one TCP connection to one mproc node (docs/protocol.md)."""

import hashlib
import hmac
import os
import socket
import struct
import threading
import time

import msgpack

from .errors import AuthError, MprocError, error_from_wire
from .values import Actor, Typed, decode_message, encode_message, f32, f64, i8, i16, i32, i64, \
    typed, u8, u16, u32, u64, value

# Envelope kinds (section 2).
HELLO, SPAWN, SPAWNED, SEND, REQUEST, RESPONSE, MONITOR, DOWN, HEARTBEAT, SHUTDOWN, LOOKUP, \
    FOUND, FDS = range(13)
PROTOCOL_VERSION = 1
MAGIC = b"MPROC\x00\x02\x00"  # the plaintext handshake, version 2: the client proves first
MIN_FRAME = 1 << 20  # what every node accepts before its hello says more
HEARTBEAT_INTERVAL = 0.5  # a node drops a link silent for 2 s
SILENCE_LIMIT = 2.0  # and so does this client
# The actor id this client sends from: a request from [0, 0] gets no answer (nobody to
# answer to), so requests come from [our node id, 1].
CLIENT_ACTOR = 1


class Client:
    """A connection to the node at `address` (host, port), authenticated with `authkey`
    (bytes or str, at least 16 bytes of which 8 differ; trailing newlines are dropped, as mproc drops them, so
    a key file's content can be passed as it is)."""

    def __init__(self, address, authkey, name="python", timeout=5.0, source_address=None):
        if isinstance(authkey, str):
            authkey = authkey.encode()
        authkey = authkey.rstrip(b"\r\n")  # as mproc does: a key file's newline is not the key
        if len(authkey) < 16:
            raise ValueError("an authkey has at least 16 bytes; this one has %d" % len(authkey))
        if len(set(authkey)) < 8:
            raise ValueError("an authkey has at least 8 different bytes; this one has %d"
                             % len(set(authkey)))
        self.node = int.from_bytes(os.urandom(8), "big") or 1
        self.name = name
        self._sock = socket.create_connection(address, timeout=timeout,
                                              source_address=source_address)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._write_lock = threading.Lock()
        self._state = threading.Condition()
        self._pending = {}     # request id -> [done, ok, payload]
        self._next_id = 1
        self._downs = {}       # (node, actor) -> reason, once the down came
        self._closed = None    # why the connection ended, once it did
        self.peer = None       # the node's hello: node, pid, name, max_frame
        self._max_frame = MIN_FRAME
        self._last_heard = time.monotonic()
        self._stop_beat = threading.Event()
        try:
            self._handshake(authkey)
            self._sock.settimeout(None)
            self._write([HELLO, PROTOCOL_VERSION, self.node, os.getpid(), name, 80 << 20])
        except BaseException:
            self._sock.close()
            raise
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        self._beater = threading.Thread(target=self._beat, daemon=True)
        self._beater.start()
        with self._state:  # the node's hello comes first: its max_frame, its node id
            self._state.wait_for(lambda: self.peer is not None or self._closed is not None,
                                 timeout)
        if self.peer is None:
            why = self._closed or "no hello from the node within %.3g s" % timeout
            self.close()
            raise MprocError("mproc", 11, why)

    # -- handshake (section 8.2) --------------------------------------------------------

    def _handshake(self, key):
        # The plaintext handshake (section 8.2): Python's ssl module has no external pre-shared
        # keys before 3.13, so the node must listen with --plaintext and frames go in clear.
        nc = os.urandom(32)
        self._sock.sendall(MAGIC + nc)
        try:
            challenge = self._recv_exact(40)
        except ConnectionError:
            raise AuthError("the node closed the connection: it may accept TLS only "
                            "(start it with --plaintext)") from None
        if challenge[:8] != MAGIC:
            raise AuthError("the server does not speak mproc's plaintext handshake")
        ns = challenge[8:40]
        self._sock.sendall(hmac.new(key, b"mproc client" + ns + nc, hashlib.sha256).digest())
        try:
            verdict = self._recv_exact(32)
        except ConnectionError:
            raise AuthError("the node refused this client's proof of the authkey") from None
        expected = hmac.new(key, b"mproc server" + nc + ns, hashlib.sha256).digest()
        if not hmac.compare_digest(verdict, expected):
            raise AuthError("the node's proof does not match this authkey (the keys differ)")

    def _recv_exact(self, n):
        data = bytearray(n)
        view = memoryview(data)
        got = 0
        while got < n:
            k = self._sock.recv_into(view[got:], n - got)
            if k == 0:
                raise ConnectionError("the node closed the connection")
            got += k
        return bytes(data)

    # -- frames ---------------------------------------------------------------------------

    def _write(self, envelope):
        payload = msgpack.packb(envelope, use_bin_type=True, unicode_errors="surrogateescape")
        if len(payload) > self._max_frame:
            raise MprocError("mproc", 9, "a message of %d bytes exceeds the node's max_frame %d"
                             % (len(payload), self._max_frame))
        try:
            with self._write_lock:
                self._sock.sendall(struct.pack(">I", len(payload)) + payload)
        except OSError as e:
            self._end("connection error: %s" % e)
            raise MprocError("mproc", 2, "link lost: " + self._closed) from None

    def _read_loop(self):
        why = "the node closed the connection"
        try:
            while True:
                (length,) = struct.unpack(">I", self._recv_exact(4))
                if length > 80 << 20:
                    why = "protocol error: a frame of %d bytes" % length
                    break
                # mproc's strings are bytes: those that are not UTF-8 round-trip as escapes
                envelope = msgpack.unpackb(self._recv_exact(length), raw=False,
                                           strict_map_key=False,
                                           unicode_errors="surrogateescape")
                self._last_heard = time.monotonic()
                self._dispatch(envelope)
        except (ConnectionError, OSError) as e:
            if not isinstance(e, ConnectionError):
                why = "connection error: %s" % e
        except Exception as e:  # malformed msgpack or envelope: the protocol says close
            why = "protocol error: %s" % e
        self._end(why)

    def _dispatch(self, env):
        kind = env[0]
        if kind == HELLO:
            _, version, node, pid, name, max_frame = env
            if version != PROTOCOL_VERSION or self.peer is not None:
                raise ValueError("a hello of version %r, or a second one" % version)
            with self._state:
                self.peer = {"node": node, "pid": pid, "name": name, "max_frame": max_frame}
                self._max_frame = max_frame
                self._state.notify_all()
            return
        if self.peer is None:
            raise ValueError("a frame before the node's hello")
        if kind == FDS or kind > FDS:
            raise ValueError("envelope kind %r on TCP" % kind)
        elif kind in (SPAWNED, FOUND):
            _, request, ok, body = env
            self._settle(request, ok, Actor(*body) if ok else error_from_wire(body))
        elif kind == RESPONSE:
            _, _tn, _ta, _fn, _fa, request, ok, body = env
            self._settle(request, ok, decode_message(body) if ok else error_from_wire(body))
        elif kind == DOWN:
            _, node, actor, reason = env
            with self._state:
                self._downs[(node, actor)] = None if reason is None else error_from_wire(reason)
                self._state.notify_all()
        elif kind == REQUEST:
            # Nothing here is an actor: say so, as a node does for an actor that does not exist.
            _, to_node, to_actor, from_node, from_actor, request, _msg = env
            self._write([RESPONSE, from_node, from_actor, to_node, to_actor, request, False,
                         ["mproc", 8, "a Python client has no actors", None]])
        elif kind == MONITOR:
            # No actor here ends: there is none (the client's own id never ends either).
            _, node, actor = env
            if (node, actor) != (self.node, CLIENT_ACTOR):
                self._write([DOWN, node, actor, ["mproc", 8, "a Python client has no actors",
                                                 None]])
        elif kind == SHUTDOWN:
            raise ConnectionError("the node asked to end the link: %s" % env[1])
        # SEND, HEARTBEAT: nothing to do (a send to this client has no receiver).

    def _settle(self, request, ok, payload):
        with self._state:
            slot = self._pending.get(request)
            if slot is not None:
                slot[:] = [True, ok, payload]
                self._state.notify_all()

    def _end(self, why):
        with self._state:
            if self._closed is None:
                self._closed = why
            self._state.notify_all()
        self._stop_beat.set()
        try:  # the node learns at once, not after its silence limit
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _beat(self):
        while not self._stop_beat.wait(HEARTBEAT_INTERVAL):
            if time.monotonic() - self._last_heard > SILENCE_LIMIT:
                self._end("the node said nothing for %.3g s" % SILENCE_LIMIT)
                return
            try:
                self._write([HEARTBEAT])
            except MprocError:
                return

    # -- calls ----------------------------------------------------------------------------

    def _call(self, make_envelope, timeout):
        with self._state:
            self._check_open()
            request = self._next_id
            self._next_id += 1
            slot = [False, False, None]
            self._pending[request] = slot
        try:
            self._write(make_envelope(request))
            with self._state:
                if not self._state.wait_for(lambda: slot[0] or self._closed is not None,
                                            timeout):
                    raise TimeoutError("no answer within %.3g s" % timeout)
                if not slot[0]:
                    raise MprocError("mproc", 2, "link lost: " + self._closed)
            if not slot[1]:
                raise slot[2]
            return slot[2]
        finally:
            with self._state:
                self._pending.pop(request, None)

    def _check_open(self):
        if self._closed is not None:
            raise MprocError("mproc", 2, "link lost: " + self._closed)

    def spawn(self, actor_name, *args, timeout=5.0):
        """Starts the actor registered as `actor_name` in the node, with `args` (exact types:
        wrap them, e.g. i32(3)); returns its Actor. It lives in the node's process, as long
        as the node."""
        message = encode_message(args)
        return self._call(lambda r: [SPAWN, r, actor_name, False, message], timeout)

    def lookup(self, name, timeout=5.0):
        """The actor the node registered under `name`."""
        return self._call(lambda r: [LOOKUP, r, name], timeout)

    def request(self, actor, *args, timeout=5.0):
        """Sends `args` to `actor` and returns its reply: None for an empty one, the value
        for one element, a tuple for more. Raises MprocError with the node's error, or
        TimeoutError (the reply, if it comes later, is dropped)."""
        message = encode_message(args)
        reply = self._call(lambda r: [REQUEST, actor.node, actor.id, self.node, CLIENT_ACTOR, r,
                                      message], timeout)
        return None if not reply else reply[0] if len(reply) == 1 else tuple(reply)

    def send(self, actor, *args):
        """Sends `args` to `actor`, expecting no reply (from an anonymous sender)."""
        with self._state:
            self._check_open()
        self._write([SEND, actor.node, actor.id, 0, 0, encode_message(args)])

    def monitor(self, actor):
        """Asks the node to report `actor`'s end; wait_down() returns the reason."""
        with self._state:
            self._check_open()
        self._write([MONITOR, actor.node, actor.id])

    def wait_down(self, actor, timeout=5.0):
        """The reason `actor` ended (None for a normal end), once monitor()'s down came;
        TimeoutError if it did not within `timeout`."""
        key = (actor.node, actor.id)
        with self._state:
            if not self._state.wait_for(lambda: key in self._downs or self._closed is not None,
                                        timeout):
                raise TimeoutError("no down message within %.3g s" % timeout)
            if key not in self._downs:
                raise MprocError("mproc", 2, "link lost: " + self._closed)
            return self._downs[key]

    def close(self):
        """Ends the connection. What this client spawned lives on in the node."""
        self._end("closed by this client")
        self._reader.join(timeout=5)
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
