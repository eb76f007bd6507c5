"""Restores, resets and imports back to back, their callers hanging up or cancelling half-way,
while another client reads and writes. Each swap pauses the database; none may leave it
paused, and the other client must get every answer (found by the fuzzer: a read waiting for
ever after a cancelled restore)."""

from __future__ import annotations

import json
import random
import threading
import time

from bench.fuzz_run import crashes, handler_failures
from tests.helpers import DaemonProcess, RawConnection

SECONDS = 4.0
SWAPPERS = 3


def swapper(daemon: DaemonProcess, seed: int, until: float, sent: list[str]) -> None:
    rng = random.Random(seed)
    backups = [b["name"] for b in daemon.call("db.backups")["items"] if b["ok"]]
    export = daemon.call("db.export")["path"]
    request_id = 0
    while time.monotonic() < until:
        method, params = rng.choice(
            [
                ("db.restore", {"name": rng.choice(backups)}),
                ("db.reset", {"confirm": True}),
                ("db.import", {"path": export}),
            ]
        )
        request_id += 1
        conn = RawConnection(daemon.socket_path, timeout=60.0)
        try:
            body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
            conn.send(json.dumps(body).encode())
            how = rng.choice(["wait", "hang up", "cancel"])
            if how == "hang up":
                time.sleep(rng.uniform(0.0, 0.03))
            elif how == "cancel":
                time.sleep(rng.uniform(0.0, 0.03))
                cancel = {"jsonrpc": "2.0", "method": "$/cancelRequest",
                          "params": {"id": request_id}}  # fmt: skip
                conn.send(json.dumps(cancel).encode())
            if how != "hang up":
                reply = conn.read_frame()
                assert reply is not None, f"{method}: the connection closed without a reply"
                answer = json.loads(reply)
                assert "result" in answer or answer["error"]["code"] != -32603, answer
            sent.append(f"{method} ({how})")
        finally:
            conn.close()


def test_swaps_cancelled_half_way_never_leave_the_database_paused(
    daemon: DaemonProcess,
) -> None:
    for i in range(3):
        daemon.call("kv.set", {"namespace": "swap", "key": f"k{i}", "value": i})
        daemon.call("db.backup")
    until = time.monotonic() + SECONDS
    sent: list[str] = []
    errors: list[BaseException] = []

    def run(seed: int) -> None:
        try:
            swapper(daemon, seed, until, sent)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(seed,)) for seed in range(SWAPPERS)]
    for thread in threads:
        thread.start()
    answered = 0
    with daemon.client() as client:  # a 30 s timeout per call: a paused database fails it
        while time.monotonic() < until or any(t.is_alive() for t in threads):
            client.call("kv.set", {"namespace": "other", "key": "n", "value": answered})
            client.call("kv.get", {"namespace": "other", "key": "n"})
            client.call("events.list", {"limit": 1})
            answered += 1
    for thread in threads:
        thread.join()
    assert not errors, errors[0]
    assert len(sent) >= 10, sent
    assert answered > 10
    assert daemon.call("db.check")["ok"] is True
    assert not handler_failures(daemon.log())
    assert not crashes(daemon.log())
