"""The console API's OpenAPI document: every route the real server registers under /api/ is
in it (and nothing else), it is valid OpenAPI 3.1, it is published as
streams/schemas/console-openapi.json and the real server serves it without a sign-in."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from openapi_spec_validator import validate

from alerts.console.openapi import console_openapi
from streams.config import load_config
from streams.kafka.admin import ensure_topics, topic_plan
from streams.ops.server import create_web_app
from tests.helpers import REPO, isolated_config, serving

METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    monkeypatch.setenv("SHAFTWATCH_SEALING_KEY", "openapi-test-key")  # no key file made in the home directory
    return load_config(isolated_config(tmp_path, "openapi"))


def documented(document: dict) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item
            if method in METHODS}


def test_every_api_route_of_the_server_is_documented_and_nothing_else(cfg):
    app = create_web_app(cfg)
    registered = {(route.method, route.resource.canonical) for route in app.router.routes()
                  if route.method != "HEAD" and route.resource.canonical.startswith("/api/")}
    assert registered == documented(console_openapi())
    assert len(registered) == 36


def test_the_document_is_valid_openapi_3_1():
    document = console_openapi()
    assert document["openapi"].startswith("3.1")
    validate(document)
    for path, item in document["paths"].items():
        for method, op in item.items():
            assert op["summary"] and "Who may call it: " in op["description"], (method, path)
            assert any(status.startswith("2") for status in op["responses"]), (method, path)
            named = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert named == {part[1:-1] for part in path.split("/") if part.startswith("{")}, (method, path)


def test_the_published_document_is_current():
    published = json.loads((REPO / "streams" / "schemas" / "console-openapi.json").read_text(encoding="utf-8"))
    assert published == json.loads(json.dumps(console_openapi()))


@pytest.mark.broker
def test_the_server_serves_it_without_a_sign_in(cfg, kafka_bootstrap, monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP", kafka_bootstrap)  # read when the server starts
    asyncio.run(ensure_topics(kafka_bootstrap, topic_plan(cfg)))

    async def fetch() -> tuple[int, dict]:
        async with serving(cfg) as base, aiohttp.ClientSession() as session:
            async with session.get(f"{base}/api/openapi.json") as response:
                return response.status, await response.json()

    status, served = asyncio.run(fetch())
    assert status == 200
    assert served == json.loads(json.dumps(console_openapi()))
