"""Tests for r2ska.data.fetch: mirror, cache and downloads from a loopback HTTP server."""

from __future__ import annotations

import dataclasses
import hashlib
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import platformdirs
import pytest

from r2ska.data import (
    REGISTRY,
    ChecksumMismatchError,
    DataUnavailableError,
    MirrorChecksumWarning,
    MirrorNotFoundError,
    RemoteFile,
    UnknownFileError,
    cache_dir,
    fetch_file,
    mirror_dir,
)

TOY_BYTES = b"r2ska toy data file\n" * 500
TOY_SHA256 = hashlib.sha256(TOY_BYTES).hexdigest()
TOY_PATH = "toy/raw/blob.bin"


class LoopbackServer:
    """HTTP server on 127.0.0.1 that serves in-memory files and counts GET requests."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (name fixed by http.server)
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll interval keeps shutdown(), and so each test's teardown, fast.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def url(self, name: str) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/{name}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Give each test its own cache, no mirror and no proxy, so traffic stays on loopback."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv("R2SKA_DATA_MIRROR", raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("R2SKA_CACHE", str(cache))
    return cache


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    loopback = LoopbackServer()
    loopback.files["/blob.bin"] = TOY_BYTES
    yield loopback
    loopback.close()


@pytest.fixture
def toy(server: LoopbackServer) -> RemoteFile:
    return RemoteFile(TOY_PATH, server.url("blob.bin"), TOY_SHA256, "toy", "CC0", "none")


def closed_port_url() -> str:
    """URL of a loopback port that nothing listens on, so connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/blob.bin"


