"""The command line. Thin: parse options, call one library function, map errors to exit codes.

Only this module prints to the terminal or exits. stdout carries results (paths, JSON);
messages and progress go to stderr.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from kandanim import __version__
from kandanim.errors import Interrupted, KandanimError, ScreenplayError, UserError

if TYPE_CHECKING:
    from kandanim.farm import BatchProgress, ScriptProgress
    from kandanim.jobs import JobResult
    from kandanim.jobs import Progress as ProgressLike
    from kandanim.presets import Catalogue

app = typer.Typer(
    name="kandanim",
    help="Turn a YAML screenplay of scenes into a camera-animated video with Kandinsky 2.2.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
models_app = typer.Typer(help="Manage model weights.", no_args_is_help=True)
app.add_typer(models_app, name="models")

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)  # diagnostics stay one line

EXIT_INTERRUPTED = 130


def _version(value: bool) -> None:
    if value:
        out.print(f"kandanim {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Debug logs on stderr.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _print_error(error: KandanimError, source: str | None = None) -> None:
    """Every problem on stderr, one per line, without a traceback; `source` names the
    script when the message does not already."""
    if isinstance(error, ScreenplayError):
        lines = [str(d) for d in error.diagnostics]
    elif source and source not in error.message:
        lines = [f"{source}: {error.message}"]
    else:
        lines = [error.message]
    # Ctrl-C is the user's choice, not a failure: say what happened, not "error"
    label = "[bold yellow]stopped[/]" if isinstance(error, Interrupted) else "[bold red]error[/]"
    for line in lines:
        err.print(f"{label}: {escape(line)}")
    if error.hint:
        err.print(f"[dim]hint[/]: {escape(error.hint)}")


def _fail(error: KandanimError) -> None:
    """Print a user-facing error and exit with its code."""
    _print_error(error)
    if isinstance(error, ScreenplayError):
        count = len(error.diagnostics)
        err.print(f"{count} error{'s' if count != 1 else ''} found.")
    raise typer.Exit(error.exit_code)


PresetsOption = Annotated[
    Path | None,
    typer.Option("--presets", help="Extra folder of effect presets (*.yaml).", show_default=False),
]


@app.command()
def validate(
    scripts: Annotated[list[Path], typer.Argument(help="Screenplay files to check.")],
    presets: PresetsOption = None,
) -> None:
    """Check screenplays; report every problem at once as file:line:col.

    Example: kandanim validate scenes/*.yaml
    """
    from kandanim.screenplay import load_screenplay

    failed = False
    for script in scripts:
        try:
            load_screenplay(script, extra_presets=_dirs(presets))
        except KandanimError as error:
            failed = True
            _print_error(error, str(script))
        else:
            err.print(f"[green]ok[/] {script}")
    raise typer.Exit(2 if failed else 0)


@app.command()
def plan(
    script: Annotated[Path, typer.Argument(help="Screenplay file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Per-frame records as JSON.")] = False,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot", help="Draw the camera path, strength and cadence to a .png or .svg.",
            show_default=False,
        ),
    ] = None,
    presets: PresetsOption = None,
) -> None:
    """Show the resolved plan: scenes, frame ranges, timecodes, effects, transitions.

    Examples: kandanim plan --json scenes/demo.yaml | jq '.records[0].pose' ;
    kandanim plan scenes/demo.yaml --plot demo-plan.png
    """
    from kandanim.plan import build_plan
    from kandanim.planview import plan_table
    from kandanim.screenplay import load_screenplay

    try:
        if plot is not None:
            from kandanim.pictures.plot import check_plot_path, write_plot

            check_plot_path(plot)  # before the work: a wrong name fails at once
        resolved = build_plan(load_screenplay(script, extra_presets=_dirs(presets)))
        if plot is not None:
            write_plot(resolved, plot)
    except KandanimError as error:
        _fail(error)
    if as_json:
        sys.stdout.write(json.dumps(resolved.to_json(), indent=1) + "\n")
        if plot is not None:
            _notice(f"plot written to {plot}")  # stdout holds the JSON alone
    elif plot is not None:
        out.print(str(plot))
    else:
        out.print(plan_table(resolved))


@app.command()
def effects(
    name: Annotated[str | None, typer.Argument(help="Show one effect in full.")] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot", help="Draw NAME's keyframes and curves to a .png or .svg.",
            show_default=False,
        ),
    ] = None,
    gallery: Annotated[
        Path | None,
        typer.Option(
            "--gallery", help="Render a looping clip of every effect and an index.html here.",
            show_default=False,
        ),
    ] = None,
    image: Annotated[
        Path | None, typer.Option("--image", help="Gallery: start from this picture.")
    ] = None,
    resolution: Annotated[
        str | None,
        typer.Option(help="Gallery: landscape, square, portrait or WxH (default 320x320)."),
    ] = None,
    presets: PresetsOption = None,
) -> None:
    """List the camera effects, show one with its keyframes, plot one, or render a gallery.

    Examples: kandanim effects orbit-right ; kandanim effects orbit-right --plot orbit.png ;
    kandanim effects --gallery gallery/ --image photo.jpg
    """
    from kandanim.planview import effect_detail, effects_table
    from kandanim.presets import load_catalogue

    try:
        _check_effects_options(name, plot, gallery, image, resolution)
        catalogue = load_catalogue(_dirs(presets))
        if plot is not None and name is not None:
            from kandanim.pictures.plot import write_effect_plot

            out.print(str(write_effect_plot(catalogue, name, plot, _dirs(presets))))
        elif gallery is not None:
            _render_gallery(gallery, catalogue, image, resolution, _dirs(presets))
        else:
            out.print(effects_table(catalogue) if name is None else effect_detail(catalogue, name))
    except KandanimError as error:
        _fail(error)


def _check_effects_options(
    name: str | None, plot: Path | None, gallery: Path | None, image: Path | None,
    resolution: str | None,
) -> None:
    """Options of `effects` that do not go together: UserError (exit 2) before any work."""
    from kandanim.errors import UserError

    conflicts = [
        (plot is not None and name is None, "--plot draws one effect: name it",
         "kandanim effects zoom-in --plot zoom-in.png"),
        (plot is not None and gallery is not None, "--plot and --gallery do not go together",
         "run them one at a time"),
        (gallery is not None and name is not None,
         f"--gallery renders every effect, so '{name}' is not needed",
         "kandanim effects --gallery DIR"),
        (image is not None and gallery is None, "--image is for --gallery",
         "kandanim effects --gallery DIR --image PHOTO"),
        (resolution is not None and gallery is None, "--resolution is for --gallery",
         "kandanim effects --gallery DIR --resolution 256x256"),
    ]
    for wrong, message, hint in conflicts:
        if wrong:
            raise UserError(message, hint=hint)


def _render_gallery(
    folder: Path, catalogue: Catalogue, image: Path | None, resolution: str | None,
    extra: tuple[Path, ...],
) -> None:
    """Clips and index.html into `folder`: a line per clip on stderr, the index on stdout."""
    from kandanim.pictures.gallery import DEFAULT_RESOLUTION, INDEX, Clip, render_gallery

    def report(clip: Clip, done: int, total: int) -> None:
        err.print(f"gallery: {done}/{total} {clip.name} ({clip.size_bytes // 1000} KB)")

    render_gallery(
        folder, catalogue, image=image, resolution=resolution or DEFAULT_RESOLUTION,
        extra_presets=extra, on_clip=report,
    )
    out.print(str(folder / INDEX))


@app.command()
def schema() -> None:
    """Print the JSON Schema of the screenplay (for editor completion)."""
    from kandanim.screenplay import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")


@app.command()
def render(
    scripts: Annotated[list[Path], typer.Argument(help="One or more screenplay files.")],
    output: Annotated[
        str | None,
        typer.Option(
            "-o", "--output",
            help="Output (single script): .mp4, .webm, .gif, or a folder ending in / for PNGs.",
        ),
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out-dir", help="Folder for the outputs of many scripts.")
    ] = None,
    engine: Annotated[
        str | None, typer.Option("--engine", help="kandinsky (default) or preview.")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cuda, mps or cpu.")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto, fp16, bf16 or fp32.")] = "auto",
    offload: Annotated[bool, typer.Option(help="Model CPU offload for small GPUs.")] = False,
    seed: Annotated[int | None, typer.Option(help="Override the screenplay's seed.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted render.")] = True,
    keep_frames: Annotated[bool, typer.Option(help="Keep the work folder of frames.")] = False,
    force: Annotated[
        bool, typer.Option(help="Replace an existing output kandanim did not write.")
    ] = False,
    fail_fast: Annotated[
        bool, typer.Option(help="Render nothing when a script is invalid; stop at the first failure.")
    ] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress bar.")] = False,
    presets: PresetsOption = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            help="Render on Ray: local (a runtime on this machine), auto (RAY_ADDRESS) or "
            "ray://HOST:PORT. Needs the extra: pip install \"kandanim\\[ray]\".",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", help="Workers on the cluster (default: one per GPU or CPU)."),
    ] = None,
) -> None:
    """Render screenplays to video.

    Examples: kandanim render scenes/demo.yaml --engine preview -o out/demo.mp4 ;
    kandanim render a.yaml b.yaml --out-dir renders/ ;
    kandanim render shots/*.yaml --out-dir renders/ --cluster ray://head:10001
    """
    from kandanim.jobs import RenderOptions, render_scripts

    options = RenderOptions(
        engine=engine, device=device, dtype=dtype, offload=offload, seed=seed, resume=resume,
        keep_frames=keep_frames, force=force, fail_fast=fail_fast, extra_presets=_dirs(presets),
    )
    try:
        if cluster is not None:
            from kandanim.farm import FarmOptions, render_on_cluster

            results = render_on_cluster(
                scripts, options=options, farm=FarmOptions(cluster, workers),
                output=_output_path(output), out_dir=out_dir, progress=_batch_progress(quiet),
                notify=_notice, on_result=_report_result,
            )
        elif workers is not None:
            raise UserError("--workers needs --cluster", hint="e.g. --cluster local --workers 2")
        else:
            results = render_scripts(
                scripts, options=options, output=_output_path(output), out_dir=out_dir,
                progress=_progress(quiet), notify=_notice, on_result=_report_result,
            )
    except KandanimError as error:
        _fail(error)
    if len(scripts) > 1:
        err.print(_summary_table(results))
    raise typer.Exit(_batch_exit_code(results))


@app.command()
def preview(
    effect: Annotated[str, typer.Option("--effect", "-e", help="Effect name.")] = "zoom-in",
    image: Annotated[Path | None, typer.Option("--image", help="Start from this picture.")] = None,
    duration: Annotated[float, typer.Option(help="Seconds.")] = 4.0,
    resolution: Annotated[str, typer.Option(help="landscape, square, portrait or WxH.")] = "square",
    fps: Annotated[int, typer.Option(help="Frames per second.")] = 24,
    depth: Annotated[
        str, typer.Option(help="auto, ground, heuristic, flat, midas or depth-anything.")
    ] = "auto",
    output: Annotated[
        str | None,
        typer.Option("-o", "--output", help=".mp4, .webm, .gif, or a folder ending in / for PNGs."),
    ] = None,
    contact_sheet: Annotated[
        Path | None,
        typer.Option(
            "--contact-sheet", help="Also write a PNG grid of numbered, timed frames.",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Replace an existing output kandanim did not write.")
    ] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress bar.")] = False,
    presets: PresetsOption = None,
) -> None:
    """A camera-motion preview in seconds on a CPU: no diffusion.

    Examples: kandanim preview --effect orbit-right --image photo.jpg -o orbit.mp4 ;
    kandanim preview --effect zoom-out --contact-sheet zoom-out.png
    """
    from kandanim.jobs import RenderOptions, render_preview

    target = _output_path(output) or Path(f"preview-{effect}.mp4")
    options = RenderOptions(engine="preview", force=force, extra_presets=_dirs(presets))
    try:
        if contact_sheet is not None:
            _check_sheet_path(contact_sheet)
        written = render_preview(
            effect=effect, image=image, duration=duration, resolution=resolution, fps=fps,
            depth=depth, output=target, options=options, progress=_progress(quiet),
            notify=_notice,
        )
        if contact_sheet is not None:
            from kandanim.tools.contact_sheet import contact_sheet as write_sheet

            sheet = write_sheet(written, contact_sheet)
    except KandanimError as error:
        _fail(error)
    out.print(str(written))
    if contact_sheet is not None:
        out.print(str(sheet))


def _check_sheet_path(path: Path) -> None:
    from kandanim.errors import UserError

    if path.suffix.lower() != ".png":
        raise UserError(
            f"--contact-sheet {path}: a contact sheet is a .png", hint="name the file SHEET.png"
        )


@app.command("import")
def import_(
    source: Annotated[Path, typer.Argument(help="Deforum settings (.txt/.json), Parseq export, …")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Screenplay to write (default: stdout).")
    ] = None,
    match: Annotated[
        str,
        typer.Option(
            "--match",
            help="screen: keep Deforum's on-screen speeds (sideways motion is W/H faster on "
            "non-square frames); geometry: kandanim's square-pixel camera.",
        ),
    ] = "screen",
    mode: Annotated[
        str | None, typer.Option("--mode", help="2D or 3D: which rows of a motion CSV that has both.")
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing -o file.")] = False,
) -> None:
    """Turn Deforum work into a screenplay: a settings file, a Parseq export, a motion CSV
    or a prompts file (recognised by content).

    Motion is integrated into camera keyframes and prompts become scenes; what kandanim
    cannot honour is listed as warnings and as comments in the screenplay.
    `kandanim render` also takes these files directly.

    Example: kandanim import 20230812_settings.txt -o bunny.yaml
    """
    from kandanim.importers import import_file, save

    try:
        relative_to = output.resolve().parent if output is not None else None
        imported = import_file(source, match=match, relative_to=relative_to, mode=mode)
        for line in imported.warnings:
            err.print(f"[yellow]warning[/]: not honoured: {escape(line)}")
        if output is None:
            sys.stdout.write(imported.text)
        else:
            out.print(str(save(imported, output, source=source, force=force)))
    except KandanimError as error:
        _fail(error)
    err.print(f"imported {escape(str(source))} ({escape(imported.kind)})")


@app.command()
def doctor() -> None:
    """Check torch, the device, PyAV codecs and which model weights are present.

    Exits 1 when something the preview engine needs is broken.
    Example: kandanim doctor
    """
    from kandanim.doctor import run_checks

    checks = run_checks()
    rows = [
        (c.name, "ok" if c.ok else ("fail" if c.required else "no"), c.detail, c.fix)
        for c in checks
    ]
    _print_rows(("check", "", "detail", "fix"), rows, colours={"ok": "green", "fail": "red",
                                                             "no": "yellow"})
    raise typer.Exit(1 if any(c.required and not c.ok for c in checks) else 0)


def _print_rows(
    header: tuple[str, ...], rows: list[tuple[str, ...]], colours: dict[str, str] | None = None
) -> None:
    """A table on a terminal; tab-separated lines otherwise, never cut at 80 columns
    (ids and paths must survive `| grep` and logs whole)."""
    if not out.is_terminal:
        for row in rows:
            sys.stdout.write("\t".join(row).rstrip("\t") + "\n")
        return
    table = Table(*header)
    for row in rows:
        cells = [escape(cell) for cell in row]
        if colours and len(row) > 1 and row[1] in colours:
            cells[1] = f"[{colours[row[1]]}]{cells[1]}[/]"
        table.add_row(*cells)
    out.print(table)


@models_app.command("pull")
def models_pull(
    all_models: Annotated[bool, typer.Option("--all", help="Also both depth models.")] = False,
) -> None:
    """Download the weights the kandinsky engine needs into the Hugging Face cache.

    Ids come from KANDANIM_PRIOR/_DECODER/_INPAINT/_DEPTH or the defaults; local folders
    are left alone. Example: kandanim models pull --all
    """
    from kandanim.models import pull

    try:
        pulled = pull(all_models, progress=lambda line: err.print(f"pulling {line}"))
    except KandanimError as error:
        _fail(error)
    _print_rows(("role", "model", "location"), [(m.role, m.model_id, m.path) for m in pulled])


def _notice(message: str) -> None:
    err.print(f"[cyan]note[/]: {message}")


def _report_result(result: JobResult) -> None:
    """Per script: the output path on stdout (shell-friendly), problems on stderr."""
    if result.status == "ok":
        out.print(str(result.output))
        return
    if result.error is not None:
        _print_error(result.error, result.script)


def _summary_table(results: list[JobResult]) -> Table:
    table = Table(title="batch summary", title_justify="left")
    for column in ("script", "status", "frames", "time", "output"):
        table.add_column(column, justify="right" if column in ("frames", "time") else "left")
    colours = {"ok": "green", "failed": "red", "interrupted": "yellow"}
    for r in results:
        table.add_row(
            r.script, f"[{colours[r.status]}]{r.status}[/]", str(r.frames), f"{r.seconds:.1f}s",
            str(r.output or ""),
        )
    return table


def _batch_exit_code(results: list[JobResult]) -> int:
    if any(r.status == "interrupted" for r in results):
        return EXIT_INTERRUPTED
    failed = [r for r in results if r.status == "failed"]
    if not failed:
        return 0
    return max(r.error.exit_code if r.error else 1 for r in failed)


class _RichProgress:
    """Frames, fps and ETA on stderr; plain lines when stderr is not a terminal."""

    def __init__(self) -> None:
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def start(self, label: str, total: int, done: int) -> None:
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[fps]} fps"),
            TimeRemainingColumn(),
            console=err,
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task(label, total=total, completed=done, fps="–")
        self._started, self._first = time.monotonic(), done

    def update(self, done: int) -> None:
        if self._bar is None or self._task is None:
            return
        elapsed = max(time.monotonic() - self._started, 1e-6)
        fps = f"{(done - self._first) / elapsed:.1f}"
        self._bar.update(self._task, completed=done, fps=fps)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


class _PlainProgress:
    """A line every ~10% for logs and CI (no terminal)."""

    def start(self, label: str, total: int, done: int) -> None:
        self._label, self._total, self._next = label, max(total, 1), done
        self._started, self._first = time.monotonic(), done

    def update(self, done: int) -> None:
        if done >= self._next or done == self._total:
            elapsed = max(time.monotonic() - self._started, 1e-6)
            fps = (done - self._first) / elapsed
            err.print(f"{self._label}: {done}/{self._total} frames, {fps:.1f} fps")
            self._next = done + max(self._total // 10, 1)

    def stop(self) -> None:
        pass


def _progress(quiet: bool) -> ProgressLike:
    from kandanim.jobs import NoProgress

    if quiet:
        return NoProgress()
    return _RichProgress() if err.is_terminal else _PlainProgress()


class _RichBatchProgress:
    """A farm batch: one bar per screenplay (frames, fps, ETA, worker) and a total."""

    def __init__(self) -> None:
        self._bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[fps]} fps  ETA {task.fields[eta]}"),
            TextColumn("[dim]{task.fields[worker]}"), console=err,
        )
        self._tasks: dict[str, TaskID] = {}

    def update(self, line: ScriptProgress) -> None:
        if not self._tasks:
            self._bar.start()
        fields = {"fps": _fps(line.fps), "eta": _eta(line.eta), "worker": line.worker or line.state}
        if line.script not in self._tasks:
            self._tasks[line.script] = self._bar.add_task(
                escape(line.script), total=line.total, **fields
            )
        self._bar.update(self._tasks[line.script], completed=line.done, total=line.total, **fields)

    def stop(self) -> None:
        self._bar.stop()


class _PlainBatchProgress:
    """A farm batch without a terminal: a line per screenplay every ~10 % and a total."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def update(self, line: ScriptProgress) -> None:
        if line.state == "running" and line.done < self._next.get(line.script, 0):
            return
        self._next[line.script] = line.done + max(line.total // 10, 1)
        who = f", {line.worker}" if line.worker else ""
        state = "" if line.state == "running" else f" ({line.state})"
        err.print(f"{escape(line.script)}: {line.done}/{line.total} frames, {_fps(line.fps)} fps, "
                  f"ETA {_eta(line.eta)}{escape(who)}{state}")

    def stop(self) -> None:
        pass


def _fps(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"


def _batch_progress(quiet: bool) -> BatchProgress:
    from kandanim.farm import NoBatchProgress

    if quiet:
        return NoBatchProgress()
    return _RichBatchProgress() if err.is_terminal else _PlainBatchProgress()


def _output_path(text: str | None) -> Path | None:
    """A trailing slash asks for a folder of PNG frames: create it so the path says so
    (pathlib would drop the slash)."""
    if text is None:
        return None
    path = Path(text)
    if text.endswith(("/", os.sep)):
        path.mkdir(parents=True, exist_ok=True)
    return path


def _dirs(folder: Path | None) -> tuple[Path, ...]:
    return (folder,) if folder is not None else ()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("[bold yellow]stopped[/]: interrupted (Ctrl-C)")
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()
