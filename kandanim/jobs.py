"""Render jobs: screenplay → plan → render loop → encoder, for one script or a batch.

Owns the order of things around the loop: where the output goes, the work folder that
makes a render resumable, the encoder's temporary file, the sidecar, and turning Ctrl-C
into a saved, resumable state. Engines are created once per process and reused by every
script of a batch (models load once).
"""

from __future__ import annotations

import hashlib
import json
import platform
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kandanim import __version__
from kandanim.encode import AudioTrack, check_output, open_writer
from kandanim.engines.base import Engine
from kandanim.errors import Interrupted, KandanimError, UserError
from kandanim.plan import Plan, build_plan
from kandanim.render import Renderer, supports_morph
from kandanim.resume import WorkFolder, work_folder_for
from kandanim.screenplay import LoadedScreenplay, load_screenplay


class Progress(Protocol):
    def start(self, label: str, total: int, done: int) -> None: ...
    def update(self, done: int) -> None: ...
    def stop(self) -> None: ...


class NoProgress:
    def start(self, label: str, total: int, done: int) -> None:
        pass

    def update(self, done: int) -> None:
        pass

    def stop(self) -> None:
        pass


@dataclass(frozen=True)
class RenderOptions:
    engine: str | None = None  # None: the screenplay's engine
    device: str = "auto"
    dtype: str = "auto"
    offload: bool = False
    seed: int | None = None
    resume: bool = True
    keep_frames: bool = False
    force: bool = False
    fail_fast: bool = False
    extra_presets: tuple[Path, ...] = ()


@dataclass
class JobResult:
    script: str
    status: str  # 'ok' | 'failed' | 'interrupted'
    frames: int = 0
    seconds: float = 0.0
    output: Path | None = None
    error: KandanimError | None = None
    notices: list[str] = field(default_factory=list)


class Engines:
    """Creates each engine once per process, so a batch loads models once."""

    def __init__(self, options: RenderOptions) -> None:
        self.options = options
        self._engines: dict[str, Engine] = {}

    def get(self, name: str) -> Engine:
        if name not in self._engines:
            self._engines[name] = self._create(name)
        return self._engines[name]

    def _create(self, name: str) -> Engine:
        if name == "preview":
            from kandanim.engines.preview import PreviewEngine

            return PreviewEngine()
        if name == "kandinsky":
            from kandanim.engines.kandinsky import KandinskyEngine
            from kandanim.models import shared_store

            o = self.options
            return KandinskyEngine(shared_store(o.device, o.dtype, o.offload))
        raise UserError(f"unknown engine {name!r}", hint="use --engine kandinsky or --engine preview")


def output_for(
    loaded: LoadedScreenplay, *, output: Path | None, out_dir: Path | None
) -> Path:
    """-o wins; else the screenplay's `output:`; else SCRIPT.mp4; --out-dir relocates."""
    if output is not None:
        return output
    chosen = loaded.screenplay.output or loaded.path.with_suffix(".mp4")
    return out_dir / Path(chosen).name if out_dir is not None else Path(chosen)


def render_plan(
    plan: Plan,
    output: Path,
    engine: Engine,
    *,
    options: RenderOptions,
    screenplay_text: str,
    progress: Progress,
    notify: Callable[[str], None],
    record: dict[str, Any] | None = None,
) -> int:
    """Render a plan to `output`, resumably. Returns the number of frames written.

    `record` is the plan as the fingerprint, metadata and sidecar describe it, when that
    differs from `plan.to_json()`: a farm worker renders from its own copies of the input
    files but records the paths the asking machine gave, so its output is the local one.
    """
    check_output(output, force=options.force)
    engine.prepare(plan)  # loads models: fails early, before anything is written
    # the fingerprint, metadata and sidecar all describe this one serialisation
    plan_json = plan.to_json() if record is None else record
    work = WorkFolder(work_folder_for(output), _fingerprint(plan, plan_json, engine, screenplay_text))
    resumed = work.open(resume=options.resume)
    if resumed.notice:
        notify(resumed.notice)
    if not supports_morph(engine) and any(s.transition_in == "morph" for s in plan.scenes):
        notify(f"the {engine.name} engine has no morph: morph transitions render as dissolves")
    renderer = Renderer(plan, engine, resumed.state)
    done = renderer.state.next_index
    progress.start(output.name, plan.frame_count, done)
    try:
        with _interrupts_as_keyboard(), open_writer(
            output,
            width=plan.width,
            height=plan.height,
            fps=plan.fps,
            audio=_audio(plan),
            metadata=_metadata(plan, plan_json, screenplay_text),
            sidecar=_sidecar(plan, plan_json, engine, screenplay_text),
        ) as writer:
            for image in work.saved_frames(done):
                writer.write(image)
            for index, image in renderer.frames():
                writer.write(image)
                work.save_frame(index, image)
                if renderer.state.clean:
                    work.checkpoint(renderer.state)
                progress.update(index + 1)
            work.flush()
            writer.close()
    except KeyboardInterrupt:
        work.flush()
        raise Interrupted(
            f"interrupted; {renderer.state.next_index} of {plan.frame_count} frames are saved "
            f"in {work.path}",
            hint="run the same command again to resume where it stopped",
        ) from None
    except BaseException:
        _flush_quietly(work)
        raise
    finally:
        progress.stop()
    if options.keep_frames:
        notify(f"frames kept in {work.path / 'frames'}")
    else:
        work.remove()
    return plan.frame_count


