"""`hub nms run | lint | schema | create-table`: the NMS feed's command line (wired in hub/cli.py).

Owns: running the feed until SIGTERM/SIGINT, checking config/nms.yaml, writing its JSON
schema, and creating the interface table for tests and demos (in production the NMS owns it).
Must not: hold logic beyond that; exit codes: 0 fine, 1 problems.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from sqlalchemy import create_engine

from adapters.nms.config import load_nms_config, schema
from adapters.nms.feed import NmsFeed
from adapters.nms.table import FeedTables
from hub import logs
from hub.settings import Settings
from protocols.errors import ConfigError


def main(args, settings: Settings) -> int:
    if args.nms_command == "schema":
        text = schema()
        if args.output:
            Path(args.output).write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
        return 0
    path = Path(args.config) if args.config else Path(settings.config_dir) / "nms.yaml"
    try:
        config = load_nms_config(path)
    except ConfigError as exc:
        print(f"hub nms: configuration refused:\n{exc}", file=sys.stderr)
        return 1
    if args.nms_command == "lint":
        print(f"ok: table {config.table}, state table {config.state_table}, "
              f"{len(config.sms.mobiles)} on-duty number(s)")
        return 0
    if args.nms_command == "create-table":
        engine = create_engine(config.url())
        FeedTables(engine, config.table, config.state_table).create(interface=True)
        engine.dispose()
        return 0
    logs.setup(args.log_level)
    feed = NmsFeed(settings, config)
    signal.signal(signal.SIGTERM, lambda *_: feed.stop())
    signal.signal(signal.SIGINT, lambda *_: feed.stop())
    thread = threading.Thread(target=feed.run, name="nms-feed")
    thread.start()
    thread.join()
    feed.close()
    return 0
