"""Image URLs: what is fetched, what is refused, and proof that a refused URL opens no connection.

Only loopback is ever contacted. A real HTTP server on 127.0.0.1 serves a real photo; refusals
of loopback spellings are checked end to end against a listening socket whose backlog must stay
empty; private, link-local and metadata addresses are checked at the vetting functions alone,
which resolve numeric hosts without any network traffic.
"""

from __future__ import annotations

import contextlib
import http.server
import ipaddress
import shlex
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from service.errors import PayloadTooLarge, UnsupportedImage
from service.images.url_fetch import (
    ImageUrlRefused,
    ImageUrlsDisabled,
    UpstreamFailed,
    UpstreamTimeout,
    UrlPolicy,
    check_url,
    fetch_image,
    normalize_allowed_host,
    refusal_reason,
    vet_url,
)

from .support import SHARED_DATA

pytestmark = pytest.mark.shared_data  # real photos or digits from ../shared/data

CAT_PHOTO = SHARED_DATA / "cats_vs_dogs" / "cats" / "cat.4002.jpg"
CAP = 64 * 1024


class _ImageHost(http.server.BaseHTTPRequestHandler):
    """Routes: /cat.jpg, /redirect?to=URL, /loop, /page.html, /big, /big-chunked, /slow, /error."""

    photo = b""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path, _, query = self.path.partition("?")
        if path == "/cat.jpg":
            self._send(200, self.photo, "image/jpeg")
        elif path == "/octet":
            self._send(200, self.photo, "application/octet-stream")
        elif path == "/redirect":
            self.send_response(302)
            self.send_header("Location", query.removeprefix("to="))
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/loop":
            self.send_response(301)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/page.html":
            self._send(200, b"<html>not an image</html>", "text/html; charset=utf-8")
        elif path == "/big":
            self._send(200, b"\xff" * (CAP + 1), "image/jpeg")
        elif path == "/big-chunked":
            # No Content-Length: the cap must hold while streaming.
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Connection", "close")
            self.end_headers()
            with contextlib.suppress(OSError):
                for _ in range(CAP // 1024 + 8):
                    self.wfile.write(b"\xff" * 1024)
        elif path == "/slow":
            time.sleep(3)
            self._send(200, self.photo, "image/jpeg")
        else:
            self._send(500, b"boom", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def image_host(context: ssl.SSLContext | None = None) -> Iterator[int]:
    """A threaded HTTP(S) server on 127.0.0.1 serving a real photo; yields its port."""
    _ImageHost.photo = CAT_PHOTO.read_bytes()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ImageHost)
    server.daemon_threads = True
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def untouched_listener() -> Iterator[tuple[int, callable]]:
    """A listening socket on 127.0.0.1 that nothing should connect to.

    Yields its port and a function returning how many connections reached it. The kernel
    completes TCP handshakes into the backlog by itself, so a non-blocking ``accept`` sees any
    connection that was opened, even though nobody serves it.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.setblocking(False)

    def connections() -> int:
        count = 0
        while True:
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                return count
            conn.close()
            count += 1

    try:
        yield listener.getsockname()[1], connections
    finally:
        listener.close()


def fetch(url: str, policy: UrlPolicy) -> bytes:
    return anyio.run(fetch_image, url, policy)


ALLOW_LOOPBACK = UrlPolicy(enabled=True, allowed_hosts=frozenset({"127.0.0.1"}), max_bytes=CAP)
# Enabled with no allowlist: only global addresses are fetched.
PUBLIC_ONLY = UrlPolicy(enabled=True, max_bytes=CAP)


# --- fetching from an allowlisted loopback host -------------------------------------------------


def test_fetches_the_photo_from_an_allowlisted_host() -> None:
    with image_host() as port:
        assert fetch(f"http://127.0.0.1:{port}/cat.jpg", ALLOW_LOOPBACK) == CAT_PHOTO.read_bytes()
        assert fetch(f"http://127.0.0.1:{port}/octet", ALLOW_LOOPBACK) == CAT_PHOTO.read_bytes()


def test_follows_a_redirect_to_an_allowed_url() -> None:
    with image_host() as port:
        url = f"http://127.0.0.1:{port}/redirect?to=/cat.jpg"
        assert fetch(url, ALLOW_LOOPBACK) == CAT_PHOTO.read_bytes()


def test_allowlisted_ip_matches_in_any_spelling() -> None:
    # 0x7f000001 is 127.0.0.1: the allowlist compares addresses, not strings.
    with image_host() as port:
        assert fetch(f"http://0x7f000001:{port}/cat.jpg", ALLOW_LOOPBACK) == CAT_PHOTO.read_bytes()


@pytest.mark.parametrize(
    ("path", "error", "words"),
    [
        ("/page.html", UnsupportedImage, "text/html, not an image"),
        ("/big", PayloadTooLarge, f"limit is {CAP}"),
        ("/big-chunked", PayloadTooLarge, f"limit of {CAP} bytes"),
        ("/error", UpstreamFailed, "HTTP 500"),
        ("/loop", UpstreamFailed, "redirected more than 3 times"),
    ],
)
def test_upstream_answers_that_are_not_an_image_within_the_cap(path, error, words) -> None:
    with image_host() as port, pytest.raises(error, match=words) as caught:
        fetch(f"http://127.0.0.1:{port}{path}", ALLOW_LOOPBACK)
    statuses = {UnsupportedImage: 415, PayloadTooLarge: 413, UpstreamFailed: 502}
    assert caught.value.status_code == statuses[error]


def test_total_timeout_is_504() -> None:
    policy = UrlPolicy(enabled=True, allowed_hosts=frozenset({"127.0.0.1"}), total_timeout=0.5)
    with image_host() as port:
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout, match="0.5 s") as caught:
            fetch(f"http://127.0.0.1:{port}/slow", policy)
        assert time.monotonic() - started < 2.5
    assert caught.value.status_code == 504


def test_closed_port_is_502() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(UpstreamFailed, match="could not be fetched: ConnectError") as caught:
        fetch(f"http://127.0.0.1:{port}/cat.jpg", ALLOW_LOOPBACK)
    assert caught.value.status_code == 502


# --- refusals, proved to open no connection -----------------------------------------------------

LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "localhost",
    "LOCALHOST.",
    "2130706433",  # decimal
    "017700000001",  # octal
    "0x7f000001",  # hex
    "0x7f.0.0.1",
    "0x7f.1",  # short forms
    "127.1",
    "127.0.1",
    "[::ffff:127.0.0.1]",  # IPv4-mapped IPv6
    "[::ffff:7f00:1]",
    "[::127.0.0.1]",  # IPv4-compatible IPv6
    "[::1]",
    "0",  # 0.0.0.0 reaches loopback on Linux
    "0.0.0.0",
    "[::]",
]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
def test_loopback_in_every_spelling_is_refused_without_connecting(host: str) -> None:
    with untouched_listener() as (port, connections):
        with pytest.raises(ImageUrlRefused, match="refused") as caught:
            fetch(f"http://{host}:{port}/cat.jpg", PUBLIC_ONLY)
        assert caught.value.status_code == 400
        assert connections() == 0


@pytest.mark.parametrize(
    "location",
    [
        "http://localhost:{port}/x",
        "http://127.0.0.2:{port}/x",
        "http://[::1]:{port}/x",
        "http://2130706434.:{port}/x",  # 127.0.0.2
        "http://user:secret@127.0.0.1:{port}/x",
        "file:///etc/passwd",
        "gopher://127.0.0.1:{port}/x",
    ],
)
def test_redirects_are_vetted_again_and_never_connect(location: str) -> None:
    # 127.0.0.1 is allowlisted; the redirect targets are not (or break another rule).
    with untouched_listener() as (port, connections), image_host() as host_port:
        target = location.format(port=port)
        with pytest.raises(ImageUrlRefused) as caught:
            fetch(f"http://127.0.0.1:{host_port}/redirect?to={target}", ALLOW_LOOPBACK)
        assert caught.value.status_code == 400
        assert connections() == 0


def test_disabled_says_how_to_enable_and_does_not_connect() -> None:
    with untouched_listener() as (port, connections):
        with pytest.raises(ImageUrlsDisabled, match="EDGE_IMAGE_URLS=true") as caught:
            fetch(f"http://127.0.0.1:{port}/cat.jpg", UrlPolicy(enabled=False))
        assert caught.value.status_code == 400
        assert connections() == 0


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://127.0.0.1/cat.jpg", "http or https"),
        ("/cat.jpg", "http or https"),
        ("http://user:pw@127.0.0.1/cat.jpg", "credentials"),
        ("http://user@127.0.0.1/cat.jpg", "credentials"),
        ("http://%31%32%37.0.0.1/cat.jpg", "not a valid host name"),
        ("http://under_score.example/cat.jpg", "not a valid host name"),
        ("http:///cat.jpg", "no host"),
        ("http://127.0.0.1:0/cat.jpg", "port 0"),
        ("http://[::1/cat.jpg", "not a valid URL"),
        ("http://images.example/cat.jpg", "not in EDGE_IMAGE_URL_ALLOWED_HOSTS"),
    ],
)
def test_urls_refused_before_any_lookup(url: str, words: str) -> None:
    with pytest.raises(ImageUrlRefused, match=words):
        check_url(url, ALLOW_LOOPBACK)


# --- address vetting (no traffic: numeric hosts are never sent to a resolver) ------------------

REFUSED_ADDRESSES = {
    "169.254.169.254": "link-local",  # AWS/GCP/Azure instance metadata
    "169.254.170.2": "link-local",  # ECS task metadata
    "10.0.0.1": "private",
    "172.16.0.1": "private",
    "192.168.1.1": "private",
    "100.64.0.1": "not a global",  # shared address space (CGNAT)
    "100.100.100.200": "not a global",  # Alibaba Cloud metadata
    "127.0.0.1": "loopback",
    "0.0.0.0": "unspecified",
    "224.0.0.1": "multicast",
    "240.0.0.1": "reserved",
    "255.255.255.255": "reserved",  # limited broadcast
    "192.0.2.1": "private",  # documentation
    "198.18.0.1": "private",  # benchmarking
    "192.88.99.1": "6to4 relay",
    "::1": "loopback",
    "::": "unspecified",
    "fe80::1": "link-local",
    "fe80::1%eth0": "zone index",
    "fc00::1": "private",  # unique local
    "fd00:ec2::254": "private",  # AWS metadata over IPv6
    "fec0::1": "site-local",
    "ff02::1": "multicast",
    "2001:db8::1": "private",  # documentation
    "::ffff:169.254.169.254": "IPv4-mapped",
    "::ffff:10.0.0.1": "IPv4-mapped",
    "::169.254.169.254": "IPv4-compatible",
    "2002:a9fe:a9fe::1": "6to4",  # 6to4 wrapping 169.254.169.254
    "2002:7f00:1::": "6to4",
    "64:ff9b::a9fe:a9fe": "NAT64",
    "64:ff9b::7f00:1": "NAT64",
    "2001::1": "Teredo",
}


@pytest.mark.parametrize(("address", "words"), REFUSED_ADDRESSES.items())
def test_non_global_addresses_are_refused(address: str, words: str) -> None:
    reason = refusal_reason(ipaddress.ip_address(address))
    assert reason is not None and words in reason


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "::ffff:93.184.215.14"]
)
def test_global_unicast_addresses_pass(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) is None


METADATA_SPELLINGS = [
    "169.254.169.254",
    "2852039166",
    "0xa9fea9fe",
    "0251.0376.0251.0376",
    "0xa9.0xfe.0xa9.0xfe",
    "169.254.43518",
    "169.16689662",
    "[::ffff:a9fe:a9fe]",
    "[::ffff:169.254.169.254]",
    "[fd00:ec2::254]",
]


@pytest.mark.parametrize("host", METADATA_SPELLINGS)
def test_metadata_address_is_refused_in_every_spelling(host: str) -> None:
    # httpx itself rejects some spellings (leading-zero octal) as invalid URLs: refused either way.
    with pytest.raises(ImageUrlRefused, match="refused: .*(link-local|private)|Invalid IPv4"):
        anyio.run(vet_url, f"http://{host}/latest/meta-data/", PUBLIC_ONLY)


def test_spellings_normalize_to_one_address() -> None:
    assert {normalize_allowed_host(h) for h in METADATA_SPELLINGS[:7]} == {"169.254.169.254"}
    assert normalize_allowed_host("Images.Example.") == "images.example"


# --- https: the connection goes to the vetted address, TLS still checks the name ---------------


def _make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a leaf certificate for 'localhost', made with the openssl CLI."""

    def run(command: str) -> None:
        subprocess.run(["openssl", *shlex.split(command)], check=True, capture_output=True, cwd=directory)

    run("req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 -subj '/CN=test CA'")
    run("req -newkey rsa:2048 -nodes -keyout leaf.key -out leaf.csr -subj /CN=localhost")
    (directory / "ext.cnf").write_text("subjectAltName=DNS:localhost\n")
    run(
        "x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem"
        " -days 1 -extfile ext.cnf"
    )
    return directory / "ca.pem", directory / "leaf.pem", directory / "leaf.key"


def test_https_checks_the_url_name_while_connecting_to_the_vetted_address(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make the test certificates")
    if socket.getaddrinfo("localhost", 443, type=socket.SOCK_STREAM)[0][4][0] != "127.0.0.1":
        pytest.skip("localhost does not resolve to 127.0.0.1 first here")
    ca, leaf, key = _make_certificates(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(leaf, key)
    client_context = ssl.create_default_context(cafile=str(ca))
    policy = UrlPolicy(
        enabled=True, allowed_hosts=frozenset({"localhost", "127.0.0.1"}), ssl_context=client_context
    )
    with image_host(server_context) as port:
        # The name matches the certificate: SNI and verification used 'localhost'.
        assert fetch(f"https://localhost:{port}/cat.jpg", policy) == CAT_PHOTO.read_bytes()
        # Same server, same address, but the URL names an IP the certificate does not cover.
        with pytest.raises(UpstreamFailed, match="CERTIFICATE_VERIFY_FAILED|certificate"):
            fetch(f"https://127.0.0.1:{port}/cat.jpg", policy)
