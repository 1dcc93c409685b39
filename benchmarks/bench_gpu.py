"""Real-size GPU figures (SPEC §14): `python -m benchmarks gpu`.

Builds the Kandinsky 2.2 prior, decoder, decoder-inpaint and the DPT-hybrid (MiDaS) depth
model from their published configurations (`benchmarks/gpu_configs/*.json`, each naming
its source) with random weights, hands them to the engine's `ModelStore`, and runs the real
render loop (`kandanim.render.Renderer`: depth → warp → `repair` → colour coherence):
`prepare` (the prior, once per scene), the first frame (text-to-image, full schedule),
then N repaired frames at strength 0.15 and 50 steps, once for a shot whose camera leaves
holes every frame (zoom-out: new border, inpainting UNet) and once for one that leaves none.
For each dtype (fp16, bf16) it prints seconds per frame, the share of frame time outside
model forward passes (UNet, MoVQ, DPT; GPU time from CUDA events around each forward, so
the measurement adds no synchronisation), peak GPU memory, and host↔device
synchronisations per frame (`torch.cuda.set_sync_debug_mode`, counted). Attention is SDPA
(`models.use_sdpa`); `KANDANIM_GPU_BENCH_COMPILE=1` adds `torch.compile` of the UNets.

Modes (`KANDANIM_GPU_BENCH=auto|real|cpu|tiny`, default auto): `real` = published sizes at
640×640 (needs a CUDA GPU, ~25 GB in fp16); `cpu` = the same code path on scaled-down
configurations (same block types and layout, narrower and shallower) at 128×128, a few
minutes on 2 cores, and it says so in every row; `tiny` = the smoke size `make test` runs.
`auto` is `real` on a CUDA machine and `cpu` elsewhere. `KANDANIM_GPU_BENCH_FRAMES` sets N.

Target on paper (SPEC §9/§14): ≤ 0.2 s per 640×640 frame on one H100-class GPU with ≤ 10 %
of it outside forward passes. What the loop does on the host per frame, which is what would
stop it (20 ms is the whole 10 % budget at 0.2 s/frame):
* depth: the DPT output is copied to the host (1 sync) and normalised/smoothed in numpy
  (`DepthTracker`, ~4 ms at 640² here);
* the forward warp + disocclusion mask run in numpy/OpenCV on the host (~20 ms at 640² on
  these cores: alone it fills the budget; the fix is a torch warp on the device);
* the warped uint8 frame is uploaded, repaired on the device, and copied back (1 sync);
* colour coherence (LAB histogram match) and the optional unsharp mask run on the host;
* the frame is H.264-encoded on the host (~25 ms at 640²) and saved to the resume folder
  (PNG, a few ms) — both could overlap the next frame's GPU work on another thread.
"""

from __future__ import annotations

import copy
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import Row

CONFIGS = Path(__file__).resolve().parent / "gpu_configs"
STEPS, STRENGTH = 50, 0.15
FRAME_BAR_S, OUTSIDE_BAR = 0.2, 0.10
MODEL_IDS = {
    "prior": "bench/kandinsky-2-2-prior",
    "decoder": "bench/kandinsky-2-2-decoder",
    "inpaint": "bench/kandinsky-2-2-decoder-inpaint",
    "depth": "bench/dpt-hybrid-midas",
}


@dataclass(frozen=True)
class Mode:
    name: str  # real | cpu | tiny
    size: int  # frame side, px
    frames: int  # repaired frames per shot
    steps: int  # full-schedule steps (img2img runs steps × strength of them)

    @property
    def scaled(self) -> bool:
        return self.name != "real"


MODES = {
    "real": Mode("real", 640, 8, STEPS),
    "cpu": Mode("cpu", 128, 3, STEPS),
    "tiny": Mode("tiny", 64, 1, 20),  # 20 × 0.15 = 3 UNet steps: the smoke test stays fast
}

