"""Render jobs: screenplay → plan → render loop → encoder, for one script or a batch.

Owns the order of things around the loop: where the output goes, the work folder that
makes a render resumable, the encoder's temporary file, the sidecar, and turning Ctrl-C
into a saved, resumable state. Engines are created once per process and reused by every
script of a batch (models load once).
"""

from __future__ import annotations

import hashlib
import json
import os
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
from kandanim.plan import Plan, build_plan, shared_path
from kandanim.render import Renderer, reveal_notices, supports_morph
from kandanim.resume import NoWorkFolder, WorkFolder, work_folder_for
from kandanim.screenplay import LoadedScreenplay, load_screenplay, load_screenplay_text


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
    screenplay: Path | None = None,
    resumable: bool = True,
    record: dict[str, Any] | None = None,
) -> int:
    """Render a plan to `output`, resumably. Returns the number of frames written.

    `resumable=False` (previews, seconds long) keeps no work folder at all: no frames are
    saved to resume from (they would cost more than redoing the render), and a failure
    leaves nothing that the next run could mistake for an interrupted render.

    `screenplay` (the file, when there is one) and the plan's init images and soundtrack
    are never written onto, even with `force` (`encode.check_output`).

    `record` is the plan as the fingerprint, metadata and sidecar describe it, when that
    differs from `plan.to_json()`: a farm worker renders from its own copies of the input
    files but records what the asking machine would, so its output is the local one.
    """
    check_output(output, force=options.force, inputs=render_inputs(plan, screenplay))
    engine.prepare(plan)  # loads models: fails early, before anything is written
    # the fingerprint, metadata and sidecar all describe this one serialisation
    if record is None:
        record = plan.to_json()
        record["inputs"] = input_digests(plan)  # same names, new content: another render
    plan_json = record
    work: WorkFolder | NoWorkFolder = NoWorkFolder()  # a preview keeps nothing to resume
    if resumable:
        fingerprint = _fingerprint(plan, plan_json, engine, screenplay_text)
        work = WorkFolder(work_folder_for(output), fingerprint)
    resumed = work.open(resume=options.resume)
    if resumed.notice:
        notify(resumed.notice)
    if not supports_morph(engine) and any(s.transition_in == "morph" for s in plan.scenes):
        notify(f"the {engine.name} engine has no morph: morph transitions render as dissolves")
    for notice in reveal_notices(plan, engine):
        notify(notice)
    renderer = Renderer(plan, engine, resumed.state)
    done = written = renderer.state.next_index
    fit = _cropper(plan)
    if plan.crop is not None:
        notify(
            f"rendering at {plan.width}x{plan.height} (Kandinsky needs sides that are multiples "
            f"of 64) and centre-cropping to {plan.crop[0]}x{plan.crop[1]}"
        )
    progress.start(output.name, plan.frame_count, done)
    try:
        with _interrupts_as_keyboard(), open_writer(
            output,
            width=plan.output_size[0],
            height=plan.output_size[1],
            fps=plan.fps,
            audio=_audio(plan, plan_json),
            metadata=_metadata(plan, plan_json, screenplay_text),
            sidecar=_sidecar(plan, plan_json, engine, screenplay_text),
        ) as writer:
            for image in work.saved_frames(done):
                writer.write(fit(image))
            for index, image in renderer.frames():
                written, state = index + 1, renderer.state
                writer.write(fit(image))
                work.save_frame(index, image)
                if state.clean:
                    work.checkpoint(state)
                progress.update(index + 1)
            work.flush()
            writer.close()
    except KeyboardInterrupt:
        if not resumable:
            _remove_quietly(work)
            raise Interrupted("interrupted; nothing was written") from None
        work.flush()
        raise Interrupted(
            f"interrupted; {written} of {plan.frame_count} frames are saved "
            f"in {work.path}",
            hint="run the same command again to resume where it stopped",
        ) from None
    except BaseException:
        if resumable:
            _flush_quietly(work)
        else:
            _remove_quietly(work)
        raise
    finally:
        progress.stop()
    if options.keep_frames and work.path is not None:
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
    """Check every script first (screenplay, plan, output), reporting each broken one at
    once through `on_result`; then render the valid ones. With `fail_fast`, one broken
    script means nothing is rendered; during the renders it stops the batch at the first
    failure. Results come back in the order of `scripts`."""
    if output is not None and out_dir is not None:
        raise UserError(
            "-o/--output and --out-dir both say where the output goes; give one of them",
            hint="-o FILE for one script, --out-dir DIR for a batch",
        )
    if output is not None and len(scripts) > 1:
        raise UserError("-o/--output names one file; with several scripts use --out-dir DIR")
    jobs: list[tuple[int, _Job]] = []
    results: dict[int, JobResult] = {}
    claimed: dict[Path, Path] = {}  # output → the script writing it
    for number, script in enumerate(scripts):
        try:
            jobs.append((number, _prepare(script, options, output, out_dir, claimed, notify)))
        except KandanimError as error:
            results[number] = JobResult(script=str(script), status="failed", error=error)
            on_result(results[number])
    if not (results and options.fail_fast):
        engines = Engines(options)
        for number, job in jobs:
            results[number] = result = _render_job(job, engines, options, progress, notify)
            on_result(result)
            if result.status == "interrupted" or (
                result.status == "failed" and options.fail_fast
            ):
                break
    return [results[n] for n in sorted(results)]


