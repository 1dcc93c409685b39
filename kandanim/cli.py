"""The command line. Thin: parse options, call one library function, map errors to exit codes.

Only this module prints to the terminal or exits. stdout carries results (paths, JSON);
messages and progress go to stderr.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from kandanim import __version__
from kandanim.errors import KandanimError, ScreenplayError

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
err = Console(stderr=True, highlight=False)

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


def _fail(error: KandanimError) -> None:
    """Print a user-facing error (no traceback) and exit with its code."""
    if isinstance(error, ScreenplayError):
        for diagnostic in error.diagnostics:
            err.print(f"[bold red]error[/]: {diagnostic}", markup=True, highlight=False)
        count = len(error.diagnostics)
        err.print(f"{count} error{'s' if count != 1 else ''} found.")
    else:
        err.print(f"[bold red]error[/]: {error.message}")
    if error.hint:
        err.print(f"[dim]hint[/]: {error.hint}")
    raise typer.Exit(error.exit_code)


def _not_available(what: str) -> None:
    err.print(f"[yellow]{what} is not available yet.[/]")
    raise typer.Exit(1)


PresetsOption = Annotated[
    Optional[Path],
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
        except ScreenplayError as error:
            failed = True
            for diagnostic in error.diagnostics:
                err.print(f"[bold red]error[/]: {diagnostic}")
        except KandanimError as error:
            failed = True
            err.print(f"[bold red]error[/]: {script}: {error.message}")
        else:
            err.print(f"[green]ok[/] {script}")
    raise typer.Exit(2 if failed else 0)


@app.command()
def plan(
    script: Annotated[Path, typer.Argument(help="Screenplay file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Per-frame records as JSON.")] = False,
    presets: PresetsOption = None,
) -> None:
    """Show the resolved plan: scenes, frame ranges, timecodes, effects, transitions.

    Example: kandanim plan --json scenes/demo.yaml | jq '.records[0].pose'
    """
    from kandanim.plan import build_plan
    from kandanim.planview import plan_table
    from kandanim.screenplay import load_screenplay

    try:
        resolved = build_plan(load_screenplay(script, extra_presets=_dirs(presets)))
    except KandanimError as error:
        _fail(error)
    if as_json:
        sys.stdout.write(json.dumps(resolved.to_json(), indent=1) + "\n")
    else:
        out.print(plan_table(resolved))


@app.command()
def effects(
    name: Annotated[Optional[str], typer.Argument(help="Show one effect in full.")] = None,
    presets: PresetsOption = None,
) -> None:
    """List the camera effects, or show one with its keyframes.

    Example: kandanim effects orbit-right
    """
    from kandanim.planview import effect_detail, effects_table
    from kandanim.presets import load_catalogue

    try:
        catalogue = load_catalogue(_dirs(presets))
        out.print(effects_table(catalogue) if name is None else effect_detail(catalogue, name))
    except KandanimError as error:
        _fail(error)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the screenplay (for editor completion)."""
    from kandanim.screenplay import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")


@app.command()
def render(
    scripts: Annotated[list[Path], typer.Argument(help="One or more screenplay files.")],
    output: Annotated[
        Optional[Path], typer.Option("-o", "--output", help="Output file (single script).")
    ] = None,
    out_dir: Annotated[
        Optional[Path], typer.Option("--out-dir", help="Folder for the outputs of many scripts.")
    ] = None,
    engine: Annotated[
        Optional[str], typer.Option("--engine", help="kandinsky (default) or preview.")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cuda, mps or cpu.")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto, fp16, bf16 or fp32.")] = "auto",
    offload: Annotated[bool, typer.Option(help="Model CPU offload for small GPUs.")] = False,
    seed: Annotated[Optional[int], typer.Option(help="Override the screenplay's seed.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted render.")] = True,
    keep_frames: Annotated[bool, typer.Option(help="Keep the work folder of frames.")] = False,
    force: Annotated[bool, typer.Option(help="Overwrite an existing output.")] = False,
    fail_fast: Annotated[bool, typer.Option(help="Stop a batch at the first failure.")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress bar.")] = False,
    presets: PresetsOption = None,
) -> None:
    """Render screenplays to video.

    Examples: kandanim render scenes/demo.yaml --engine preview -o out/demo.mp4 ;
    kandanim render a.yaml b.yaml --out-dir renders/
    """
    _not_available("render")


@app.command()
def preview(
    effect: Annotated[str, typer.Option("--effect", "-e", help="Effect name.")] = "zoom-in",
    image: Annotated[Optional[Path], typer.Option("--image", help="Start from this picture.")] = None,
    duration: Annotated[float, typer.Option(help="Seconds.")] = 4.0,
    resolution: Annotated[str, typer.Option(help="landscape, square, portrait or WxH.")] = "square",
    fps: Annotated[int, typer.Option(help="Frames per second.")] = 24,
    depth: Annotated[str, typer.Option(help="heuristic, flat, midas or depth-anything.")] = "heuristic",
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Output file.")] = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress bar.")] = False,
    presets: PresetsOption = None,
) -> None:
    """A camera-motion preview in seconds on a CPU: no diffusion.

    Example: kandanim preview --effect orbit-right --image photo.jpg -o orbit.mp4
    """
    _not_available("preview")


@app.command()
def doctor() -> None:
    """Check torch, the device, PyAV codecs and which model weights are present."""
    _not_available("doctor")


@models_app.command("pull")
def models_pull(
    all_models: Annotated[bool, typer.Option("--all", help="Also both depth models.")] = False,
) -> None:
    """Download the weights the kandinsky engine needs into the Hugging Face cache."""
    _not_available("models pull")


def _dirs(folder: Optional[Path]) -> tuple[Path, ...]:
    return (folder,) if folder is not None else ()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()
