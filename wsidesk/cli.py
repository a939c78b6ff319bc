"""Command line: `wsidesk run|validate|segment|demo-slide|profiles|store|cache|models|selftest ...` (see README)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from wsidesk import __version__
from wsidesk.cli_cells import add_cells_parser, cmd_cells
from wsidesk.core.errors import WsideskError
from wsidesk.core.jobs.params import ParamSpec
from wsidesk.core.jobs.registry import JOB_TYPES, all_params
from wsidesk.core.jobs.segment import DEVICES
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


def _scheduling(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=_default_workers(), help="global concurrent jobs")
    parser.add_argument("--max-active-profiles", type=int, default=3, help="profiles running work at once")


def _cluster(parser: argparse.ArgumentParser, *, default: str | None = "local") -> None:
    """Where jobs run; `--workers` then defaults to the cluster's thread count for Dask."""
    parser.set_defaults(workers=None)
    group = parser.add_argument_group("executor (where jobs run)")
    group.add_argument(
        "--executor",
        choices=("local", "dask"),
        default=default,
        help="local: threads of this process; dask: a Dask cluster (default: "
        f"{default or 'the saved setting, File > Settings'})",
    )
    group.add_argument(
        "--scheduler-address",
        metavar="ADDR",
        help="Dask scheduler, e.g. tls://gpu-head:8786 (else cluster.yaml's; else a local cluster on 127.0.0.1)",
    )
    group.add_argument(
        "--cluster-config",
        type=Path,
        metavar="FILE",
        help="cluster settings: scheduler_address, timeout, tls (default <data-dir>/cluster.yaml when it exists)",
    )


def _job_params(parser: argparse.ArgumentParser, specs: Iterable[ParamSpec], title: str) -> None:
    """One option per job param, from the job-type registry (`tile_size` -> `--tile-size`)."""
    group = parser.add_argument_group(title)
    for spec in specs:
        unit = f", {spec.unit}" if spec.unit else ""
        help_text = f"{spec.help} (default: {spec.shown_default}{unit})".replace("%", "%%")
        if spec.type is bool:
            group.add_argument(spec.option, dest=spec.name, action=argparse.BooleanOptionalAction, help=help_text)
            continue
        metavar = None if spec.choices else spec.name.upper()
        group.add_argument(
            spec.option,
            dest=spec.name,
            type=_param_value(spec),
            choices=spec.choices or None,
            metavar=metavar,
            help=help_text,
        )


def _param_value(spec: ParamSpec) -> Callable[[str], Any]:
    """An argparse type: the text as the param's type, checked by the param's own rule."""

    def convert(text: str) -> Any:
        try:
            value = spec.type(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{spec.name} must be {spec.rule()}, got {text!r}") from exc
        if spec.choices:
            return value  # argparse names the valid choices itself
        if problem := spec.problem(value):
            raise argparse.ArgumentTypeError(f"{spec.name} {problem}")
        if spec.is_file(value):  # a file named on the command line is relative to where it was typed
            return str(Path(value).expanduser().resolve())
        return value

    convert.__name__ = spec.type.__name__  # argparse's message says "invalid int value"
    return convert


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsidesk", description=__doc__)
    parser.add_argument("--version", action="version", version=f"wsidesk {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    gui = sub.add_parser("gui", help="start the desktop app (the default command)")
    gui.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="slides or workflow YAML files to open")
    _scheduling(gui)
    _cluster(gui, default=None)  # not given: the app's saved setting
    _common(gui)

    run = sub.add_parser("run", help="run workflows headless, then exit")
    run.add_argument("workflows", nargs="*", type=Path, metavar="WF.yaml")
    run.add_argument("--resume", metavar="RUN_ID", action="append", default=[], help="continue an interrupted run")
    _scheduling(run)
    _cluster(run)
    _job_params(run, all_params().values(), "job params (override the workflows' defaults, not a job's own params)")
    _common(run)

    validate = sub.add_parser("validate", help="check workflows without running anything")
    validate.add_argument("workflows", nargs="+", type=Path, metavar="WF.yaml")
    _common(validate)

    segment = sub.add_parser("segment", help="segment cells on one slide, no workflow file needed")
    segment.add_argument("slide", type=Path, metavar="SLIDE")
    segment.add_argument("--out", type=Path, help="also copy cells.geojson, cells.csv and tiles.json here")
    _scheduling(segment)
    _cluster(segment)
    _job_params(segment, JOB_TYPES["segment"].params.specs(), "segment job params")
    _common(segment)

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

    store = sub.add_parser("store", help="repair the run store (the database in the data folder)")
    store.add_argument("action", choices=["rebuild"], help="rebuild: refill the store from the run folders")
    store.add_argument("--force", action="store_true", help="rebuild even when the store looks healthy")
    _common(store)

    from wsidesk.cli_cache import add_parser as add_cache_parser

    add_cache_parser(sub, _common)

    models = sub.add_parser("models", help="manage segmentation models")
    models.add_argument("action", nargs="?", choices=["list", "install", "verify"], default="list")
    models.add_argument("name", nargs="?")
    _common(models)

    selftest = sub.add_parser("selftest", help="check Qt, OpenSlide, torch, the model and one segmented tile")
    selftest.add_argument("--model", default=None, help="model to load and run (default: the bundled test model)")
    selftest.add_argument("--device", choices=DEVICES, default="auto", help="where the model runs (auto)")
    selftest.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="CHECK",
        choices=["qt", "slide", "torch", "model", "segment"],
        help="leave out a check",
    )
    selftest.add_argument("--data-dir", type=Path, help="data folder whose models/ to look in")
    selftest.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    selftest.add_argument("-v", "--verbose", action="store_true", help="log debug messages and tracebacks")

    add_cells_parser(sub)
    return parser


