from __future__ import annotations

import os
import re

from backend.web.ids import unique_hex


def test_ids_look_like_uuid4_hex_and_do_not_repeat() -> None:
    ids = [unique_hex() for _ in range(10_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_worker_does_not_repeat_its_parents_ids() -> None:
    # Server workers are forked from one parent: each must draw its own ids.
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next ids and leave at once
        os.write(write, "".join(unique_hex() for _ in range(4)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 1024).decode()
    os.close(read)
    parent = "".join(unique_hex() for _ in range(4))
    assert len(child) == len(parent) == 128 and child != parent
