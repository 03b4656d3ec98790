"""nats-py's JetStream error names, for the stand-in."""
from ..errors import Error


class NoStreamResponseError(Error):
    def __str__(self):
        return "nats: no response from stream"


class APIError(Error):
    def __init__(self, code=None, err_code=None, description=None):
        super().__init__(description)
        self.code, self.err_code, self.description = code, err_code, description

    def __str__(self):
        return f"nats: {type(self).__name__}: code={self.code} err_code={self.err_code} description='{self.description}'"
