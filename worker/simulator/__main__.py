"""``python -m worker.simulator``: run the simulator until Ctrl-C or SIGTERM.

The vod token comes from ``ANYRTC_VOD_TOKEN`` only: a command-line flag would show in ``ps``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import replace
from types import FrameType
from typing import Any

from worker.simulator.config import (
    DEFAULT_APP_ID,
    DEFAULT_VOD_TOKEN,
    apply_updates,
    build_config,
)
from worker.simulator.server import SimulatorServer

__all__ = ["build_parser", "main"]


def _room_list(text: str) -> list[str]:
    return [room.strip() for room in text.split(",") if room.strip()]


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="anyrtc-simulator",
        description="Local stand-in for the anyRTC recording API (token from ANYRTC_VOD_TOKEN).",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    add("--port", type=int, default=8900, help="port (default 8900; 0 picks a free one)")
    add("--app-id", default=os.environ.get("ANYRTC_APP_ID") or DEFAULT_APP_ID)
    add("--rate-limit", type=int, default=5, help="query calls admitted per window")
    add("--rate-period", type=float, default=60.0, help="query budget window, seconds")
    add("--transcode-delay", type=float, default=5.0, help="upload to final status, seconds")
    add("--upload-delay", type=float, default=1.0, help="stop to upload, seconds")
    add("--listing-lag", type=float, default=0.0, help="upload to visible in listings, seconds")
    add("--per-user-files", type=int, default=0, help="per-user files besides the mixed one")
    add("--transcode-fail-rate", type=float, default=0.0)
    add("--callback-url", default=None, help="where finished files are posted")
    add("--callback-drop-rate", type=float, default=0.0)
    add("--callback-duplicate-rate", type=float, default=0.0)
    add(
        "--no-file-rooms",
        type=_room_list,
        default=[],
        metavar="ROOMS",
        help="comma-separated rooms whose recordings yield no file",
    )
    add(
        "--silent-rooms",
        type=_room_list,
        default=[],
        metavar="ROOMS",
        help="comma-separated rooms whose callbacks never come",
    )
    add("--error-rate", type=float, default=0.0, help="share of calls answered 501 / HTTP 500")
    add("--latency", type=float, default=0.0, help="seconds added before every answer")
    add("--jitter", type=float, default=0.0, help="up to this many random seconds more")
    add("--response-variant", default="examples", choices=("examples", "table", "seconds"))
    add("--public-url", default=None, help="base of download URLs (default: bound address)")
    add("--seed", type=int, default=None, help="fix the RNG for reproducible runs")
    add(
        "--allow-ip",
        action="extend",
        nargs="+",
        default=None,
        metavar="IP",
        help="start/stop IP allowlist (default 127.0.0.1 ::1); networks like 10.0.0.0/8 too",
    )
    add("--log-level", default="INFO")
    return parser


def _config_from(args: argparse.Namespace) -> dict[str, Any]:
    token = os.environ.get("ANYRTC_VOD_TOKEN") or DEFAULT_VOD_TOKEN
    overrides: dict[str, Any] = {
        "rate_limit": args.rate_limit,
        "rate_period_s": args.rate_period,
        "transcode_delay_s": args.transcode_delay,
        "upload_delay_s": args.upload_delay,
        "listing_lag_s": args.listing_lag,
        "per_user_files": args.per_user_files,
        "transcode_fail_rate": args.transcode_fail_rate,
        "callback_url": args.callback_url,
        "callback_drop_rate": args.callback_drop_rate,
        "callback_duplicate_rate": args.callback_duplicate_rate,
        "no_file_rooms": args.no_file_rooms,
        "silent_rooms": args.silent_rooms,
        "error_rate": args.error_rate,
        "latency_s": args.latency,
        "jitter_s": args.jitter,
        "response_variant": args.response_variant,
        "public_url": args.public_url,
        "seed": args.seed,
    }
    if args.allow_ip:
        overrides["allowed_ips"] = args.allow_ip
    return {"overrides": overrides, "apps": {args.app_id: token}}


def main(argv: Sequence[str] | None = None) -> int:
    """Run until interrupted; return the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = _config_from(args)
    try:
        base = replace(build_config(**settings["overrides"]), apps={})
        config = apply_updates(base, {"apps": settings["apps"]})
        server = SimulatorServer(config, host=args.host, port=args.port)
    except (ValueError, OSError) as exc:
        print(f"anyrtc-simulator: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    server.start()
    print(
        f"anyRTC simulator listening on {server.base_url} (record API {server.record_api_url}, "
        f"VOD API {server.vod_api_url}, app {args.app_id})",
        flush=True,
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
