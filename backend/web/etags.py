"""Conditional GET: does a client's If-None-Match already name the current ETag?"""

from __future__ import annotations


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """True when ``If-None-Match`` lists ``etag`` (or is ``*``): answer 304."""
    if not if_none_match:
        return False
    return etag in {tag.strip() for tag in if_none_match.split(",")} or if_none_match.strip() == "*"
