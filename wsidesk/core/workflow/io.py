"""Workflow YAML: strict safe reading (no tags, duplicate or unknown keys); atomic writing."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.error import MarkedYAMLError

from wsidesk.core.errors import WorkflowError
from wsidesk.core.values import shown
from wsidesk.core.workflow.model import Branch, Job, Workflow, _error, validate_workflow

logger = logging.getLogger(__name__)

TOP_KEYS = ("name", "profile", "defaults", "layout", "dag")
JOB_KEYS = ("job_id", "type", "image", "depends_on", "params")
# Limits that keep a hostile or mistaken file from eating the machine; real workflows are far below.
MAX_WORKFLOW_BYTES = 4 * 1024 * 1024
MAX_JOBS = 10_000
MAX_ALIAS_VALUES = 100_000  # values that all aliases of a file may stand for, together


class _DuplicateKeyError(MarkedYAMLError):
    pass


class _AliasBombError(MarkedYAMLError):
    pass


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many values `node` stands for once every alias inside it is expanded (memoised per node)."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    sizes[id(node)] = size
    return size


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (plain YAML keeps the last) and alias bombs.

    PyYAML shares an anchored value between its aliases, but everything that walks the result (checks,
    messages, dumping) sees it expanded: nine nested levels of ten aliases are a billion values from
    a 600-byte file. So the values all aliases stand for are counted as they are read, and bounded.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._alias_values = 0
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            anchored = self.anchors.get(event.anchor)
            if anchored is not None:
                self._alias_values += _expanded_size(anchored, self._sizes)
                if self._alias_values > MAX_ALIAS_VALUES:
                    raise _AliasBombError(
                        None,
                        None,
                        f"aliases expand to more than {MAX_ALIAS_VALUES:,} values (alias *{shown(event.anchor)[1:-1]})",
                        event.start_mark,
                    )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:  # noqa: FBT001, FBT002
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` may override keys on purpose
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # unhashable: SafeLoader reports it itself
            if duplicate:
                raise _DuplicateKeyError(
                    "while reading a mapping",
                    node.start_mark,
                    f"found duplicate key {shown(key)}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _Dumper(yaml.SafeDumper):
    """SafeDumper that writes short lists of scalars (layout, depends_on) inline: `[x, y]`."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    inline = all(isinstance(v, str | int | float) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=inline or None)


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    # PyYAML writes e.g. NEL (\x85) plainly and reads it back as a line break; escape such text.
    style = None if data.isprintable() else '"'
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


# add_representer copies the table into the subclass, so yaml.SafeDumper stays untouched.
_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(str, _represent_str)


def _yaml_error(exc: yaml.YAMLError, file: str | None) -> WorkflowError:
    mark = getattr(exc, "problem_mark", None)
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc)
    if isinstance(exc, _DuplicateKeyError):
        msg = f"{problem}{at}; YAML would keep only the last one, so rename or merge them"
    elif isinstance(exc, _AliasBombError):
        msg = f"{problem}{at}; write the values out, or use fewer and smaller aliases"
    elif isinstance(exc, ConstructorError) and "could not determine a constructor" in problem:
        msg = f"unsupported YAML tag{at}; tags such as !!python/... are not allowed, write plain values instead"
    else:
        msg = f"invalid YAML{at}: {problem}"
    return _error(msg, file=file)


def _expect(
    value: Any, kind: type | tuple[type, ...], what: str, *, file: str | None, job_id: str | None = None, hint: str = ""
) -> None:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # bool subclasses int, but `job_id: yes` is not an id.
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        msg = f"{what} has the wrong type ({type(value).__name__} {shown(value)}){hint}"
        raise _error(msg, file=file, job_id=job_id)


def _check_keys(
    data: Mapping[Any, Any], allowed: tuple[str, ...], what: str, *, file: str | None, job_id: str | None = None
) -> None:
    unknown = [k for k in data if k not in allowed]
    if unknown:
        msg = f"{what} has unknown key {shown(unknown[0])}; allowed keys: {', '.join(allowed)}"
        raise _error(msg, file=file, job_id=job_id)


