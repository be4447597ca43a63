"""The sandbox HTTP server: routes each `/<vendor>/...` path to its emulator, applies the
fault switch, and serves a small control API under `/_sandbox/`."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from providers.sandbox.faults import APPLIED_KINDS, FaultPlan
from providers.sandbox.http import BadRequest, Emulator, Reply, SandboxRequest

log = logging.getLogger("sandbox")
MAX_BODY = 25 * 1024 * 1024


def all_emulators(credentials: dict[str, dict[str, str]]) -> list[Emulator]:
    from providers.sandbox.registry import EMULATORS

    return [cls(credentials.get(cls.name)) for cls in EMULATORS]


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], emulators: list[Emulator], faults: FaultPlan | None = None):
        super().__init__(address, SandboxHandler)
        self.emulators = {emulator.name: emulator for emulator in emulators}
        self.routes = {name: emulator.compiled_routes() for name, emulator in self.emulators.items()}
        self.faults = faults or FaultPlan()
        self.calls: dict[str, int] = {}
        self.calls_lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def base_url(self, vendor: str) -> str:
        return f"{self.url}/{vendor}"

    def count(self, key: str) -> None:
        with self.calls_lock:
            self.calls[key] = self.calls.get(key, 0) + 1


class SandboxHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: with Nagle on, each kept-alive answer
    # waits ~40 ms for the client's delayed ACK.
    disable_nagle_algorithm = True
    server: SandboxServer
    server_version = "TicketConsoleSandbox/1"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self.dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def dispatch(self) -> None:
        split = urlsplit(self.path)
        if split.path.startswith("/_sandbox/"):
            self.write(self.control(split.path, self.read_body()))
            return
        vendor, _, rest = split.path.lstrip("/").partition("/")
        emulator = self.server.emulators.get(vendor)
        if emulator is None:
            self.write(Reply.json({"error": f"no emulator at /{vendor}"}, 404))
            return
        fault = self.server.faults.pick(vendor)
        if fault == "drop":
            self.drop()
            return
        body = self.read_body()
        request = SandboxRequest(
            method=self.command,
            path="/" + rest,
            query={k: v[-1] for k, v in parse_qs(split.query).items()},
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        if fault and fault not in APPLIED_KINDS:
            self.write(self.fault_reply(fault))
            return
        if fault == "slow":
            time.sleep(self.server.faults.slow_seconds)
        reply = self.route(vendor, emulator, request)
        if fault == "lost":
            self.drop()
        elif fault == "garbage":
            self.write(Reply(200, b"<html><body>Bad Gateway</body></html>", {"Content-Type": "text/html"}))
        else:
            self.write(reply)

    def route(self, vendor: str, emulator: Emulator, request: SandboxRequest) -> Reply:
        allowed = []
        for method, pattern, handler in self.server.routes[vendor]:
            match = pattern.match(request.path)
            if not match:
                continue
            if method != request.method:
                allowed.append(method)
                continue
            request.match = match
            self.server.count(f"{vendor} {method} {pattern.pattern}")
            try:
                with emulator.lock:
                    return handler(request)
            except BadRequest as exc:
                return Reply.json({"error": str(exc)}, 400)
        if allowed:
            return Reply.json({"error": "Method Not Allowed"}, 405, {"Allow": ", ".join(allowed)})
        return Reply.json({"error": "Not Found", "path": request.path}, 404)

    def fault_reply(self, fault: str) -> Reply:
        if fault == "429":
            retry_after = self.server.faults.retry_after
            return Reply.json({"error": "Too Many Requests"}, 429, {"Retry-After": f"{retry_after:g}"})
        if fault == "redirect":
            return Reply(302, b"", {"Location": self.server.faults.redirect_to})
        return Reply.json({"error": f"sandbox fault {fault}"}, int(fault))

    # --- control API -----------------------------------------------------------------
    def control(self, path: str, body: bytes) -> Reply:
        parts = path.strip("/").split("/")[1:]
        data = json.loads(body or b"{}") if self.command == "POST" else {}
        if parts == ["health"]:
            return Reply.json({"ok": True, "vendors": sorted(self.server.emulators)})
        if parts == ["state"]:
            return Reply.json({n: e.snapshot() for n, e in self.server.emulators.items()})
        if len(parts) == 2 and parts[0] == "state" and parts[1] in self.server.emulators:
            emulator = self.server.emulators[parts[1]]
            with emulator.lock:
                return Reply.json(emulator.snapshot())
        if parts == ["faults"]:
            if self.command == "POST":
                try:
                    self.server.faults = FaultPlan.from_dict(data)
                except (TypeError, ValueError) as exc:
                    return Reply.json({"error": str(exc)}, 400)
            return Reply.json(self.server.faults.describe())
        if parts == ["calls"]:
            return Reply.json(self.server.calls)
        if parts == ["expire-tokens"]:
            for emulator in self.server.emulators.values():
                with emulator.lock:
                    emulator.expire_tokens()
            return Reply.json({"ok": True})
        if len(parts) == 2 and parts[0] in self.server.emulators and self.command == "POST":
            action = self.server.emulators[parts[0]].controls().get(parts[1])
            if action is not None:
                try:
                    return Reply.json(action(data))
                except (KeyError, TypeError, ValueError) as exc:
                    return Reply.json({"error": f"{parts[1]}: {exc!r}"}, 400)
        if parts == ["reset"]:
            for emulator in self.server.emulators.values():
                with emulator.lock:
                    emulator.reset()
            self.server.faults = FaultPlan()
            self.server.calls.clear()
            return Reply.json({"ok": True})
        return Reply.json({"error": "unknown control path"}, 404)

    # --- plumbing --------------------------------------------------------------------
    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise BadRequest("body too large")
        return self.rfile.read(length) if length else b""

    def write(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def drop(self) -> None:
        """Close the connection without a word (a crash, a proxy timeout, a lost answer)."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def serve_in_thread(
    credentials: dict[str, dict[str, str]],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    faults: FaultPlan | None = None,
) -> SandboxServer:
    """Start a sandbox on a daemon thread (tests, benchmarks). Stop with `.shutdown()`."""
    server = SandboxServer((host, port), all_emulators(credentials), faults)
    threading.Thread(target=server.serve_forever, name="sandbox", daemon=True).start()
    return server
