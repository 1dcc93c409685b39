"""The farm's worker: a long-lived Ray actor that renders whole screenplays.

One `RenderWorker` runs per GPU (or per CPU slot for the preview engine). It creates its
engines once, in its constructor, and keeps them — and the models they load on the first
plan — for every screenplay it is given. A job carries the plan baked on the asking machine,
the screenplay text and the bytes of its input files (init images, soundtrack), so workers
need no shared file system; the worker renders into a temporary folder with the same
`render_plan` as a local render and sends back the encoded output and its sidecar.

This module does not import Ray: the driver wraps `RenderWorker` with `ray.remote` and
passes the event queue in, so the class is plain Python and testable as such.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from kandanim.encode import frame_files, sidecar_path
from kandanim.errors import Interrupted, KandanimError, RuntimeFailure, UserError
from kandanim.jobs import Engines, RenderOptions, render_plan
from kandanim.plan import Plan

PROGRESS_INTERVAL_S = 0.25  # at most ~4 progress events per second per worker


class EventSink(Protocol):
    """Where a worker reports progress: `ray.util.queue.Queue` in a farm."""

    def put_nowait(self, item: Any) -> None: ...


@dataclass(frozen=True)
class InputFile:
    """An input of a plan as the asking machine read it."""

    sha256: str
    data: bytes

    @classmethod
    def read(cls, path: Path) -> InputFile:
        data = path.read_bytes()
        return cls(hashlib.sha256(data).hexdigest(), data)


@dataclass(frozen=True)
class Job:
    """One screenplay to render: everything a worker needs, baked on the asking machine."""

    index: int  # position in the batch (the order of the command line)
    script: str  # the screenplay as the user named it, for messages
    plan: Plan
    record: dict[str, Any]  # plan.to_json() on the asking machine: what the sidecar says
    text: str  # the screenplay's text (metadata, sidecar)
    output_name: str  # the output's file or folder name
    folder_output: bool  # a folder of PNG frames
    options: RenderOptions
    inputs: dict[str, InputFile] = field(default_factory=dict)  # path on the asking machine

    @property
    def cost(self) -> int:
        """Frames × pixels: the queue hands out the longest renders first."""
        return self.plan.frame_count * self.plan.width * self.plan.height


@dataclass(frozen=True)
class WorkerInfo:
    index: int  # 1-based, as the progress lines show it
    pid: int
    host: str
    device: str

    def __str__(self) -> str:
        return f"worker {self.index} ({self.device}, pid {self.pid} on {self.host})"


@dataclass(frozen=True)
class ErrorReport:
    """A KandanimError made on a worker, rebuilt on the asking machine (exit code kept)."""

    exit_code: int
    message: str
    hint: str | None

    @classmethod
    def of(cls, error: KandanimError) -> ErrorReport:
        return cls(error.exit_code, error.message, error.hint)

    def rebuild(self) -> KandanimError:
        kind = {2: UserError, 130: Interrupted}.get(self.exit_code, RuntimeFailure)
        return kind(self.message, hint=self.hint)


@dataclass(frozen=True)
class Rendered:
    """What a worker sends back: the encoded output and its sidecar, or an error."""

    frames: int = 0
    seconds: float = 0.0
    content: bytes | dict[str, bytes] | None = None  # file bytes, or {frame name: bytes}
    sidecar: bytes | None = None
    error: ErrorReport | None = None


def plan_inputs(plan: Plan) -> list[Path]:
    """The files a plan reads while rendering: init images and the soundtrack."""
    paths = [scene.init_image for scene in plan.scenes if scene.init_image is not None]
    if plan.audio:
        paths.append(Path(plan.audio["path"]))
    return list(dict.fromkeys(paths))


def localise_inputs(
    plan: Plan, inputs: dict[str, InputFile], folder: Path
) -> tuple[Plan, dict[str, str]]:
    """The plan with every input path readable here: the same path when this machine has
    the same bytes there (a local runtime, a shared file system), else a copy written
    under `folder`. Returns the plan and {path here: path on the asking machine}."""
    moved: dict[str, str] = {}
    for number, (original, data) in enumerate(sorted(inputs.items())):
        if _same_file(Path(original), data.sha256):
            continue
        copy = folder / str(number) / Path(original).name
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(data.data)
        moved[original] = str(copy)
    if not moved:
        return plan, {}
    scenes = tuple(
        replace(s, init_image=Path(moved.get(str(s.init_image), str(s.init_image))))
        if s.init_image is not None
        else s
        for s in plan.scenes
    )
    audio = plan.audio
    if audio is not None and str(audio["path"]) in moved:
        audio = {**audio, "path": moved[str(audio["path"])]}
    return replace(plan, scenes=scenes, audio=audio), {v: k for k, v in moved.items()}


def _same_file(path: Path, sha256: str) -> bool:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    except OSError:
        return False


class _EventProgress:
    """`jobs.Progress` that reports frames to the batch's event queue, throttled."""

    def __init__(self, events: EventSink | None, job: int, attempt: int) -> None:
        self._events, self._job, self._attempt = events, job, attempt
        self._total, self._last = 0, 0.0

    def start(self, label: str, total: int, done: int) -> None:
        self._total = total
        self._send(done, force=True)

    def update(self, done: int) -> None:
        self._send(done, force=done >= self._total)

    def stop(self) -> None:
        pass

    def _send(self, done: int, *, force: bool) -> None:
        now = time.monotonic()
        if self._events is None or (not force and now - self._last < PROGRESS_INTERVAL_S):
            return
        self._last = now
        self._events.put_nowait(("progress", self._job, self._attempt, done, self._total, now))


