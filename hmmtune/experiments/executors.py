"""Executors of a sweep's runs: ``local`` (this process, or spawned workers) and ``ray``.

Both take the runs still to do and call ``on_result(spec, record)`` in the driver as each
record arrives (the driver saves it); workers only compute. Both restart a run whose
worker died (up to ``retries`` times) and, on an interrupt, stop every worker before the
``KeyboardInterrupt`` goes up.

- :func:`run_local`: with ``jobs == 1`` the runs execute in this process. Otherwise
  ``jobs`` worker processes (``spawn``), each fed one run at a time over a pipe. Workers
  ignore SIGINT (the driver decides), and die with the driver: a thread in each watches
  the parent's pid, and on Linux the kernel sends them SIGKILL when it dies
  (``PR_SET_PDEATHSIG``), so even a SIGKILL of the driver leaves no orphan computing.
- :func:`run_ray`: one Ray task per run with declared resources (the recipe's
  ``resources``: one CPU by default, a GPU for a learned run on CUDA) and
  ``max_retries`` for worker failures. Connects to ``address`` or starts a local Ray
  instance (shut down again after the sweep).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import deque
from typing import Callable

__all__ = ["EXECUTORS", "RAY_INSTALL", "RayMissingError", "require_ray", "run_local", "run_ray"]

EXECUTORS = ("local", "ray")
RAY_INSTALL = 'pip install "hmmtune[ray]"'


class RayMissingError(ValueError):
    """``executor="ray"`` without Ray installed."""


def require_ray():
    try:
        import ray
    except ImportError:
        raise RayMissingError(f"the Ray executor needs Ray, which is not installed: {RAY_INSTALL}") from None
    return ray


# ------------------------------------------------------------------------------ local
def _die_with_parent(parent_pid: int) -> None:
    try:  # Linux: the kernel kills us when the parent (its spawning thread) dies
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch():
        while True:
            time.sleep(0.25)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="hmmtune-parent-watch", daemon=True).start()


def _worker_main(conn, parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent(parent_pid)
    from .sweep import execute

    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        recipe, spec, options = msg
        try:
            rec = execute(recipe, spec, options)
            conn.send(("ok", rec))
        except BaseException as exc:  # noqa: BLE001 - reported to the driver, which raises it
            try:
                conn.send(("error", exc))
            except Exception:  # an exception that does not pickle
                conn.send(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))


class _Slot:
    def __init__(self, ctx, parent_pid):
        import multiprocessing as mp

        self.conn, child = mp.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, parent_pid), daemon=True, name="hmmtune-sweep-worker")
        self.process.start()
        child.close()
        self.spec = None


def run_local(recipe, todo: list, options, on_result: Callable, *, jobs: int = 1, retries: int = 2) -> int:
    """Run ``todo`` here (``jobs == 1``) or in ``jobs`` spawned processes. Returns the
    number of runs restarted after a worker died."""
    from .sweep import execute

    if jobs == 1 or len(todo) <= 1:
        for spec in todo:
            on_result(spec, execute(recipe, spec, options))
        return 0

    import multiprocessing as mp
    from multiprocessing.connection import wait

    ctx = mp.get_context("spawn")
    ref = recipe  # pickled by reference to its module-level functions
    queue = deque(todo)
    attempts: dict = {}
    restarted = 0
    slots: list[_Slot] = []
    try:
        for _ in range(min(jobs, len(todo))):
            slots.append(_Slot(ctx, os.getpid()))

        def feed(slot):
            if queue:
                slot.spec = queue.popleft()
                try:
                    slot.conn.send((ref, slot.spec, options))
                except OSError:  # the worker is gone: the loop below sees it die and retries the run
                    pass
            else:
                slot.spec = None

        for slot in slots:
            feed(slot)
        while any(s.spec is not None for s in slots):
            busy = [s for s in slots if s.spec is not None]
            ready = wait([s.conn for s in busy] + [s.process.sentinel for s in busy], timeout=1.0)
            for i, slot in enumerate(slots):
                if slot.spec is None or (slot.conn not in ready and slot.process.sentinel not in ready):
                    continue
                msg = None
                if slot.conn.poll():
                    try:
                        msg = slot.conn.recv()
                    except (EOFError, OSError):
                        msg = None
                if msg is None:  # the worker died
                    slot.process.join(1.0)
                    spec = slot.spec
                    attempts[spec.path] = attempts.get(spec.path, 0) + 1
                    if attempts[spec.path] > retries:
                        raise RuntimeError(
                            f"run {spec.path.stem}: its worker process died {attempts[spec.path]} times "
                            f"(last exit code {slot.process.exitcode}); giving up"
                        )
                    restarted += 1
                    queue.appendleft(spec)
                    slot.conn.close()
                    slots[i] = slot = _Slot(ctx, os.getpid())
                    feed(slot)
                    continue
                status, payload = msg
                if status == "error":
                    raise payload
                spec = slot.spec
                feed(slot)
                on_result(spec, payload)
        for slot in slots:
            try:
                slot.conn.send(None)
            except OSError:
                pass
        for slot in slots:
            slot.process.join(5.0)
    finally:
        for slot in slots:  # an interrupt or an error: stop every worker now
            if slot.process.is_alive():
                slot.process.kill()
        for slot in slots:
            slot.process.join(2.0)
            slot.conn.close()
    return restarted


# -------------------------------------------------------------------------------- ray
def _ray_execute(recipe, spec, options):
    from .sweep import execute

    return execute(recipe, spec, options)


def _resources(recipe, config_dict, options) -> dict:
    if recipe.resources is None:
        return {"num_cpus": 1}
    return dict(recipe.resources(recipe.config_from_dict(config_dict), options.device))


def run_ray(
    recipe, todo: list, options, on_result: Callable, *, address: str | None = None, num_cpus: int | None = None, retries: int = 2
) -> int:
    """Run ``todo`` as Ray tasks; records come back to the driver. Returns the number of
    task restarts Ray reported (0 when it does not say)."""
    ray = require_ray()
    started = False
    if not ray.is_initialized():
        kw = dict(include_dashboard=False, logging_level="ERROR", log_to_driver=True)
        if address:
            ray.init(address=address, **kw)
        else:
            ray.init(num_cpus=num_cpus, **kw)
            started = True
    refs: dict = {}
    try:
        if not todo:
            return 0
        remote = ray.remote(_ray_execute)
        for spec in todo:
            res = _resources(recipe, spec.config, options)
            refs[remote.options(max_retries=int(retries), retry_exceptions=False, **res).remote(recipe, spec, options)] = spec
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=0.5)
            for ref in ready:
                spec = refs.pop(ref)
                try:
                    rec = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:  # the run itself raised: raise its error
                    cause = exc.as_instanceof_cause()
                    raise cause from None
                except ray.exceptions.WorkerCrashedError:
                    raise RuntimeError(
                        f"run {spec.path.stem}: its Ray worker died {int(retries) + 1} times; giving up"
                    ) from None
                on_result(spec, rec)
        return 0
    finally:
        for ref in refs:  # an interrupt or an error: stop the remaining tasks
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished or gone
                pass
        if started:
            ray.shutdown()
