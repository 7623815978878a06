#!/usr/bin/env python3
"""Smoke check of a local homeserver through the Client-Server API (standard library only).

Registers a user (m.login.dummy), creates a room, sends N messages one after the other on one
keep-alive connection, counts any 429, and runs an initial and an incremental /sync. Prints
rough timings: a sanity check of a server set up for benchmarks, not a benchmark (that is
maas-bench).

    bench/smoke.py --url http://127.0.0.1:8018 [--host localhost] [--messages 200]

Only loopback URLs are accepted.
"""

import argparse
import http.client
import ipaddress
import json
import secrets
import sys
import time
import urllib.parse


def loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Client:
    def __init__(self, url: str, host: str | None):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "http" or not u.hostname or not loopback(u.hostname):
            sys.exit(f"refusing --url {url!r}: only http:// on a loopback address")
        self.conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=60)
        self.host = host
        self.token: str | None = None
        self.status_counts: dict[int, int] = {}

    def call(self, method: str, path: str, body=None, expect=(200,)):
        headers = {"Content-Type": "application/json"}
        if self.host:
            headers["Host"] = self.host
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None if body is None else json.dumps(body).encode()
        self.conn.request(method, path, body=data, headers=headers)
        resp = self.conn.getresponse()
        raw = resp.read()
        self.status_counts[resp.status] = self.status_counts.get(resp.status, 0) + 1
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {"raw": raw[:200].decode(errors="replace")}
        if resp.status not in expect:
            raise RuntimeError(f"{method} {path} -> {resp.status} {parsed}")
        return resp.status, parsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8018")
    ap.add_argument("--host", help="Host header (maas routes tenants by it)")
    ap.add_argument("--messages", type=int, default=200)
    args = ap.parse_args()

    c = Client(args.url, args.host)
    results = {}

    t = time.perf_counter()
    c.call("GET", "/_matrix/client/versions")
    results["versions_ms"] = (time.perf_counter() - t) * 1000

    username = "smoke" + secrets.token_hex(4)
    password = "smoke-" + secrets.token_hex(8)
    reg = {"username": username, "password": password, "auth": {"type": "m.login.dummy"}}
    t = time.perf_counter()
    status, body = c.call("POST", "/_matrix/client/v3/register", reg, expect=(200, 401))
    if status == 401:  # a server that wants the UIA session first: retry within it
        reg["auth"]["session"] = body.get("session")
        status, body = c.call("POST", "/_matrix/client/v3/register", reg)
    results["register_ms"] = (time.perf_counter() - t) * 1000
    c.token = body["access_token"]
    user_id = body["user_id"]

    t = time.perf_counter()
    _, body = c.call("POST", "/_matrix/client/v3/createRoom", {"preset": "private_chat", "name": "smoke"})
    results["create_room_ms"] = (time.perf_counter() - t) * 1000
    room = urllib.parse.quote(body["room_id"], safe="")

    too_many = 0
    t = time.perf_counter()
    for i in range(args.messages):
        path = f"/_matrix/client/v3/rooms/{room}/send/m.room.message/smoke{i}"
        status, _ = c.call("PUT", path, {"msgtype": "m.text", "body": f"message {i}"}, expect=(200, 429))
        if status == 429:
            too_many += 1
    send_s = time.perf_counter() - t
    results["send_total_s"] = send_s
    results["send_per_message_ms"] = send_s * 1000 / max(args.messages, 1)
    results["send_429"] = too_many

    t = time.perf_counter()
    _, body = c.call("GET", "/_matrix/client/v3/sync?timeout=0")
    results["initial_sync_ms"] = (time.perf_counter() - t) * 1000
    joined = body.get("rooms", {}).get("join", {})
    room_id = urllib.parse.unquote(room)
    timeline = joined.get(room_id, {}).get("timeline", {}).get("events", [])
    results["sync_rooms"] = len(joined)
    results["sync_timeline_events"] = len(timeline)
    nb = urllib.parse.quote(body["next_batch"], safe="")

    c.call("PUT", f"/_matrix/client/v3/rooms/{room}/send/m.room.message/smoke-last",
           {"msgtype": "m.text", "body": "last"})
    t = time.perf_counter()
    _, body = c.call("GET", f"/_matrix/client/v3/sync?timeout=0&since={nb}")
    results["incremental_sync_ms"] = (time.perf_counter() - t) * 1000
    inc = body.get("rooms", {}).get("join", {}).get(room_id, {}).get("timeline", {}).get("events", [])
    results["incremental_sync_got_last"] = any(e.get("content", {}).get("body") == "last" for e in inc)

    results["user_id"] = user_id
    results["status_counts"] = c.status_counts
    print(json.dumps(results, indent=2, default=str))
    ok = too_many == 0 and results["incremental_sync_got_last"] and results["sync_rooms"] >= 1
    print("smoke: OK" if ok else "smoke: FAILED", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
