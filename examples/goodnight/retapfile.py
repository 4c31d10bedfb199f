"""Tasks for the goodnight example: `retap list` here shows them."""

import retap


class Goodnight(retap.Task):
    """Your basic goodnight moon task.

    Says goodnight with a configurable message.
    """

    message: str = retap.config("goodnight", help="a goodnight message")

    def process(self, name: str) -> str:
        return f"{self.message} {name}"


@retap.task
def shout(text: str, *, times: int = 1) -> str:
    """Upper-cases its input, repeated --times times."""
    return " ".join([text.upper()] * times)