def render_scripts(
    scripts: Sequence[Path],
    *,
    options: RenderOptions,
    output: Path | None,
    out_dir: Path | None,
    progress: Progress,
    notify: Callable[[str], None],
    on_result: Callable[[JobResult], None],
) -> list[JobResult]:
    """Render each script; one failing script does not stop the batch unless fail-fast."""
    if output is not None and len(scripts) > 1:
        raise UserError("-o/--output names one file; with several scripts use --out-dir DIR")
    engines = Engines(options)
    results: list[JobResult] = []
    for script in scripts:
        result = _render_one(script, engines, options, output, out_dir, progress, notify)
        results.append(result)
        on_result(result)
        if result.status == "interrupted" or (result.status == "failed" and options.fail_fast):
            break
    return results


def _render_one(
    script: Path,
    engines: Engines,
    options: RenderOptions,
    output: Path | None,
    out_dir: Path | None,
    progress: Progress,
    notify: Callable[[str], None],
) -> JobResult:
    started = time.monotonic()
    result = JobResult(script=str(script), status="failed")
    try:
        loaded = load_screenplay(script, extra_presets=options.extra_presets)
        plan = build_plan(loaded, seed=options.seed, engine=options.engine)
        if loaded.screenplay.seed is None and options.seed is None:
            notify(f"{script}: seed {plan.seed} (set `seed:` to reproduce)")
        result.output = output_for(loaded, output=output, out_dir=out_dir)
        result.frames = render_plan(
            plan, result.output, engines.get(plan.engine), options=options,
            screenplay_text=loaded.text, progress=progress, notify=notify,
        )
        result.status = "ok"
    except Interrupted as error:
        result.status, result.error = "interrupted", error
    except KandanimError as error:
        result.error = error
    result.seconds = time.monotonic() - started
    return result


def _flush_quietly(work: WorkFolder) -> None:
    try:
        work.flush()
    except KandanimError:
        pass  # the original failure is the one to report


@contextmanager
def _interrupts_as_keyboard() -> Iterator[None]:
    """SIGTERM (a killed job, a cluster pre-emption) saves progress like Ctrl-C does."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def plan_digest(plan_json: dict[str, Any]) -> str:
    canonical = json.dumps(plan_json, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _fingerprint(
    plan: Plan, plan_json: dict[str, Any], engine: Engine, screenplay_text: str
) -> dict[str, Any]:
    """What must match for saved frames to be reused: same plan, engine, models, version."""
    return {
        "kandanim": __version__,
        "engine": engine.name,
        "plan_sha256": plan_digest(plan_json),
        "screenplay_sha256": hashlib.sha256(screenplay_text.encode()).hexdigest(),
        "models": dict(plan.models) if engine.name != "preview" else {},
        "seed": plan.seed,
        "frames": plan.frame_count,
    }


def _audio(plan: Plan) -> AudioTrack | None:
    if not plan.audio:
        return None
    return AudioTrack(
        path=Path(plan.audio["path"]),
        volume=float(plan.audio.get("volume", 1.0)),
        fade=float(plan.audio.get("fade", 1.0)),
    )


def _metadata(plan: Plan, plan_json: dict[str, Any], screenplay_text: str) -> dict[str, str]:
    summary = {k: v for k, v in plan_json.items() if k != "records"}
    return {
        "title": plan.title or "kandanim",
        "comment": screenplay_text,
        "encoder_settings": json.dumps(summary, separators=(",", ":")),
    }


def _sidecar(
    plan: Plan, plan_json: dict[str, Any], engine: Engine, screenplay_text: str
) -> dict[str, Any]:
    return {
        "kandanim": __version__,
        "engine": engine.name,
        "seed": plan.seed,
        "models": dict(plan.models),
        "versions": _versions(),
        "screenplay": screenplay_text,
        "plan": plan_json,
    }


def _versions() -> dict[str, str]:
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for package in ("numpy", "opencv-python-headless", "av", "torch", "diffusers", "transformers"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def render_preview(
    *,
    effect: str,
    image: Path | None,
    duration: float,
    resolution: str,
    fps: int,
    depth: str,
    output: Path,
    options: RenderOptions,
    progress: Progress,
    notify: Callable[[str], None],
) -> Path:
    """`kandanim preview`: a one-scene screenplay built in memory, rendered by `preview`."""
    from kandanim.presets import load_catalogue
    from kandanim.screenplay import from_mapping
    from kandanim.sources import did_you_mean

    catalogue = load_catalogue(options.extra_presets)
    if catalogue.get(effect) is None:
        raise UserError(
            f"--effect: unknown effect {effect!r}{did_you_mean(effect, catalogue.names())}",
            hint="`kandanim effects` lists them",
        )
    scene: dict[str, Any] = {"prompt": f"{effect} preview", "effect": effect, "depth": depth}
    if image is not None:
        scene["init_image"] = str(image.resolve())
    document = {
        "version": 1,
        "title": f"{effect} preview",
        "fps": fps,
        "resolution": resolution,
        "seed": 0,
        "engine": "preview",
        "defaults": {"duration": duration},
        "scenes": [scene],
    }
    loaded = from_mapping(
        document, base_dir=Path.cwd(), name="<preview options>",
        extra_presets=options.extra_presets,
    )
    plan = build_plan(loaded, engine="preview")
    text = json.dumps(document, indent=1)
    render_plan(
        plan, output, Engines(options).get("preview"), options=options, screenplay_text=text,
        progress=progress, notify=notify,
    )
    return output
