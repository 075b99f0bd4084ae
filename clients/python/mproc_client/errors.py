"""mproc's errors as Python exceptions (docs/protocol.md section 5)."""

# The "mproc" category's codes, by number.
CODES = {
    1: "process_exited", 2: "link_lost", 3: "unknown_actor_name", 4: "unknown_message_type",
    5: "bad_message", 6: "bad_arguments", 7: "spawn_failed", 8: "no_such_actor",
    9: "frame_too_large", 10: "timeout", 11: "protocol_error", 12: "node_shutdown", 13: "full",
    14: "empty", 15: "closed", 16: "not_running", 17: "gave_up", 18: "task_failed",
    19: "auth_failed", 20: "unreachable", 21: "owner_died", 22: "broken_barrier",
    23: "command_failed", 24: "no_such_key", 25: "out_of_range", 26: "not_found",
    27: "actor_failed", 28: "unexpected_message",
}


class MprocError(Exception):
    """An error a node sent: its category ("mproc", "system", "exit", ...), code and text.
    `name` is the code's name for the "mproc" category."""

    def __init__(self, category, code, text, context=None):
        self.category, self.code, self.text, self.context = category, code, text, context
        self.name = CODES.get(code, str(code)) if category == "mproc" else str(code)
        super().__init__("%s:%s: %s" % (category, self.name, text))


class AuthError(MprocError):
    """The handshake failed: one side does not know the authkey."""

    def __init__(self, text):
        super().__init__("mproc", 19, text)


def error_from_wire(e):
    """[category, code, text, context] -> MprocError."""
    category, code, text, context = e
    return MprocError(category, code, text, context)
