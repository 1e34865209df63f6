"""The forwarder's transport is made on its first request, once, and closed with the client."""

import httpx

from raftkv_cli._forward import OnFirstUse


class Recorded(httpx.MockTransport):
    def __init__(self) -> None:
        super().__init__(lambda request: httpx.Response(200, text=request.url.path))
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True


async def test_the_transport_is_made_on_the_first_request_and_closed_with_the_client() -> None:
    made: list[Recorded] = []

    def make() -> Recorded:
        made.append(Recorded())
        return made[-1]

    async with httpx.AsyncClient(transport=OnFirstUse(make)) as client:
        assert made == []  # nothing built until a request needs it
        assert (await client.get("http://leader/a")).text == "/a"
        assert (await client.get("https://leader/b")).text == "/b"
        assert len(made) == 1
    assert made[0].closed


async def test_a_client_that_never_forwarded_closes_without_making_one() -> None:
    made: list[Recorded] = []
    async with httpx.AsyncClient(transport=OnFirstUse(lambda: made.append(Recorded()) or made[-1])):
        pass
    assert made == []
