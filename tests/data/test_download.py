"""Tests for charmt.data.download: a real HTTP server on 127.0.0.1, local files, no network."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import threading
import time
import zipfile
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from charmt.data.download import fetch_pairs_file
from charmt.errors import CharmtError

TWO_COLUMNS = "Go.\tVa !\nHi.\tSalut !\n"
THREE_COLUMNS = "Go.\tVa !\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272\n"
FAST = {"retries": 2, "backoff": 0.0, "timeout": 5.0, "progress": False}


def make_zip(members: dict[str, str | bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- test HTTP server --------------------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    length: int | None = None  # Content-Length to announce; larger than body = truncated body
    delay: float = 0.0


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        server: _Server = self.server  # type: ignore[assignment]
        server.seen.append((self.path, self.headers.get("User-Agent", "")))
        plan = server.routes.get(self.path)
        # Each route plays its replies in order and then keeps repeating the last one.
        reply = (plan.pop(0) if len(plan) > 1 else plan[0]) if plan else Reply(404, b"nope")
        time.sleep(reply.delay)
        self.send_response(reply.status)
        self.send_header("Content-Length", str(reply.length or len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, list[Reply]] = {}
        self.seen: list[tuple[str, str]] = []

    def route(self, path: str, *replies: Reply | bytes) -> str:
        self.routes[path] = [r if isinstance(r, Reply) else Reply(body=r) for r in replies]
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


@pytest.fixture
def server():
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


def assert_only(directory: Path, *names: str) -> None:
    """Nothing partial: the directory holds exactly ``names`` (no temp files)."""
    assert sorted(os.listdir(directory)) == sorted(names)


def fails(source: str, out: Path, sha256: str | None = None, **kwargs) -> str:
    with pytest.raises(CharmtError) as info:
        fetch_pairs_file(source, out, sha256, **{**FAST, **kwargs})
    return str(info.value)


# --- success -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [TWO_COLUMNS, THREE_COLUMNS])
@pytest.mark.parametrize("member", ["fra.txt", "fra-eng/fra.txt"])
def test_zip_over_http(server, out_dir, text, member):
    url = server.route("/fra-eng.zip", make_zip({"_about.txt": "about", member: text}))
    out = out_dir / "fra.txt"
    assert fetch_pairs_file(url, out, **FAST) == out
    assert out.read_text(encoding="utf-8") == text
    assert_only(out_dir, "fra.txt")
    assert "Mozilla" in server.seen[0][1]  # browser-like User-Agent


@pytest.mark.parametrize("text", [TWO_COLUMNS, THREE_COLUMNS])
def test_text_over_http(server, out_dir, text):
    # A .zip name on plain text: content decides, not the extension.
    url = server.route("/fra-eng.zip", text.encode())
    out = out_dir / "fra.txt"
    fetch_pairs_file(url, out, **FAST)
    assert out.read_text(encoding="utf-8") == text
    assert_only(out_dir, "fra.txt")


@pytest.mark.parametrize("kind", ["zip", "text"])
@pytest.mark.parametrize("form", ["absolute", "relative", "file-url"])
def test_local_sources(tmp_path, out_dir, monkeypatch, kind, form):
    src = tmp_path / "data" / ("fra eng.zip" if kind == "zip" else "fra.txt")
    src.parent.mkdir()
    src.write_bytes(make_zip({"fra.txt": TWO_COLUMNS}) if kind == "zip" else TWO_COLUMNS.encode())
    monkeypatch.chdir(tmp_path)  # the project root for relative paths
    source = {"absolute": str(src), "relative": f"data/{src.name}", "file-url": src.as_uri()}[form]
    out = out_dir / "fra.txt"
    fetch_pairs_file(source, out, sha(src.read_bytes()), **FAST)
    assert out.read_text(encoding="utf-8") == TWO_COLUMNS
    assert_only(out_dir, "fra.txt")


def test_out_dir_is_created(server, tmp_path):
    url = server.route("/fra.txt", TWO_COLUMNS.encode())
    out = tmp_path / "new" / "dir" / "fra.txt"
    fetch_pairs_file(url, out, **FAST)
    assert out.read_text(encoding="utf-8") == TWO_COLUMNS


# --- HTTP failures and retries -----------------------------------------------------------------


def test_404(server, out_dir):
    url = server.url("/missing.zip")
    msg = fails(url, out_dir / "fra.txt")
    assert url in msg and "404" in msg and "data.url" in msg
    assert len(server.seen) == 1  # a 404 is not retried
    assert_only(out_dir)


def test_transient_500_is_retried(server, out_dir):
    url = server.route("/fra-eng.zip", Reply(500), make_zip({"fra.txt": TWO_COLUMNS}))
    out = out_dir / "fra.txt"
    fetch_pairs_file(url, out, **FAST)
    assert out.read_text(encoding="utf-8") == TWO_COLUMNS
    assert len(server.seen) == 2
    assert_only(out_dir, "fra.txt")


def test_persistent_500_fails_after_retries(server, out_dir):
    url = server.route("/fra-eng.zip", Reply(503, b"busy"))
    msg = fails(url, out_dir / "fra.txt", retries=2)
    assert url in msg and "503" in msg and "3 attempt" in msg
    assert len(server.seen) == 3
    assert_only(out_dir)


def test_truncated_body_is_retried(server, out_dir):
    data = make_zip({"fra.txt": TWO_COLUMNS * 50})
    url = server.route("/fra-eng.zip", Reply(body=data[:100], length=len(data)), data)
    out = out_dir / "fra.txt"
    fetch_pairs_file(url, out, **FAST)
    assert out.read_text(encoding="utf-8") == TWO_COLUMNS * 50
    assert_only(out_dir, "fra.txt")


def test_always_truncated_body_fails(server, out_dir):
    data = make_zip({"fra.txt": TWO_COLUMNS * 50})
    url = server.route("/fra-eng.zip", Reply(body=data[:100], length=len(data)))
    msg = fails(url, out_dir / "fra.txt", retries=1)
    assert url in msg and "cut off" in msg
    assert_only(out_dir)


def test_timeout(server, out_dir):
    url = server.route("/slow.zip", Reply(body=b"x", delay=1.0))
    msg = fails(url, out_dir / "fra.txt", retries=0, timeout=0.2)
    assert url in msg and "0.2" in msg
    assert_only(out_dir)


def test_connection_refused(out_dir):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/fra-eng.zip"
    msg = fails(url, out_dir / "fra.txt", retries=1)
    assert url in msg and "refused" in msg.lower()
    assert "data.url" in msg and "local path" in msg
    assert_only(out_dir)


# --- checksums ---------------------------------------------------------------------------------


def test_checksum_match(server, out_dir):
    data = make_zip({"fra.txt": TWO_COLUMNS})
    url = server.route("/fra-eng.zip", data)
    fetch_pairs_file(url, out_dir / "fra.txt", sha(data).upper(), **FAST)
    assert_only(out_dir, "fra.txt")


def test_checksum_mismatch(server, out_dir):
    data = make_zip({"fra.txt": TWO_COLUMNS})
    url = server.route("/fra-eng.zip", data)
    wrong = "0" * 64
    msg = fails(url, out_dir / "fra.txt", wrong)
    assert url in msg and wrong in msg and sha(data) in msg and "data.sha256" in msg
    assert_only(out_dir)


def test_checksum_not_hex(tmp_path, out_dir):
    src = tmp_path / "fra.txt"
    src.write_text(TWO_COLUMNS, encoding="utf-8")
    msg = fails(str(src), out_dir / "fra.txt", "abc")
    assert "data.sha256" in msg and "'abc'" in msg
    assert_only(out_dir)


# --- bad files ---------------------------------------------------------------------------------


def test_local_file_missing(tmp_path, out_dir):
    missing = tmp_path / "nowhere" / "fra-eng.zip"
    msg = fails(str(missing), out_dir / "fra.txt")
    assert str(missing) in msg and "does not exist" in msg and "data.url" in msg
    assert_only(out_dir)


def test_zip_without_member(server, out_dir):
    url = server.route("/deu-eng.zip", make_zip({"_about.txt": "a", "deu.txt": "Go.\tGeh.\n"}))
    msg = fails(url, out_dir / "fra.txt")
    assert url in msg and "without fra.txt" in msg and "deu.txt" in msg and "_about.txt" in msg
    assert_only(out_dir)


def test_truncated_zip(tmp_path, out_dir):
    data = make_zip({"fra.txt": TWO_COLUMNS * 20})
    src = tmp_path / "fra-eng.zip"
    src.write_bytes(data[: len(data) // 2])
    msg = fails(str(src), out_dir / "fra.txt")
    assert str(src) in msg and "truncated or corrupt zip" in msg
    assert_only(out_dir)


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_corrupt_member_data(tmp_path, out_dir, compression):
    data = bytearray(make_zip({"fra.txt": TWO_COLUMNS * 20}, compression))
    start = 30 + len("fra.txt")  # member data follows the local header; the directory stays intact
    for i in range(start + 5, start + 25):
        data[i] ^= 0xFF
    src = tmp_path / "fra-eng.zip"
    src.write_bytes(bytes(data))
    assert zipfile.is_zipfile(src)
    msg = fails(str(src), out_dir / "fra.txt")
    assert str(src) in msg and "corrupt zip" in msg and "download it again" in msg
    assert_only(out_dir)


def test_binary_non_zip(server, out_dir):
    url = server.route("/fra-eng.zip", bytes(range(256)) * 4)
    msg = fails(url, out_dir / "fra.txt")
    assert url in msg and "not a zip and not a UTF-8 text file" in msg
    assert_only(out_dir)


def test_non_utf8_text(tmp_path, out_dir):
    src = tmp_path / "fra.txt"
    src.write_bytes("Go.\tVa !\nHello.\tAllô.\n".encode("latin-1"))
    msg = fails(str(src), out_dir / "fra.txt")
    assert str(src) in msg and "not a zip and not a UTF-8 text file" in msg
    assert_only(out_dir)


def test_empty_file(tmp_path, out_dir):
    src = tmp_path / "fra.txt"
    src.write_bytes(b"")
    msg = fails(str(src), out_dir / "fra.txt")
    assert str(src) in msg and "empty" in msg
    assert_only(out_dir)


def test_unsupported_scheme(out_dir):
    msg = fails("ftp://example.org/fra-eng.zip", out_dir / "fra.txt")
    assert "ftp://example.org/fra-eng.zip" in msg and "data.url" in msg
    assert_only(out_dir)


# --- an existing output survives failures ------------------------------------------------------


@pytest.mark.parametrize("reply", [Reply(404), Reply(500), Reply(body=b"\x00\xff" * 10)])
def test_existing_out_unchanged_after_failure(server, out_dir, reply):
    out = out_dir / "fra.txt"
    out.write_text("old\tancien\n", encoding="utf-8")
    url = server.route("/fra-eng.zip", reply)
    fails(url, out)
    assert out.read_text(encoding="utf-8") == "old\tancien\n"
    assert_only(out_dir, "fra.txt")