class _ConsoleFormatter(logging.Formatter):
    """Log lines for a user: an exception is one line (its type and message); -v shows the traceback."""

    def __init__(self, *, verbose: bool) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
        self._verbose = verbose

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        if self._verbose:
            return super().formatException(ei)
        error = ei[1]
        return f"  {type(error).__name__}: {error} (run with -v for the traceback)"

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - logging's name
        return super().formatStack(stack_info) if self._verbose else ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = bool(getattr(args, "verbose", False))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ConsoleFormatter(verbose=verbose))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    if args.command is None:  # plain `wsidesk` opens the app
        args = parser.parse_args(["gui", *(argv or [])])
    handlers = {
        "gui": cmd_gui,
        "run": cmd_run,
        "validate": cmd_validate,
        "segment": cmd_segment,
        "demo-slide": cmd_demo_slide,
        "profiles": cmd_profiles,
        "store": cmd_store,
        "models": cmd_models,
        "cache": cmd_cache,
        "selftest": cmd_selftest,
        "cells": cmd_cells,
    }
    try:
        return handlers[args.command](args)
    except (WsideskError, ValueError) as exc:
        print(f"wsidesk {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_INVALID


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def _data_dir(args: argparse.Namespace) -> Path:
    from wsidesk.core.store import default_data_dir

    return (args.data_dir or default_data_dir()).expanduser().resolve()


def _param_options(args: argparse.Namespace) -> dict[str, Any]:
    """The job params given on the command line."""
    return {name: getattr(args, name) for name in all_params() if getattr(args, name, None) is not None}


def _profile(args: argparse.Namespace, owner: str | None = None) -> str:
    return check_profile_name(args.profile or owner or DEFAULT_PROFILE)


def cmd_gui(args: argparse.Namespace) -> int:
    from wsidesk.app import run_gui
    from wsidesk.core.scheduler.executor_config import ExecutorConfig

    data_dir = _data_dir(args)
    kind = args.executor or ("dask" if args.scheduler_address or args.cluster_config else None)
    choice = ExecutorConfig(kind, args.scheduler_address, cluster_file=args.cluster_config) if kind else None
    return run_gui(
        args.paths,
        data_dir=data_dir,
        profile=args.profile,
        workers=args.workers,
        max_active_profiles=args.max_active_profiles,
        executor=choice,
    )


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
    from wsidesk.core.workflow.io import dump_workflow, load_workflow

    if not args.workflows and not args.resume:
        print("wsidesk run: error: give at least one WF.yaml or --resume RUN_ID", file=sys.stderr)
        return EXIT_INVALID
    overrides = _param_options(args)
    # Validate everything before running anything: exit 2 means nothing ran.
    submissions = []
    for path in args.workflows:
        wf = load_workflow(path)
        text = path.read_text(encoding="utf-8")
        if overrides:  # what ran is what gets recorded
            wf = replace(wf, defaults={**wf.defaults, **overrides})
            text = dump_workflow(wf)
        submissions.append((wf, _profile(args, wf.profile), path, text))
    status, _ = _execute(args, submissions, resume=args.resume)
    return status


def cmd_segment(args: argparse.Namespace) -> int:
    from wsidesk.core.workflow.model import validate_workflow
    from wsidesk.core.workflow.single import segment_workflow

    slide = args.slide.expanduser().resolve()
    wf = segment_workflow(slide, _param_options(args))
    validate_workflow(wf, file=str(slide))
    status, summaries = _execute(args, [(wf, _profile(args), None, None)], resume=[])
    if args.out and summaries:
        outputs = summaries[0]["jobs"]["segment"]["outputs"]
        args.out.mkdir(parents=True, exist_ok=True)
        for path in outputs.values():
            shutil.copy2(path, args.out / Path(path).name)
        print(f"results copied to {args.out}", file=sys.stderr)
    return status


def _execute(
    args: argparse.Namespace,
    submissions: list[tuple[Any, str, Path | None, str | None]],  # workflow, profile, source, text
    *,
    resume: Sequence[str],
) -> tuple[int, list[dict[str, Any]]]:
    """Run workflows on the headless scheduler until done or Ctrl-C; returns exit code and summaries."""
    from wsidesk.cli_progress import ConsoleReporter
    from wsidesk.core.scheduler.executor_config import ExecutorConfig, make_executor
    from wsidesk.core.scheduler.runner import Runner
    from wsidesk.core.store import Store

    dask = args.executor == "dask"
    workers = args.workers if args.workers is not None or dask else _default_workers()
    if (workers is not None and workers < 1) or args.max_active_profiles < 1:
        msg = "--workers and --max-active-profiles must be at least 1"
        raise ValueError(msg)
    if not dask and (args.scheduler_address or args.cluster_config):
        msg = "--scheduler-address and --cluster-config need --executor dask"
        raise ValueError(msg)
    if dask and not args.verbose:  # the job lines are the output; Dask's own INFO lines would drown them
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")  # read when Dask loads, here and in workers
    config = ExecutorConfig(args.executor, args.scheduler_address, workers, cluster_file=args.cluster_config)
    # Before the store is opened: a scheduler that cannot be reached means nothing ran (exit 2).
    cluster = config.cluster_settings(_data_dir(args)) if dask else None
    executor = make_executor(config, cluster=cluster, event_payloads=False)  # the console shows counts, not cells
    try:
        store = Store(_data_dir(args))
    except BaseException:
        executor.shutdown(wait=False)
        raise
    reporter = ConsoleReporter(stream=sys.stderr)
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
        for run_id in resume:
            profile = _profile(args)
            run_ids.append((profile, runner.resume(run_id, profile=profile)))
        for wf, profile, source, text in submissions:
            run_ids.append((profile, runner.submit(wf, profile=profile, source=source, source_text=text)))
        while not runner.wait(timeout=0.25):
            pass
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED, []
    except WsideskError:
        # This run could not start (exit 2); the ones already started stop as resumable.
        runner.interrupt()
        runner.wait(timeout=60)
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
        executor.shutdown(wait=True)
        reporter.close()
    summaries = [runner.summary(profile, run_id) for profile, run_id in run_ids]
    store.close()
    for s in summaries:
        print(
            f"run {s['run_id']} ({s['workflow']!r}, profile {s['profile']}): {s['status']} -> {s['run_dir']}",
            file=sys.stderr,
        )
    if runner.executor_error is not None:  # e.g. the Dask scheduler went away: runs were saved as interrupted
        print(f"wsidesk {args.command}: error: {runner.executor_error}", file=sys.stderr)
    if args.json:
        _print_json({"runs": summaries})
    if interrupted or any(s["status"] == "interrupted" for s in summaries):
        return EXIT_INTERRUPTED, summaries
    ok = all(s["status"] == "succeeded" for s in summaries)
    return (EXIT_OK if ok else EXIT_FAILED), summaries


def cmd_demo_slide(args: argparse.Namespace) -> int:
    from wsidesk.core.slide.demo import write_demo_slide

    truth = write_demo_slide(args.out, width=args.width, height=args.height, mpp=args.mpp, seed=args.seed)
    info = {
        "slide": str(args.out),
        "truth": str(truth.truth_path),
        "nuclei": truth.n_nuclei,
        "width": args.width,
        "height": args.height,
        "mpp": args.mpp,
    }
    if args.json:
        _print_json(info)
    else:
        print(
            f"wrote {args.out} ({args.width}x{args.height} px, {args.mpp} µm/px, "
            f"{truth.n_nuclei} nuclei) and {truth.truth_path}"
        )
    return EXIT_OK


def _need_name(args: argparse.Namespace) -> bool:
    if not args.name:
        print(f"wsidesk {args.command} {args.action}: error: give a NAME", file=sys.stderr)
        return False
    return True


def cmd_profiles(args: argparse.Namespace) -> int:
    from wsidesk.core.store import Store

    if args.action in ("add", "remove") and not _need_name(args):
        return EXIT_INVALID
    store = Store(_data_dir(args))
    try:
        if args.action == "add":
            store.add_profile(args.name)
        elif args.action == "remove":
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


def cmd_store(args: argparse.Namespace) -> int:
    from wsidesk.core.store import Store
    from wsidesk.core.store.db import StoreDamagedError
    from wsidesk.core.store.rebuild import rebuild_store

    data_dir = _data_dir(args)
    if not args.force:
        try:
            Store(data_dir).close()
        except StoreDamagedError:
            pass  # what rebuild is for
        else:
            print(
                f"wsidesk store rebuild: the store in {data_dir} is healthy; nothing to rebuild "
                f"(--force rebuilds it anyway from the run folders)",
                file=sys.stderr,
            )
            return EXIT_INVALID
    report = rebuild_store(data_dir)
    if args.json:
        _print_json(
            {
                "database": str(report.database),
                "kept_as": str(report.kept_as) if report.kept_as else None,
                "profiles": report.profiles,
                "runs": {run_id: str(status) for run_id, status in report.runs.items()},
                "tiles": report.tiles,
                "skipped": report.skipped,
            }
        )
    if report.kept_as is not None:
        print(f"the old store is kept as {report.kept_as}", file=sys.stderr)
    for problem in report.skipped:
        print(f"not rebuilt: {problem}", file=sys.stderr)
    interrupted = sum(1 for s in report.runs.values() if s == "interrupted")
    print(
        f"rebuilt {report.database}: {len(report.profiles)} profile(s), {len(report.runs)} run(s) "
        f"({interrupted} interrupted: the same command resumes them), {report.tiles} tile checkpoint(s)",
        file=sys.stderr,
    )
    return EXIT_OK if not report.skipped else EXIT_FAILED


def cmd_cache(args: argparse.Namespace) -> int:
    from wsidesk.cli_cache import cmd_cache as run_cache_command

    return run_cache_command(args, data_dir=_data_dir(args), profile=_profile(args))


def cmd_models(args: argparse.Namespace) -> int:
    from wsidesk.core.segment.models import ModelStore, models_root

    store = ModelStore(models_root(_data_dir(args) / "models"))
    if args.action == "install":
        if not _need_name(args):
            return EXIT_INVALID
        path = store.install(args.name)
        print(f"installed {args.name} -> {path}")
        return EXIT_OK
    if args.action == "verify":
        results = store.verify()
        if args.json:
            _print_json({"models": [{"name": n, "ok": ok, "detail": d} for n, ok, d in results]})
        for name, ok, detail in results:
            print(f"{name}: {'ok' if ok else 'FAILED'} {detail}", file=sys.stderr if args.json else sys.stdout)
        return EXIT_OK if all(ok for _, ok, _ in results) else EXIT_FAILED
    infos = store.list()
    if args.json:
        _print_json(
            {
                "models": [
                    {"name": m.name, "version": m.version, "installed": m.installed, "path": str(m.path)} for m in infos
                ]
            }
        )
    else:
        for m in infos:
            print(f"{m.name} {m.version}: {'installed at ' + str(m.path) if m.installed else 'not installed'}")
    return EXIT_OK


def cmd_selftest(args: argparse.Namespace) -> int:
    from wsidesk.core.segment.models import models_root
    from wsidesk.selftest import DEFAULT_SELFTEST_MODEL, selftest

    if not args.verbose:  # the report lines are the output; the engine's progress logs would drown them
        logging.getLogger().setLevel(logging.WARNING)
    return selftest(
        models_dir=models_root(_data_dir(args) / "models"),
        model=args.model or DEFAULT_SELFTEST_MODEL,
        device=args.device,
        skip=args.skip,
        as_json=args.json,
        verbose=args.verbose,
    )
