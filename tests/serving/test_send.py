"""A /predict answer reaches the socket in one write under uvicorn (head and body
together), complete and keep-alive, with either of uvicorn's HTTP parsers."""

from __future__ import annotations

import asyncio
import http.client
import threading

import pytest
import uvicorn

from nbops.serving.app import _send_whole
from tests.conftest import free_port

BODY = b'{"predictions": [0.5]}' * 200  # larger than one TCP segment's worth of head


class _Counting:
    """The connection's own transport, with every write recorded."""

    def __init__(self, transport, writes):
        self.transport, self.writes = transport, writes

    def write(self, data):
        self.writes.append(bytes(data))
        self.transport.write(data)

    def __getattr__(self, name):
        return getattr(self.transport, name)


def _app(writes):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await receive()
        cycle = send.__self__
        cycle.transport = _Counting(cycle.transport, writes)
        await _send_whole(
            send,
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(BODY)).encode()),
                ],
            },
            {"type": "http.response.body", "body": BODY},
        )

    return app


@pytest.fixture(params=["httptools", "h11"])
def server(request):
    writes: list[bytes] = []
    config = uvicorn.Config(
        _app(writes),
        host="127.0.0.1",
        port=free_port(),
        http=request.param,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(600):
            if server.started:
                break
            threading.Event().wait(0.01)
        assert server.started, "uvicorn did not start"
        yield config.port, writes
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_an_answer_is_one_write_with_head_and_body_and_the_connection_stays_open(server):
    port, writes = server
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(2):  # the second request on the same keep-alive connection
        connection.request("POST", "/predict", body=b"{}")
        response = connection.getresponse()
        assert response.status == 200
        assert response.read() == BODY
    connection.close()
    # Each answer: one write holding the head and the whole body (h11 may add an empty
    # write for the end of the message).
    answers = [w for w in writes if w]
    assert len(answers) == 2
    for written in answers:
        assert written.startswith(b"HTTP/1.1 200 OK\r\n") and written.endswith(BODY)


def test_under_another_server_the_answer_is_two_asgi_messages():
    sent = []

    async def send(message):
        sent.append(message)

    start = {"type": "http.response.start", "status": 200, "headers": []}
    body = {"type": "http.response.body", "body": b"{}"}
    asyncio.run(_send_whole(send, start, body))
    assert sent == [start, body]
