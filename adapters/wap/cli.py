"""`hub wap run | lint | schema | hash-password`: the WAP endpoint's command line (wired in hub/cli.py).

Owns: running the endpoint until SIGTERM/SIGINT, checking config/wap.yaml, writing its JSON
schema, and printing the SHA-256 of a client secret read from stdin (never from argv, which
other users can see in the process list).
Must not: hold logic beyond that; exit codes: 0 fine, 1 problems.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from adapters.wap.config import hash_password, load_wap_config, schema
from adapters.wap.service import WapEndpoint
from hub import logs
from hub.settings import Settings
from protocols.errors import ConfigError


def _path(args, settings: Settings) -> Path:
    return Path(args.config) if getattr(args, "config", None) else Path(settings.config_dir) / "wap.yaml"


def main(args, settings: Settings) -> int:
    if args.wap_command == "schema":
        text = schema()
        if args.output:
            Path(args.output).write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
        return 0
    if args.wap_command == "hash-password":
        try:
            print(hash_password(sys.stdin.readline().rstrip("\n")))
        except ValueError as exc:
            print(f"hub wap hash-password: {exc}", file=sys.stderr)
            return 1
        return 0
    try:
        config = load_wap_config(_path(args, settings))
    except ConfigError as exc:
        print(f"hub wap: configuration refused:\n{exc}", file=sys.stderr)
        return 1
    if args.wap_command == "lint":
        print(f"ok: {len(config.clients)} client(s), listening on {config.host}:{config.port}")
        return 0
    logs.setup(args.log_level)
    endpoint = WapEndpoint(settings, config).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    endpoint.stop()
    return 0
