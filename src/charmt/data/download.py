"""Fetch the Tatoeba/manythings.org French-English pairs file (``fra.txt``).

The source is an http(s) URL, a local path or a ``file://`` URL pointing at either the zip that
manythings.org publishes or an already extracted ``fra.txt``. Whatever goes wrong, the user gets a
:class:`CharmtError` that names the source and says what to do, and nothing partial is left behind:
downloads go to a temporary file beside ``out`` and ``out`` itself is only ever replaced whole.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

import requests
from tqdm import tqdm

from charmt.errors import CharmtError
from charmt.io.atomic import atomic_path
from charmt.io.digest import sha256_of
from charmt.io.paths import resolve_local

MEMBER = "fra.txt"

# manythings.org answers 403 to clients that do not look like a browser.
_HEADERS = {
    "User-Agent": (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0 Safari/537.36"
    ),
}
# Statuses worth asking again for: rate limiting and server-side trouble.
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
_CHUNK = 1 << 16
_OFFLINE_HINT = (
    "Check the network connection, or download the file elsewhere, copy it into the project and "
    "set data.url in params.yaml to the local path of the zip (e.g. data/fra-eng.zip)."
)


def fetch_pairs_file(
    source: str,
    out: Path,
    sha256: str | None = None,
    *,
    timeout: float = 30.0,
    retries: int = 3,
    progress: bool = True,
    backoff: float = 0.5,
) -> Path:
    """Fetch ``source`` and write the ``fra.txt`` it holds to ``out``; return ``out``.

    ``source`` is an http(s) URL, a ``file://`` URL or a local path (relative paths are taken from
    the project root). It may point at a zip holding a member named ``fra.txt`` (in any folder) or
    at a plain UTF-8 ``fra.txt``; which one is decided by content, not by extension. If ``sha256``
    is given, the fetched file (the zip or text as is) must have that digest.

    HTTP downloads time out after ``timeout`` seconds per request and transient failures
    (connection errors, timeouts, truncated bodies, HTTP 408/429/5xx) are retried ``retries`` times,
    waiting ``backoff * attempt`` seconds in between.

    Raises :class:`CharmtError` for anything the user can fix. On any failure ``out`` is left as it
    was and no temporary files remain beside it.
    """
    out = Path(out)
    if source.lower().startswith(("http://", "https://")):
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".download", dir=out.parent)
        os.close(fd)
        fetched = Path(tmp_name)
        try:
            _download(source, fetched, timeout, retries, backoff, progress)
            _install(source, fetched, out, sha256)
        finally:
            fetched.unlink(missing_ok=True)
    else:
        local = _local_path(source)
        _install(str(local), local, out, sha256)
    return out


def _local_path(source: str) -> Path:
    """The existing local file that a path or ``file://`` URL names."""
    if source.startswith("file:"):
        parsed = urlparse(source)
        if parsed.netloc not in ("", "localhost"):
            raise CharmtError(
                f"{source}: file:// URLs on another host are not supported; "
                "copy the file here and give its local path in data.url."
            )
        path = resolve_local(url2pathname(unquote(parsed.path)))
    elif "://" in source:
        raise CharmtError(
            f"{source}: unsupported URL scheme; data.url in params.yaml must be an "
            "http(s) URL, a file:// URL or a local path."
        )
    else:
        path = resolve_local(source)
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise CharmtError(
            f"Data file {path} (from {source!r}) {what}; fix data.url in "
            "params.yaml or download the pairs zip to that path."
        )
    return path


def _download(
    url: str, dest: Path, timeout: float, retries: int, backoff: float, progress: bool
) -> None:
    """Stream ``url`` into ``dest``, retrying transient failures."""
    attempts = max(retries, 0) + 1
    for attempt in range(1, attempts + 1):
        try:
            _download_once(url, dest, timeout, progress)
            return
        except _Transient as exc:
            if attempt == attempts:
                raise CharmtError(
                    f"Cannot download {url}: {exc} (gave up after {attempts} attempt(s)). "
                    + _OFFLINE_HINT
                ) from exc
        time.sleep(backoff * attempt)


class _Transient(Exception):
    """A failure that may go away if we ask again."""


