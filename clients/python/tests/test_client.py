"""The Python client against a real node: tests/python_peer (node mode) on loopback.

Usage: test_client.py PEER_BINARY     (meson test 'python_client' passes it)
"""

import atexit
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from mproc_client import Actor, AuthError, Client, MprocError, i32  # noqa: E402

PEER = None
KEY = b"0123456789abcdef-a-test-key"
RUNNING = []  # nodes to stop at exit, however the run ends


class Node:
    """The peer program in node mode, on a loopback port of its own choice."""

    def __init__(self, plaintext=True):
        self.stopped = False
        self.keyfile = tempfile.NamedTemporaryFile(prefix="mproc-key-", delete=False)
        self.keyfile.write(KEY)
        self.keyfile.close()
        os.chmod(self.keyfile.name, 0o600)
        try:
            self.proc = subprocess.Popen(
                [PEER, "--mproc-node", "--listen", "127.0.0.1:0", "--authkey-file",
                 self.keyfile.name, "--serve-forever"] + (["--plaintext"] if plaintext else []),
                stdout=subprocess.PIPE, text=True)
        except BaseException:
            os.unlink(self.keyfile.name)
            raise
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline() if ready else ""
        m = re.search(r"listening on (\S+):(\d+)", line)
        if not m:
            self.stop()
            raise RuntimeError("the node said %r" % line)
        self.address = (m.group(1), int(m.group(2)))
        RUNNING.append(self)

    def stop(self):
        if self.stopped:
            return
        self.stopped = True
        if self in RUNNING:
            RUNNING.remove(self)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        os.unlink(self.keyfile.name)


class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.node = Node()

    @classmethod
    def tearDownClass(cls):
        cls.node.stop()

    def connect(self, key=KEY):
        return Client(self.node.address, key)

    def test_spawn_then_request_with_typed_arguments(self):
        with self.connect() as c:
            self.assertEqual(c.peer["pid"], self.node.proc.pid)
            square = c.spawn("squarer")
            self.assertIsInstance(square, Actor)
            self.assertEqual(c.request(square, i32(7), timeout=5), 49)
            # An int goes as i64: the squarer takes i32 only, and says so.
            with self.assertRaises(MprocError) as e:
                c.request(square, 7, timeout=5)
            self.assertEqual(e.exception.name, "unexpected_message")
            self.assertIn("squarer", e.exception.text)

    def test_sends_arrive_before_a_later_request(self):
        with self.connect() as c:
            acc = c.spawn("accumulator")
            for x in range(1, 101):
                c.send(acc, x)
            self.assertEqual(c.request(acc, "total"), 5050)

    def test_a_request_nobody_answers_times_out(self):
        with self.connect() as c:
            silent = c.spawn("silent")
            with self.assertRaises(TimeoutError):
                c.request(silent, i32(1), timeout=0.2)
            self.assertEqual(c.request(c.spawn("squarer"), i32(3)), 9)  # still usable

    def test_errors_carry_mproc_codes(self):
        with self.connect() as c:
            with self.assertRaises(MprocError) as e:
                c.spawn("no_such_name")
            self.assertEqual((e.exception.category, e.exception.name),
                             ("mproc", "unknown_actor_name"))
            with self.assertRaises(MprocError) as e:
                c.request(Actor(c.peer["node"], 999999), i32(1))
            self.assertEqual(e.exception.name, "no_such_actor")

    def test_monitor_reports_normal_ends_and_failures(self):
        with self.connect() as c:
            q = c.spawn("quitter")
            c.monitor(q)
            c.send(q, i32(0))
            self.assertIsNone(c.wait_down(q))
            f = c.spawn("failer")
            c.monitor(f)
            c.send(f, i32(0))
            reason = c.wait_down(f)
            self.assertEqual(reason.name, "actor_failed")
            self.assertIn("std::runtime_error: boom", reason.text)

    def test_lookup_finds_a_registered_name(self):
        with self.connect() as c:
            r = c.spawn("registrar", "echo-service")
            self.assertEqual(c.request(r, "ready?"), "ready?")  # it registered before it ran
            found = c.lookup("echo-service")
            self.assertEqual(found, r)
            self.assertEqual(c.request(found, "hi"), "hi")
            with self.assertRaises(MprocError) as e:
                c.lookup("nobody-here")
            self.assertEqual(e.exception.name, "no_such_actor")

    def test_heartbeats_keep_an_idle_connection(self):
        with self.connect() as c:
            square = c.spawn("squarer")
            time.sleep(3)  # longer than the node's 2 s silence limit
            self.assertEqual(c.request(square, i32(4)), 16)

    def test_a_wrong_key_is_refused(self):
        # From another loopback address: after a wrong key, the node makes that address wait.
        with self.assertRaises(AuthError):
            Client(self.node.address, b"this is not the key, at all",
                   source_address=("127.0.0.5", 0))
        with self.connect() as c:  # the node serves on
            self.assertEqual(c.request(c.spawn("squarer"), i32(2)), 4)


class HandshakeTest(unittest.TestCase):
    def test_a_server_without_the_key_is_refused_after_its_verdict(self):
        listener = socket.create_server(("127.0.0.1", 0))
        received = []

        def fake_server():
            conn, _ = listener.accept()
            with conn:
                conn.recv(40)
                conn.sendall(b"MPROC\x00\x02\x00" + os.urandom(32))
                conn.settimeout(10)
                received.append(len(conn.recv(32)))  # the client's proof comes first
                conn.sendall(os.urandom(32))  # a made-up verdict

        t = threading.Thread(target=fake_server)
        t.start()
        try:
            with self.assertRaisesRegex(AuthError, "does not match this authkey"):
                Client(listener.getsockname(), KEY)
        finally:
            t.join(timeout=15)
            listener.close()
        self.assertEqual(received, [32])

    def test_a_node_that_accepts_tls_only_refuses_the_plaintext_client(self):
        node = Node(plaintext=False)
        try:
            with self.assertRaisesRegex(AuthError, "TLS only"):
                Client(node.address, KEY)
        finally:
            node.stop()


def main():
    global PEER
    PEER = sys.argv.pop(1)
    # A test run stopped from outside (meson's timeout) still stops the node it started.
    atexit.register(lambda: [n.stop() for n in list(RUNNING)])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    unittest.main(verbosity=2)


if __name__ == "__main__":
    main()
