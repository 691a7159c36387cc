"""An app that tries what a hostile neighbour would, for the process-isolation test (F5).

It answers only requests that carry its instance token (as a careful app does with
VESTIBULE_INSTANCE_TOKEN), and on request tries to read a file or to call another app.
"""

import http.client
import json
import os
import pathlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

TOKEN = os.environ.get("VESTIBULE_INSTANCE_TOKEN", "")
DIR = os.environ.get("VESTIBULE_INSTANCE_DIR", ".")
pathlib.Path(DIR, "secret.txt").write_text("only mine\n")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if not TOKEN or self.headers.get("X-Vestibule-Instance-Token") != TOKEN:
            return self.answer(403, {"refused": "no instance token"})
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/read":
            try:
                with open(q["path"]) as f:
                    return self.answer(200, {"read": f.read(64)})
            except OSError as e:
                return self.answer(200, {"denied": e.strerror})
        if url.path == "/call":
            conn = http.client.HTTPConnection("127.0.0.1", int(q["port"]), timeout=5)
            conn.request("GET", "/", headers={"X-SP-UserId": "alice"})
            return self.answer(200, {"status": conn.getresponse().status})
        return self.answer(
            200, {"uid": os.getuid(), "gid": os.getgid(), "dir": DIR, "port": os.environ["PORT"]}
        )

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
