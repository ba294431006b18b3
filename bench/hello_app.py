"""The ceiling: a bare FastAPI hello-world, served by bench/capacity.py like MedSight."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def hello() -> dict[str, str]:
    return {"hello": "world"}
