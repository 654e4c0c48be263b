"""Crash safety: every write the server acknowledged survives `kill -9`, and so does its history.

Several writers, each on its own HTTPS connection, create ConfigMaps and update them (PUT with
the resourceVersion they last saw, and merge patches) as fast as the server answers. A write
counts as acknowledged only once its 2xx response has arrived. The server is killed with SIGKILL
mid-load and restarted on the same data directory; then:

- every acknowledged object exists, with data at least as new as its last acknowledged write,
  and exactly that write (same resourceVersion) unless a later write was in flight at the kill;
- a watch resumed from a pre-crash revision replays, per object and in increasing
  resourceVersion order, every acknowledged write after that revision: no gap, no reordering.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.conftest import ServerProcess, start_server

WRITERS = 4
LOAD_SECONDS = 3.0
UPDATES_PER_OBJECT = 4
NAMESPACE = "default"
COLLECTION = f"/api/v1/namespaces/{NAMESPACE}/configmaps"


@dataclass(frozen=True)
class Ack:
    name: str
    seq: int  # the object's write counter, also stored in its data
    rv: int
    data: dict[str, str]
    verb: str


@dataclass
class ObjectHistory:
    acks: list[Ack] = field(default_factory=list)
    attempted: int = -1  # the highest seq sent, acknowledged or not


class Writer(threading.Thread):
    def __init__(self, index: int, port: int, ctx: ssl.SSLContext, stop: threading.Event) -> None:
        super().__init__(name=f"writer-{index}", daemon=True)
        self.index = index
        self.port = port
        self.ctx = ctx
        self.stop_event = stop
        self.histories: dict[str, ObjectHistory] = defaultdict(ObjectHistory)
        self.error: BaseException | None = None  # the failure that ended the thread
        self.rejected: list[tuple[int, bytes]] = []  # non-2xx answers, which must not happen

    def run(self) -> None:
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=10)
        try:
            n = 0
            while not self.stop_event.is_set():
                self.write_object(conn, f"w{self.index}-{n:05d}")
                n += 1
        except (OSError, http.client.HTTPException) as exc:  # the kill cuts the connection
            self.error = exc
        finally:
            conn.close()

    def send(
        self, conn: http.client.HTTPSConnection, method: str, path: str, body: dict[str, Any], ctype: str
    ) -> dict[str, Any] | None:
        conn.request(
            method,
            path,
            body=json.dumps(body).encode(),
            headers={"Content-Type": ctype, "Accept": "application/json"},
        )
        resp = conn.getresponse()
        payload = resp.read()
        if not 200 <= resp.status < 300:
            self.rejected.append((resp.status, payload))
            return None
        obj = json.loads(payload)
        assert isinstance(obj, dict)
        return obj

    def write_object(self, conn: http.client.HTTPSConnection, name: str) -> None:
        history = self.histories[name]
        rv = ""
        for seq in range(UPDATES_PER_OBJECT + 1):
            if self.stop_event.is_set():
                return
            data = {"seq": str(seq), "writer": str(self.index), "pad": "x" * (seq * 16)}
            history.attempted = seq
            if seq == 0:
                verb = "create"
                obj = self.send(
                    conn,
                    "POST",
                    COLLECTION,
                    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data},
                    "application/json",
                )
            elif seq % 2:
                verb = "update"
                body = {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": name, "resourceVersion": rv},
                    "data": data,
                }
                obj = self.send(conn, "PUT", f"{COLLECTION}/{name}", body, "application/json")
            else:
                verb = "patch"
                # Merge patch replaces map keys one by one; set them all so data is exactly `data`.
                obj = self.send(
                    conn, "PATCH", f"{COLLECTION}/{name}", {"data": data}, "application/merge-patch+json"
                )
            if obj is None:
                return
            rv = obj["metadata"]["resourceVersion"]
            # Recorded only now that the response has arrived.
            history.acks.append(Ack(name, seq, int(rv), obj["data"], verb))


def read_watch(server: ServerProcess, since: int, until: int) -> list[dict[str, Any]]:
    """The events after `since`, up to the first at or past revision `until` (or whatever arrived
    before the server ends the request after 30 s)."""
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=server.ssl_context(), timeout=35)
    events: list[dict[str, Any]] = []
    try:
        conn.request("GET", f"{COLLECTION}?watch=true&resourceVersion={since}&timeoutSeconds=30")
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        while line := resp.readline():
            if not line.strip():
                continue
            event = json.loads(line)
            events.append(event)
            if int(event["object"]["metadata"].get("resourceVersion", 0)) >= until:
                break
    finally:
        conn.close()
    return events


def list_objects(server: ServerProcess) -> dict[str, dict[str, Any]]:
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=server.ssl_context(), timeout=30)
    try:
        conn.request("GET", COLLECTION)
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200, body
    finally:
        conn.close()
    return {item["metadata"]["name"]: item for item in json.loads(body)["items"]}


def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start_server(data_dir)
    try:
        stop = threading.Event()
        ctx = server.ssl_context()
        writers = [Writer(i, server.port, ctx, stop) for i in range(WRITERS)]
        for w in writers:
            w.start()
        time.sleep(LOAD_SECONDS)
        server.process.kill()  # SIGKILL while the writers are still going
        server.process.wait(timeout=10)
        stop.set()
        for w in writers:
            w.join(timeout=15)
            assert not w.is_alive(), f"{w.name} hung after the kill"
    finally:
        if server.process.poll() is None:
            server.process.kill()

    for w in writers:
        assert w.rejected == [], f"{w.name}: writes rejected under load: {w.rejected[:3]}"
    histories = {name: h for w in writers for name, h in w.histories.items()}
    acks = [a for h in histories.values() for a in h.acks]
    assert len(acks) >= 40, f"too little load to mean anything: {len(acks)} acknowledged writes"
    # The kill, not a writer's own failure, must be what ended the load.
    assert all(w.error is not None for w in writers)

    restarted = start_server(data_dir, port=server.port)
    try:
        stored = list_objects(restarted)
        for name, history in histories.items():
            if not history.acks:
                continue  # only the create was in flight: it may or may not have landed
            last = history.acks[-1]
            assert name in stored, f"acknowledged {last} is gone after the crash"
            obj = stored[name]
            stored_seq = int(obj["data"]["seq"])
            stored_rv = int(obj["metadata"]["resourceVersion"])
            if history.attempted == last.seq:
                # Nothing was in flight for this object: it must be exactly the acknowledged write.
                assert (stored_rv, obj["data"]) == (last.rv, last.data), name
            else:
                # The next write was in flight at the kill: it may or may not have landed.
                assert stored_seq in (last.seq, history.attempted), (name, obj["data"], last)
                if stored_seq == last.seq:
                    assert (stored_rv, obj["data"]) == (last.rv, last.data), name
                else:
                    assert stored_rv > last.rv, name

        # Resume a watch from before most of the load and replay history across the crash.
        start = min(a.rv for a in acks)
        newest = max(int(obj["metadata"]["resourceVersion"]) for obj in stored.values())
        events = read_watch(restarted, start, until=newest)
        assert events, "no events replayed after the restart"
        assert all(e["type"] in ("ADDED", "MODIFIED", "DELETED") for e in events), events[:3]
        rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
        assert rvs == sorted(rvs) and len(set(rvs)) == len(rvs), "watch replay out of order or repeated"
        assert rvs[0] > start

        replayed: dict[str, list[tuple[int, str, dict[str, str]]]] = defaultdict(list)
        for event in events:
            obj = event["object"]
            replayed[obj["metadata"]["name"]].append(
                (int(obj["metadata"]["resourceVersion"]), event["type"], obj.get("data", {}))
            )
        for name, history in histories.items():
            seen = {rv: (kind, data) for rv, kind, data in replayed.get(name, [])}
            for ack in history.acks:
                if ack.rv <= start:
                    continue
                assert ack.rv in seen, f"acknowledged {ack} missing from the replay after the crash"
                kind, data = seen[ack.rv]
                assert kind == ("ADDED" if ack.verb == "create" else "MODIFIED"), (ack, kind)
                assert data == ack.data, ack
            # The replay ends where the store ended.
            if name in stored:
                assert replayed[name][-1][0] == int(stored[name]["metadata"]["resourceVersion"])
    finally:
        code = restarted.stop()
    assert code == 0, restarted.log()[-4000:]
