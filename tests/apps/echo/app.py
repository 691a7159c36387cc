"""A tiny HTTP app for proxy tests: echoes what it received, counts uploads, streams events.

Stdlib only, so the proxy tests need nothing installed. Listens on 127.0.0.1:$PORT.
"""
import json
import os
import sys
import time
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DROPPED = 0
# POSTs received, and those of them dropped unanswered (see drop-next).
POSTS = 0
DROPPED_POSTS = 0
DROPPED_LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("echo-app: " + (fmt % args) + "\n")

    def send_json(self, obj, status=200):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        global DROPPED
        if getattr(self, "drop_next", False):
            # Read the request, then close without an answer: the app's keep-alive timeout
            # striking just as the request arrived.
            with DROPPED_LOCK:
                DROPPED += 1
            self.close_connection = True
            return
        if self.path.startswith("/crash"):
            # An app dying mid-request, as R does when a model fit runs out of memory.
            sys.stderr.write("fatal: cannot allocate vector of size 8.0 Gb\n")
            sys.stderr.flush()
            os._exit(3)
        if self.path.startswith("/dropped"):
            self.send_json({"dropped": DROPPED, "posts": POSTS, "dropped_posts": DROPPED_POSTS})
            return
        if self.path.startswith("/slow"):
            # A request still being answered when vestibule is asked to shut down.
            time.sleep(2)
            self.send_json({"slow": "done"})
            return
        if self.path.startswith("/sse"):
            # Three events, `gap` seconds apart (?gap=N, default 0.5).
            gap = 0.5
            if "gap=" in self.path:
                gap = float(self.path.split("gap=", 1)[1].split("&", 1)[0])
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            for i in range(3):
                self.wfile.write(f"data: tick {i}\n\n".encode())
                self.wfile.flush()
                time.sleep(gap)
            self.close_connection = True
            return
        if self.path.startswith("/conn"):
            # Which connection carried the request; with ?close, the connection is then closed
            # without announcing it, as an app's keep-alive timeout does.
            self.send_json({"client_port": self.client_address[1]})
            if "close" in self.path:
                self.close_connection = True
            if "drop-next" in self.path:
                self.drop_next = True
            return
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        headers = {}
        for k, v in self.headers.items():
            headers.setdefault(k.lower(), []).append(v)
        self.send_json({
            "path": self.path,
            "headers": headers,
            "env": {k: v for k, v in os.environ.items() if k.startswith(("SHINYPROXY_", "VESTIBULE_", "APP_"))},
            "cwd": os.getcwd(),
        })

    def do_POST(self):
        global DROPPED, POSTS, DROPPED_POSTS
        length = self.headers.get("Content-Length")
        total = 0
        if length is not None:
            remaining = int(length)
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                total += len(chunk)
                remaining -= len(chunk)
        elif self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                left = size
                while left > 0:
                    chunk = self.rfile.read(min(left, 1 << 20))
                    total += len(chunk)
                    left -= len(chunk)
                self.rfile.readline()
        with DROPPED_LOCK:
            POSTS += 1
        if getattr(self, "drop_next", False):
            # Received in full, then the connection closes unanswered: the proxy cannot know
            # whether the app acted on it, so it must not send it again.
            with DROPPED_LOCK:
                DROPPED += 1
                DROPPED_POSTS += 1
            self.close_connection = True
            return
        self.send_json({"received": total})


if __name__ == "__main__":
    port = int(os.environ["PORT"])
    print(f"echo app listening on {port}", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
