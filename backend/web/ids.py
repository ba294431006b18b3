"""Unique ids for per-request hot paths (request ids, spooled audit event keys).

`uuid.uuid4()` reads the kernel's random source on every call (a system call, about 2 us
here); a cached result read needs two of them. These ids only have to be unique, not secret,
so 128 bits of the `random` module's generator do (0.3 us): it is reseeded in every forked
child, and 128 random bits make a collision as unlikely as with uuid4. Never use this for
anything a caller could abuse by predicting it (tokens, keys, nonces): use `secrets`.
"""

from __future__ import annotations

import random


def unique_hex() -> str:
    """32 lowercase hex digits, like `uuid.uuid4().hex`."""
    return f"{random.getrandbits(128):032x}"  # noqa: S311 - unique, not secret (see above)