class RenderWorker:
    """Ray actor body: `ray.remote(num_gpus=1)(RenderWorker).remote(...)` in a farm."""

    def __init__(
        self,
        index: int,
        options: RenderOptions,
        engines: Sequence[str],
    ) -> None:
        self.engines = Engines(options)
        self.failure: KandanimError | None = None
        self.events: EventSink | None = None
        try:
            for name in engines:  # created once; their models load with the first plan
                self.engines.get(name)
        except KandanimError as error:  # reported with each job, not as a dead actor
            self.failure = error
        self.info = WorkerInfo(index, os.getpid(), socket.gethostname(), self._device(engines))

    def describe(self) -> WorkerInfo:
        return self.info

    def render(self, job: Job, attempt: int = 1, events: EventSink | None = None) -> Rendered:
        """Render one screenplay; a KandanimError comes back as `Rendered.error`.

        Progress and notices go to `events` (the batch's queue; passed with each call, not
        to the constructor, so that Ray can restart a dead worker from plain arguments).
        """
        self.events = events
        started = time.monotonic()
        if self.failure is not None:
            return Rendered(error=ErrorReport.of(self.failure))
        try:
            with tempfile.TemporaryDirectory(prefix="kandanim-farm-") as root:
                frames, content, sidecar = self._render(job, attempt, Path(root))
        except KandanimError as error:
            return Rendered(seconds=time.monotonic() - started, error=ErrorReport.of(error))
        return Rendered(frames, time.monotonic() - started, content, sidecar)

    def _render(
        self, job: Job, attempt: int, root: Path
    ) -> tuple[int, bytes | dict[str, bytes], bytes | None]:
        plan, moved = localise_inputs(job.plan, job.inputs, root / "inputs")
        folder = root / "out"
        folder.mkdir()
        target = folder / job.output_name
        if job.folder_output:
            target.mkdir()
        # a fresh folder each time: per-frame resume stays a feature of local renders
        options = replace(job.options, force=True, resume=False, keep_frames=False)
        frames = render_plan(
            plan, target, self.engines.get(plan.engine), options=options,
            screenplay_text=job.text, progress=_EventProgress(self.events, job.index, attempt),
            notify=self._notifier(job), record=job.record,
        )
        content: bytes | dict[str, bytes]
        if job.folder_output:
            content = {p.name: p.read_bytes() for p in frame_files(target)}
        else:
            content = target.read_bytes()
        side = sidecar_path(str(target) + ("/" if job.folder_output else ""))
        sidecar = _restore_paths(side.read_bytes(), moved) if side.is_file() else None
        return frames, content, sidecar

    def _notifier(self, job: Job) -> Callable[[str], None]:
        def notify(message: str) -> None:
            if self.events is not None:
                self.events.put_nowait(("notice", job.index, message))

        return notify

    def _device(self, engines: Sequence[str]) -> str:
        if self.failure is None and "kandinsky" in engines:
            engine: Any = self.engines.get("kandinsky")
            return str(engine.store.device)
        return "cpu"


def _restore_paths(sidecar: bytes, moved: dict[str, str]) -> bytes:
    """The sidecar as the asking machine would have written it: input paths there, not
    the worker's copies (the writer records the soundtrack's path it read)."""
    if not moved:
        return sidecar
    document = json.loads(sidecar)
    audio = (document.get("video") or {}).get("audio")
    if isinstance(audio, dict) and audio.get("path") in moved:
        audio["path"] = moved[audio["path"]]
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()


__all__ = [
    "ErrorReport",
    "InputFile",
    "Job",
    "RenderWorker",
    "Rendered",
    "WorkerInfo",
    "localise_inputs",
    "plan_inputs",
]
