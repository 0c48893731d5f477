"""``shaftwatch``: the one command-line entry point.

    shaftwatch run                 everything on one machine (local broker, worker, server, demo feeds)
    shaftwatch worker              one Faust worker (add more to share the partitions)
    shaftwatch server              the HTTP server: health, metrics, ingest APIs, alert console
    shaftwatch broker [--nodes 3]  only the local Kafka broker (or a local cluster), in the foreground
    shaftwatch topics              create the topics on the configured cluster
    shaftwatch gateway             camera gateway: configured cameras -> frames
    shaftwatch demo cameras|meters|fences   one demo feed
    shaftwatch config check [DIR]  validate configs/ (or DIR) and say what is wrong
    shaftwatch users add|list|password|disable   people's accounts for the console
    shaftwatch ledger export|import FILE   the shaft ledger as CSV
    shaftwatch report weekly [--week 2026-W49] [--out DIR] [--send]   the weekly ledger list (XLSX, CSV)
    shaftwatch watchlist hash      clear ids (stdin) -> pseudonyms, for a watchlist file
    shaftwatch fences publish      the watchlist's numbers (stdin) -> the carriers' CAMARA geofencing subscriptions
    shaftwatch fences export       the zones and their warning SMS as GeoJSON, for the carriers' fence systems
    shaftwatch model fetch|check|quantize   provision detector weights for an air-gapped site
    shaftwatch eval vision DIR     person recall and precision by height on labelled footage (MOT format)
    shaftwatch schemas [--check]   write (or check) the published JSON Schemas and OpenAPI documents
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import threading
from pathlib import Path

from streams.config import ConfigError, config_dir_from_env, config_json_schema, load_config
from streams.logs import setup_logging
from streams.ops import DEMO_FEEDS
from streams.ops.processes import stop_on_signals

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"


def _config_or_exit(args):
    try:
        return load_config(args.config)
    except ConfigError as exc:
        print(f"shaftwatch: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


# --------------------------------------------------------------------------- commands


def cmd_config_check(args) -> int:
    if args.directory is not None:  # `shaftwatch config check DIR`, as `promtool check config FILE`
        args.config = args.directory
    cfg = _config_or_exit(args)
    print(f"{cfg.config_dir}: OK — {len(cfg.sites.sites)} sites, {len(cfg.cameras.cameras)} cameras, "
          f"{len(cfg.meters.meters)} meters, {len(cfg.fences.zones)} fence zones")
    return 0


def _schema_files() -> dict[str, dict]:
    from streams.contract.schema import PUBLISHED_RECORDS, json_schema

    files = {f"{cls.__name__}.json": json_schema(cls) for cls in PUBLISHED_RECORDS}
    for filename, schema in config_json_schema().items():
        files[f"config.{filename.removesuffix('.yaml')}.json"] = schema
    from streams.edge.ingest.openapi import openapi

    files["openapi.json"] = openapi()
    from alerts.console.openapi import console_openapi

    files["console-openapi.json"] = console_openapi()
    return files


def cmd_schemas(args) -> int:
    stale = []
    for name, schema in _schema_files().items():
        path = SCHEMA_DIR / name
        text = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            SCHEMA_DIR.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"stale schemas in {SCHEMA_DIR}: {', '.join(stale)}; run `shaftwatch schemas`", file=sys.stderr)
        return 1
    print(f"schemas {'up to date' if args.check else 'written'} in {SCHEMA_DIR}")
    return 0


def cmd_worker(args) -> int:
    if args.config:
        os.environ["SHAFTWATCH_CONFIG_DIR"] = str(args.config)
    _config_or_exit(args)
    from streams.worker.run import run_worker

    run_worker()
    return 0


def cmd_server(args) -> int:
    cfg = _config_or_exit(args)
    setup_logging(cfg.runtime.log_level)
    from streams.ops.server import serve

    asyncio.run(serve(cfg, port=args.port))
    return 0


def cmd_topics(args) -> int:
    cfg = _config_or_exit(args)
    setup_logging(cfg.runtime.log_level)
    from streams.kafka.admin import ensure_topics, topic_plan

    created = asyncio.run(ensure_topics(cfg.bootstrap_servers, topic_plan(cfg), security=cfg.kafka_security))
    print(f"created: {', '.join(created) or 'none (all exist)'}")
    return 0


def cmd_broker(args) -> int:
    cfg = _config_or_exit(args)
    setup_logging(cfg.runtime.log_level)
    from streams.kafka.admin import ensure_topics, topic_plan
    from streams.ops.local_broker import LocalKafkaBroker, LocalKafkaCluster, fetch_jars

    if args.fetch_only:
        print(f"Kafka jars in {fetch_jars(cfg.runtime.kafka.local)}")
        return 0
    stop = threading.Event()
    stop_on_signals(stop)
    if args.nodes > 1:
        # A cluster on this machine: topics replicated as in a county (min(3, nodes) copies).
        kafka = LocalKafkaCluster(cfg.runtime.kafka.local, cfg.data_dir / f"kafka-{args.nodes}-nodes", args.nodes)
        replication = kafka.replication
    else:
        kafka = LocalKafkaBroker(cfg.runtime.kafka.local, cfg.data_dir / "kafka")
        replication = None
    with kafka:
        asyncio.run(ensure_topics(kafka.bootstrap, topic_plan(cfg, replication=replication)))
        print(f"Kafka is up on {kafka.bootstrap}; Ctrl-C stops it", flush=True)
        if args.nodes > 1:
            print(f"  {args.nodes} nodes, topics replicated {replication} times, min.insync.replicas "
                  f"{kafka.min_insync_replicas}; for workers: KAFKA_BOOTSTRAP={kafka.bootstrap} and "
                  f"app.topics.replication: {replication} in shaftwatch.yaml", flush=True)
        stop.wait()
    return 0


async def _with_ops(component: str, cfg, port: int | None, coro):
    """Run a gateway or feeder with its /health and /metrics beside it (port 0: none)."""
    from streams.ops.server import start_ops_server

    runner = await start_ops_server(component, cfg.runtime.http.host, port) if port else None
    try:
        return await coro
    finally:
        if runner is not None:
            await runner.cleanup()


def cmd_demo(args) -> int:
    cfg = _config_or_exit(args)
    setup_logging(cfg.runtime.log_level)
    from streams.ops import demo

    feeder = {"cameras": demo.run_camera_feeder, "meters": demo.run_meter_feeder,
              "fences": demo.run_fence_feeder}[args.feed]
    return asyncio.run(_with_ops(f"demo-{args.feed}", cfg, args.ops_port,
                                 feeder(cfg, theft_site=args.theft_site, theft_after_s=args.theft_after,
                                        duration_s=args.duration)))


def cmd_gateway(args) -> int:
    cfg = _config_or_exit(args)
    setup_logging(cfg.runtime.log_level)
    from streams.contract.topics import FRAMES
    from streams.edge.camera_gateway import CameraStream, open_reader, run_gateway
    from streams.edge.frame_spool import FrameSpool

    wanted = set(args.camera or [c.id for c in cfg.cameras.cameras if not c.source.startswith("demo:")])
    unknown = wanted - {c.id for c in cfg.cameras.cameras}
    if unknown:
        print(f"shaftwatch: unknown camera(s) {', '.join(sorted(unknown))} (not in cameras.yaml)", file=sys.stderr)
        return 2
    cameras = [c for c in cfg.cameras.cameras if c.id in wanted]
    if not cameras:
        print("shaftwatch: no camera to serve (demo: cameras are played by `shaftwatch demo cameras`)",
              file=sys.stderr)
        return 2
    settings = cfg.cameras.gateway
    spool_dir = cfg.data_dir / settings.spool_dir  # an absolute spool_dir stays as it is

    def spool_for(c):
        if settings.spool_max_mb <= 0:
            return None
        return FrameSpool(spool_dir, c.id, c.site_id, int(settings.spool_max_mb * 1_000_000), settings.spool_max_age_s)

    streams = [CameraStream(c, (lambda c=c: open_reader(c.source, c.fps)), topic=cfg.topic(FRAMES.name),
                            spool=spool_for(c)) for c in cameras]

    async def main() -> None:
        stop = asyncio.Event()
        stop_on_signals(stop)
        await run_gateway(streams, cfg.bootstrap_servers, stop, cfg.kafka_security)

    asyncio.run(_with_ops("camera-gateway", cfg, args.ops_port, main()))
    return 0


def cmd_users(args) -> int:
    """People's accounts for the console. A new user, or a reset, gets a one-time password
    printed once; there is never a default password."""
    cfg = _config_or_exit(args)
    from alerts.store import AlertStore, StoreError
    from alerts.store.accounts import one_time_password

    store = AlertStore(cfg.store_url)
    store.migrate()
    by = f"shaftwatch users ({os.environ.get('USER') or 'console'})"
    try:
        if args.users_command == "list":
            for user in store.accounts.all():
                state = "disabled" if user["disabled_at"] else "active"
                print(f"{user['username']:<20} {user['role']:<7} {state:<9} {user['display_name']}")
        elif args.users_command == "disable":
            store.accounts.disable(args.username, by)
            print(f"{args.username} disabled; their sessions ended")
        else:
            password = one_time_password()
            if args.users_command == "add":
                store.accounts.add(args.username, args.role, password, by, args.display_name or "")
            else:
                store.accounts.set_password(args.username, password, by)
            print(f"{args.username}: one-time password {password}  (hand it over; it is not shown again)")
    except StoreError as exc:
        print(f"shaftwatch: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_ledger(args) -> int:
    """The shaft ledger as CSV: export it, or import a county's spreadsheet (saved as CSV)."""
    cfg = _config_or_exit(args)
    from alerts.store import AlertStore, StoreError

    store = AlertStore(cfg.store_url)
    store.migrate()
    if args.ledger_command == "export":
        text = store.ledger.export_csv()
        if args.file == "-":
            sys.stdout.write(text)
        else:
            Path(args.file).write_text("\ufeff" + text, encoding="utf-8")
            print(f"{args.file}: {len(text.splitlines()) - 1} sites")
        return 0
    try:
        result = store.ledger.import_csv(Path(args.file).read_text(encoding="utf-8-sig"),
                                         f"shaftwatch ledger import ({os.environ.get('USER') or 'console'})")
    except (OSError, StoreError) as exc:
        print(f"shaftwatch: {exc}", file=sys.stderr)
        return 1
    print(f"added {len(result['added'])}, updated {len(result['updated'])}, refused {len(result['errors'])}")
    for error in result["errors"]:
        print(f"  line {error['line']}: {error['reason']}", file=sys.stderr)
    return 1 if result["errors"] else 0


