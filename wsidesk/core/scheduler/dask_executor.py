"""Dask distributed executor: one Dask task per job (a whole slide), run on a cluster's workers.

The planner and the runner stay on the client; only the job runs remotely. A worker gets the job's
`JobSpec` (paths on shared storage, never pixels), runs it with a worker-side context and sends
what the job reports back as Dask worker events on one topic per client: `started`, each `event`
(with its payload, e.g. cell polygons for the GUI overlay), each `checkpoints` save, and the
`result`. A single pump thread on the client replays them through the task's hooks, so events.jsonl,
the GUI and the tile checkpoints in the store see exactly what a local run produces. A worker
learns about a cancel by polling a Dask `Event` at each `check_cancelled` (once per tile batch).

Worker death: a task whose worker dies fails with Dask's `KilledWorker` (our own LocalCluster allows
no silent retries); the job is then submitted once more, and a second death fails it with a clear
reason. Losing the scheduler interrupts every run: the runner saves them as resumable.

`dask`/`distributed` are imported lazily: importing this module costs nothing until it is used.
"""

from __future__ import annotations

import itertools
import logging
import os
import pickle
import queue
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wsidesk.core.errors import ExecutorLost, JobCancelled, JobError, WsideskError
from wsidesk.core.jobs.task import ForwardingCheckpoints, JobSpec, JobTask, run_job
from wsidesk.core.scheduler.cluster import DEFAULT_TIMEOUT_S
from wsidesk.core.scheduler.executors import Done, deliver

if TYPE_CHECKING:
    from distributed import Client, LocalCluster
    from distributed.security import Security

logger = logging.getLogger(__name__)

TOPIC_PREFIX = "wsidesk-events-"
CANCEL_PREFIX = "wsidesk-cancel-"
WORKER_CANCEL_POLL_S = 0.1  # a worker asks the scheduler about a cancel at most this often
CLIENT_WATCH_S = 0.05  # how often the client looks at the cancel flags of jobs in flight
LOOPBACK = "127.0.0.1"
GPU_RESOURCE = "GPU"  # `dask worker --resources GPU=1`: segment jobs then ask for one


class DaskConnectError(WsideskError):
    """The Dask scheduler cannot be reached, or no worker joined it in time."""


PROBE_TIMEOUT_S = 3.0
_PROBED_SCHEMES = ("tcp", "tls")


def probe_scheduler(address: str, *, timeout: float) -> None:
    """Fail fast on an address that is malformed or where nothing listens, before Dask's client
    waits its full timeout (and then complains again from its destructor)."""
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "tcp", address
    if scheme not in _PROBED_SCHEMES:
        return  # inproc://, ucx://, ws://: Dask checks these itself
    if ":" not in rest.rstrip("/"):
        return  # no port: Dask applies its default
    host, _, port_text = rest.rstrip("/").rpartition(":")
    host = host.strip("[]")
    port = int(port_text) if port_text.isdigit() else 0
    if not host or not 0 < port < 65536:
        msg = (
            f"{address!r} is not a Dask scheduler address; write it like tcp://host:8786 or tls://host:8786 "
            f"(--scheduler-address or scheduler_address in cluster.yaml)"
        )
        raise DaskConnectError(msg)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        why = exc.strerror or str(exc) or type(exc).__name__
        msg = (
            f"cannot connect to the Dask scheduler at {address}: {why}; start one with `dask scheduler` "
            f"and check --scheduler-address and cluster.yaml"
        )
        raise DaskConnectError(msg) from exc


# -- worker side --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Channel:
    """Travels with the spec: how the worker talks back to this client about this attempt."""

    topic: str
    key: str
    cancel_event: str
    payloads: bool


def _dumps(value: Any) -> bytes:
    from distributed.protocol.pickle import dumps

    data: bytes = dumps(value)  # type: ignore[no-untyped-call]
    return data


class _WorkerCancelFlag:
    """`is_cancelled` on a worker: the client sets a Dask Event; we ask the scheduler now and then."""

    def __init__(self, worker: Any, name: str) -> None:
        self._worker = worker
        self._name = name
        self._set = False
        self._asked = float("-inf")

    def __call__(self) -> bool:
        if self._set:
            return True
        now = time.monotonic()
        if now - self._asked < WORKER_CANCEL_POLL_S:
            return False
        self._asked = now
        from distributed.utils import sync

        try:
            self._set = bool(sync(self._worker.loop, self._worker.scheduler.event_is_set, name=self._name))
        except Exception as exc:  # noqa: BLE001 - no answer is not a cancel; the next check asks again
            logger.debug("cannot ask the scheduler about cancel event %s: %s", self._name, exc)
        return self._set


