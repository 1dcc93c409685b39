"""A batch of screenplays on Ray (SPEC §13): the asking machine's side.

Every screenplay is loaded, planned and its output checked here first, so a broken one is
reported before any work is sent and the others still render. Jobs go longest first to
`RenderWorker` actors (one per GPU, or per CPU slot for the preview engine) from a
`ray.wait` loop; each finished job's output comes back as bytes and is written here with
`encode.publish_files` (atomic, sidecar, never over a file kandanim did not write).

Faults: a worker process that dies is restarted by Ray (`max_restarts`), and the screenplay
it was rendering goes back to the front of the queue for the next free worker, up to
`MAX_ATTEMPTS` times. Ctrl-C kills the workers and reports which screenplays finished.
Results are reported in the order of the command line (stdout is then the same as a local
batch's); failures found before any work are reported at once.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from kandanim.encode import check_output, output_format, publish_files
from kandanim.errors import Interrupted, KandanimError, RuntimeFailure, UserError
from kandanim.farm.cluster import connect, import_ray, parse_address
from kandanim.farm.worker import InputFile, Job, Rendered, RenderWorker, WorkerInfo, plan_inputs
from kandanim.jobs import (
    JobResult,
    RenderOptions,
    input_digests,
    load_script,
    output_for,
    render_inputs,
)
from kandanim.plan import build_plan

MAX_ATTEMPTS = 3  # a screenplay whose worker dies is tried on up to two more workers
WORKER_RESTARTS = 3  # Ray restarts a dead worker process this many times
POLL_S = 0.1  # how often the loop looks at progress events while renders run
TOTAL = "total"


@dataclass(frozen=True)
class FarmOptions:
    cluster: str = "local"  # local | auto | ray://HOST:PORT
    workers: int | None = None  # None: one per GPU (or CPU) of the cluster


@dataclass(frozen=True)
class ScriptProgress:
    """One progress line: a screenplay, or the whole batch (`script == TOTAL`)."""

    script: str
    worker: str  # who renders it ("worker 2 (cuda, pid 812 on gpu-3)"), or a summary
    done: int  # frames
    total: int
    fps: float | None = None
    eta: float | None = None  # seconds left
    state: str = "running"  # running | ok | failed | retrying | interrupted
    pid: int | None = None  # the worker's process id, where it is known


class BatchProgress(Protocol):
    def update(self, line: ScriptProgress) -> None: ...
    def stop(self) -> None: ...


class NoBatchProgress:
    def update(self, line: ScriptProgress) -> None:
        pass

    def stop(self) -> None:
        pass


def render_on_cluster(
    scripts: Sequence[Path],
    *,
    options: RenderOptions,
    farm: FarmOptions,
    output: Path | None,
    out_dir: Path | None,
    progress: BatchProgress,
    notify: Callable[[str], None],
    on_result: Callable[[JobResult], None],
) -> list[JobResult]:
    """Render `scripts` on a Ray cluster; the same results as `jobs.render_scripts`.

    Raises UserError for bad options or Ray not installed (exit 2), RuntimeFailure for a
    cluster that cannot be reached (exit 1). Per-script failures are results, not raised.
    """
    if output is not None and len(scripts) > 1:
        raise UserError("-o/--output names one file; with several scripts use --out-dir DIR")
    if farm.workers is not None and farm.workers < 1:
        raise UserError(f"--workers must be at least 1, got {farm.workers}")
    address = parse_address(farm.cluster)
    import_ray()  # before the screenplays: a missing extra is the first thing to say
    if options.keep_frames:
        notify("--keep-frames has no effect with --cluster: frames stay on the workers")
    reporter = _Reporter(len(scripts), on_result)
    jobs: list[Job] = []
    targets: dict[int, Path] = {}
    for index, script in enumerate(scripts):
        try:
            job, target = _bake(index, script, options, output, out_dir, notify)
            _check_distinct(script, target, targets, scripts)
        except KandanimError as error:
            reporter.early(index, JobResult(script=str(script), status="failed", error=error))
            continue
        jobs.append(job)
        targets[index] = target
    if jobs:
        with connect(address) as ray:
            _Farm(ray, jobs, targets, options, farm, progress, notify, reporter).run()
    return reporter.results()


def _bake(
    index: int,
    script: Path,
    options: RenderOptions,
    output: Path | None,
    out_dir: Path | None,
    notify: Callable[[str], None],
) -> tuple[Job, Path]:
    """Validate, plan and check the output of one screenplay, as a local render does."""
    loaded = load_script(script, options, notify)  # Deforum and Parseq files too
    for notice in loaded.notices:
        notify(f"{script}: {notice}")
    plan = build_plan(loaded, seed=options.seed, engine=options.engine, notify=notify)
    if loaded.screenplay.seed is None and options.seed is None:
        notify(f"{script}: seed {plan.seed} (set `seed:` to reproduce)")
    target = output_for(loaded, output=output, out_dir=out_dir)
    check_output(target, force=options.force, inputs=render_inputs(plan, loaded.path))
    record = plan.to_json()
    record["inputs"] = input_digests(plan)  # what a local render records
    inputs: dict[str, InputFile] = {}
    for path in plan_inputs(plan):
        try:
            inputs[str(path)] = InputFile.read(path)
        except OSError as error:
            raise UserError(f"{script}: cannot read {path}: {error.strerror or error}") from None
    job = Job(
        index=index, script=str(script), plan=plan, record=record, text=loaded.text,
        output_name=target.name, folder_output=output_format(target) == "png",
        options=options, inputs=inputs,
    )
    return job, target


def _check_distinct(
    script: Path, target: Path, taken: dict[int, Path], scripts: Sequence[Path]
) -> None:
    for index, other in taken.items():
        if other.resolve() == target.resolve():
            raise UserError(
                f"{script}: its output {target} is also the output of {scripts[index]}",
                hint="give each screenplay its own `output:`, or render them separately",
            )


class _Reporter:
    """Results in command-line order: one is passed on once all before it are."""

    def __init__(self, count: int, on_result: Callable[[JobResult], None]) -> None:
        self._results: list[JobResult | None] = [None] * count
        self._skipped: set[int] = set()
        self._next = 0
        self._on_result = on_result

    def early(self, index: int, result: JobResult) -> None:
        """A failure found before any work: reported now, out of order."""
        self._results[index] = result
        self._skipped.add(index)
        self._on_result(result)

    def finish(self, index: int, result: JobResult) -> None:
        self._results[index] = result
        while self._next < len(self._results):
            current = self._results[self._next]
            if current is None:
                break
            if self._next not in self._skipped:
                self._on_result(current)
            self._next += 1

    def has(self, index: int) -> bool:
        return self._results[index] is not None

    def results(self) -> list[JobResult]:
        return [r for r in self._results if r is not None]


@dataclass
class _Running:
    job: Job
    worker: int
    attempt: int
    first: tuple[int, float] | None = None  # (frames, worker clock) of the first event
    done: int = 0


@dataclass
class _Farm:
    """One batch on a connected cluster: the workers, the queue of jobs and the loop."""

    ray: ModuleType
    jobs: list[Job]
    targets: dict[int, Path]
    options: RenderOptions
    farm: FarmOptions
    progress: BatchProgress
    notify: Callable[[str], None]
    reporter: _Reporter
    workers: list[Any] = field(default_factory=list)  # actor handles
    infos: dict[int, WorkerInfo] = field(default_factory=dict)  # by worker index
    pending: deque[Job] = field(default_factory=deque)  # longest first
    idle: deque[int] = field(default_factory=deque)  # worker indices
    starting: dict[Any, int] = field(default_factory=dict)  # describe() ref → worker
    running: dict[Any, _Running] = field(default_factory=dict)  # render() ref → job
    by_job: dict[int, _Running] = field(default_factory=dict)
    attempts: dict[int, int] = field(default_factory=dict)
    first_dispatch: dict[int, float] = field(default_factory=dict)
    finished_frames: int = 0
    started: float = field(default_factory=time.monotonic)
    events: Any = None  # ray.util.queue.Queue: progress and notices from the workers

    def run(self) -> None:
        from ray.util.queue import Queue

        self.events = Queue(actor_options={"num_cpus": 0})
        self.pending.extend(sorted(self.jobs, key=lambda j: j.cost, reverse=True))
        try:
            self._start_workers()
            self._loop()
        except KeyboardInterrupt:
            self._cancel()
        finally:
            self.progress.stop()
            for handle in self.workers:
                self.ray.kill(handle, no_restart=True)
            self.ray.kill(self.events.actor, no_restart=True)

    # -- workers ---------------------------------------------------------------------------

    def _start_workers(self) -> None:
        resources = self.ray.cluster_resources()
        engines = sorted({job.plan.engine for job in self.jobs})
        gpus = int(resources.get("GPU", 0))
        on_gpu = gpus > 0 and engines != ["preview"]
        slots = gpus if on_gpu else max(int(resources.get("CPU", 1)), 1)
        wanted = self.farm.workers or slots
        if wanted > slots:
            kind = "GPUs" if on_gpu else "CPUs"
            self.notify(f"--workers {wanted}: the cluster has {slots} {kind} now; the other "
                        "workers start when it grows")
        count = min(wanted, len(self.jobs))
        resources_each = {"num_gpus": 1, "num_cpus": 1} if on_gpu else {"num_cpus": 1}
        actor = self.ray.remote(RenderWorker).options(
            max_restarts=WORKER_RESTARTS, max_task_retries=0, **resources_each
        )
        self.workers = [
            actor.remote(i + 1, self.options, engines) for i in range(count)
        ]
        self.starting = {w.describe.remote(): i for i, w in enumerate(self.workers)}
        self.notify(f"{count} worker{'s' if count > 1 else ''} for {len(self.jobs)} screenplays "
                    f"({'one GPU' if on_gpu else 'one CPU'} each)")

    def _worker_ready(self, ref: Any) -> None:
        index = self.starting.pop(ref)
        try:
            self.infos[index] = self.ray.get(ref)
        except self.ray.exceptions.RayError as error:
            self.notify(f"worker {index + 1} is gone: {_first_line(error)}")
            return
        self.idle.append(index)

    # -- the loop --------------------------------------------------------------------------

    def _loop(self) -> None:
        pending = self.pending
        shipped = {job.index: self.ray.put(job) for job in self.jobs}
        while pending or self.running:
            while self.idle and pending:
                self._dispatch(pending.popleft(), self.idle.popleft(), shipped)
            if not self.running and not self.starting:
                for job in pending:
                    self._finish(job, error=RuntimeFailure("no worker is left to render it"))
                return
            refs = [*self.running, *self.starting]
            ready, _ = self.ray.wait(refs, num_returns=1, timeout=POLL_S)
            self._drain_events()
            for ref in ready:
                if ref in self.starting:
                    self._worker_ready(ref)
                else:
                    self._collect(ref, pending)

    def _dispatch(self, job: Job, worker: int, shipped: dict[int, Any]) -> None:
        attempt = self.attempts[job.index] = self.attempts.get(job.index, 0) + 1
        self.first_dispatch.setdefault(job.index, time.monotonic())
        ref = self.workers[worker].render.remote(shipped[job.index], attempt, self.events)
        running = _Running(job, worker, attempt)
        self.running[ref] = self.by_job[job.index] = running
        self._show(running)

    def _collect(self, ref: Any, pending: deque[Job]) -> None:
        running = self.running.pop(ref)
        job, worker = running.job, running.worker
        del self.by_job[job.index]
        exceptions = self.ray.exceptions
        try:
            rendered: Rendered = self.ray.get(ref)
        except (exceptions.RayActorError, exceptions.ObjectLostError) as error:
            self._worker_died(running, pending, error)
            return
        except exceptions.RayTaskError as error:  # a bug on the worker: keep its traceback
            self.idle.append(worker)
            self._finish(job, error=RuntimeFailure(f"internal error on {self._name(worker)}:\n"
                                                   f"{error}"))
            return
        self.idle.append(worker)
        if rendered.error is not None:
            self._finish(job, error=rendered.error.rebuild())
            return
        try:
            assert rendered.content is not None
            target = self.targets[job.index]
            check_output(target, force=self.options.force)  # again: time has passed
            publish_files(target, rendered.content, rendered.sidecar)
        except KandanimError as error:
            self._finish(job, error=error)
            return
        self._finish(job, frames=rendered.frames)

    def _worker_died(self, running: _Running, pending: deque[Job], error: Exception) -> None:
        job, worker = running.job, running.worker
        what = f"{self._name(worker)} died while rendering {job.script}"
        # Ray restarts the process; it is idle again once it answers
        self.starting[self.workers[worker].describe.remote()] = worker
        if running.attempt >= MAX_ATTEMPTS:
            self._finish(job, error=RuntimeFailure(
                f"{what} ({running.attempt} attempts): {_first_line(error)}",
                hint="workers that die again and again often ran out of memory; see Ray's "
                "logs (/tmp/ray/session_latest/logs on each node)",
            ))
            return
        self.notify(f"{what}; retrying it on the next free worker "
                    f"(attempt {running.attempt + 1} of {MAX_ATTEMPTS})")
        self._show(running, state="retrying")
        pending.appendleft(job)

    def _finish(
        self, job: Job, *, frames: int = 0, error: KandanimError | None = None
    ) -> None:
        began = self.first_dispatch.get(job.index)
        seconds = 0.0 if began is None else time.monotonic() - began
        result = JobResult(
            script=job.script, status="ok" if error is None else "failed", frames=frames,
            seconds=seconds, output=self.targets[job.index], error=error,
        )
        if isinstance(error, Interrupted):
            result.status = "interrupted"
        if error is None:
            self.finished_frames += job.plan.frame_count
        self.reporter.finish(job.index, result)
        total = job.plan.frame_count
        self.progress.update(ScriptProgress(
            job.script, "", total if error is None else 0, total, state=result.status,
        ))
        self._show_total()
        if error is not None and not isinstance(error, Interrupted) and self.options.fail_fast:
            self.pending.clear()  # like a local batch: stop at the first failure

    def _cancel(self) -> None:
        """Ctrl-C: every screenplay without a result is reported as interrupted."""
        running = {r.job.index: r.worker for r in self.running.values()}
        self.running.clear()
        self.pending.clear()
        for job in self.jobs:
            if self.reporter.has(job.index):
                continue
            if job.index in running:
                where = f"cancelled while rendering on {self._name(running[job.index])}"
            else:
                where = "cancelled before it was rendered"
            self._finish(job, error=Interrupted(where, hint="run the same command again"))
        results = self.reporter.results()
        finished = [r.script for r in results if r.status == "ok"]
        listed = ", ".join(finished) if finished else "none"
        self.notify(f"interrupted; {len(finished)} of {len(results)} screenplays finished: "
                    f"{listed}")

    # -- progress --------------------------------------------------------------------------

    def _drain_events(self) -> None:
        try:
            count = self.events.qsize()
            events = self.events.get_nowait_batch(count) if count else []
        except Exception:  # noqa: BLE001 - progress is best effort; results still come
            return
        for event in events:
            if event[0] == "notice":
                _, index, message = event
                self.notify(f"{self._script(index)}: {message}")
                continue
            _, index, attempt, done, _total, clock = event
            running = self.by_job.get(index)
            if running is None or running.attempt != attempt:
                continue  # a dead attempt's last words
            running.first = running.first or (done, clock)
            running.done = done
            self._show(running, clock=clock)
        if events:
            self._show_total()

    def _show(self, running: _Running, *, clock: float | None = None, state: str = "running"
              ) -> None:
        fps = eta = None
        if running.first is not None and clock is not None and clock > running.first[1]:
            fps = (running.done - running.first[0]) / (clock - running.first[1])
            if fps > 0:
                eta = (running.job.plan.frame_count - running.done) / fps
        info = self.infos.get(running.worker)
        self.progress.update(ScriptProgress(
            running.job.script, self._name(running.worker), running.done,
            running.job.plan.frame_count, fps, eta, state, info.pid if info else None,
        ))

    def _show_total(self) -> None:
        total = sum(job.plan.frame_count for job in self.jobs)
        done = self.finished_frames + sum(r.done for r in self.running.values())
        elapsed = time.monotonic() - self.started
        fps = done / elapsed if elapsed > 0 else None
        eta = (total - done) / fps if fps else None
        workers = f"{len(self.running)} of {len(self.workers)} workers busy"
        self.progress.update(ScriptProgress(TOTAL, workers, done, total, fps, eta))

    def _name(self, worker: int) -> str:
        info = self.infos.get(worker)
        return str(info) if info is not None else f"worker {worker + 1}"

    def _script(self, index: int) -> str:
        return next(job.script for job in self.jobs if job.index == index)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
