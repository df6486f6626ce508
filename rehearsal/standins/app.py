#!/usr/bin/python3
"""The rehearsal's stand-in for the example projects' app images (rehearsal/images.py): it
plays their server, migrations, static files, job worker and bot with the real interpreter
and the real database and Redis.

Why our own server rather than the apps: their images are not reachable here. What it keeps of
them is what the rehearsal must prove: it serves on the container's port, and answers 200 only
once it has reached its database with the credentials in its environment (DATABASE_URL, or
DB_HOST/DB_PORT/DB_NAME/DB_USER/DB_PASSWORD) and Redis at REDIS_URL; before that, and for as long
as a password is wrong, it answers 503 and logs why. An app with neither (a front end) serves.

  serve [--default-port N] [-p N] [-b ADDR] [ADDR:PORT]   the HTTP server (every path)
  migrate [LABEL]      creates rehearsal_migrations in the app's database, one row per run
  collectstatic        writes the static files into STATIC_ROOT (default /app/staticfiles)
  worker               a long-running job worker that keeps its database connection checked
  bot                  polls TRACKER_URL/health, needs TWITCH_CLIENT_ID and TWITCH_CLIENT_SECRET
Ports: JAMJAM_STANDIN_TCP (the rehearsal's list), PORT, the command's, else --default-port.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

NAME = "jamjam-standin"


def log(message: str) -> None:
    print(f"{NAME}: {message}", file=sys.stderr, flush=True)


def fail(message: str) -> None:
    log(message)
    sys.exit(1)


def database_settings() -> dict | None:
    """libpq keywords for the app's database, or None when the app has none. Never logged:
    the password is in them."""
    url = os.environ.get("DATABASE_URL")
    if url:
        parts = urlsplit(url)
        # Rails' postgis adapter names its URLs postgis://; libpq knows only postgres(ql)://.
        if parts.scheme not in ("postgres", "postgresql", "postgis"):
            fail(f"DATABASE_URL has scheme {parts.scheme!r}; expected postgres://, "
                 "postgresql:// or postgis://")
        return {"host": parts.hostname or "localhost", "port": parts.port or 5432,
                "dbname": unquote(parts.path.lstrip("/")) or None,
                "user": unquote(parts.username or "") or None,
                "password": unquote(parts.password or "") or None}
    if os.environ.get("DB_HOST") or os.environ.get("DB_NAME"):
        return {"host": os.environ.get("DB_HOST", "localhost"),
                "port": int(os.environ.get("DB_PORT", "5432")),
                "dbname": os.environ.get("DB_NAME"), "user": os.environ.get("DB_USER"),
                "password": os.environ.get("DB_PASSWORD")}
    return None


def connect(settings: dict):
    import psycopg2
    return psycopg2.connect(connect_timeout=3, application_name=NAME,
                            **{k: v for k, v in settings.items() if v is not None})


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else 'no message'}"


def check_backends() -> str | None:
    """None when every backend the environment names answers; else why not."""
    settings = database_settings()
    if settings is not None:
        try:
            conn = connect(settings)
        except Exception as error:   # psycopg2 raises OperationalError; any failure is the reason
            return (f"database {settings['user']}@{settings['host']}:{settings['port']}/"
                    f"{settings['dbname']}: {first_line(error)}")
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
        finally:
            conn.close()
    url = os.environ.get("REDIS_URL")
    if url:
        import redis
        try:
            redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3).ping()
        except Exception as error:
            parts = urlsplit(url)
            return f"redis {parts.hostname}:{parts.port or 6379}: {first_line(error)}"
    return None


class Backends:
    """Checks the backends in the background; logs each change of state once."""

    def __init__(self) -> None:
        names = [n for n, used in (("the database", database_settings() is not None),
                                   ("redis", bool(os.environ.get("REDIS_URL")))) if used]
        self.what = " and ".join(names)
        self.needed = bool(names)
        self.reason: str | None = "not checked yet" if self.needed else None
        self.lock = threading.Lock()

    def start(self) -> "Backends":
        if self.needed:
            threading.Thread(target=self._loop, daemon=True).start()
        return self

    def _loop(self) -> None:
        while True:
            reason = check_backends()
            with self.lock:
                changed, self.reason = reason != self.reason, reason
            if changed:
                log(f"reached {self.what}" if reason is None else f"not ready: {reason}")
            time.sleep(10 if reason is None else 1)

    def ready(self) -> tuple[bool, str]:
        with self.lock:
            return self.reason is None, self.reason or "ok"


def ports(argv: list[str]) -> list[int]:
    found, default, i = [], None, 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--default-port", "-p", "--port") and i + 1 < len(argv):
            if arg == "--default-port":
                default = argv[i + 1]
            else:
                found.append(argv[i + 1])
            i += 2
            continue
        if arg in ("-b", "--binding") and i + 1 < len(argv):
            i += 2
            continue
        if ":" in arg and arg.rsplit(":", 1)[1].isdigit():
            found.append(arg.rsplit(":", 1)[1])
        elif arg.isdigit():
            found.append(arg)
        i += 1
    found += [p for p in os.environ.get("JAMJAM_STANDIN_TCP", "").split(",") if p]
    if os.environ.get("PORT"):
        found.append(os.environ["PORT"])
    if not found and default:
        found.append(default)
    if not found:
        fail("no port to listen on: set PORT or JAMJAM_STANDIN_TCP, or name one in the command")
    for port in found:
        if not port.isdigit() or not 0 < int(port) < 65536:
            fail(f"port {port!r} is not a port number")
    return sorted({int(p) for p in found})


def serve(argv: list[str]) -> None:
    backends = Backends().start()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, body: bool) -> None:
            ok, reason = backends.ready()
            data = json.dumps({"status": "ok" if ok else "unavailable", "detail": reason,
                               "path": self.path}).encode() + b"\n"
            self.send_response(200 if ok else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer(True)

        def do_HEAD(self) -> None:
            self._answer(False)

        def log_message(self, format: str, *args) -> None:
            pass   # a healthcheck every 30 s would fill the container's log

    servers = []
    for port in ports(argv):
        try:
            server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
        except OSError as error:
            fail(f"cannot listen on port {port}: {error}")
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    log(f"serving on {', '.join(str(s.server_address[1]) for s in servers)}"
        + ("" if backends.needed else " (no database or redis configured)"))
    threading.Event().wait()


def migrate(argv: list[str]) -> None:
    settings = database_settings()
    if settings is None:
        fail("migrate: no database configured; set DATABASE_URL or DB_HOST, DB_NAME, DB_USER, "
             "DB_PASSWORD")
    deadline = time.monotonic() + 20
    while True:
        try:
            conn = connect(settings)
            break
        except Exception as error:
            if time.monotonic() > deadline:
                fail(f"migrate: cannot reach the database: {first_line(error)}")
            time.sleep(1)
    label = " ".join(argv) or "migrate"
    with conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS rehearsal_migrations ("
                    "id serial PRIMARY KEY, command text NOT NULL, host text NOT NULL, "
                    "ran_at timestamptz NOT NULL DEFAULT now())")
        cur.execute("INSERT INTO rehearsal_migrations (command, host) VALUES (%s, %s)",
                    (label, socket.gethostname()))
        cur.execute("SELECT count(*) FROM rehearsal_migrations")
        count = cur.fetchone()[0]
    conn.close()
    print(f"migrated ({label}): rehearsal_migrations has {count} row(s)", flush=True)


def collectstatic(argv: list[str]) -> None:
    root = os.environ.get("STATIC_ROOT", "/app/staticfiles")
    files = {"rehearsal/collected.txt": f"collected at {time.time():.0f}\n",
             "admin/css/base.css": "body { margin: 0; }\n"}
    for path, text in files.items():
        target = os.path.join(root, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as f:
            f.write(text)
    print(f"{len(files)} static files copied to '{root}'.", flush=True)


def worker(argv: list[str]) -> None:
    backends = Backends()
    if not backends.needed:
        fail("worker: no database configured; set DATABASE_URL")
    backends.start()
    log("worker started")
    threading.Event().wait()


def bot(argv: list[str]) -> None:
    missing = [k for k in ("TWITCH_CLIENT_ID", "TWITCH_CLIENT_SECRET", "TRACKER_URL")
               if not os.environ.get(k)]
    if missing:
        fail(f"twitch-bot: {', '.join(missing)} not set")
    url = os.environ["TRACKER_URL"].rstrip("/") + "/health"
    last = None
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                state = f"reached {url}: {answer.status}"
        except urllib.error.HTTPError as error:
            state = f"reached {url}: {error.code}"
        except Exception as error:
            state = f"cannot reach {url}: {first_line(error)}"
        if state != last:
            log(state)
            last = state
        time.sleep(5)


COMMANDS = {"serve": serve, "migrate": migrate, "collectstatic": collectstatic,
            "worker": worker, "bot": bot}


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in COMMANDS:
        fail(f"usage: app.py {{{','.join(COMMANDS)}}} ...; got {argv[:1]}")
    COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