def run_job_on_worker(spec: JobSpec, channel: _Channel) -> dict[str, str]:
    """The Dask task: run one job on this worker, reporting back through worker events."""
    from distributed import get_worker

    worker = get_worker()

    def send(kind: str, value: Any) -> None:
        worker.log_event(
            channel.topic, {"wsidesk": channel.key, "kind": kind, "data": _dumps(value), "worker": worker.address}
        )

    def emit(name: str, fields: Mapping[str, Any], payload: Any = None) -> None:
        payload = payload if channel.payloads else None
        try:
            data = _dumps((name, dict(fields), payload))
        except Exception as exc:  # noqa: BLE001 - the event matters more than its in-memory payload
            logger.warning(
                "event %s of job %s: payload cannot travel (%s); sent without it", name, spec.job.job_id, exc
            )
            data = _dumps((name, dict(fields), None))
        worker.log_event(
            channel.topic, {"wsidesk": channel.key, "kind": "event", "data": data, "worker": worker.address}
        )

    send("started", os.getpid())
    checkpoints = ForwardingCheckpoints(spec.checkpoints, lambda batch: send("checkpoints", batch))
    ctx = spec.context(emit=emit, is_cancelled=_WorkerCancelFlag(worker, channel.cancel_event), checkpoints=checkpoints)
    outputs = run_job(spec, ctx)
    send("result", outputs)
    return outputs


# -- client side --------------------------------------------------------------------------------
@dataclass(slots=True)
class _Flight:
    """One submitted task across its attempts."""

    task: JobTask
    done: Done
    key: str = ""
    future: Any = None
    worker: str | None = None  # the worker of the current attempt, once it said it started
    deaths: list[str] = field(default_factory=list)  # workers that died running it
    result: Any = None
    has_result: bool = False
    cancel_sent: bool = False


_STOP = object()


def start_local_cluster(workers: int, *, processes: bool = True, threads_per_worker: int = 1) -> LocalCluster:
    """A LocalCluster that listens on 127.0.0.1 only (or in-process), dashboard off, no silent retries."""
    import dask
    from distributed import LocalCluster

    # Scheduler, nanny and worker comms bind 127.0.0.1 (in-process ones use inproc://, no port), and
    # so do the HTTP servers Dask starts anyway (it would pick the machine's address for inproc nodes).
    where = {"host": LOOPBACK} if processes else {}
    # allowed-failures 0: a worker death fails the task at once and the executor's own retry-once rule
    # decides what happens next (Dask's default would rerun it silently up to 3 more times).
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        return LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=workers,
            threads_per_worker=threads_per_worker,
            processes=processes,
            dashboard_address=None,
            worker_dashboard_address=f"{LOOPBACK}:0",
            scheduler_kwargs={"dashboard": False, "dashboard_address": f"{LOOPBACK}:0"},
            **where,
        )


