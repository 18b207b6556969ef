#!/usr/bin/env python3
"""Docker token-auth server for berth's registry tests (stdlib only).

Implements GET /token?service=S&scope=repository:NAME:ACTIONS[&scope=...]
(https://distribution.github.io/distribution/spec/auth/token/) and answers
{"token", "access_token", "expires_in", "issued_at"}.  The JWT is RS256,
signed with `openssl dgst -sha256 -sign` (Python has no RSA), and carries
the signing certificate in the "x5c" header: distribution 2.8 verifies that
chain against its `rootcertbundle`.

Users (HTTP Basic on the token request; the same as the htpasswd mode):
  alice / "s3cret pass!"  pull, push, delete on every repository (+ catalog)
  bob   / bobpw           pull on bobonly/*
  anonymous (and everyone) pull on public/*
Anything else is granted nothing: the token comes back with an empty access
list and the registry answers 401 insufficient_scope / 403.

Each request appends "<unix time> <user|-> <scope> [<scope>...]" to --log
("-" for no scope; a user whose password was wrong is written as "!name").
"""

import argparse
import base64
import datetime
import json
import math
import os
import secrets
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USERS = {"alice": "s3cret pass!", "bob": "bobpw"}
ANON_PREFIXES = ("public/",)


def granted(user, rtype, name, actions):
    """Actions of `actions` that `user` (None = anonymous) may do on NAME."""
    if rtype == "registry" and name == "catalog":
        return ["*"] if user == "alice" and "*" in actions else []
    if rtype != "repository":
        return []
    allowed = set()
    if name.startswith(ANON_PREFIXES):
        allowed.add("pull")
    if user == "alice":
        allowed.update(("pull", "push", "delete", "*"))
    elif user == "bob" and name.startswith("bobonly/"):
        allowed.add("pull")
    return [a for a in actions if a in allowed]


def parse_scope(scope):
    """repository:NAME:a,b -> (type, name, [a, b]); NAME may hold ':' (ports)."""
    parts = scope.split(":")
    if len(parts) < 3:
        return None
    rtype, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1]
    if "(" in rtype:  # "repository(plugin)" resource classes
        rtype = rtype.split("(", 1)[0]
    return rtype, name, [a for a in actions.split(",") if a]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Signer:
    def __init__(self, key, cert):
        self.key = key
        der = subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self.x5c = [base64.b64encode(der).decode()]  # standard base64, not url

    def sign(self, claims):
        header = {"typ": "JWT", "alg": "RS256", "x5c": self.x5c}
        signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                         b64url(json.dumps(claims, separators=(",", ":")).encode()))
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key],
                             input=signing_input.encode(), check=True,
                             capture_output=True).stdout
        return signing_input + "." + b64url(sig)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "berth-test-tokenserver/1"

    def log_message(self, fmt, *args):  # access log to stderr (the .log file)
        sys.stderr.write("%s - %s\n" % (self.address_string(), fmt % args))

    def reply(self, code, obj, extra=None):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def record(self, user, scopes):
        line = "%.3f %s %s\n" % (time.time(), user or "-", " ".join(scopes) or "-")
        with self.server.log_lock, open(self.server.opts.log, "a") as f:
            f.write(line)

    def do_POST(self):
        self.reply(405, {"errors": [{"code": "UNSUPPORTED",
                                     "message": "only GET /token is implemented"}]})

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/token":
            self.reply(404, {"errors": [{"code": "NOT_FOUND", "message": "try /token"}]})
            return
        q = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        scopes = [s for v in q.get("scope", []) for s in v.split(" ") if s]
        service = (q.get("service") or [self.server.opts.service])[0]

        user = None
        auth = self.headers.get("Authorization", "")
        if auth:
            kind, _, cred = auth.partition(" ")
            try:
                name, _, password = base64.b64decode(cred.strip()).decode().partition(":")
            except Exception:
                kind, name, password = "", "", ""
            if kind.lower() != "basic" or USERS.get(name) != password:
                self.record("!" + (name or "?"), scopes)
                self.reply(401, {"errors": [{"code": "UNAUTHORIZED",
                                             "message": "invalid username or password"}],
                                 "details": "incorrect username or password"},
                           {"WWW-Authenticate": 'Basic realm="berth-test-token"'})
                return
            user = name
        self.record(user, scopes)

        access = []
        for s in scopes:
            parsed = parse_scope(s)
            if not parsed:
                continue
            acts = granted(user, *parsed)
            if acts:
                access.append({"type": parsed[0], "name": parsed[1], "actions": acts})

        t = time.time()
        now = int(t)
        life = self.server.opts.expires_in
        # exp is rounded up, so a token lives at least expires_in seconds.
        # The registry accepts a token up to 60 s past exp (its clock-skew
        # leeway); --hard-expiry pulls exp back so it really dies within
        # expires_in + 1 s.
        exp = math.ceil(t) + life - (60 if self.server.opts.hard_expiry else 0)
        claims = {"iss": self.server.opts.issuer, "sub": user or "",
                  "aud": service, "exp": exp, "nbf": now - 1, "iat": now,
                  "jti": secrets.token_hex(12), "access": access}
        token = self.server.signer.sign(claims)
        issued = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
        self.reply(200, {"token": token, "access_token": token, "expires_in": life,
                         "issued_at": issued.strftime("%Y-%m-%dT%H:%M:%SZ")})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    ssl_ctx = None

    def finish_request(self, request, client_address):
        # TLS handshake in the worker thread, so a stalled client cannot
        # block accept().
        if self.ssl_ctx:
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
    ap.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT")
    ap.add_argument("--key", required=True, help="RSA key that signs the tokens")
    ap.add_argument("--cert", required=True, help="its certificate (x5c; the registry's rootcertbundle)")
    ap.add_argument("--tls-cert", help="serve HTTPS with this certificate")
    ap.add_argument("--tls-key")
    ap.add_argument("--issuer", default="berth-test-issuer")
    ap.add_argument("--service", default="berth-test-registry", help="aud when the request has no service=")
    ap.add_argument("--expires-in", type=int, default=300)
    ap.add_argument("--hard-expiry", action="store_true",
                    help="set exp 60 s early so the registry (60 s leeway) rejects the token after expires_in")
    ap.add_argument("--log", required=True, help="append one line per token request")
    ap.add_argument("--pidfile")
    opts = ap.parse_args()

    host, _, port = opts.listen.rpartition(":")
    srv = Server((host, int(port)), Handler)
    srv.opts = opts
    srv.log_lock = threading.Lock()
    srv.signer = Signer(opts.key, opts.cert)
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
