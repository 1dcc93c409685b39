"""`kandanim doctor`: what this machine can do, each check with a fix when it fails.

Checks never raise: a broken component is reported as a failed check. `required` checks
are the ones the `preview` engine needs (torch, the default MP4 encoder); a missing GPU or
missing weights only limit the `kandinsky` engine, so they are reported, not fatal.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from importlib import metadata

from kandanim.errors import KandanimError
from kandanim.hub import hub_status
from kandanim.models import ModelSpec, locate
from kandanim.spec import DEFAULT_DEPTH_MODELS

GIB = 1024**3
COMFORTABLE_GPU_MEMORY_GIB = 12  # prior + decoder + inpaint in fp16 at 640² without offload
ENCODERS = {  # encoder → (what uses it, required by the default output)
    "libx264": ("MP4 video (default)", True),
    "libvpx-vp9": ("WebM video", False),
    "aac": ("MP4 audio", False),
    "libopus": ("WebM audio", False),
}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = False  # a failed required check makes `doctor` exit 1


def run_checks() -> list[Check]:
    """Every check, in the order the table shows them."""
    checks = [_versions()]
    checks += _device_checks()
    checks += [_encoder(name, use, required) for name, (use, required) in ENCODERS.items()]
    checks += _weights_checks()
    checks.append(_hub_mode())
    return checks


def _versions() -> Check:
    names = ("torch", "diffusers", "transformers", "av")
    found = []
    missing = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            missing.append(name)
    detail = ", ".join([f"Python {platform.python_version()}", *found])
    if missing:
        return Check(
            "packages",
            False,
            f"{detail}; missing: {', '.join(missing)}",
            fix="install with `pip install -e .` (torch==2.13.0 first, see DEVELOPERS.md)",
            required=True,
        )
    return Check("packages", True, detail, required=True)


def _device_checks() -> list[Check]:
    try:
        import torch

        from kandanim.models import resolve_device

        device = resolve_device("auto")
    except (ImportError, KandanimError) as error:
        return [
            Check("device", False, f"torch unusable: {error}", fix="reinstall torch", required=True)
        ]
    if device.type == "cuda":
        index = torch.cuda.current_device()
        name = torch.cuda.get_device_name(index)
        major, minor = torch.cuda.get_device_capability(index)
        free, total = torch.cuda.mem_get_info(index)
        memory_ok = total >= COMFORTABLE_GPU_MEMORY_GIB * GIB
        return [
            Check(
                "device", True, f"cuda: {name} (compute {major}.{minor}, CUDA {torch.version.cuda})"
            ),
            Check(
                "GPU memory",
                memory_ok,
                f"{free / GIB:.1f} GiB free of {total / GIB:.1f} GiB",
                fix=""
                if memory_ok
                else "render with --offload (one model on the GPU at a "
                "time) or a smaller resolution",
            ),
        ]
    if device.type == "mps":
        return [Check("device", True, "mps: Apple GPU (fp16)")]
    return [
        Check(
            "device",
            False,
            f"cpu only (torch {torch.__version__}, no CUDA or MPS device)",
            fix="the kandinsky engine takes minutes per frame on a CPU: check motion with "
            "--engine preview, render on a CUDA machine",
        )
    ]


def _encoder(name: str, use: str, required: bool) -> Check:
    try:
        import av

        codec = av.codec.Codec(name, "w")
        return Check(f"encoder {name}", True, f"{use}: {codec.long_name}", required=required)
    except (ImportError, ValueError) as error:  # no PyAV, or FFmpeg without this encoder
        return Check(
            f"encoder {name}",
            False,
            f"{use}: not available ({error})",
            fix="reinstall PyAV from its PyPI wheel (`pip install --force-reinstall av`), "
            "which bundles FFmpeg with this encoder",
            required=required,
        )


def _weights_checks() -> list[Check]:
    try:
        spec = ModelSpec.resolve()
    except KandanimError as error:
        return [Check("weights", False, error.message, fix=error.hint or "")]
    wanted = [("prior", "prior", spec.prior), ("decoder", "decoder", spec.decoder)]
    if spec.inpaint is not None:
        wanted.append(("inpaint", "inpaint", spec.inpaint))
    for backend in DEFAULT_DEPTH_MODELS:
        wanted.append((f"depth {backend}", "depth", spec.depth_model(backend)))
    checks = []
    for label, role, model_id in wanted:
        present, where = locate(role, model_id)
        extra = " --all" if role == "depth" else ""
        checks.append(
            Check(
                f"weights {label}",
                present,
                f"{model_id} at {where}" if present else where,
                fix=""
                if present
                else f"`kandanim models pull{extra}` on a connected machine, "
                "or render with --engine preview",
            )
        )
    return checks


def _hub_mode() -> Check:
    """online / unreachable / offline by flag: probed (≤ 3 s), never assumed."""
    from huggingface_hub import constants

    status = hub_status()
    where = f"{status.endpoint}; cache {constants.HF_HUB_CACHE}"
    if status.mode == "offline":
        return Check("hugging face hub", True, f"offline by HF_HUB_OFFLINE; {where}",
                     fix="unset HF_HUB_OFFLINE to let `kandanim models pull` download")
    if status.mode == "unreachable":
        return Check("hugging face hub", False, f"unreachable ({status.detail}); {where}",
                     fix="check the network or HF_ENDPOINT; or copy a pulled cache here")
    return Check("hugging face hub", True, f"online ({status.detail}); {where}")
