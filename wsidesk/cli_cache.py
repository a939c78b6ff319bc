"""`wsidesk cache list|prune|relink`: the result cache of a data folder (see wsidesk/core/cache)."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def duration(text: str) -> float:
    """'30d', '12h', '90m', '45s' or plain seconds -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text.lower())
    if not match:
        msg = f"{text!r} is not a duration; write it like 30d, 12h, 90m or 45s"
        raise argparse.ArgumentTypeError(msg)
    return float(match[1]) * DURATION_UNITS[match[2] or "s"]


def size(text: str) -> int:
    """'10G', '500M', '2T', '123' (bytes) -> bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)i?b?\s*", text.lower())
    if not match:
        msg = f"{text!r} is not a size; write it like 10G, 500M or 2T"
        raise argparse.ArgumentTypeError(msg)
    return int(float(match[1]) * SIZE_UNITS[match[2]])


def add_parser(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    cache = sub.add_parser("cache", help="list, prune or relink reusable job results")
    cache.add_argument("action", choices=["list", "prune", "relink"])
    cache.add_argument("slide", nargs="?", type=Path, metavar="SLIDE", help="relink: the slide at its new place")
    cache.add_argument("--older-than", type=duration, metavar="AGE", help="prune: entries unused for AGE (30d, 12h)")
    cache.add_argument("--max-size", type=size, metavar="SIZE", help="prune: keep at most SIZE (10G, 500M)")
    common(cache)


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def cmd_cache(args: argparse.Namespace, *, data_dir: Path, profile: str) -> int:
    from wsidesk.core.cache import ResultCache

    cache = ResultCache(data_dir / "cache")
    try:
        if args.action == "list":
            return _list(cache, profile, as_json=args.json)
        if args.action == "prune":
            if args.older_than is None and args.max_size is None:
                print("wsidesk cache prune: error: give --older-than AGE and/or --max-size SIZE", file=sys.stderr)
                return 2
            dropped = cache.prune(older_than=args.older_than, max_size=args.max_size)
            left = cache.entries()
            if args.json:
                print(json.dumps({"pruned": [e.fingerprint for e in dropped], "left": len(left)}, indent=2))
            print(
                f"pruned {len(dropped)} cached result(s) ({_human(sum(e.size for e in dropped))}); "
                f"{len(left)} left ({_human(sum(e.size for e in left))}); run folders keep their own files",
                file=sys.stderr,
            )
            return 0
        return _relink(cache, args, data_dir=data_dir, profile=profile)
    finally:
        cache.close()


def _list(cache: Any, profile: str, *, as_json: bool) -> int:
    entries = cache.entries(profile)
    if as_json:
        rows = [
            {
                "fingerprint": e.fingerprint,
                "job_type": e.job_type,
                "size": e.size,
                "files": len(e.files),
                "created": e.created,
                "last_used": e.last_used,
                "source_run": e.source_run if e.source_profile == profile else None,
                "source_job": e.source_job,
            }
            for e in entries
        ]
        print(json.dumps({"profile": profile, "entries": rows}, indent=2))
        return 0
    if not entries:
        print(f"no cached results for profile {profile!r}", file=sys.stderr)
        return 0
    print(f"{'fingerprint':14}{'job type':10}{'size':>10}  {'last used':17}source")
    for e in entries:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.last_used))
        source = f"{e.source_run}/{e.source_job}" if e.source_profile == profile else "(another profile)"
        print(f"{e.fingerprint[:12]:14}{e.job_type:10}{_human(e.size):>10}  {used:17}{source}")
    print(f"{len(entries)} result(s), {_human(sum(e.size for e in entries))}", file=sys.stderr)
    return 0


def _relink(cache: Any, args: argparse.Namespace, *, data_dir: Path, profile: str) -> int:
    from wsidesk.core.cache.moved import relink_results
    from wsidesk.core.store import Store

    if args.slide is None:
        print("wsidesk cache relink: error: give the SLIDE at its new place", file=sys.stderr)
        return 2
    slide = args.slide.expanduser().resolve()
    if not slide.is_file():
        print(f"wsidesk cache relink: error: {slide} is not a file", file=sys.stderr)
        return 2
    store = Store(data_dir)
    try:
        found = relink_results(store, cache, profile, slide)
    finally:
        store.close()
    if args.json:
        rows = [{"run_id": r.run_id, "job_id": r.job_id, "old_path": r.old_path} for r in found]
        print(json.dumps({"slide": str(slide), "relinked": rows}, indent=2))
    if not found:
        print(f"no results of profile {profile!r} were made on a slide with the content of {slide}", file=sys.stderr)
        return 1
    for r in found:
        print(f"run {r.run_id} job {r.job_id}: {r.old_path} -> {slide}", file=sys.stderr)
    return 0