class DaskExecutor:
    """Executor over a `distributed.Client`: same `JobTask`s and `done` contract as the local ones."""

    def __init__(
        self,
        client: Client,
        *,
        max_workers: int | None = None,
        cluster: LocalCluster | None = None,
        payloads: bool = True,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self._client = client
        self._cluster = cluster  # ours to close, when we started it
        self._payloads = payloads
        self._address = str(client.scheduler.address)  # type: ignore[union-attr]
        try:
            client.wait_for_workers(1, timeout=timeout)
        except Exception as exc:  # TimeoutError, or the scheduler went away meanwhile
            msg = (
                f"no Dask worker joined the scheduler at {self._address} within {timeout:g} s; "
                f"start some with `dask worker {self._address} --resources GPU=1 --nthreads 1`"
            )
            raise DaskConnectError(msg) from exc
        try:
            info = client.scheduler_info(n_workers=-1)  # newer Dask lists only 5 workers by default
        except TypeError:
            info = client.scheduler_info()
        workers = info["workers"].values()
        capacity = sum(int(w.get("nthreads", 1)) for w in workers)
        self._gpu = any(GPU_RESOURCE in (w.get("resources") or {}) for w in workers)
        self.max_workers = max_workers if max_workers is not None else max(1, capacity)
        if self.max_workers < 1:
            msg = f"workers must be at least 1, got {self.max_workers}"
            raise ValueError(msg)
        logger.info(
            "Dask executor on %s: %d worker thread(s)%s; up to %d jobs at once",
            self._address,
            capacity,
            " with GPU resources" if self._gpu else "",
            self.max_workers,
        )
        self._topic = TOPIC_PREFIX + str(client.id)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._flights: dict[str, _Flight] = {}
        self._backlog: deque[_Flight] = deque()  # beyond max_workers in flight: held here, not on the scheduler
        self._counter = itertools.count(1)
        self._lost: str | None = None
        self._closed = False
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        client.subscribe_topic(self._topic, self._on_event)  # type: ignore[no-untyped-call]
        # Submitting costs a few ms (pickling, waking the client's event loop): a sender thread does it,
        # so that the runner's lock and the pump never wait for it.
        self._outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._sender = threading.Thread(target=self._run_sender, name="wsidesk-dask-sender", daemon=True)
        self._pump = threading.Thread(target=self._run_pump, name="wsidesk-dask-pump", daemon=True)
        self._sender.start()
        self._pump.start()

    @classmethod
    def connect(
        cls,
        address: str | None,
        *,
        security: Security | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_workers: int | None = None,
        processes: bool = True,
        payloads: bool = True,
    ) -> DaskExecutor:
        """A client of the scheduler at `address`; without one, of a new loopback LocalCluster with
        `max_workers` (default 2) single-threaded workers. `payloads=False` leaves the in-memory event
        payloads (cell polygons for a live overlay) on the workers: less traffic when nobody shows them."""
        from distributed import Client

        if address is not None:
            probe_scheduler(address, timeout=min(timeout, PROBE_TIMEOUT_S))
        cluster = None
        try:
            if address is None:
                if security is not None:
                    logger.info("TLS settings apply to remote schedulers; the local cluster stays on loopback")
                cluster = start_local_cluster(max_workers or 2, processes=processes)
                client = Client(cluster, set_as_default=False, timeout=timeout)  # type: ignore[no-untyped-call]
            else:
                client = Client(address, security=security, set_as_default=False, timeout=timeout)  # type: ignore[no-untyped-call]
        except Exception as exc:
            if cluster is not None:
                cluster.close()
            where = address or "a local cluster"
            why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            msg = (
                f"cannot connect to the Dask scheduler at {where}: {why}; start one with `dask scheduler` "
                f"and check --scheduler-address and the TLS settings in cluster.yaml"
            )
            raise DaskConnectError(msg) from exc
        try:
            return cls(client, max_workers=max_workers, cluster=cluster, timeout=timeout, payloads=payloads)
        except BaseException:
            client.close()  # type: ignore[no-untyped-call]
            if cluster is not None:
                cluster.close()
            raise

    @property
    def scheduler_address(self) -> str:
        return self._address

    # -- Executor protocol -------------------------------------------------------------------
    def submit(self, task: JobTask, done: Done) -> None:
        flight = _Flight(task, done)
        with self._lock:
            lost = self._lost
            admitted = lost is None and self._admit(flight)
        if lost is not None:
            self._inbox.put(("fail", flight, ExecutorLost(lost)))
        elif admitted:
            self._outbox.put(flight)

    def shutdown(self, *, wait: bool = True) -> None:
        with self._idle:
            if self._closed:
                return
            if wait:
                self._idle.wait_for(lambda: not (self._flights or self._backlog) or self._lost is not None)
            flights = list(self._flights.values())
            self._backlog.clear()
            self._closed = True
        for flight in flights:  # shutdown(wait=False): nothing more is reported for these
            self._cancel(flight, started_too=True)
        self._outbox.put(_STOP)
        self._sender.join(timeout=10)
        self._inbox.put(_STOP)
        self._pump.join(timeout=10)
        try:
            self._client.unsubscribe_topic(self._topic)  # type: ignore[no-untyped-call]
        except Exception:  # noqa: BLE001 - closing anyway
            logger.debug("unsubscribe failed", exc_info=True)
        try:
            self._client.close(timeout=5)  # type: ignore[no-untyped-call]
        except Exception:  # noqa: BLE001 - a lost scheduler cannot say goodbye
            logger.debug("client close failed", exc_info=True)
        if self._cluster is not None:
            self._cluster.close()

    # -- sending -----------------------------------------------------------------------------
    def _admit(self, flight: _Flight) -> bool:
        """Under the lock: take a slot and a fresh key, or wait in the backlog (never more than
        max_workers tasks on the scheduler, as a thread pool of that size would run)."""
        if len(self._flights) >= self.max_workers:
            self._backlog.append(flight)
            return False
        flight.key = f"wsidesk-job-{next(self._counter)}-{uuid.uuid4().hex[:12]}"
        flight.worker, flight.result, flight.has_result = None, None, False
        self._flights[flight.key] = flight
        return True

    def _run_sender(self) -> None:
        while (flight := self._outbox.get()) is not _STOP:
            self._send(flight)

    def _send(self, flight: _Flight) -> None:
        """Ship an admitted flight (sender thread); a failure is reported through `done` by the pump."""
        key = flight.key
        if flight.cancel_sent:  # cancelled while it waited to be sent
            msg = f"job {flight.task.job_id} was cancelled before it started"
            self._inbox.put(("fail", flight, JobCancelled(msg)))
            return
        try:
            spec = flight.task.remote_spec()  # tile checkpoints as the store has them now (also on a retry)
            channel = _Channel(self._topic, key, CANCEL_PREFIX + key, self._payloads)
            resources = {GPU_RESOURCE: 1} if self._gpu and spec.job.type == "segment" else None
            future = self._client.submit(
                run_job_on_worker, spec, channel, key=key, pure=False, resources=resources, retries=0
            )
        except Exception as exc:  # noqa: BLE001
            self._inbox.put(("fail", flight, self._lost_error(flight.task, f"submitting failed: {exc}")))
            return
        flight.future = future
        future.add_done_callback(lambda _f: self._inbox.put(("done", key)))  # type: ignore[no-untyped-call]

    # -- receiving (event loop thread -> pump thread) ---------------------------------------------
    def _on_event(self, event: tuple[float, Any]) -> None:
        msg = event[1]
        if isinstance(msg, dict) and "wsidesk" in msg:
            self._inbox.put(("msg", msg))

    def _run_pump(self) -> None:
        while True:
            with self._lock:
                busy = bool(self._flights)
            try:
                item = self._inbox.get(timeout=CLIENT_WATCH_S if busy else None)
            except queue.Empty:
                item = None
            if item is _STOP:
                return
            try:
                if item is not None:
                    self._handle(item)
                if busy:
                    self._watch_cancels()
            except Exception:  # the pump must survive anything one message does
                logger.exception("Dask executor: handling %r failed", item)

    def _handle(self, item: tuple[Any, ...]) -> None:
        kind = item[0]
        if kind == "msg":
            self._on_message(item[1])
        elif kind == "done":
            self._on_future_done(item[1])
        elif kind == "fail":
            _, flight, error = item
            self._complete(flight, None, error)

    def _on_message(self, msg: dict[str, Any]) -> None:
        with self._lock:
            flight = self._flights.get(msg["wsidesk"])
        if flight is None:
            return  # an attempt that is over (a retried one, a cancelled one)
        kind, value = msg["kind"], pickle.loads(msg["data"])  # noqa: S301 - our own workers' messages
        hooks = flight.task.hooks
        if kind == "started":
            flight.worker = msg.get("worker")
            logger.debug("job %s started on worker %s (pid %s)", flight.task.job_id, flight.worker, value)
        elif kind == "event":
            name, fields, payload = value
            hooks.emit(name, fields, payload)
        elif kind == "checkpoints":
            hooks.checkpoints.save(value)
        elif kind == "result":
            flight.result, flight.has_result = value, True

    def _on_future_done(self, key: str) -> None:
        with self._lock:
            flight = self._flights.get(key)
        if flight is None:
            return
        future = flight.future
        if future.status == "finished":
            result = flight.result if flight.has_result else future.result()
            self._complete(flight, result, None)
            return
        if future.status == "error":
            error = _future_exception(future)
            if error is not None:  # None: the state moved on meanwhile (the connection was lost)
                if _is_killed_worker(error):
                    self._on_worker_died(flight, error)
                else:
                    self._complete(flight, None, error)
                return
        if flight.cancel_sent:
            msg = f"job {flight.task.job_id} was cancelled before it started"
            self._complete(flight, None, JobCancelled(msg))
        else:  # cancelled or lost by Dask itself: the scheduler connection is gone
            self._complete(flight, None, self._lost_error(flight.task, _cancel_reason(future)))

    def _on_worker_died(self, flight: _Flight, error: BaseException) -> None:
        last = getattr(error, "last_worker", None)
        dead = flight.worker or getattr(last, "address", None) or "(unknown)"
        flight.deaths.append(dead)
        job_id = flight.task.job_id
        if len(flight.deaths) == 1 and not flight.cancel_sent:
            logger.warning("worker %s died while running job %s: retrying it once on another worker", dead, job_id)
            with self._lock:  # the same slot, a new key: messages of the dead attempt are dropped
                self._flights.pop(flight.key, None)
                self._admit(flight)
            self._outbox.put(flight)
            return
        first = flight.deaths[0]
        where = f"worker {dead}" if dead == first else f"workers {first} and then {dead}"
        msg = (
            f"{where} died while running job {job_id} twice; not retried again: check the Dask "
            f"worker logs (out of memory? a crash in the model?)"
        )
        self._complete(flight, None, JobError(msg))

    def _complete(self, flight: _Flight, result: Any, error: BaseException | None) -> None:
        """Deliver `done` once, free the slot, and start what waited for it."""
        with self._lock:
            self._flights.pop(flight.key, None)
            if isinstance(error, ExecutorLost) and self._lost is None:
                self._lost = str(error)
            lost = self._lost
            failed: list[_Flight] = []
            ready: list[_Flight] = []
            if lost is not None:
                failed, self._backlog = list(self._backlog), deque()
            elif not self._closed:
                while self._backlog and len(self._flights) < self.max_workers:
                    held = self._backlog.popleft()
                    self._admit(held)
                    ready.append(held)
        if flight.cancel_sent and flight.key:
            self._clear_cancel_event(flight.key)
        flight.future = None
        try:
            deliver(flight.done, result, error)  # an exception in `done` reaches the runner
        finally:
            for held in failed:
                self._inbox.put(("fail", held, ExecutorLost(lost or "")))
            for held in ready:
                self._outbox.put(held)
            with self._idle:
                self._idle.notify_all()

    def _lost_error(self, task: JobTask, reason: str) -> ExecutorLost:
        msg = (
            f"lost the Dask scheduler at {self._address} while job {task.job_id} of run {task.spec.run_id} "
            f"was in flight ({reason}); the run is saved as interrupted: once the scheduler is back, "
            f"continue it with `wsidesk run --resume {task.spec.run_id} --executor dask`"
        )
        return ExecutorLost(msg)

    # -- cancelling ----------------------------------------------------------------------------
    def _watch_cancels(self) -> None:
        with self._lock:
            flights = [f for f in self._flights.values() if not f.cancel_sent]
            dropped = [f for f in self._backlog if f.task.hooks.is_cancelled()]
            for flight in dropped:
                self._backlog.remove(flight)
        for flight in dropped:
            self._complete(flight, None, JobCancelled(f"job {flight.task.job_id} was cancelled before it started"))
        # Jobs that have not started go first: telling a running job to stop frees its thread, and a
        # queued task of the same run must be dropped before it can take that thread.
        for flight in sorted(flights, key=lambda f: f.worker is not None):
            if flight.task.hooks.is_cancelled():
                self._cancel(flight, started_too=False)

    def _cancel(self, flight: _Flight, *, started_too: bool) -> None:
        """Tell a running job to stop at its next batch; drop one that has not started."""
        from distributed import Event

        flight.cancel_sent = True
        key, future = flight.key, flight.future
        try:
            if future is not None and (flight.worker is None or started_too):
                future.cancel(reason="wsidesk-cancelled")
            Event(CANCEL_PREFIX + key, client=self._client).set()  # type: ignore[no-untyped-call]
        except Exception as exc:  # noqa: BLE001 - a lost scheduler shows up as the future's state
            logger.debug("cancelling job %s failed: %s", flight.task.job_id, exc)

    def _clear_cancel_event(self, key: str) -> None:
        from distributed import Event

        try:  # a cleared Event with no waiters is deleted on the scheduler
            Event(CANCEL_PREFIX + key, client=self._client).clear()  # type: ignore[no-untyped-call]
        except Exception:  # noqa: BLE001
            logger.debug("clearing cancel event of %s failed", key, exc_info=True)


def _future_exception(future: Any) -> BaseException | None:
    try:
        error: BaseException | None = future.exception(timeout=5)
        return error
    except Exception:  # noqa: BLE001 - no answer: treated like a lost connection
        return None


def _cancel_reason(future: Any) -> str:
    """Why Dask cancelled a future we did not cancel (e.g. "scheduler-connection-lost")."""
    try:
        future.result(timeout=5)
    except BaseException as exc:  # noqa: BLE001 - a FutureCancelledError carries the reason
        reason = getattr(exc, "reason", None)
        if reason:
            return str(reason)
    return "cancelled by the scheduler"


def _is_killed_worker(error: BaseException) -> bool:
    from distributed.scheduler import KilledWorker

    return isinstance(error, KilledWorker)
