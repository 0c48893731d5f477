"""The published contract of the ingest API (also in streams/schemas/openapi.json)."""

from __future__ import annotations

from streams.contract.records import SCHEMA_VERSION, FencePing, MeterReading
from streams.contract.schema import json_schema
from streams.edge.ingest.feeds import CAMARA_PATH, FENCES, METERS, Feed


def _row_schema(feed: Feed) -> dict:
    record = json_schema(feed.record)
    props = {}
    for name, shape in feed.row_shapes().items():
        props[name] = record["properties"].get(name) or shape.json()
    if "ts" in props:
        props["ts"] = {"anyOf": [{"type": "number"}, {"type": "string", "format": "date-time"}],
                       "description": "UTC epoch seconds, or ISO 8601 with a time zone"}
    if "device_id" in props:
        props["device_id"] = {"type": "string", "description": "the device's id in clear (MSISDN, IMSI or "
                              "terminal id); ShaftWatch replaces it with a keyed-hash pseudonym on arrival"}
    required = [r for r in record["required"] if r in props] + [k for k in feed.extra_fields]
    return {"type": "object", "title": f"{feed.record.__name__}Row", "description": record["description"],
            "properties": props, "required": required, "additionalProperties": False}


def openapi() -> dict:
    """The published contract of the ingest API (also in streams/schemas/openapi.json)."""
    result = {
        "type": "object",
        "properties": {
            "source_id": {"type": "string"},
            "accepted": {"type": "integer"},
            "rejected": {"type": "integer"},
            "errors": {"type": "array", "items": {"type": "object", "properties": {
                "row": {"type": "integer", "description": "1-based row number in the request"},
                "reason": {"type": "string"}}}},
            "acknowledged": {"type": "integer", "description": "CAMARA only: subscription lifecycle events "
                                                               "(started, updated, ended) taken note of"},
        },
        "required": ["accepted", "rejected", "errors"],
    }
    paths = {}
    for feed in (METERS, FENCES):
        row = f"#/components/schemas/{feed.record.__name__}Row"
        paths[feed.path] = {"post": {
            "summary": f"Push a batch of {feed.name} rows",
            "description": "Each row is validated on its own; good rows go to Kafka, bad rows to dead-letters. "
                           "Re-sending the same rows is safe (idempotent on key and time).",
            "security": [{"bearer": []}],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": {"oneOf": [
                    {"type": "array", "items": {"$ref": row}},
                    {"type": "object", "properties": {feed.rows_key: {"type": "array", "items": {"$ref": row}}},
                     "required": [feed.rows_key]}]}},
                "text/csv": {"schema": {"type": "string", "description": "a header row naming the row fields, "
                                        "then one row per line; empty cells are null"}},
            }},
            "responses": {
                "200": {"description": "counts and the reason of every rejected row",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IngestResult"}}}},
                "400": {"description": "the body cannot be read as rows"},
                "401": {"description": "missing or unknown token"},
                "403": {"description": "the token's source may not push this feed"},
                "413": {"description": "too many rows in one request"},
                "415": {"description": "not JSON or CSV"},
            },
        }}
    paths[CAMARA_PATH] = {"post": {
        "summary": "Push CAMARA Device Geofencing notifications (CloudEvents)",
        "description": "The sink of the GSMA CAMARA Device Geofencing subscriptions that `shaftwatch fences "
                       "publish` makes: one CloudEvent or a JSON array of them. area-entered / area-left become "
                       "fence rows (the circle's centre stands for the position, its radius for the accuracy); "
                       "one without a device object is placed by its subscriptionId (whose pseudonym, which "
                       "zone), and refused if that subscription is not one of ours. subscription-started, "
                       "-updated and -ended are acknowledged and recorded; an ended subscription we did not "
                       "delete is shown to ops as a fence gone silent. Answered like the plain fence endpoint, "
                       "with the count of acknowledged lifecycle events.",
        "security": [{"bearer": []}],
        "requestBody": {"required": True, "content": {
            "application/cloudevents+json": {"schema": {"type": "object"}},
            "application/cloudevents-batch+json": {"schema": {"type": "array"}},
        }},
        "responses": paths[FENCES.path]["post"]["responses"],
    }}
    return {
        "openapi": "3.1.0",
        "info": {"title": "ShaftWatch ingest API", "version": f"{SCHEMA_VERSION}.0",
                 "description": "For partners that push data: the power utility (meter readings) and mobile "
                                "carriers (fence pings). Ask the county for a token."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {f"{MeterReading.__name__}Row": _row_schema(METERS), f"{FencePing.__name__}Row":
                        _row_schema(FENCES), "IngestResult": result},
        },
    }
