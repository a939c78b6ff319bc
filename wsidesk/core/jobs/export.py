"""The `export` job: results of the jobs it depends on, as GeoJSON (QuPath) or CSV."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsidesk.core.cells.classes import ClassRule, RulesError, classify, load_rules
from wsidesk.core.cells.export import export_cells
from wsidesk.core.cells.store import GEOJSON_NAME, open_cells, table_from_cells
from wsidesk.core.errors import JobError
from wsidesk.core.export.geojson import feature, read_geojson
from wsidesk.core.export.table import write_rows
from wsidesk.core.fileio import atomic_write
from wsidesk.core.jobs.context import JobContext
from wsidesk.core.jobs.params import JobParams, JobType, param
from wsidesk.core.paths import resolve_path
from wsidesk.core.tiling.grid import TilePlan

logger = logging.getLogger(__name__)

FORMATS = ("geojson", "csv")


@dataclass(frozen=True, slots=True)
class ExportParams(JobParams):
    format: str = param("geojson", help="file format of the export (geojson: QuPath; csv: tables)", choices=FORMATS)
    rules: str | None = param(
        None,
        help="class rules (YAML: name, color, when) applied to the cells before export",
        path=True,
        default_text="no classes",
        example="classes.yaml",
    )


def run_export_job(ctx: JobContext) -> dict[str, str]:
    """Job function for type `export`: one file per dependency, `<dep_id>.geojson` or `<dep_id>.csv`."""
    job_id = ctx.job.job_id
    params = ExportParams.from_mapping(ctx.params, where=f"job {job_id} (export)")
    fmt = params.format
    rules = _load_rules(params.rules, ctx, job_id)
    if not ctx.inputs:
        msg = f"job {job_id} (export) has nothing to export: add 'depends_on: [<segment or tissue job>]'"
        raise JobError(msg)
    out_dir = Path(ctx.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs: dict[str, str] = {}
    for dep_id, dep_outputs in ctx.inputs.items():
        ctx.check_cancelled()
        target = out_dir / f"{dep_id}.{fmt}"
        try:
            if dep_outputs.get("cells"):
                _export_cells(Path(dep_outputs["cells"]), target, fmt=fmt, rules=rules)
            elif dep_outputs.get("tiles"):
                _export_tiles(Path(dep_outputs["tiles"]), target, fmt=fmt)
            else:
                have = ", ".join(sorted(dep_outputs)) or "no outputs"
                msg = (
                    f"job {job_id} (export): dependency {dep_id} has nothing to export ({have}); "
                    "export needs a segment job (cells) or a tissue job (tiles)"
                )
                raise JobError(msg)
        except (OSError, ValueError) as exc:
            msg = f"job {job_id} (export): cannot export the results of {dep_id}: {exc}"
            raise JobError(msg) from exc
        outputs[dep_id] = str(target)
        logger.info("exported %s to %s", dep_id, target)
    return outputs


def _load_rules(rules: str | None, ctx: JobContext, job_id: str) -> list[ClassRule]:
    if rules is None:
        return []
    path = resolve_path(rules, ctx.workflow.base_dir)
    try:
        return load_rules(path)
    except RulesError as exc:
        msg = f"job {job_id} (export): {exc}"
        raise JobError(msg) from exc


def _export_cells(source: Path, target: Path, *, fmt: str, rules: list[ClassRule]) -> None:
    """From the result's cell store (cells.geojson when there is none), classified when there are rules."""
    if source.name == GEOJSON_NAME:
        table = open_cells(source.parent)
    else:
        table = table_from_cells(read_geojson(source), partial=_is_partial(source), source=source)
    if rules:
        table.set_classes(classify(table, rules), {r.name: r.color for r in rules})
    export_cells(table, target, fmt=fmt)


def _is_partial(path: Path) -> bool:
    """Whether a cells.geojson says it is partial; only its first line is read (the header)."""
    with path.open(encoding="utf-8") as f:
        return '"partial": true' in f.readline(4096)


def _export_tiles(source: Path, target: Path, *, fmt: str) -> None:
    plan = TilePlan.read_json(source)
    if fmt == "csv":
        write_rows(
            ("index", "row", "col", "x", "y", "w", "h", "state", "tissue"),
            ((t.index, t.row, t.col, t.x, t.y, t.w, t.h, t.state, round(t.tissue, 4)) for t in plan.tiles),
            target,
        )
        return
    with atomic_write(target) as f:
        f.write('{"type": "FeatureCollection", "features": [\n')
        for i, t in enumerate(plan.tiles):
            x1, y1 = t.x + t.w, t.y + t.h
            ring = np.array([[t.x, t.y], [x1, t.y], [x1, y1], [t.x, y1]], dtype=np.float64)
            doc = feature(
                ring,
                feature_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"wsidesk:{target.name}/tile/{t.index}")),
                object_type="annotation",
                measurements={"tissue": t.tissue},
                metadata={"tile": str(t.index), "state": t.state},
                extra={"name": f"tile {t.index}", "state": t.state, "tissue": t.tissue},
            )
            f.write(("," if i else "") + json.dumps(doc, separators=(",", ":")) + "\n")
        f.write("]}\n")


EXPORT = JobType(
    name="export",
    summary="results of the jobs it depends on, as GeoJSON (QuPath) or CSV",
    params=ExportParams,
    run=run_export_job,
    takes_image=False,
)