def cmd_report_weekly(args) -> int:
    """The weekly ledger list as XLSX and CSV files (and sent, with --send, as the worker does)."""
    cfg = _config_or_exit(args)
    import time as _time

    from alerts.reports import send_weekly, to_csv, to_xlsx, week_of, weekly_report
    from alerts.store import AlertStore

    store = AlertStore(cfg.store_url)
    store.migrate()
    clock = cfg.thresholds.clock()
    week = args.week or week_of(_time.time() - 7 * 86400, clock)
    try:
        report = weekly_report(store, week, clock, cfg.sites.county, cfg.sites.patrol.weekly_visits)
    except ValueError as exc:
        print(f"shaftwatch: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"ledger-{week}.xlsx").write_bytes(to_xlsx(report))
    (out / f"ledger-{week}.csv").write_text(to_csv(report), encoding="utf-8")
    print(f"{out / f'ledger-{week}.xlsx'} and .csv written")
    if args.send:
        weekly = cfg.runtime.reports.weekly
        token = os.environ.get(weekly.webhook_token_env) if weekly.webhook_token_env else None
        print(send_weekly(store, week, clock, cfg.sites.county, cfg.sites.patrol.weekly_visits, weekly.webhook_url,
                          token, weekly.mail))
    return 0


def cmd_watchlist_hash(args) -> int:
    """Clear ids (one per line) on stdin -> pseudonyms on stdout, with the system's key.
    For the police to prepare a watchlist file without handing clear ids to the system."""
    cfg = _config_or_exit(args)
    from streams.edge.pseudonyms import load_key, pseudonymize

    key = load_key(cfg.runtime.pseudonym_key_env, create=False)
    for line in sys.stdin:
        if line.strip() and not line.startswith("#"):
            print(pseudonymize(key, line.strip()))
    return 0


def cmd_fences_publish(args) -> int:
    """Create, renew and delete the carriers' CAMARA geofencing subscriptions for the clear
    numbers on stdin (never stored: the store keeps subscription id -> pseudonym)."""
    cfg = _config_or_exit(args)
    from alerts.auth import tokens_in
    from alerts.store import AlertStore
    from streams.edge.fence_publisher import FencePublisher
    from streams.edge.pseudonyms import load_key

    if cfg.fences.camara is None or not cfg.fences.camara.endpoints:
        print("shaftwatch: fences.yaml has no camara endpoints: nothing to publish to", file=sys.stderr)
        return 2
    sources = {s.id: s for s in cfg.runtime.ingest.sources}
    store = AlertStore(cfg.store_url)
    store.migrate()
    publisher = FencePublisher(
        cfg.fences, store.fence_subscriptions, load_key(cfg.runtime.pseudonym_key_env, create=False),
        api_tokens={e.carrier: os.environ.get(e.token_env, "") for e in cfg.fences.camara.endpoints},
        # While our ingest token is rotated (new,old), carriers are given the new one.
        sink_tokens={e.carrier: next(iter(tokens_in(os.environ.get(sources[e.carrier].token_env))), "")
                     for e in cfg.fences.camara.endpoints})
    report = asyncio.run(publisher.publish(sys.stdin.read().splitlines()))
    print(report.text())
    return 0 if report.ok else 1


def cmd_fences_export(args) -> int:
    """The zones with their warning SMS as GeoJSON on stdout."""
    cfg = _config_or_exit(args)
    from streams.edge.fence_publisher import zones_geojson

    print(json.dumps(zones_geojson(cfg.fences), ensure_ascii=False, indent=1))
    return 0


def cmd_model(args) -> int:
    cfg = _config_or_exit(args)
    from streams.ops import model_weights as models

    try:
        if args.model_command == "check":
            print(models.check_model(cfg.model_path))
        elif args.model_command == "quantize":
            models.quantize(cfg, args.source, args.frames, args.out)
        else:
            if bool(args.source) == bool(args.name):
                print("shaftwatch: give exactly one of --from PATH or --name WEIGHTS", file=sys.stderr)
                return 2
            models.fetch(cfg, args.source, args.name)
    except (FileNotFoundError, RuntimeError, ValueError) as exc:
        print(f"shaftwatch: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_eval_vision(args) -> int:
    cfg = _config_or_exit(args)
    from streams.ops import eval_vision

    try:
        print(eval_vision.run(cfg, args.directory, args.camera, args.profile, args.min_visibility, args.limit,
                              args.curve))
    except (FileNotFoundError, ValueError) as exc:
        print(f"shaftwatch: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_run(args) -> int:
    cfg = _config_or_exit(args)
    setup_logging(cfg.runtime.log_level)
    from streams.ops.rehearsal import prepare_rehearsal
    from streams.ops.supervisor import run_all

    if args.theft_site:
        if cfg.site(args.theft_site) is None:
            print(f"shaftwatch: unknown site {args.theft_site!r} (not in sites.yaml)", file=sys.stderr)
            return 2
        cfg = prepare_rehearsal(cfg)
    feeds = () if args.no_demo else (args.demo_feeds or DEMO_FEEDS)
    return run_all(cfg, theft_site=args.theft_site, theft_after_s=args.theft_after, demo_feeds=feeds)


# --------------------------------------------------------------------------- parser


def _demo_feeds(text: str) -> tuple[str, ...]:
    """`--demo-feeds cameras,fences` -> ("cameras", "fences"); an unknown name is refused."""
    feeds = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in feeds if name not in DEMO_FEEDS]
    if unknown or not feeds:
        raise argparse.ArgumentTypeError(f"{text!r}: give one or more of {', '.join(DEMO_FEEDS)}")
    return feeds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shaftwatch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=None,
                        help="config directory (default: $SHAFTWATCH_CONFIG_DIR or configs/)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="everything on one machine, until Ctrl-C")
    p.add_argument("--theft-site", help="site id where the demo feeds stage a night-time theft")
    p.add_argument("--theft-after", type=float, default=60.0, help="seconds before the theft starts")
    p.add_argument("--no-demo", action="store_true", help="do not start the demo feeds")
    p.add_argument("--demo-feeds", type=_demo_feeds, default=None, metavar="LIST",
                   help=f"which demo feeds to start, comma-separated (default: {','.join(DEMO_FEEDS)}); "
                        "e.g. cameras,fences where the utility pushes real readings")
    p.set_defaults(func=cmd_run)

    sub.add_parser("worker", help="one Faust worker").set_defaults(func=cmd_worker)

    p = sub.add_parser("server", help="the HTTP server: health, metrics, ingest APIs, alert console")
    p.add_argument("--port", type=int, default=None)
    p.set_defaults(func=cmd_server)

    p = sub.add_parser("broker", help="only the local Kafka broker, in the foreground")
    p.add_argument("--fetch-only", action="store_true", help="fetch the Kafka jars from Maven Central and exit")
    p.add_argument("--nodes", type=int, default=1, choices=range(1, 6), metavar="N",
                   help="KRaft nodes on this machine (1..5; 3 is a county's cluster: replication 3, min ISR 2)")
    p.set_defaults(func=cmd_broker)
    sub.add_parser("topics", help="create the topics on the configured cluster").set_defaults(func=cmd_topics)

    p = sub.add_parser("gateway", help="camera gateway: configured cameras -> frames")
    p.add_argument("--camera", action="append", help="camera id (repeat); default: every non-demo camera")
    p.add_argument("--ops-port", type=int, default=6080, help="port for /health and /metrics (0: none)")
    p.set_defaults(func=cmd_gateway)

    p = sub.add_parser("demo", help="one demo feed")
    p.add_argument("--ops-port", type=int, default=0, help="port for /health and /metrics (0: none)")
    p.add_argument("feed", choices=DEMO_FEEDS)
    p.add_argument("--theft-site")
    p.add_argument("--theft-after", type=float, default=60.0)
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("config", help="configuration tools")
    csub = p.add_subparsers(dest="config_command", required=True)
    c = csub.add_parser("check", help="validate the config files (of DIR, or of --config / $SHAFTWATCH_CONFIG_DIR)")
    c.add_argument("directory", nargs="?", type=Path, metavar="DIR", help="the config directory to check")
    c.set_defaults(func=cmd_config_check)

    p = sub.add_parser("model", help="detector weights: provision and check")
    msub = p.add_subparsers(dest="model_command", required=True)
    f = msub.add_parser("fetch", help="copy (--from) or download (--name) weights into the data dir")
    f.add_argument("--from", dest="source", help="a weights file (.pt or .onnx) you have")
    f.add_argument("--name", help="standard ultralytics weights to download, e.g. yolo11n.pt (needs a network)")
    f.set_defaults(func=cmd_model)
    msub.add_parser("check", help="load the configured model and run it once").set_defaults(func=cmd_model)
    q = msub.add_parser("quantize", help="an int8 copy of an ONNX model, calibrated on the cameras' pictures")
    q.add_argument("--frames", action="append", required=True, metavar="PATH",
                   help="a video or a folder of pictures from the cameras (repeatable; day and night, "
                        "people and vehicles)")
    q.add_argument("--from", dest="source", help="the ONNX model (default: the configured model_path)")
    q.add_argument("--out", help="where to write it (default: <data_dir>/models/<name>-int8.onnx)")
    q.set_defaults(func=cmd_model)

    p = sub.add_parser("users", help="people's accounts for the console")
    usub = p.add_subparsers(dest="users_command", required=True)
    u = usub.add_parser("add", help="a new user with a one-time password")
    u.add_argument("username")
    u.add_argument("--role", required=True, choices=["patrol", "ops", "admin"])
    u.add_argument("--display-name")
    u.set_defaults(func=cmd_users)
    usub.add_parser("list", help="every user, role and state").set_defaults(func=cmd_users)
    for name, help_text in (("password", "a new one-time password (ends the user's sessions)"),
                            ("disable", "no more sign-ins (ends the user's sessions)")):
        u = usub.add_parser(name, help=help_text)
        u.add_argument("username")
        u.set_defaults(func=cmd_users)

    p = sub.add_parser("ledger", help="the shaft ledger (台账) as CSV")
    lsub = p.add_subparsers(dest="ledger_command", required=True)
    for name, help_text in (("export", "write the ledger as CSV ('-': to stdout)"),
                            ("import", "load a county's spreadsheet saved as CSV (the export's columns)")):
        ledger = lsub.add_parser(name, help=help_text)
        ledger.add_argument("file")
        ledger.set_defaults(func=cmd_ledger)

    p = sub.add_parser("report", help="reports for the county office")
    rsub = p.add_subparsers(dest="report_command", required=True)
    r = rsub.add_parser("weekly", help="the weekly ledger list (台账清单) as XLSX and CSV")
    r.add_argument("--week", help="ISO week, e.g. 2026-W49 (default: last week)")
    r.add_argument("--out", default=".", help="directory for the files")
    r.add_argument("--send", action="store_true", help="also send it as configured (reports.weekly)")
    r.set_defaults(func=cmd_report_weekly)

    p = sub.add_parser("eval", help="measure detection on labelled footage")
    esub = p.add_subparsers(dest="eval_command", required=True)
    e = esub.add_parser("vision", help="person recall and precision by height through the camera pipeline",
                        description="DIR holds img1/ (pictures in capture order) and gt/gt.txt (MOT ground truth)")
    e.add_argument("directory", type=Path, metavar="DIR")
    e.add_argument("--camera", help="use this camera's zones and masks (default: the whole picture counts people)")
    e.add_argument("--profile", choices=["auto", "day", "night"], default="auto",
                   help="thresholds: day, night, or auto (the night profile for pictures seen as infrared)")
    e.add_argument("--min-visibility", type=float, default=0.5,
                   help="people less visible than this (MOT visibility column) are neither hits nor misses")
    e.add_argument("--limit", type=int, default=None, help="only the first N frames")
    e.add_argument("--curve", action="store_true",
                   help="also print precision/recall by min_score and by the tracker threshold (for calibrating)")
    e.set_defaults(func=cmd_eval_vision)

    p = sub.add_parser("watchlist", help="watchlist tools")
    wsub = p.add_subparsers(dest="watchlist_command", required=True)
    wsub.add_parser("hash", help="clear ids on stdin -> pseudonyms on stdout").set_defaults(func=cmd_watchlist_hash)

    p = sub.add_parser("fences", help="the carriers' side of the fence")
    fsub = p.add_subparsers(dest="fences_command", required=True)
    fsub.add_parser("publish", help="clear numbers on stdin -> CAMARA geofencing subscriptions at each carrier "
                                    "(created, renewed before expiry, deleted when left out)"
                    ).set_defaults(func=cmd_fences_publish)
    fsub.add_parser("export", help="the zones and their warning SMS as GeoJSON").set_defaults(func=cmd_fences_export)

    p = sub.add_parser("schemas", help="write the JSON Schemas of records and config files")
    p.add_argument("--check", action="store_true", help="fail if the published schemas are stale")
    p.set_defaults(func=cmd_schemas)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.config is None:
        args.config = config_dir_from_env()
    logging.captureWarnings(True)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