def _download_once(url: str, dest: Path, timeout: float, progress: bool) -> None:
    try:
        with requests.get(url, headers=_HEADERS, stream=True, timeout=timeout) as response:
            if response.status_code in _TRANSIENT_STATUS:
                raise _Transient(f"HTTP {response.status_code} {response.reason}")
            if response.status_code >= 400:
                raise CharmtError(
                    f"Cannot download {url}: HTTP {response.status_code} {response.reason}. "
                    "Check data.url in params.yaml, or download the file in a browser and set "
                    "data.url to the local path of the zip."
                )
            length = response.headers.get("Content-Length", "")
            total = int(length) if length.isdigit() else None
            # disable=None lets tqdm hide the bar when stderr is not a terminal (CI, DVC logs).
            with (
                open(dest, "wb") as fh,
                tqdm(
                    total=total,
                    unit="B",
                    unit_scale=True,
                    desc=Path(urlparse(url).path).name,
                    disable=None if progress else True,
                    file=sys.stderr,
                ) as bar,
            ):
                for chunk in response.iter_content(_CHUNK):
                    fh.write(chunk)
                    bar.update(len(chunk))
    except requests.Timeout as exc:
        raise _Transient(f"no answer within {timeout} s") from exc
    except requests.ConnectionError as exc:
        # Covers DNS failures and refused connections; the root cause is the useful part.
        raise _Transient(f"cannot connect ({_root_cause(exc)})") from exc
    except (
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.ContentDecodingError,
    ) as exc:
        raise _Transient(f"the download was cut off ({_root_cause(exc)})") from exc
    except requests.RequestException as exc:
        raise CharmtError(f"Cannot download {url}: {exc}. Check data.url in params.yaml.") from exc


def _root_cause(exc: BaseException) -> str:
    """The innermost exception's message: requests wraps the telling one several levels deep."""
    for _ in range(10):  # bounded: exception chains can in principle loop
        inner = exc.__cause__ or exc.__context__
        if inner is None:
            break
        exc = inner
    return str(exc) or type(exc).__name__


def _install(source: str, fetched: Path, out: Path, sha256: str | None) -> None:
    """Check ``fetched``, take ``fra.txt`` out of it and write that to ``out`` atomically."""
    if sha256 is not None:
        _check_sha256(source, fetched, sha256)
    if zipfile.is_zipfile(fetched):
        data = _read_member(source, fetched)
        _check_text(data, f"{MEMBER} in {source}", "is not UTF-8 text")
    else:
        data = fetched.read_bytes()
        if data.startswith(b"PK\x03\x04"):
            # A zip's start without a readable end: the usual result of an interrupted download.
            raise CharmtError(
                f"{source} looks like a truncated or corrupt zip (no central "
                "directory); download it again."
            )
        _check_text(data, source, "is not a zip and not a UTF-8 text file")
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)


def _check_sha256(source: str, path: Path, expected: str) -> None:
    expected = expected.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise CharmtError(
            f"data.sha256 in params.yaml ({expected!r}) is not a SHA-256 hex digest "
            "(64 hex characters); fix it or leave it empty."
        )
    actual = sha256_of(path)
    if actual != expected:
        raise CharmtError(
            f"Checksum mismatch for {source}: expected sha256 {expected}, got {actual}. If the "
            "file changed upstream on purpose, update data.sha256 in params.yaml; otherwise fix "
            "or re-download the file."
        )


def _read_member(source: str, path: Path) -> bytes:
    """The bytes of the member whose basename is ``fra.txt``."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            matches = [n for n in names if PurePosixPath(n).name == MEMBER]
            if not matches:
                shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
                raise CharmtError(
                    f"{source} is a zip without {MEMBER}; it holds "
                    f"{len(names)} entries: {shown or '(none)'}. Point data.url "
                    "at the French-English pairs zip (fra-eng.zip)."
                )
            return zf.read(matches[0])
    # The central directory can be intact while the member data is damaged; these are the ways
    # zipfile reports that (bad CRC, broken deflate stream, data cut short, odd compression).
    # RuntimeError is how zipfile refuses encrypted members.
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        raise CharmtError(f"{source} is a corrupt zip ({exc}); download it again.") from exc


def _check_text(data: bytes, where: str, problem: str) -> None:
    """Raise a CharmtError saying ``where`` ``problem`` unless ``data`` is non-empty UTF-8 text."""
    if not data.strip():
        raise CharmtError(f"{where} is empty; download the pairs file again.")
    # NUL bytes are valid UTF-8 but never occur in text; they give away binary files.
    bad = data.find(b"\x00")
    if bad < 0:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = exc.start
    if bad >= 0:
        raise CharmtError(
            f"{where} {problem} (bad byte at offset {bad}); point data.url in params.yaml "
            "at the fra-eng.zip pairs zip or at fra.txt."
        )