def _str_mapping(value: Any, what: str, hint: str, *, file: str | None, job_id: str | None = None) -> dict[str, Any]:
    if value is None:
        return {}
    _expect(value, dict, what, file=file, job_id=job_id, hint=f"; it must be a mapping {hint}")
    for key in value:
        _expect(
            key, str, f"key {shown(key)} in {what}", file=file, job_id=job_id, hint="; quote it to make it a string"
        )
    return dict(value)


def _parse_job(data: Any, *, branch: str, index: int, file: str | None) -> Job:
    where = f"job #{index + 1} of branch {shown(branch)}"
    _expect(
        data,
        dict,
        where,
        file=file,
        hint="; each job must be a mapping like {job_id: job1, type: segment, image: a.svs}",
    )
    job_id = data.get("job_id")
    if job_id is None:
        raise _error(f"{where} has no 'job_id'; give every job a unique id", file=file)
    _expect(job_id, str, f"'job_id' of {where}", file=file, hint="; job ids must be strings, so quote it (job_id: '1')")
    where = f"job {shown(job_id)} in branch {shown(branch)}"
    _check_keys(data, JOB_KEYS, where, file=file, job_id=job_id)
    if "type" not in data:
        raise _error(f"{where} has no 'type'; use tissue, segment or export", file=file, job_id=job_id)
    _expect(data["type"], str, f"'type' of {where}", file=file, job_id=job_id, hint="; use tissue, segment or export")
    image = data.get("image")
    if image is not None:
        _expect(image, str, f"'image' of {where}", file=file, job_id=job_id, hint="; it must be a file path")
    depends_on = data.get("depends_on")
    depends_on = [] if depends_on is None else depends_on
    _expect(
        depends_on,
        list,
        f"'depends_on' of {where}",
        file=file,
        job_id=job_id,
        hint="; it must be a list of job ids, e.g. [job1, job2]",
    )
    for dep in depends_on:
        _expect(
            dep,
            str,
            f"entry {shown(dep)} in 'depends_on' of {where}",
            file=file,
            job_id=job_id,
            hint="; job ids must be strings, so quote it",
        )
    params = _str_mapping(
        data.get("params"), f"'params' of {where}", "of param name to value", file=file, job_id=job_id
    )
    return Job(job_id=job_id, type=data["type"], image=image, depends_on=tuple(depends_on), params=params)


def _parse(data: Any, *, file: str | None, base_dir: Path) -> Workflow:
    if data is None:
        raise _error("workflow file is empty; it needs at least 'name' and 'dag'", file=file)
    _expect(
        data, dict, "the document", file=file, hint="; a workflow is a mapping with 'name' and 'dag' at the top level"
    )
    _check_keys(data, TOP_KEYS, "the workflow", file=file)
    for key in ("name", "dag"):
        if key not in data:
            raise _error(f"the workflow has no {shown(key)}; it is required", file=file)
    _expect(data["name"], str, "'name'", file=file, hint="; it must be a string")
    profile = data.get("profile")
    if profile is not None:
        _expect(profile, str, "'profile'", file=file, hint="; it must be a profile name")
    defaults = _str_mapping(data.get("defaults"), "'defaults'", "of param name to value", file=file)
    layout = _str_mapping(data.get("layout"), "'layout'", "of job id to [x, y]", file=file)
    for job_id, pos in layout.items():
        ok = (
            isinstance(pos, list)
            and len(pos) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in pos)
        )
        if not ok:
            msg = f"layout of job {shown(job_id)} must be [x, y] (two numbers), not {shown(pos)}"
            raise _error(msg, file=file, job_id=job_id)
    dag = data["dag"]
    _expect(dag, dict, "'dag'", file=file, hint="; it must map each branch name to a list of jobs")
    n_jobs = sum(len(jobs) for jobs in dag.values() if isinstance(jobs, list))
    if n_jobs > MAX_JOBS:
        msg = f"the workflow has {n_jobs:,} jobs, more than the {MAX_JOBS:,} one workflow may have; split it"
        raise _error(msg, file=file)
    branches = []
    for name, jobs in dag.items():
        _expect(name, str, f"branch name {shown(name)}", file=file, hint="; branch names must be strings, so quote it")
        if jobs is None:
            jobs = []  # reported as an empty branch by validate_workflow
        _expect(
            jobs,
            list,
            f"branch {shown(name)}",
            file=file,
            hint="; it must be a list of jobs (lines starting with '- ')",
        )
        branches.append(Branch(name, tuple(_parse_job(j, branch=name, index=i, file=file) for i, j in enumerate(jobs))))
    return Workflow(
        name=data["name"],
        branches=tuple(branches),
        profile=profile,
        defaults=defaults,
        layout=layout,
        base_dir=base_dir,
    )


