#!/usr/bin/env python3
"""Fault-injecting reverse proxy for berth's registry tests (stdlib only).

Forwards every request (method, target, headers, streamed body, chunked or
not) to --upstream and streams the answer back; absolute Location headers
that point at the upstream are rewritten to the proxy.  Each request adds
one line to --log:

    <unix time> <METHOD> <path without query> <Range header or -> <status> [<fault>]

where <fault> is present only when a rule fired: cut=BYTES, corrupt,
delay=MS or status.

Rules are re-read from --ctl on every request (missing or empty file: no
faults), one per line, '#' starts a comment, first matching rule wins per
kind.  DIGEST is "sha256:HEX", bare HEX, or "*" for any blob:

    cut DIGEST BYTES [TIMES]   next GET of /v2/.../blobs/DIGEST (200 or 206)
                               sends BYTES bytes of the body, with the full
                               Content-Length announced, then closes the
                               connection.  Fires TIMES times (default 1),
                               then the line is rewritten as "#used ...".
    corrupt DIGEST             every GET of that blob: the middle byte of
                               the body sent is XORed with 0xff.
    delay DIGEST MS            every GET of that blob: headers are sent at
                               once, the body after MS milliseconds.
    status PREFIX CODE [RETRY_AFTER|-] [TIMES]
                               requests whose path starts with PREFIX get
                               CODE with a registry-style JSON errors body
                               (none for HEAD) and Retry-After if given;
                               unlimited unless TIMES is given.
"""

import argparse
import http.client
import json
import os
import re
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
       "proxy-authorization", "te", "trailer", "trailers", "transfer-encoding",
       "upgrade", "expect"}
BLOB_RE = re.compile(r"^/v2/.+/blobs/(sha256:[0-9a-f]{64})$")
ERROR_CODES = {400: "UNSUPPORTED", 401: "UNAUTHORIZED", 403: "DENIED",
               405: "UNSUPPORTED", 416: "RANGE_INVALID", 429: "TOOMANYREQUESTS"}
CHUNK = 65536