# Scaled-down configurations: the published block types and layout, narrower and shallower.
SCALED = {
    "unet": {"block_out_channels": [32, 64, 96, 128], "layers_per_block": 1,
             "attention_head_dim": 16, "addition_embed_type_num_heads": 4,
             "cross_attention_dim": 64, "encoder_hid_dim": 64, "norm_num_groups": 16},
    "movq": {"block_out_channels": [32, 32, 64, 64], "layers_per_block": 1,
             "norm_num_groups": 16, "num_vq_embeddings": 64},
    "prior": {"num_attention_heads": 2, "attention_head_dim": 32, "num_layers": 2,
              "embedding_dim": 64},
    "text_encoder": {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
                     "num_hidden_layers": 2, "projection_dim": 64},
    "image_encoder": {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
                      "num_hidden_layers": 2, "projection_dim": 64, "image_size": 28},
    "dpt": {"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4,
            "intermediate_size": 128, "backbone_out_indices": [0, 1, 2, 3],
            "neck_hidden_sizes": [32, 64, 64, 64], "fusion_hidden_size": 32,
            "backbone_config": {"depths": [1, 1, 1], "hidden_sizes": [32, 64, 128, 256],
                                "num_groups": 8, "embedding_size": 16},
            "backbone_featmap_shape": [1, 128, 24, 24]},
}


def load_configs(scaled: bool) -> dict[str, dict[str, Any]]:
    """The published configurations by component, with the scaled-down overrides if asked."""
    configs: dict[str, dict[str, Any]] = {}
    for file, parts in (
        ("kandinsky-2-2-prior.json", ("prior", "text_encoder", "image_encoder", "scheduler")),
        ("kandinsky-2-2-decoder.json", ("unet", "movq", "scheduler")),
        ("kandinsky-2-2-decoder-inpaint.json", ("unet",)),
        ("dpt-hybrid-midas.json", ("dpt",)),
    ):
        data = json.loads((CONFIGS / file).read_text())
        stem = file.removesuffix(".json")
        for part in parts:
            configs[f"{stem}:{part}"] = _merge(data[part], SCALED.get(part, {}) if scaled else {})
    return configs


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def build_models(
    configs: dict[str, dict[str, Any]], device: torch.device | None = None
) -> dict[str, Any]:
    """The four models with random weights in fp32, created on `device` (random init of
    ~6 B real-size parameters is minutes on a CPU, a second on a GPU); the store casts."""
    with torch.device(device or "cpu"):
        return _build(configs)


