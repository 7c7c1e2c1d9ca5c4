"""The sample image `istio/examples-helloworld-v1` (and -v2) on the lab's nodes: answers
`GET /hello` as Istio's samples/helloworld/src/app.py does (`Hello version: v1, instance: <pod>`),
and `GET /health`, on port 5000 of the pod. Stands in for that image's Flask app: same port,
paths, answers and status codes; nothing else."""

from __future__ import annotations

import os
import socketserver
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = 5000


class Handler(BaseHTTPRequestHandler):
    server_version = "helloworld-lab"
    protocol_version = "HTTP/1.1"  # keep-alive, as the sample's server gives Envoy
    # Headers and body go out in two writes: with Nagle's algorithm on, the body waits for the
    # client's delayed ACK (40 ms a request on a kept-alive connection). The sample's server
    # answers in one write.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:  # noqa: N802 - the http.server interface
        if self.path.split("?", 1)[0] == "/hello":
            body = f"Hello version: {os.environ.get('SERVICE_VERSION')}, instance: {os.environ.get('HOSTNAME')}\n"
            status = 200
        elif self.path.split("?", 1)[0] == "/health":
            body, status = "Helloworld is healthy", 200
        else:
            body, status = "Not Found\n", 404
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the http.server interface
        # With the client certificate Istio's inbound sidecar saw (its x-forwarded-client-cert
        # header), so a test can tell a request came over mTLS and from whom.
        client = self.headers.get("x-forwarded-client-cert", "-") if hasattr(self, "headers") else "-"
        print(f"{self.address_string()} {format % args} xfcc={client}", flush=True)


class Server(ThreadingHTTPServer):
    def server_bind(self) -> None:
        # http.server looks up the host's FQDN here; the sample's server makes no DNS query.
        socketserver.TCPServer.server_bind(self)  # bind only
        self.server_name, self.server_port = "helloworld", PORT


def main() -> None:
    Server(("0.0.0.0", PORT), Handler).serve_forever()


if __name__ == "__main__":
    main()
