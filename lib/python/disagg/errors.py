"""disagg.errors: the one exception the client raises.

``Error.code`` is a short word and ``Error.message`` a sentence for
people.  The codes are those of the protocol's error replies
(disagg-protocol(7), ERROR REPLIES: ``invalid``, ``busy``, ``not-found``,
``denied``, ``timeout`` ...), passed on as the controller sent them, and
a few of the client's own:

- ``timeout``: no answer within the wait's deadline (the controller is
  down, unreachable, or refused a CurveZMQ handshake);
- ``invalid``: bad arguments caught before anything is sent (a parameter
  of the wrong type, a malformed endpoint, a key file that cannot be
  read);
- ``protocol``: the controller answered something the client did not
  expect (an older or newer controller);
- ``closed``: the client was closed.
"""

__all__ = ["Error"]


class Error(Exception):
    """A refusal or failure, with the protocol's ``code`` and ``message``."""

    def __init__(self, code, message=""):
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self):
        return "%s: %s" % (self.code, self.message) if self.message \
            else str(self.code)

    def __repr__(self):
        return "Error(%r, %r)" % (self.code, self.message)
