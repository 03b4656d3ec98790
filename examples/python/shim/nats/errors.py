"""nats-py's error names, for the calls of the stand-in (see __init__)."""


class Error(Exception):
    pass


class TimeoutError(Error, TimeoutError):  # noqa: A001 (nats-py's name)
    def __str__(self):
        return "nats: timeout"


class NoRespondersError(Error):
    def __str__(self):
        return "nats: no responders available for request"


class NoServersError(Error):
    def __str__(self):
        return "nats: no servers available for connection"


class ConnectionClosedError(Error):
    def __str__(self):
        return "nats: connection closed"


class BadSubjectError(Error):
    def __str__(self):
        return "nats: invalid subject"


class FlushTimeoutError(TimeoutError):
    def __str__(self):
        return "nats: flush timeout"
