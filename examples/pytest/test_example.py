"""Example: prove a client copes with its connect timeout and its receive
timeout, using the tardy fixture from conftest.py."""

import socket
import threading
import time

import pytest


@pytest.fixture
def echo_service():
    """The service under test: an echo server on an ephemeral port."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.1)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except socket.timeout:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    while data := conn.recv(4096):
                        conn.sendall(data)
                except OSError:
                    pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield "127.0.0.1:%d" % srv.getsockname()[1]
    stop.set()
    t.join(2)
    srv.close()


def test_connect_timeout(tardy, echo_service):
    t = tardy(echo_service)
    t.add_toxic("svc", "drop_syn")
    start = time.monotonic()
    with pytest.raises(socket.timeout):
        socket.create_connection(t.address("svc"), timeout=0.5)
    assert 0.5 <= time.monotonic() - start < 0.8
    t.remove_toxic("svc", "drop_syn_downstream")
    socket.create_connection(t.address("svc"), timeout=0.5).close()


def test_receive_timeout(tardy, echo_service):
    t = tardy(echo_service)
    with socket.create_connection(t.address("svc"), timeout=1) as c:
        c.sendall(b"ping")
        assert c.recv(4) == b"ping"
        t.add_toxic("svc", "blackhole")
        c.settimeout(0.3)
        c.sendall(b"ping")
        start = time.monotonic()
        with pytest.raises(socket.timeout):
            c.recv(4)
        assert 0.3 <= time.monotonic() - start < 0.5
