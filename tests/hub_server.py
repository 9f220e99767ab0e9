"""A minimal Hugging Face Hub look-alike on 127.0.0.1 for upload tests: the routes huggingface_hub calls to create a
repository and commit files (every file sent inline, base64, in the NDJSON commit). Received files are kept in
`server.repos[repo_id][path] = bytes`; requests are logged in `server.log`."""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    server: "FakeHub"

    def log_message(self, *args):  # keep test output clean
        pass

    def _send(self, code: int, payload: dict | None = None):
        body = json.dumps(payload or {}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self):
        self.server.log.append(("GET", self.path))
        if self.path.startswith("/api/whoami"):
            return self._send(200, {"name": "tester", "type": "user", "auth": {"accessToken": {"role": "write"}}})
        m = re.match(r"^/api/models/([^/]+/[^/]+)(/revision/.*)?$", self.path)
        if m and m.group(1) in self.server.repos:
            return self._send(200, {"id": m.group(1), "sha": "0" * 40, "siblings": []})
        return self._send(404, {"error": "not found"})

    def do_POST(self):
        body = self._body()
        self.server.log.append(("POST", self.path))
        if self.headers.get("Authorization") != f"Bearer {self.server.token}":
            return self._send(401, {"error": "invalid token"})
        if self.path == "/api/repos/create":
            req = json.loads(body)
            repo = f"{req.get('organization') or 'tester'}/{req['name']}" if "/" not in req["name"] else req["name"]
            if repo in self.server.repos:
                return self._send(409, {"error": "You already created this model repo", "url": f"/{repo}"})
            self.server.repos[repo] = {}
            return self._send(200, {"url": f"{self.server.url}/{repo}", "name": repo})
        if self.path == "/api/validate-yaml":
            return self._send(200, {})
        m = re.match(r"^/api/models/([^/]+/[^/]+)/preupload/(.+)$", self.path)
        if m:
            files = json.loads(body)["files"]
            return self._send(
                200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
            )
        m = re.match(r"^/api/models/([^/]+/[^/]+)/commit/(.+)$", self.path)
        if m:
            repo = m.group(1)
            if repo not in self.server.repos:
                return self._send(404, {"error": "repo not found"})
            for line in body.decode().splitlines():
                item = json.loads(line)
                if item.get("key") == "file":
                    v = item["value"]
                    self.server.repos[repo][v["path"]] = base64.b64decode(v["content"])
            return self._send(
                200, {"commitUrl": f"{self.server.url}/{repo}/commit/1", "commitOid": "1" * 40, "success": True}
            )
        return self._send(404, {"error": f"no route {self.path}"})


class FakeHub(ThreadingHTTPServer):
    def __init__(self, token: str = "hf_test_token"):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.token, self.repos, self.log = token, {}, []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()
