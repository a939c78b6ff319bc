"""Command line: `wsidesk run|validate|demo-slide|profiles ...` (see CONTRACT.md)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wsidesk import __version__
from wsidesk.core.errors import WsideskError
from wsidesk.core.profiles import DEFAULT_PROFILE, check_profile_name

logger = logging.getLogger("wsidesk")

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130


def _default_workers() -> int:
    return max(2, min(8, os.cpu_count() or 2))


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, help="data folder (else $WSIDESK_DATA_DIR, else the user data folder)")
    parser.add_argument("--profile", default=None, help=f"profile to act as (default {DEFAULT_PROFILE!r})")
    parser.add_argument("--json", action="store_true", help="print the final summary as JSON on stdout")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsidesk", description=__doc__)
    parser.add_argument("--version", action="version", version=f"wsidesk {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run workflows headless, then exit")
    run.add_argument("workflows", nargs="*", type=Path, metavar="WF.yaml")
    run.add_argument("--resume", metavar="RUN_ID", action="append", default=[], help="continue an interrupted run")
    run.add_argument("--workers", type=int, default=_default_workers(), help="global concurrent jobs")
    run.add_argument("--max-active-profiles", type=int, default=3, help="profiles running work at once")
    _common(run)

    validate = sub.add_parser("validate", help="check workflows without running anything")
    validate.add_argument("workflows", nargs="+", type=Path, metavar="WF.yaml")
    _common(validate)

    demo = sub.add_parser("demo-slide", help="write a synthetic H&E slide (+ .truth.json)")
    demo.add_argument("out", type=Path, metavar="OUT.svs")
    demo.add_argument("--width", type=int, default=8192)
    demo.add_argument("--height", type=int, default=6144)
    demo.add_argument("--mpp", type=float, default=0.5)
    demo.add_argument("--seed", type=int, default=0)
    _common(demo)

    profiles = sub.add_parser("profiles", help="manage local user profiles")
    profiles.add_argument("action", nargs="?", choices=["list", "add", "remove"], default="list")
    profiles.add_argument("name", nargs="?")
    _common(profiles)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    handlers = {"run": cmd_run, "validate": cmd_validate, "demo-slide": cmd_demo_slide, "profiles": cmd_profiles}
    try:
        return handlers[args.command](args)
    except WsideskError as exc:
        print(f"wsidesk {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_INVALID


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def _store(args: argparse.Namespace):  # noqa: ANN202 - keeps the store import lazy
    from wsidesk.core.store import Store, default_data_dir

    return Store((args.data_dir or default_data_dir()).expanduser().resolve())


def cmd_validate(args: argparse.Namespace) -> int:
    from wsidesk.core.workflow.io import load_workflow

    results, status = [], EXIT_OK
    for path in args.workflows:
        try:
            wf = load_workflow(path)
        except WsideskError as exc:
            print(f"{exc}", file=sys.stderr)
            results.append({"file": str(path), "valid": False, "error": str(exc)})
            status = EXIT_INVALID
        else:
            jobs = sum(len(b.jobs) for b in wf.branches)
            if not args.json:
                print(f"{path}: ok ({wf.name!r}: {len(wf.branches)} branches, {jobs} jobs)")
            results.append({"file": str(path), "valid": True, "workflow": wf.name, "jobs": jobs})
    if args.json:
        _print_json({"workflows": results})
    return status


def cmd_run(args: argparse.Namespace) -> int:
    from wsidesk.cli_progress import ConsoleReporter
    from wsidesk.core.scheduler.executors import ThreadExecutor
    from wsidesk.core.scheduler.runner import Runner
    from wsidesk.core.workflow.io import load_workflow

    if not args.workflows and not args.resume:
        print("wsidesk run: error: give at least one WF.yaml or --resume RUN_ID", file=sys.stderr)
        return EXIT_INVALID
    if args.workers < 1 or args.max_active_profiles < 1:
        print("wsidesk run: error: --workers and --max-active-profiles must be at least 1", file=sys.stderr)
        return EXIT_INVALID
    # Validate everything before running anything: exit 2 means nothing ran.
    loaded = []
    for path in args.workflows:
        wf = load_workflow(path)
        loaded.append((path, wf, check_profile_name(args.profile or wf.profile or DEFAULT_PROFILE)))
    store = _store(args)
    reporter = ConsoleReporter(stream=sys.stderr)
    executor = ThreadExecutor(args.workers)
    runner = Runner(store, executor, max_active_profiles=args.max_active_profiles, sink=reporter)
    interrupted = False

    def _on_sigint(signum: int, frame: object) -> None:
        nonlocal interrupted
        interrupted = True
        print("\ninterrupted: finishing running jobs at a safe point (Ctrl-C again to quit now)", file=sys.stderr)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        runner.interrupt()

    previous = signal.signal(signal.SIGINT, _on_sigint)
    run_ids: list[tuple[str, str]] = []
    try:
        resume_profile = check_profile_name(args.profile or DEFAULT_PROFILE)
        for run_id in args.resume:
            run_ids.append((resume_profile, runner.resume(run_id, profile=resume_profile)))
        for path, wf, profile in loaded:
            text = path.read_text(encoding="utf-8")
            run_ids.append((profile, runner.submit(wf, profile=profile, source=path, source_text=text)))
        while not runner.wait(timeout=0.25):
            pass
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGINT, previous)
        executor.shutdown(wait=True)
        reporter.close()
    summaries = [runner.summary(profile, run_id) for profile, run_id in run_ids]
    store.close()
    for s in summaries:
        print(f"run {s['run_id']} ({s['workflow']!r}, profile {s['profile']}): {s['status']} -> {s['run_dir']}",
              file=sys.stderr)
    if args.json:
        _print_json({"runs": summaries})
    if interrupted or any(s["status"] == "interrupted" for s in summaries):
        return EXIT_INTERRUPTED
    return EXIT_OK if all(s["status"] == "succeeded" for s in summaries) else EXIT_FAILED


def cmd_demo_slide(args: argparse.Namespace) -> int:
    from wsidesk.core.slide.demo import write_demo_slide

    truth = write_demo_slide(args.out, width=args.width, height=args.height, mpp=args.mpp, seed=args.seed)
    info = {"slide": str(args.out), "truth": str(truth.truth_path), "nuclei": truth.n_nuclei,
            "width": args.width, "height": args.height, "mpp": args.mpp}
    if args.json:
        _print_json(info)
    else:
        print(f"wrote {args.out} ({args.width}x{args.height} px, {args.mpp} µm/px, "
              f"{truth.n_nuclei} nuclei) and {truth.truth_path}")
    return EXIT_OK


def cmd_profiles(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        if args.action in ("add", "remove"):
            if not args.name:
                print(f"wsidesk profiles {args.action}: error: give a profile NAME", file=sys.stderr)
                return EXIT_INVALID
            if args.action == "add":
                store.add_profile(args.name)
            else:
                store.remove_profile(args.name)
        names = store.profiles()
    finally:
        store.close()
    if args.json:
        _print_json({"profiles": names})
    elif args.action == "list":
        print("\n".join(names))
    else:
        print(f"profile {args.name!r} {'added' if args.action == 'add' else 'removed'}")
    return EXIT_OK