@dataclass(frozen=True)
class _Job:
    """A script that passed every check a render makes before it starts."""

    script: Path
    loaded: LoadedScreenplay
    plan: Plan
    output: Path


def _prepare(
    script: Path,
    options: RenderOptions,
    output: Path | None,
    out_dir: Path | None,
    claimed: dict[Path, Path],
    notify: Callable[[str], None],
) -> _Job:
    """Load, plan and check the output of one script, so a batch finds every broken
    script before it spends hours on the first."""
    loaded = load_script(script, options, notify)
    for notice in loaded.notices:
        notify(f"{script}: {notice}")
    plan = build_plan(loaded, seed=options.seed, engine=options.engine, notify=notify)
    target = output_for(loaded, output=output, out_dir=out_dir)
    check_output(target, force=options.force, inputs=render_inputs(plan, loaded.path))
    key = Path(os.path.abspath(target))
    if key in claimed:
        raise UserError(
            f"{script} would write {target}, which {claimed[key]} of this batch writes too",
            hint="give one of them another `output:`",
        )
    claimed[key] = script
    if loaded.screenplay.seed is None and options.seed is None:
        notify(f"{script}: seed {plan.seed} (set `seed:` to reproduce)")
    return _Job(script, loaded, plan, target)


def _render_job(
    job: _Job,
    engines: Engines,
    options: RenderOptions,
    progress: Progress,
    notify: Callable[[str], None],
) -> JobResult:
    started = time.monotonic()
    result = JobResult(script=str(job.script), status="failed", output=job.output)
    try:
        result.frames = render_plan(
            job.plan, job.output, engines.get(job.plan.engine), options=options,
            screenplay_text=job.loaded.text, progress=progress, notify=notify,
            screenplay=job.loaded.path,
        )
        result.status = "ok"
    except Interrupted as error:
        result.status, result.error = "interrupted", error
    except KandanimError as error:
        result.error = error
    result.seconds = time.monotonic() - started
    return result


def load_script(
    script: Path, options: RenderOptions, notify: Callable[[str], None]
) -> LoadedScreenplay:
    """A screenplay, or a Deforum settings file / Parseq export imported on the fly."""
    from kandanim.importers import detect, import_file

    if script.suffix.lower() in (".yaml", ".yml") or detect(script) is None:
        return load_screenplay(script, extra_presets=options.extra_presets)
    imported = import_file(script, relative_to=script.parent)
    notify(f"{script}: imported as {imported.kind} (`kandanim import` writes the screenplay)")
    for line in imported.warnings:
        notify(f"{script}: not honoured: {line}")
    return load_screenplay_text(imported.text, script, options.extra_presets)


def render_inputs(plan: Plan, screenplay: Path | None) -> list[tuple[str, Path]]:
    """Every file the render reads, by role: what it must never write onto."""
    found = [("screenplay", screenplay)] if screenplay is not None else []
    return found + plan.inputs()


def input_digests(plan: Plan) -> dict[str, str]:
    """sha256 of every input file by its shared name, so a re-render can check it has the
    same pictures and sound (names alone are relative paths)."""
    digests = {}
    for _, path in plan.inputs():
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
        except OSError as error:
            raise UserError(f"cannot read {path}: {error.strerror or error}") from None
        digests[shared_path(path, plan.base_dir)] = digest.hexdigest()
    return digests


def _cropper(plan: Plan) -> Callable[[Any], Any]:
    """Frames as the video wants them: centre-cropped to the asked size when the model
    size differs (saved frames keep the full size, so resuming stays exact)."""
    if plan.crop is None:
        return lambda image: image
    width, height = plan.crop
    left, top = (plan.width - width) // 2, (plan.height - height) // 2
    return lambda image: image[top:top + height, left:left + width]


def _remove_quietly(work: WorkFolder | NoWorkFolder) -> None:
    try:
        work.remove()
    except (KandanimError, OSError):
        pass  # the original failure is the one to report


def _flush_quietly(work: WorkFolder | NoWorkFolder) -> None:
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


def _audio(plan: Plan, plan_json: dict[str, Any]) -> AudioTrack | None:
    if not plan.audio:
        return None
    path = Path(plan.audio["path"])
    return AudioTrack(
        path=path,
        volume=float(plan.audio.get("volume", 1.0)),
        fade=float(plan.audio.get("fade", 1.0)),
        label=str(plan_json.get("audio", {}).get("path") or shared_path(path, plan.base_dir)),
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
    from kandanim.screenplay import effect_document, from_mapping
    from kandanim.sources import did_you_mean

    catalogue = load_catalogue(options.extra_presets)
    if catalogue.get(effect) is None:
        raise UserError(
            f"--effect: unknown effect {effect!r}{did_you_mean(effect, catalogue.names())}",
            hint="`kandanim effects` lists them",
        )
    document = effect_document(effect, duration=duration, fps=fps, resolution=resolution,
                               image=image, depth=depth)
    loaded = from_mapping(
        document, base_dir=Path.cwd(), name="<preview options>",
        extra_presets=options.extra_presets,
    )
    plan = build_plan(loaded, engine="preview", notify=notify)
    if image is not None:  # what is stored names the picture as shared_path does
        document["scenes"][0]["init_image"] = shared_path(image.resolve(), loaded.base_dir)
    text = json.dumps(document, indent=1)
    render_plan(
        plan, output, Engines(options).get("preview"), options=options, screenplay_text=text,
        progress=progress, notify=notify, screenplay=None, resumable=False,
    )
    return output