class Rules:
    """The control file; lock-protected so 'once' rules fire exactly once."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()

    def _lines(self):
        try:
            with open(self.path) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def _consume(self, lines, i, fields, count_at):
        # Decrement a counted rule in the file; "#used" once spent.
        left = int(fields[count_at]) - 1 if len(fields) > count_at else 0
        if left > 0:
            fields = fields[:count_at] + [str(left)]
            lines[i] = " ".join(fields)
        else:
            lines[i] = "#used " + lines[i]
        tmp = "%s.tmp.%d" % (self.path, threading.get_ident())
        with open(tmp, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, self.path)

    def match(self, method, path):
        """Returns dict of faults for this request: status, cut, corrupt, delay."""
        out = {}
        m = BLOB_RE.match(path)
        digest = m.group(1) if m and method == "GET" else None
        with self.lock:
            lines = self._lines()
            for i, line in enumerate(lines):
                f = line.split("#", 1)[0].split()
                if not f:
                    continue
                try:
                    kind = f[0]
                    if kind == "status" and "status" not in out and len(f) >= 3 \
                            and path.startswith(f[1]):
                        ra = f[3] if len(f) > 3 and f[3] != "-" else None
                        out["status"] = (int(f[2]), ra)
                        if len(f) > 4:
                            self._consume(lines, i, f, 4)
                    elif digest and kind in ("cut", "corrupt", "delay") and kind not in out \
                            and len(f) >= 2 and f[1] in ("*", digest, digest[7:]):
                        if kind == "cut" and len(f) >= 3:
                            out["cut"] = int(f[2])
                            self._consume(lines, i, f, 3)
                        elif kind == "corrupt":
                            out["corrupt"] = True
                        elif kind == "delay" and len(f) >= 3:
                            out["delay"] = int(f[2])
                except (ValueError, IndexError) as e:
                    sys.stderr.write("faultproxy: bad rule %r: %s\n" % (line, e))
        return out


def error_body(code, path):
    if code == 404:
        c = "BLOB_UNKNOWN" if "/blobs/" in path else \
            "MANIFEST_UNKNOWN" if "/manifests/" in path else "NAME_UNKNOWN"
    elif code >= 500:
        c = "UNAVAILABLE" if code == 503 else "UNKNOWN"
    else:
        c = ERROR_CODES.get(code, "UNKNOWN")
    return json.dumps({"errors": [{"code": c, "message": "injected by faultproxy (%d)" % code,
                                   "detail": None}]}).encode() + b"\n"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass  # our own log line is written in record()

    def record(self, status, fault=None):
        path = urllib.parse.urlsplit(self.path).path
        line = "%.3f %s %s %s %d%s\n" % (time.time(), self.command, path,
                                          self.headers.get("Range", "-").replace(" ", ""),
                                          status, " " + fault if fault else "")
        with self.server.log_lock, open(self.server.opts.log, "a") as f:
            f.write(line)

    # -- request body -------------------------------------------------
    def body_chunks(self):
        """Yields the request body (decoded if chunked)."""
        te = self.headers.get("Transfer-Encoding", "").lower()
        if "chunked" in te:
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                left = size
                while left:
                    data = self.rfile.read(min(left, CHUNK))
                    if not data:
                        raise ConnectionError("client closed inside a chunk")
                    left -= len(data)
                    yield data
                self.rfile.readline()
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left:
                data = self.rfile.read(min(left, CHUNK))
                if not data:
                    raise ConnectionError("client closed inside the body")
                left -= len(data)
                yield data

    # -- main ---------------------------------------------------------
    def proxy(self):
        path = urllib.parse.urlsplit(self.path).path
        faults = self.server.rules.match(self.command, path)
        if "status" in faults:
            for _ in self.body_chunks():
                pass
            code, retry_after = faults["status"]
            body = error_body(code, path)
            self.record(code, "status")
            self.send_response_only(code)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
            if retry_after:
                self.send_header("Retry-After", retry_after)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            return

        up = self.server.upstream
        if up.scheme == "https":
            conn = http.client.HTTPSConnection(up.hostname, up.port, timeout=120,
                                               context=self.server.upstream_ctx)
        else:
            conn = http.client.HTTPConnection(up.hostname, up.port, timeout=120)
        try:
            self.forward(conn, path, faults)
        finally:
            conn.close()

    def forward(self, conn, path, faults):
        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for k, v in self.headers.items():
            if k.lower() not in HOP and k.lower() != "content-length":
                conn.putheader(k, v)
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        elif self.headers.get("Content-Length") is not None:
            conn.putheader("Content-Length", self.headers["Content-Length"])
        conn.endheaders()
        for data in self.body_chunks():
            conn.send(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
        if chunked:
            conn.send(b"0\r\n\r\n")
        resp = conn.getresponse()

        blob_fault = resp.status in (200, 206) and self.command == "GET"
        cut = faults.get("cut") if blob_fault else None
        corrupt = faults.get("corrupt") if blob_fault else None
        delay = faults.get("delay") if blob_fault else None
        tag = "cut=%d" % cut if cut is not None else "corrupt" if corrupt else \
            "delay=%d" % delay if delay is not None else None
        self.record(resp.status, tag)

        self.send_response_only(resp.status, resp.reason)
        length = resp.getheader("Content-Length")
        no_body = self.command == "HEAD" or resp.status in (204, 304) or resp.status < 200
        for k, v in resp.getheaders():
            lk = k.lower()
            if lk in HOP:
                continue
            if lk == "location":
                v = self.rewrite_location(v)
            self.send_header(k, v)
        if length is None and not no_body:
            self.send_header("Transfer-Encoding", "chunked")
        if cut is not None:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()
        if no_body:
            return
        if delay:
            time.sleep(delay / 1000.0)

        flip_at = int(length) // 2 if (corrupt and length) else None
        sent = 0
        while True:
            try:
                data = resp.read1(CHUNK)
            except http.client.IncompleteRead:
                data = b""
            if not data:
                break
            if flip_at is not None and sent <= flip_at < sent + len(data):
                b = bytearray(data)
                b[flip_at - sent] ^= 0xFF
                data = bytes(b)
            if cut is not None and sent + len(data) >= cut:
                self.wfile.write(data[:cut - sent])
                self.wfile.flush()
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if length is None else data)
            sent += len(data)
        if length is None:
            self.wfile.write(b"0\r\n\r\n")
        elif sent < int(length):
            # The upstream closed early (distribution 2.8 does so on 416,
            # after announcing the blob's full length): close too, as it did.
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if cut is not None:  # body shorter than BYTES: nothing was cut
            self.close_connection = True

    def rewrite_location(self, v):
        u = urllib.parse.urlsplit(v)
        if u.scheme and u.netloc.lower() in self.server.upstream_names:
            host = self.headers.get("Host") or self.server.public
            return urllib.parse.urlunsplit((self.server.scheme, host, u.path, u.query, u.fragment))
        return v

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (ConnectionError, BrokenPipeError, socket.timeout, ssl.SSLError,
                http.client.HTTPException) as e:
            sys.stderr.write("faultproxy: %s %s: %r\n" % (self.command, self.path, e))
            self.close_connection = True

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = do_OPTIONS = proxy


class Server(ThreadingHTTPServer):
    daemon_threads = True
    ssl_ctx = None

    def finish_request(self, request, client_address):
        if self.ssl_ctx:  # handshake in the worker thread, not in accept()
            try:
                request = self.ssl_ctx.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError, TimeoutError)):
            super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", required=True, help="HOST:PORT")
    ap.add_argument("--upstream", required=True, help="http[s]://HOST:PORT of the registry")
    ap.add_argument("--tls-cert", help="serve HTTPS with this certificate")
    ap.add_argument("--tls-key")
    ap.add_argument("--cacert", help="CA to verify an https upstream")
    ap.add_argument("--log", required=True)
    ap.add_argument("--ctl", required=True, help="rules file")
    ap.add_argument("--pidfile")
    opts = ap.parse_args()

    host, _, port = opts.listen.rpartition(":")
    srv = Server((host, int(port)), Handler)
    srv.opts = opts
    srv.log_lock = threading.Lock()
    srv.rules = Rules(opts.ctl)
    srv.upstream = urllib.parse.urlsplit(opts.upstream)
    up = srv.upstream
    srv.upstream_names = {up.netloc.lower(), "localhost:%d" % up.port, "127.0.0.1:%d" % up.port}
    srv.scheme = "https" if opts.tls_cert else "http"
    srv.public = "%s:%d" % (host, srv.server_address[1])
    if up.scheme == "https":
        srv.upstream_ctx = ssl.create_default_context(cafile=opts.cacert)
    if opts.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(opts.tls_cert, opts.tls_key)
        srv.ssl_ctx = ctx
    open(opts.log, "a").close()
    if opts.pidfile:
        with open(opts.pidfile, "w") as f:
            f.write("%d\n" % os.getpid())
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