def make_mirror(root: Path, content: bytes) -> Path:
    mirror = root / "mirror"
    target = mirror / TOY_PATH
    target.parent.mkdir(parents=True)
    target.write_bytes(content)
    return mirror


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Map every path under folder to (mode, size, mtime_ns)."""
    result = {}
    for path in sorted(folder.rglob("*")):
        info = path.stat()
        result[str(path.relative_to(folder))] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return result


def set_read_only(folder: Path, read_only: bool) -> None:
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir():
            path.chmod(0o555 if read_only else 0o755)
        else:
            path.chmod(0o444 if read_only else 0o644)


def test_mirror_copy_used_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toy: RemoteFile,
    server: LoopbackServer, isolated_env: Path,
) -> None:
    mirror = make_mirror(tmp_path, TOY_BYTES)
    monkeypatch.setenv("R2SKA_DATA_MIRROR", str(mirror))
    assert fetch_file(toy) == mirror / TOY_PATH
    assert server.requests == []
    assert not isolated_env.exists()


def test_real_mirror_registered_path(
    mirror_dir: Path, monkeypatch: pytest.MonkeyPatch, isolated_env: Path
) -> None:
    monkeypatch.setenv("R2SKA_DATA_MIRROR", str(mirror_dir))
    path = "MNIST/raw/t10k-labels-idx1-ubyte.gz"
    assert fetch_file(path) == mirror_dir / path
    assert not isolated_env.exists()


def test_read_only_mirror_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toy: RemoteFile, server: LoopbackServer
) -> None:
    mirror = make_mirror(tmp_path, TOY_BYTES)
    set_read_only(mirror, True)
    before = snapshot(mirror)
    monkeypatch.setenv("R2SKA_DATA_MIRROR", str(mirror))
    try:
        assert fetch_file(toy) == mirror / TOY_PATH
        after = snapshot(mirror)
    finally:
        set_read_only(mirror, False)
    assert after == before
    assert server.requests == []


def test_corrupt_read_only_mirror_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toy: RemoteFile,
    server: LoopbackServer, isolated_env: Path,
) -> None:
    mirror = make_mirror(tmp_path, TOY_BYTES[:100])
    set_read_only(mirror, True)
    before = snapshot(mirror)
    monkeypatch.setenv("R2SKA_DATA_MIRROR", str(mirror))
    try:
        with pytest.warns(MirrorChecksumWarning):
            local = fetch_file(toy)
        after = snapshot(mirror)
    finally:
        set_read_only(mirror, False)
    assert after == before
    assert local == isolated_env / TOY_PATH


def test_truncated_mirror_copy_warns_and_downloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toy: RemoteFile,
    server: LoopbackServer, isolated_env: Path,
) -> None:
    truncated = TOY_BYTES[: len(TOY_BYTES) // 2]
    mirror = make_mirror(tmp_path, truncated)
    monkeypatch.setenv("R2SKA_DATA_MIRROR", str(mirror))

    with pytest.warns(MirrorChecksumWarning) as record:
        local = fetch_file(toy)

    message = str(record[0].message)
    assert str(mirror / TOY_PATH) in message
    assert TOY_SHA256 in message
    assert hashlib.sha256(truncated).hexdigest() in message
    assert local == isolated_env / TOY_PATH
    assert local.read_bytes() == TOY_BYTES
    assert server.requests == ["/blob.bin"]
    assert (mirror / TOY_PATH).read_bytes() == truncated


def test_mirror_without_file_downloads_silently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toy: RemoteFile,
    server: LoopbackServer, isolated_env: Path,
) -> None:
    empty_mirror = tmp_path / "empty-mirror"
    empty_mirror.mkdir()
    monkeypatch.setenv("R2SKA_DATA_MIRROR", str(empty_mirror))
    local = fetch_file(toy)
    assert local == isolated_env / TOY_PATH
    assert local.read_bytes() == TOY_BYTES
    assert list(empty_mirror.iterdir()) == []


def test_cached_file_reused_without_request(
    toy: RemoteFile, server: LoopbackServer, isolated_env: Path
) -> None:
    first = fetch_file(toy)
    second = fetch_file(toy)
    assert first == second == isolated_env / TOY_PATH
    assert server.requests == ["/blob.bin"]


def test_corrupt_cached_file_refetched(
    toy: RemoteFile, server: LoopbackServer, isolated_env: Path
) -> None:
    cached = isolated_env / TOY_PATH
    cached.parent.mkdir(parents=True)
    cached.write_bytes(TOY_BYTES[:10])

    local = fetch_file(toy)

    assert local == cached
    assert local.read_bytes() == TOY_BYTES
    assert server.requests == ["/blob.bin"]


def test_unreachable_url_raises_data_unavailable() -> None:
    remote = RemoteFile(TOY_PATH, closed_port_url(), TOY_SHA256, "toy-set", "", "")
    with pytest.raises(DataUnavailableError) as info:
        fetch_file(remote)
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    assert "'toy-set'" in message
    assert TOY_PATH in message
    assert "connect to the internet" in message
    assert "R2SKA_DATA_MIRROR" in message


def test_registered_path_unreachable_names_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    path = "MNIST/raw/t10k-labels-idx1-ubyte.gz"
    monkeypatch.setitem(REGISTRY, path, dataclasses.replace(REGISTRY[path], url=closed_port_url()))
    with pytest.raises(DataUnavailableError, match="'mnist'") as info:
        fetch_file(path)
    assert path in str(info.value)


def test_http_error_raises_data_unavailable(server: LoopbackServer) -> None:
    remote = RemoteFile(TOY_PATH, server.url("missing.bin"), TOY_SHA256, "toy", "", "")
    with pytest.raises(DataUnavailableError, match="404"):
        fetch_file(remote)
    assert server.requests == ["/missing.bin"]


def test_wrong_hash_raises_checksum_mismatch(
    server: LoopbackServer, isolated_env: Path
) -> None:
    wrong = b"not the registered bytes"
    server.files["/wrong.bin"] = wrong
    url = server.url("wrong.bin")
    remote = RemoteFile(TOY_PATH, url, TOY_SHA256, "toy", "", "")

    with pytest.raises(ChecksumMismatchError) as info:
        fetch_file(remote)

    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert url in message
    assert TOY_SHA256 in message
    assert hashlib.sha256(wrong).hexdigest() in message
    assert not (isolated_env / TOY_PATH).exists()


def test_unknown_path_raises_unknown_file() -> None:
    with pytest.raises(UnknownFileError, match="MNIST/raw/train-labels-idx1-ubyte.gz"):
        fetch_file("MNIST/raw/train-labels-idx1-ubyte")


def test_mirror_dir_unset_or_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    assert mirror_dir() is None
    monkeypatch.setenv("R2SKA_DATA_MIRROR", "")
    assert mirror_dir() is None


def test_mirror_dir_missing_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    monkeypatch.setenv("R2SKA_DATA_MIRROR", str(missing))
    with pytest.raises(MirrorNotFoundError, match="no-such-folder"):
        mirror_dir()


def test_mirror_dir_file_instead_of_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, toy: RemoteFile, server: LoopbackServer
) -> None:
    not_a_folder = tmp_path / "mirror.txt"
    not_a_folder.write_text("x")
    monkeypatch.setenv("R2SKA_DATA_MIRROR", str(not_a_folder))
    with pytest.raises(MirrorNotFoundError, match="not an existing folder"):
        fetch_file(toy)
    assert server.requests == []


def test_cache_dir_from_env(isolated_env: Path) -> None:
    assert cache_dir() == isolated_env


def test_cache_dir_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("R2SKA_CACHE")
    assert cache_dir() == Path(platformdirs.user_cache_dir("r2ska"))

