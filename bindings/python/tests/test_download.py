"""An interrupted download through the Python package: the library is pointed (HF_ENDPOINT) at
a small stand-in for the Hugging Face Hub on 127.0.0.1, written with http.server, that can
cut every content response short. The caller must get a ModelError that says what happened
and what to do, the cache must not hold the partial file as if it were the model, and once
the connection is fixed the next load resumes and gives the same vectors as the local file."""

import hashlib
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from gguf_embed import Embedder, GgufEmbedError, ModelError

REPO = "test-org/tiny-qwen3-GGUF"
FILE = "tiny-qwen3-embedding-f32.gguf"
SPEC = f"hf:{REPO}/{FILE}"
PIECE = 64 * 1024  # what the broken connection delivers before it drops
ATTEMPTS = 4  # the library's attempts per download (src/hub/download.rs)


class MockHub:
    """The two requests the library makes: HEAD on the resolve URL (commit, sha256 etag,
    size) and GET on it with an optional Range. With `drop_every` set, every GET sends that
    many bytes of its body and then closes the connection."""

    def __init__(self, content: bytes):
        self.content = content
        self.sha256 = hashlib.sha256(content).hexdigest()
        self.commit = "ab" * 20
        self.drop_every = None
        self.ranges = []  # where each GET started
        self.body_bytes = 0
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _known(self):
                if self.path != f"/{REPO}/resolve/main/{FILE}":
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    return False
                return True

            def do_HEAD(self):
                if not self._known():
                    return
                self.send_response(200)
                self.send_header("X-Repo-Commit", hub.commit)
                self.send_header("X-Linked-Etag", f'"{hub.sha256}"')
                self.send_header("X-Linked-Size", str(len(hub.content)))
                self.send_header("ETag", '"0123456789abcdef0123456789abcdef01234567"')
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()

            def do_GET(self):
                if not self._known():
                    return
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
                start = int(match.group(1)) if match else 0
                hub.ranges.append(start)
                body = hub.content[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(hub.content) - 1}/{len(hub.content)}")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                if hub.drop_every is not None:
                    body = body[: hub.drop_every]
                for i in range(0, len(body), 1 << 16):
                    self.wfile.write(body[i : i + (1 << 16)])
                    hub.body_bytes += len(body[i : i + (1 << 16)])
                self.wfile.flush()
                self.close_connection = True  # short of Content-Length when dropping

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True  # close() may run inside a handler
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub(model_path):
    hub = MockHub(Path(model_path).read_bytes())
    yield hub
    hub.close()


@pytest.fixture
def home(hub, tmp_path, monkeypatch):
    """A fresh Hugging Face cache, the mock Hub as the endpoint, no token, online."""
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("GGUF_EMBED_CACHE", str(tmp_path / "gguf-embed"))
    for name in ("HF_HUB_CACHE", "HF_HUB_OFFLINE", "HF_TOKEN", "GGUF_EMBED_MODEL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def files_under(folder: Path):
    return sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def test_an_interrupted_download_is_a_model_error_and_the_next_load_resumes(hub, home, embedder, texts):
    repo = home / "hub" / "models--test-org--tiny-qwen3-GGUF"
    size = len(hub.content)
    hub.drop_every = PIECE

    with pytest.raises(ModelError) as info:
        Embedder(SPEC, device="cpu", threads=2)
    message = str(info.value)
    assert isinstance(info.value, GgufEmbedError)
    # What happened, what is kept, what to do.
    assert f"the download of {SPEC} was interrupted and did not resume after {ATTEMPTS} attempts" in message, message
    assert f"was interrupted and did not resume after {ATTEMPTS} attempts" in message, message
    assert f"the {ATTEMPTS * PIECE} of {size} bytes received are kept" in message, message
    assert "check the network connection and try again" in message, message
    assert hub.ranges == [i * PIECE for i in range(ATTEMPTS)], hub.ranges

    # Nothing in the cache passes for the model: no blob under its hash, no snapshot link;
    # the bytes received wait in the partial file.
    assert not (repo / "blobs" / hub.sha256).exists()
    assert not (repo / "snapshots").exists() or files_under(repo / "snapshots") == []
    partial = repo / "blobs" / f"{hub.sha256}.incomplete"
    assert partial.stat().st_size == ATTEMPTS * PIECE
    with pytest.raises(ModelError, match="is not in the model cache"):
        Embedder(SPEC, device="cpu", threads=2, offline=True)

    # The connection is fixed: the next load resumes where the last attempt stopped, sends
    # nothing twice, and the model gives the local file's vectors.
    hub.drop_every = None
    resumed = Embedder(SPEC, device="cpu", threads=2)
    assert hub.ranges[-1] == ATTEMPTS * PIECE
    assert hub.body_bytes == size
    assert not [p for p in files_under(home) if p.name.endswith(".incomplete")]
    assert (repo / "blobs" / hub.sha256).stat().st_size == size
    np.testing.assert_array_equal(resumed.encode(texts[:4]), embedder.encode(texts[:4]))


def test_a_hub_that_goes_away_mid_download_is_a_model_error(hub, home):
    repo = home / "hub" / "models--test-org--tiny-qwen3-GGUF"
    hub.drop_every = PIECE
    original = hub.server.RequestHandlerClass.do_GET

    def serve_once_then_go_away(handler):
        # The piece is sent; the listener is gone before this connection closes, so every
        # later attempt finds nothing listening.
        original(handler)
        hub.close()

    hub.server.RequestHandlerClass.do_GET = serve_once_then_go_away
    with pytest.raises(ModelError) as info:
        Embedder(SPEC, device="cpu", threads=2)
    message = str(info.value)
    assert f"was interrupted and did not resume after {ATTEMPTS} attempts" in message, message
    assert f"cannot reach {hub.endpoint}" in message, message
    assert "try again" in message, message
    assert not (repo / "blobs" / hub.sha256).exists()
    assert (repo / "blobs" / f"{hub.sha256}.incomplete").stat().st_size == PIECE
