"""A Hub-compatible test server: dataset folders served the way huggingface_hub's own client reads them.

Point the real client at it with HF_ENDPOINT=http://127.0.0.1:PORT. Two endpoints are enough for
`hf_hub_download` and `HfApi.list_repo_tree`:

- HEAD/GET /datasets/<org>/<name>/resolve/<revision>/<path>: the file, with X-Repo-Commit (the commit
  the revision resolves to), ETag (sha256 of the bytes, which the client uses as the cache blob name)
  and Content-Length; GET honours `Range: bytes=N-` (the client resumes interrupted downloads).
- GET /api/datasets/<org>/<name>/tree/<revision>/<path>?recursive=...: the JSON listing.

Errors carry the X-Error-Code header the client maps to its exception types (RepoNotFound,
RevisionNotFound, EntryNotFound). Every request is logged (method, path, status, body bytes), and
`drop` makes GETs of a file send part of it and then cut the connection. The server binds
127.0.0.1, serves from a daemon thread and stops when its context exits.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    status: int
    body_bytes: int


@dataclass
class Repo:
    """One dataset repository: branch/tag name -> folder; each gets a fixed 40-hex commit id."""

    revisions: dict[str, Path]
    commits: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, folder in self.revisions.items():
            self.commits[name] = hashlib.sha1(f"{name}:{folder}".encode()).hexdigest()

    def resolve(self, revision: str) -> tuple[str, Path] | None:
        """(commit, folder) for a branch, tag or commit id; None if unknown."""
        if revision in self.revisions:
            return self.commits[revision], self.revisions[revision]
        for name, commit in self.commits.items():
            if revision == commit:
                return commit, self.revisions[name]
        return None


class HubServer:
    """Serve `repos` ({"org/name": Repo}) on 127.0.0.1; use as a context manager."""

    def __init__(self, repos: dict[str, Repo]):
        self.repos = repos
        self.requests: list[Request] = []
        self.drop: dict[str, int] = {}  # path in repo -> bytes sent before the connection is cut
        self._lock = threading.Lock()
        self._etags: dict[Path, str] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="hub-server", daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def log(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()

    def etag(self, path: Path) -> str:
        if path not in self._etags:
            self._etags[path] = hashlib.sha256(path.read_bytes()).hexdigest()
        return self._etags[path]


def _handler(hub: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # noqa: A002  (quiet: the Request log is what tests read)
            pass

        def do_HEAD(self):  # noqa: N802
            self._route(head=True)

        def do_GET(self):  # noqa: N802
            self._route(head=False)

        # -- routing ----------------------------------------------------------------------------------

        def _route(self, head: bool) -> None:
            url = urlsplit(self.path)
            parts = [unquote(p) for p in url.path.split("/")]
            if len(parts) >= 6 and parts[1] == "datasets" and parts[4] == "resolve":
                self._resolve(f"{parts[2]}/{parts[3]}", parts[5], "/".join(parts[6:]), head)
            elif len(parts) >= 7 and parts[1:3] == ["api", "datasets"] and parts[5] == "tree":
                query = parse_qs(url.query)
                recursive = query.get("recursive", ["false"])[0].lower() == "true"
                self._tree(f"{parts[3]}/{parts[4]}", parts[6], "/".join(parts[7:]), recursive)
            else:
                self._error(404, None, f"no route for {url.path}", head)

        def _repo(self, repo_id: str, revision: str, head: bool) -> tuple[str, Path] | None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound", f"Repository {repo_id} not found", head)
                return None
            resolved = repo.resolve(revision)
            if resolved is None:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head)
            return resolved

        # -- endpoints --------------------------------------------------------------------------------

        def _resolve(self, repo_id: str, revision: str, relpath: str, head: bool) -> None:
            resolved = self._repo(repo_id, revision, head)
            if resolved is None:
                return
            commit, folder = resolved
            path = folder / relpath
            if not relpath or ".." in Path(relpath).parts or not path.is_file():
                self._error(404, "EntryNotFound", f"{relpath} does not exist on {revision}", head)
                return
            size = path.stat().st_size
            start = self._range_start()
            status = 206 if start else 200
            self.send_response(status)
            self.send_header("X-Repo-Commit", commit)
            self.send_header("ETag", f'"{hub.etag(path)}"')
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size - start))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            self.end_headers()
            if head:
                hub.log(Request("HEAD", self.path, status, 0))
                return
            data = path.read_bytes()[start:]
            cut = hub.drop.get(relpath)
            if cut is not None and cut < len(data):
                self.wfile.write(data[:cut])
                self.wfile.flush()
                hub.log(Request("GET", self.path, -1, cut))
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.wfile.write(data)
            hub.log(Request("GET", self.path, status, len(data)))

        def _range_start(self) -> int:
            value = self.headers.get("Range", "")
            if value.startswith("bytes=") and value[6:].split("-")[0].isdigit():
                return int(value[6:].split("-")[0])
            return 0

        def _tree(self, repo_id: str, revision: str, prefix: str, recursive: bool) -> None:
            resolved = self._repo(repo_id, revision, head=False)
            if resolved is None:
                return
            _, folder = resolved
            base = folder / prefix
            if not base.is_dir():
                self._error(404, "EntryNotFound", f"{prefix} does not exist on {revision}", head=False)
                return
            paths = sorted(base.rglob("*") if recursive else base.iterdir())
            entries = []
            for p in paths:
                rel = p.relative_to(folder).as_posix()
                if p.is_dir():
                    entries.append({"type": "directory", "oid": hashlib.sha1(rel.encode()).hexdigest(), "path": rel})
                else:
                    entries.append({"type": "file", "oid": hub.etag(p)[:40], "size": p.stat().st_size,
                                    "path": rel})
            body = json.dumps(entries).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            hub.log(Request("GET", self.path, 200, len(body)))

        def _error(self, status: int, code: str | None, message: str, head: bool) -> None:
            body = b"" if head else json.dumps({"error": message}).encode()
            self.send_response(status)
            if code:
                self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            hub.log(Request(self.command, self.path, status, len(body)))

    return Handler