def _build(c: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from diffusers import (
        DDPMScheduler,
        KandinskyV22InpaintPipeline,
        KandinskyV22Pipeline,
        KandinskyV22PriorPipeline,
        PriorTransformer,
        UnCLIPScheduler,
        UNet2DConditionModel,
        VQModel,
    )
    from transformers import (
        CLIPImageProcessorPil,
        CLIPTextConfig,
        CLIPTextModelWithProjection,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
        DPTConfig,
        DPTForDepthEstimation,
    )

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tiny_models import tiny_tokenizer  # offline byte-level vocabulary (no hub here)

    torch.manual_seed(0)
    prior_cfg = c["kandinsky-2-2-prior:prior"]
    prior = PriorTransformer.from_config(prior_cfg)
    prior.clip_std = torch.nn.Parameter(torch.ones(prior.clip_std.shape))  # zero-initialised
    tokenizer = tiny_tokenizer()
    vocab = tokenizer.get_vocab()
    text_cfg = dict(c["kandinsky-2-2-prior:text_encoder"])
    text_cfg.update(bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
                    pad_token_id=vocab["<|endoftext|>"])
    image_cfg = c["kandinsky-2-2-prior:image_encoder"]
    side = image_cfg["image_size"]
    prior_pipe = KandinskyV22PriorPipeline(
        prior=prior.eval(),
        image_encoder=CLIPVisionModelWithProjection(CLIPVisionConfig(**image_cfg)).eval(),
        text_encoder=CLIPTextModelWithProjection(CLIPTextConfig(**text_cfg)).eval(),
        tokenizer=tokenizer,
        scheduler=_on_cpu(UnCLIPScheduler, c["kandinsky-2-2-prior:scheduler"]),
        image_processor=CLIPImageProcessorPil(
            crop_size=side, size={"shortest_edge": side}, do_center_crop=True, resample=3
        ),
    )
    scheduler = c["kandinsky-2-2-decoder:scheduler"]
    movq = VQModel.from_config(c["kandinsky-2-2-decoder:movq"]).eval()
    decoder = KandinskyV22Pipeline(
        unet=UNet2DConditionModel.from_config(c["kandinsky-2-2-decoder:unet"]).eval(),
        scheduler=_on_cpu(DDPMScheduler, scheduler), movq=movq,
    )
    inpaint = KandinskyV22InpaintPipeline(
        unet=UNet2DConditionModel.from_config(c["kandinsky-2-2-decoder-inpaint:unet"]).eval(),
        scheduler=_on_cpu(DDPMScheduler, scheduler), movq=movq,
    )
    depth = DPTForDepthEstimation(DPTConfig(**c["dpt-hybrid-midas:dpt"])).eval()
    return {"prior": prior_pipe, "decoder": decoder, "inpaint": inpaint, "midas": depth}


def _on_cpu(scheduler_class: Any, config: dict[str, Any]) -> Any:
    """Schedulers keep their tables on the CPU, as `from_pretrained` makes them."""
    with torch.device("cpu"):
        return scheduler_class.from_config(config)


def parameter_counts(models: dict[str, Any]) -> dict[str, float]:
    """Millions of parameters per model (the prior pipeline: prior + both CLIP towers)."""
    counts = {}
    for name, model in models.items():
        modules = [m for m in getattr(model, "components", {"m": model}).values()
                   if isinstance(m, torch.nn.Module)]
        if name == "inpaint":
            modules = [model.unet]  # the MoVQ is shared with the decoder
        counts[name] = sum(p.numel() for m in modules for p in m.parameters()) / 1e6
    return counts


def _plan(mode: Mode, holes: bool):
    from kandanim.plan import build_plan
    from kandanim.screenplay import from_mapping

    scene: dict[str, Any] = {
        "prompt": "steam hot air balloon flying through cloudy sky",
        "duration": 1 + mode.frames,
        "strength": STRENGTH,
        "steps": mode.steps,
        "depth": "midas",
        "cadence": 1,
    }
    scene["effect"] = "zoom-out" if holes else "in-place"
    document = {
        "version": 1, "fps": 1, "resolution": f"{mode.size}x{mode.size}", "seed": 1,
        "engine": "kandinsky", "models": dict(MODEL_IDS), "scenes": [scene],
    }
    if not holes:  # not even the in-place drift: the warp is the identity
        scene["camera"] = [{"t": 0}]
    loaded = from_mapping(document, base_dir=Path(tempfile.gettempdir()), name="<gpu bench>")
    return build_plan(loaded)


class _ForwardClock:
    """Time inside forward passes of some modules: CUDA events (no sync) or perf_counter."""

    def __init__(self, modules: list[torch.nn.Module], cuda: bool) -> None:
        self.cuda = cuda
        self.spans: list[tuple[Any, Any]] = []
        self._open: dict[int, Any] = {}
        self._handles = [
            h for m in modules
            for h in (m.register_forward_pre_hook(self._before),
                      m.register_forward_hook(self._after))
        ]

    def _now(self) -> Any:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def _before(self, module: torch.nn.Module, args: Any) -> None:
        self._open[id(module)] = self._now()

    def _after(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        self.spans.append((self._open.pop(id(module)), self._now()))

    def take(self) -> float:
        """Seconds inside forwards since the last call (syncs once, at the frame's end)."""
        if self.cuda:
            torch.cuda.synchronize()
            seconds = sum(a.elapsed_time(b) for a, b in self.spans) / 1000.0
        else:
            seconds = sum(b - a for a, b in self.spans)
        self.spans.clear()
        return seconds

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


@contextmanager
def _sync_counter(cuda: bool) -> Iterator[list[int]]:
    """Counts synchronising CUDA calls (torch warns on each in sync debug mode 'warn')."""
    count = [0]
    if not cuda:
        yield count
        return
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield count
        count[0] = sum("synchroniz" in str(w.message) for w in caught)
    finally:
        torch.cuda.set_sync_debug_mode(0)


@dataclass
class ShotFigures:
    prepare_s: float
    first_frame_s: float
    frame_s: float  # median over the repaired frames
    outside_share: float  # median share of frame time outside forward passes
    syncs_per_frame: float | None
    hole_share: float  # mean share of pixels that were holes


def run_shot(engine: Any, store: Any, mode: Mode, holes: bool, cuda: bool) -> ShotFigures:
    """prepare → first frame → N repaired frames through the real loop."""
    from kandanim.depth_models import create_model_estimator
    from kandanim.render import Renderer

    plan = _plan(mode, holes)
    decoder = store.decoder(MODEL_IDS["decoder"])
    inpaint = store.inpaint(MODEL_IDS["inpaint"])
    # the adopted estimator: `create` is never called for it
    depth = store.depth_estimator("midas", MODEL_IDS["depth"], create_model_estimator)
    modules = [decoder.unet, decoder.movq, inpaint.unet, depth.model]
    hole_shares: list[float] = []
    original = engine.repair

    def repair(warped, mask, *args, **kwargs):
        hole_shares.append(float(mask.mean()))
        return original(warped, mask, *args, **kwargs)

    engine.repair = repair
    clock = _ForwardClock(modules, cuda)
    try:
        started = time.perf_counter()
        engine.prepare(plan)
        _sync(cuda)
        prepare_s = time.perf_counter() - started
        frames = Renderer(plan, engine).frames()
        times, shares, syncs = [], [], []
        for number in range(plan.frame_count):
            clock.take()
            started = time.perf_counter()
            with _sync_counter(cuda and number > 0) as counted:
                next(frames)
                _sync(cuda)
            elapsed = time.perf_counter() - started
            inside = clock.take()
            if number == 0:
                first_s = elapsed
                continue
            times.append(elapsed)
            shares.append(max(elapsed - inside, 0.0) / elapsed)
            syncs.append(counted[0])
    finally:
        clock.close()
        del engine.repair
    return ShotFigures(
        prepare_s, first_s, statistics.median(times), statistics.median(shares),
        statistics.mean(syncs) if cuda else None,
        float(np.mean(hole_shares)) if hole_shares else 0.0,
    )


def _sync(cuda: bool) -> None:
    if cuda:
        torch.cuda.synchronize()


def measure_dtype(
    configs: dict[str, dict[str, Any]], mode: Mode, dtype: str, device: torch.device,
    compile_unets: bool,
) -> tuple[dict[bool, ShotFigures], float]:
    """Both shots in one dtype; returns figures by `holes` and peak memory in GiB."""
    from kandanim.depth_models import INPUT_FORMATS, ModelDepthEstimator
    from kandanim.engines.kandinsky import KandinskyEngine
    from kandanim.models import DTYPES, ModelStore

    store = ModelStore(device=device, dtype=DTYPES[dtype])
    models = build_models(configs, device)  # fresh per dtype: casting is one way
    depth = models.pop("midas").to(device, DTYPES[dtype]).eval()
    store.adopt("midas", MODEL_IDS["depth"], ModelDepthEstimator(
        depth, INPUT_FORMATS[depth.config.model_type], device
    ))
    for role in ("prior", "decoder", "inpaint"):
        store.adopt(role, MODEL_IDS[role], models.pop(role))
    if compile_unets:
        store.decoder(MODEL_IDS["decoder"]).unet.compile()
        store.inpaint(MODEL_IDS["inpaint"]).unet.compile()
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    engine = KandinskyEngine(store)
    figures = {holes: run_shot(engine, store, mode, holes, cuda) for holes in (False, True)}
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**30
    else:  # the process's peak resident memory: an upper bound, shared with everything
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return figures, peak


def choose_mode() -> Mode:
    name = os.environ.get("KANDANIM_GPU_BENCH", "auto").strip().lower()
    if name == "auto":
        name = "real" if torch.cuda.is_available() else "cpu"
    if name not in MODES:
        raise ValueError(f"KANDANIM_GPU_BENCH={name!r}: expected auto, real, cpu or tiny")
    mode = MODES[name]
    frames = os.environ.get("KANDANIM_GPU_BENCH_FRAMES")
    if frames:
        mode = Mode(mode.name, mode.size, int(frames), mode.steps)
    return mode


def run(mode: Mode | None = None, dtypes: tuple[str, ...] = ("fp16", "bf16")) -> list[Row]:
    from diffusers.utils import logging as diffusers_logging

    from kandanim.models import quiet_loading

    quiet_loading()
    diffusers_logging.set_verbosity_error()  # casting random-weight models warns each time
    mode = mode or choose_mode()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if mode.name == "real" and device.type != "cuda":
        raise RuntimeError("real-size figures need a CUDA GPU; use KANDANIM_GPU_BENCH=cpu")
    compile_unets = os.environ.get("KANDANIM_GPU_BENCH_COMPILE", "") == "1"
    configs = load_configs(mode.scaled)
    with torch.device("meta"):  # sizes without allocating anything
        sizes = parameter_counts(_build(configs))
    where = "GPU" if device.type == "cuda" else "CPU"
    scale = "scaled-down configs" if mode.scaled else "published sizes"
    label = f"gpu bench ({mode.name} mode: {scale}, {where})"  # no [ ]: rich markup
    rows = [Row(
        f"{label}: parameters", round(sum(sizes.values())), "M", "", None,
        ", ".join(f"{k} {v:,.0f} M" for k, v in sizes.items()) + " (random weights)",
    )]
    judged = mode.name == "real"
    for dtype in dtypes:
        figures, peak = measure_dtype(configs, mode, dtype, device, compile_unets)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        tag = f"{label} {dtype}{' +compile' if compile_unets else ''} {mode.size}²"
        for holes, shot in figures.items():
            kind = f"{'holes' if holes else 'no holes'}: {100 * shot.hole_share:.1f} % of pixels"
            rows.append(Row(
                f"{tag}: s/frame ({kind})", round(shot.frame_s, 3), "s",
                f"≤ {FRAME_BAR_S}", shot.frame_s <= FRAME_BAR_S if judged else None,
                f"median of {mode.frames}; {mode.steps} steps × {STRENGTH}; prepare "
                f"{shot.prepare_s:.2f} s, first frame {shot.first_frame_s:.2f} s",
            ))
            rows.append(Row(
                f"{tag}: outside forward passes ({kind})", round(100 * shot.outside_share, 1),
                "%", f"≤ {100 * OUTSIDE_BAR:.0f} %",
                shot.outside_share <= OUTSIDE_BAR if judged else None,
                "UNet, MoVQ and DPT forwards timed" + (" by CUDA events" if where == "GPU"
                                                      else " on the host"),
            ))
            rows.append(Row(
                f"{tag}: host↔device syncs per frame ({kind})",
                float("nan") if shot.syncs_per_frame is None else shot.syncs_per_frame,
                "syncs", "", None,
                "counted by torch.cuda sync debug mode" if where == "GPU" else "n/a on a CPU",
            ))
        rows.append(Row(
            f"{tag}: peak memory", round(peak, 2), "GiB", "", None,
            "torch.cuda.max_memory_allocated" if where == "GPU"
            else "process peak RSS (no GPU here)",
        ))
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    for row in run():
        print(f"{row.name:70s} {row.value:10.3f} {row.unit:6s} {row.bar:8s} {row.note}")
