"""`wsidesk cells summary|export|classify RESULT`: the cells of a segment result, headless.

RESULT is a segment job's folder or a run folder with one segment job. Cells are read from the result's
cell store (cells.arrow), or from cells.geojson when the store is missing or damaged (with a warning).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wsidesk.core.cells.store import CellTable


def add_cells_parser(sub: Any) -> None:
    """The `cells` command and its three actions, on the main parser's subparsers."""
    cells = sub.add_parser("cells", help="summarise, export or classify the cells of a segment result")
    actions = cells.add_subparsers(dest="cells_action", metavar="ACTION", required=True)

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("result", type=Path, metavar="RESULT", help="a segment job's folder or its run folder")
        parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
        parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages and tracebacks")

    summary = actions.add_parser("summary", help="cell count, density and per-measurement statistics")
    common(summary)
    summary.add_argument("--filter", default="", metavar="EXPR", help="only the cells where EXPR holds")
    summary.add_argument("--rules", type=Path, metavar="FILE", help="class rules (YAML) to apply first")
    summary.add_argument("--out", type=Path, metavar="FILE.csv", help="also write the summary as CSV")

    export = actions.add_parser("export", help="write the cells as GeoJSON (QuPath) or CSV")
    common(export)
    export.add_argument("--format", choices=("geojson", "csv"), default="geojson", help="file format (geojson)")
    export.add_argument("--out", type=Path, metavar="FILE", help="where to write (default: RESULT/export/cells.FMT)")
    export.add_argument("--filter", default="", metavar="EXPR", help="only the cells where EXPR holds")
    export.add_argument("--rules", type=Path, metavar="FILE", help="class rules (YAML) to apply first")

    classify = actions.add_parser("classify", help="apply class rules and save the classes with the result")
    common(classify)
    classify.add_argument("--rules", type=Path, metavar="FILE", required=True, help="class rules (YAML)")


def cmd_cells(args: argparse.Namespace) -> int:
    from wsidesk.core.cells.classes import class_counts, classify_result, load_rules
    from wsidesk.core.cells.store import open_cells, result_dir

    folder = result_dir(args.result)
    if args.cells_action == "classify":
        rules = load_rules(args.rules)
        table = classify_result(folder, rules)
        counts = class_counts(table.classes, rules)
        if args.json:
            _print_json({"result": str(folder), "cells": len(table), "classes": counts})
        else:
            print(f"{folder}: {len(table)} cells classified with {args.rules}")
            for name, count in counts.items():
                print(f"  {name or '(unclassified)'}: {count}")
        return 0
    table = _prepared(open_cells(folder), rules_path=args.rules, filter_text=args.filter)
    if args.cells_action == "export":
        return _export(table, folder, args)
    return _summary(table, folder, args)


def _prepared(table: CellTable, *, rules_path: Path | None, filter_text: str) -> CellTable:
    from wsidesk.core.cells.classes import classify, load_rules
    from wsidesk.core.cells.export import select_cells

    if rules_path is not None:
        rules = load_rules(rules_path)
        table.set_classes(classify(table, rules, where=str(rules_path)), {r.name: r.color for r in rules})
    return select_cells(table, filter_text=filter_text)


def _export(table: CellTable, folder: Path, args: argparse.Namespace) -> int:
    from wsidesk.core.cells.export import export_cells

    out = args.out or folder / "export" / f"cells.{args.format}"
    out.parent.mkdir(parents=True, exist_ok=True)
    export_cells(table, out, fmt=args.format)
    if args.json:
        _print_json({"result": str(folder), "cells": len(table), "format": args.format, "out": str(out)})
    else:
        print(f"wrote {len(table)} cells to {out}")
    return 0


def _summary(table: CellTable, folder: Path, args: argparse.Namespace) -> int:
    from wsidesk.core.cells.summary import region_areas_mm2, summarize, tissue_area_mm2, write_summary_csv

    tissue = tissue_area_mm2(folder)
    rows = summarize(table, tissue_mm2=tissue, region_mm2=region_areas_mm2(folder))
    if args.out:
        write_summary_csv(rows, args.out)
    if args.json:
        doc = {
            "result": str(folder),
            "source": str(table.source),
            "note": table.note,
            "tissue_mm2": tissue,
            "groups": [r.to_dict() for r in rows],
        }
        _print_json(doc)
        return 0
    print(f"{folder}: {len(table)} cells" + (f" ({table.note})" if table.note else ""))
    if tissue:
        print(f"tissue: {tissue:.3f} mm², {len(table) / tissue:.1f} cells/mm²")
    slide = rows[0]
    width = max((len(k) for k in slide.mean), default=10)
    print(f"  {'measurement':<{width}}  {'mean':>12}  {'median':>12}")
    for key, mean in slide.mean.items():
        print(f"  {key:<{width}}  {mean:>12.4g}  {slide.median[key]:>12.4g}")
    for row in rows[1:]:
        density = f", {row.density_per_mm2:.1f}/mm²" if row.density_per_mm2 is not None else ""
        print(f"{row.scope} {row.name or '(none)'}: {row.count} cells{density}")
    if args.out:
        print(f"summary written to {args.out}")
    return 0


def _print_json(data: Any) -> None:
    json.dump(_finite(data), sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def _finite(value: Any) -> Any:
    """NaN (a measurement no cell has) as null: strict JSON."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


__all__ = ["add_cells_parser", "cmd_cells"]