def loads_workflow(text: str, *, file: str | Path | None = None, check_images: bool = True) -> Workflow:
    """Parse and validate workflow YAML; relative images start at `file`'s folder, else cwd."""
    name = None if file is None else str(file)
    base_dir = Path.cwd() if file is None else Path(file).absolute().parent
    if len(text) > MAX_WORKFLOW_BYTES:
        raise _error(_too_large(len(text)), file=name)
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, name) from exc
    wf = _parse(data, file=name, base_dir=base_dir)
    validate_workflow(wf, file=name, check_images=check_images)
    return wf


def _too_large(size: int) -> str:
    return (
        f"workflow file is {size / 2**20:.1f} MB, more than the {MAX_WORKFLOW_BYTES // 2**20} MB a workflow may be; "
        "is it the right file?"
    )


def load_workflow(path: str | Path, *, check_images: bool = True) -> Workflow:
    """Read, parse and validate a workflow YAML file."""
    try:
        size = Path(path).stat().st_size
        if size > MAX_WORKFLOW_BYTES:  # before reading it
            raise WorkflowError(f"{path}: {_too_large(size)}", file=str(path))
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        msg = f"cannot read workflow file {str(path)!r}: it is not UTF-8 text"
        raise WorkflowError(msg, file=str(path)) from exc
    except OSError as exc:
        msg = f"cannot read workflow file {str(path)!r}: {exc.strerror or exc}"
        raise WorkflowError(msg, file=str(path)) from exc
    return loads_workflow(text, file=path, check_images=check_images)


def _job_doc(job: Job) -> dict[str, Any]:
    doc: dict[str, Any] = {"job_id": job.job_id, "type": job.type}
    if job.image is not None:
        doc["image"] = job.image
    if job.depends_on:
        doc["depends_on"] = list(job.depends_on)
    if job.params:
        doc["params"] = dict(job.params)
    return doc


def dump_workflow(wf: Workflow) -> str:
    """YAML text for `wf`, keeping branch and job order; `loads_workflow` reads it back equal."""
    doc: dict[str, Any] = {"name": wf.name}
    if wf.profile is not None:
        doc["profile"] = wf.profile
    if wf.defaults:
        doc["defaults"] = dict(wf.defaults)
    if wf.layout:
        doc["layout"] = {job_id: [x, y] for job_id, (x, y) in wf.layout.items()}
    doc["dag"] = {b.name: [_job_doc(j) for j in b.jobs] for b in wf.branches}
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False)


def save_workflow(wf: Workflow, path: str | Path) -> None:
    """Write `wf` to `path` atomically: readers see the old file or the new one, never half."""
    path = Path(path)
    text = dump_workflow(wf)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        # os.open with 0o666 honours the umask, unlike tempfile's 0o600.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with open(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        msg = f"cannot save workflow to {str(path)!r}: {exc.strerror or exc}"
        raise WorkflowError(msg, file=str(path)) from exc
    logger.debug("saved workflow %r to %s", wf.name, path)
