"""A stand-in app server for tests of `spp-viz serve` (tests/test_replicas.py): takes Streamlit's --server.port flag,
answers /_stcore/health with "ok" and any other path with its replica's name and what the proxy passed on, as JSON.
Starts in a tenth of a second, so the proxy's rules are tested without loading a network per replica."""

from __future__ import annotations

import http.server
import json
import os
import sys

NAME = os.environ.get("SPP_VIZ_REPLICA", "")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/_stcore/health"):
            body = b"ok"
        else:
            body = json.dumps({"replica": NAME, "before": self.headers.get("X-SPP-Viz-Replica-Before"),
                               "cookie": self.headers.get("Cookie"), "threads": os.environ.get("OMP_NUM_THREADS"),
                               "key": os.environ.get("SPP_VIZ_TEACHER_KEY")}).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


if __name__ == "__main__":
    port = int(sys.argv[sys.argv.index("--server.port") + 1])
    http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
