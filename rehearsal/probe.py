"""Network probes the rehearsal runs inside a namespace (``nsenter --net=... python3 -m
rehearsal.probe ...``), where the harness process itself cannot open sockets.

    probe tcp HOST PORT SECONDS        exit 0 when a TCP connection is accepted in time
    probe udp HOST PORT SECONDS        exit 0 when a datagram comes back with the same bytes
    probe listen PORT SECONDS          accept TCP on 0.0.0.0:PORT for SECONDS, then exit
    probe udpwatch HOST PORT SECONDS   for SECONDS, twice a second, one datagram from a new
                                       socket and one from a socket kept open (a client that
                                       keeps its port); prints the longest gap of each as JSON
"""

from __future__ import annotations

import os
import socket
import sys
import time


def tcp(host: str, port: int, seconds: float) -> int:
    try:
        with socket.create_connection((host, port), timeout=seconds):
            return 0
    except OSError as err:
        print(f"tcp {host}:{port}: {err}", file=sys.stderr)
        return 1


def udp(host: str, port: int, seconds: float) -> int:
    payload = b"rehearsal-" + os.urandom(8).hex().encode()
    deadline = time.monotonic() + seconds
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        # Sent again every second: one datagram lost (the container not up yet) is not a fail.
        while time.monotonic() < deadline:
            sock.sendto(payload, (host, port))
            sock.settimeout(min(1.0, max(0.05, deadline - time.monotonic())))
            try:
                while True:
                    data, _ = sock.recvfrom(2048)
                    if data == payload:
                        return 0
            except (socket.timeout, ConnectionRefusedError):
                continue
    print(f"udp {host}:{port}: no echo within {seconds:.0f} s", file=sys.stderr)
    return 1


def udpwatch(host: str, port: int, seconds: float, grace: float = 6.0) -> int:
    import json
    import select

    kept = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent: list[tuple[str, float, socket.socket, bytes]] = []
    answered: set[bytes] = set()
    start = time.monotonic()

    def collect(timeout: float) -> None:
        socks = list({id(s): s for _, _, s, _ in sent}.values())
        ready, _, _ = select.select(socks, [], [], timeout)
        for sock in ready:
            try:
                answered.add(sock.recv(2048))
            except OSError:
                pass

    next_send = start
    # Replies may come seconds late (the echo delays on purpose): datagrams are sent on a
    # schedule and answers collected as they come, until `grace` after the last one.
    while time.monotonic() - start < seconds + grace:
        now = time.monotonic()
        if now >= next_send and now - start < seconds:
            fresh = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for kind, sock in (("new_socket", fresh), ("kept_socket", kept)):
                payload = os.urandom(8).hex().encode()
                try:
                    sock.sendto(payload, (host, port))
                except OSError:
                    pass
                sent.append((kind, now - start, sock, payload))
            next_send += 0.5
        collect(0.05)
    report = {}
    for kind in ("new_socket", "kept_socket"):
        samples = [(t, p in answered) for k, t, _, p in sent if k == kind]
        gap, down = 0.0, None
        for t, ok in samples:
            if not ok and down is None:
                down = t
            elif ok and down is not None:
                gap, down = max(gap, t - down), None
        if down is not None:
            gap = max(gap, samples[-1][0] - down)
        report[kind] = {"longest_gap": round(gap, 1), "answering_at_end": samples[-1][1]}
    print(json.dumps(report))
    return 0


def listen(port: int, seconds: float) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", port))
        sock.listen(16)
        print("listening", flush=True)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                conn, _ = sock.accept()
                conn.close()
            except socket.timeout:
                break
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] in ("tcp", "udp"):
        return (tcp if argv[0] == "tcp" else udp)(argv[1], int(argv[2]), float(argv[3]))
    if len(argv) == 4 and argv[0] == "udpwatch":
        return udpwatch(argv[1], int(argv[2]), float(argv[3]))
    if len(argv) == 3 and argv[0] == "listen":
        return listen(int(argv[1]), float(argv[2]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
