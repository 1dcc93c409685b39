"""Model ids, devices and the process-wide model store.

Which weights: `ModelSpec` resolves the prior, decoder, inpaint and depth model of a render
with the one rule of `kandanim.spec.resolve_model_ids`: the screenplay's `models:` block (or a baked plan's
`models`) > the environment (`KANDANIM_PRIOR`, `KANDANIM_DECODER`, `KANDANIM_INPAINT`,
`KANDANIM_DEPTH`) > the defaults in `kandanim.spec`. Each value is a Hugging Face hub id or
a local folder; `inpaint: none` turns the inpainting model off.

Loading: `ModelStore` loads each component once per process through diffusers' and
transformers' `from_pretrained` (hub ids use the standard Hugging Face cache and honour
`HF_HUB_OFFLINE`) and counts the loads, so benchmarks and tests can check that a batch of
screenplays loads each model once. The decoder's UNet, scheduler and MoVQ are loaded once
and shared by the text-to-image and image-to-image pipelines.

Failures a user can act on become the project's errors: missing weights → one
`WeightsMissing` naming everything missing and the two remedies; CUDA out of memory →
`RuntimeFailure` suggesting a smaller resolution or `--offload`.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from kandanim.errors import RuntimeFailure, UserError, WeightsMissing
from kandanim.hub import hub_status, offline_flag
from kandanim.spec import (
    DEFAULT_DECODER,
    DEFAULT_DEPTH_MODELS,
    DEFAULT_INPAINT,
    DEFAULT_PRIOR,
    MODEL_ENV,
    MODEL_ROLES,
    resolve_model_ids,
)

if TYPE_CHECKING:
    from diffusers import (
        KandinskyV22Img2ImgPipeline,
        KandinskyV22InpaintPipeline,
        KandinskyV22Pipeline,
        KandinskyV22PriorPipeline,
    )

log = logging.getLogger(__name__)

ROLES = MODEL_ROLES
ENV_VARS = MODEL_ENV
NO_INPAINT = frozenset({"", "none", "off", "false"})  # `inpaint: none` → img2img fallback
DEVICES = ("auto", "cuda", "mps", "cpu")
DTYPES: dict[str, torch.dtype] = {
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
    "fp32": torch.float32,
}
# The file every folder of each kind has: its presence in the cache means "pulled".
MARKER_FILES = {
    "prior": "model_index.json",
    "decoder": "model_index.json",
    "inpaint": "model_index.json",
    "depth": "config.json",
}
REMEDIES = (
    "Run `kandanim models pull` on a machine that can reach huggingface.co (then copy its "
    "Hugging Face cache here), or render with `--engine preview`, which needs no weights."
)

DEPTH_REMEDIES = (
    "Run `kandanim models pull` on a machine that can reach huggingface.co (then copy its "
    "Hugging Face cache here), or choose a depth that needs no weights: `--depth auto` "
    "(the preview's default), `ground`, `heuristic` or `flat`."
)

T = TypeVar("T")


# ---------------------------------------------------------------------------------------
# Which weights


@dataclass(frozen=True)
class ModelSpec:
    """The weights one render uses: hub ids or local folders.

    `inpaint=None` means no inpainting model (holes are filled by img2img over the mask);
    `depth=None` means each depth backend's default (`kandanim.spec.DEFAULT_DEPTH_MODELS`).
    """

    prior: str = DEFAULT_PRIOR
    decoder: str = DEFAULT_DECODER
    inpaint: str | None = DEFAULT_INPAINT
    depth: str | None = None

    @classmethod
    def resolve(
        cls,
        overrides: Mapping[str, str | None] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ModelSpec:
        """`overrides` (the screenplay's `models:`, a plan's `models`) > environment > defaults."""
        env = os.environ if env is None else env
        overrides = overrides or {}
        unknown = set(overrides) - set(ROLES)
        if unknown:
            raise UserError(
                f"unknown model role(s) {sorted(unknown)}", hint=f"expected {', '.join(ROLES)}"
            )
        chosen = {role: _normalise_id(role, value) for role, value in
                  resolve_model_ids(overrides, env).items()}
        return replace(cls(), **chosen)

    def as_dict(self) -> dict[str, str]:
        """The plan's `models` mapping (str values only; a disabled inpaint model is "none")."""
        models = {"prior": self.prior, "decoder": self.decoder, "inpaint": self.inpaint or "none"}
        if self.depth is not None:
            models["depth"] = self.depth
        return models

    def depth_model(self, backend: str) -> str:
        """The model id for a model-based depth backend ('midas' or 'depth-anything')."""
        if self.depth is not None:
            return self.depth
        if backend not in DEFAULT_DEPTH_MODELS:
            raise UserError(
                f"depth backend {backend!r} has no model",
                hint=f"model-based backends are {', '.join(DEFAULT_DEPTH_MODELS)}",
            )
        return DEFAULT_DEPTH_MODELS[backend]

    def required(self) -> dict[str, str]:
        """The diffusion weights a render cannot do without (inpaint is optional)."""
        return {"prior": self.prior, "decoder": self.decoder}


def _normalise_id(role: str, value: str) -> str | None:
    value = value.strip()
    if role == "inpaint" and value.lower() in NO_INPAINT:
        return None
    if not value:
        raise UserError(f"the {role} model id is empty", hint="give a hub id or a local folder")
    return value


def looks_like_folder(model_id: str) -> bool:
    """True for ids meant as local paths: existing folders, or anything that is not the
    `owner/name` form of a hub id (absolute, `./`, `~`, more than one slash)."""
    if Path(model_id).expanduser().exists():
        return True
    if model_id.startswith((".", "/", "~")) or "\\" in model_id or model_id.endswith("/"):
        return True
    return model_id.count("/") != 1


# ---------------------------------------------------------------------------------------
# Devices and dtypes


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple's MPS, then the CPU; an explicit device must exist."""
    if name not in DEVICES:
        raise UserError(f"unknown device {name!r}", hint=f"expected one of {', '.join(DEVICES)}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeFailure(
            "--device cuda was asked for, but torch sees no CUDA device",
            hint="check the driver with `kandanim doctor`, or use --device auto",
        )
    if name == "mps" and not _mps_available():
        raise RuntimeFailure(
            "--device mps was asked for, but this torch build has no MPS support",
            hint="use --device auto",
        )
    return torch.device(name)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """'auto' → fp16 on CUDA and MPS (the weights are published for it and it halves memory),
    fp32 on the CPU (fp16 kernels there are slow or missing)."""
    if name == "auto":
        return torch.float16 if device.type in ("cuda", "mps") else torch.float32
    if name not in DTYPES:
        choices = ", ".join(["auto", *DTYPES])
        raise UserError(f"unknown dtype {name!r}", hint=f"expected one of {choices}")
    dtype = DTYPES[name]
    if dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise RuntimeFailure("this GPU has no bf16 support", hint="use --dtype fp16")
    return dtype


@contextmanager
def out_of_memory_as_failure(what: str) -> Iterator[None]:
    """Turn an accelerator out-of-memory error inside the block into a RuntimeFailure."""
    try:
        yield
    except torch.OutOfMemoryError as error:
        _release_cached_memory()
        raise _out_of_memory(what) from error
    except RuntimeError as error:
        if "out of memory" not in str(error).lower():  # MPS reports OOM as a RuntimeError
            raise
        _release_cached_memory()
        raise _out_of_memory(what) from error


def _out_of_memory(what: str) -> RuntimeFailure:
    return RuntimeFailure(
        f"out of GPU memory while {what}",
        hint="try a smaller resolution (e.g. `resolution: 512x512`), or `--offload` to keep "
        "only the running model on the GPU",
    )


def _release_cached_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------
# Availability and loading


def offline() -> bool:
    """True when the Hugging Face hub must not be contacted (HF_HUB_OFFLINE)."""
    return offline_flag()


def local_only(model_id: str) -> bool:
    """Load from disk only: a local folder, or a hub id while the hub is offline or
    unreachable (huggingface_hub would otherwise retry it for about a minute)."""
    return looks_like_folder(model_id) or not hub_status().online


def locate(role: str, model_id: str) -> tuple[bool, str]:
    """(present, where) for one model without loading it: a local folder's path, or the
    cached snapshot of a hub id. `present` for a hub id means its marker file is cached."""
    marker = MARKER_FILES[role]
    if looks_like_folder(model_id):
        folder = Path(model_id).expanduser()
        if not folder.is_dir():
            return False, f"local folder {folder} does not exist"
        if not (folder / marker).is_file():
            return False, f"local folder {folder} has no {marker}"
        return True, str(folder)
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(model_id, marker)
    if isinstance(cached, str):
        return True, str(Path(cached).parent)
    return False, f"{model_id} is not in the Hugging Face cache"


def missing_weights(models: Iterable[tuple[str, str]]) -> list[str]:
    """One entry per (role, id) that cannot be loaded. A hub id that is not cached is
    missing unless the hub answers now (then from_pretrained downloads it); the probe runs
    only when such an id is asked for, at most once per process."""
    problems = []
    for role, model_id in models:
        present, where = locate(role, model_id)
        if not present and (looks_like_folder(model_id) or not hub_status().online):
            problems.append(f"{role}: {where}")
    return problems


def weights_missing(problems: list[str]) -> WeightsMissing:
    """The one message for missing weights: every model, why, and both remedies."""
    listing = "; ".join(problems)
    status = hub_status() if any("Hugging Face cache" in p for p in problems) else None
    why = ""
    if status is not None and not status.online:
        why = f" (the Hugging Face hub is {status.mode}: {status.detail})"
    # only a depth model missing: the engine is not the problem, the depth backend is
    remedies = DEPTH_REMEDIES if all(p.startswith("depth:") for p in problems) else REMEDIES
    return WeightsMissing(
        f"model weights are missing: {listing}{why}\n{remedies}",
        hint="`kandanim doctor` lists which weights are present locally",
    )


def load_or_explain(role: str, model_id: str, loader: Callable[[], T]) -> T:
    """Run a `from_pretrained` loader; turn "weights not found/unreachable" into
    WeightsMissing. Checks local folders and the offline cache first, so the common
    mistakes fail at once with a clear message instead of a hub round trip."""
    problems = missing_weights([(role, model_id)])
    if problems:
        raise weights_missing(problems)
    try:
        return loader()
    except OSError as error:
        # diffusers and transformers raise OSError when weights are neither complete on
        # disk nor downloadable; the cause stays chained for -v.
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise weights_missing([f"{role} weights {model_id}: {detail}"]) from error


@dataclass
class DecoderPipelines:
    """Text-to-image and image-to-image over one set of decoder components."""

    text_to_image: KandinskyV22Pipeline
    image_to_image: KandinskyV22Img2ImgPipeline

    @property
    def unet(self) -> Any:  # UNet2DConditionModel
        return self.text_to_image.unet

    @property
    def movq(self) -> Any:  # VQModel
        return self.text_to_image.movq

    @property
    def scheduler(self) -> Any:
        return self.text_to_image.scheduler


@dataclass
class ModelStore:
    """Loads each model once per process and hands out the shared objects.

    Use `shared_store()` to get the process-wide store for a device/dtype/offload choice;
    `loads` counts `from_pretrained` calls per role, for benchmarks and tests.
    """

    device: torch.device = field(default_factory=lambda: resolve_device("auto"))
    dtype: torch.dtype | None = None
    offload: bool = False
    loads: Counter[str] = field(default_factory=Counter)
    _priors: dict[str, KandinskyV22PriorPipeline] = field(default_factory=dict, repr=False)
    _decoders: dict[str, DecoderPipelines] = field(default_factory=dict, repr=False)
    _inpaints: dict[str, KandinskyV22InpaintPipeline | None] = field(
        default_factory=dict, repr=False
    )
    _depth: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.dtype is None:
            self.dtype = resolve_dtype("auto", self.device)
        if self.offload and self.device.type != "cuda":
            log.info("--offload only applies to CUDA devices; ignored on %s", self.device)
            self.offload = False

    def check(self, spec: ModelSpec, depth_backends: Iterable[str] = ()) -> None:
        """Raise one WeightsMissing naming every model a render needs that cannot be
        loaded: prior, decoder and the depth models of these backends (inpaint is optional)."""
        wanted = [(role, i) for role, i in spec.required().items() if not self._loaded(role, i)]
        for backend in sorted(set(depth_backends) & set(DEFAULT_DEPTH_MODELS)):
            model_id = spec.depth_model(backend)
            if (backend, model_id) not in self._depth:
                wanted.append(("depth", model_id))
        problems = missing_weights(dict.fromkeys(wanted))
        if problems:
            raise weights_missing(problems)

    def _loaded(self, role: str, model_id: str) -> bool:
        return model_id in {"prior": self._priors, "decoder": self._decoders}[role]

    def prior(self, model_id: str) -> KandinskyV22PriorPipeline:
        if model_id not in self._priors:
            self._priors[model_id] = load_or_explain(
                "prior", model_id, lambda: self._load_prior(model_id)
            )
        return self._priors[model_id]

    def decoder(self, model_id: str) -> DecoderPipelines:
        if model_id not in self._decoders:
            self._decoders[model_id] = load_or_explain(
                "decoder", model_id, lambda: self._load_decoder(model_id)
            )
        return self._decoders[model_id]

    def inpaint(self, model_id: str | None) -> KandinskyV22InpaintPipeline | None:
        """The inpainting pipeline, or None (no id, or weights missing: the engine then
        fills holes with img2img over the mask, which is worse but works)."""
        if model_id is None:
            return None
        if model_id not in self._inpaints:
            try:
                self._inpaints[model_id] = load_or_explain(
                    "inpaint", model_id, lambda: self._load_inpaint(model_id)
                )
            except WeightsMissing as error:
                log.warning("no inpainting model (%s); filling holes with img2img", error.message)
                self._inpaints[model_id] = None
        return self._inpaints[model_id]

    def depth_estimator(
        self, backend: str, model_id: str, create: Callable[[str, str, str], T]
    ) -> T:
        """A model-based depth estimator ('midas' | 'depth-anything'), loaded once by
        `create(backend, model_id, device)` (`depth_models.create_model_estimator`: passed
        in, so this floor never imports the depth modules that import it)."""
        key = (backend, model_id)
        if key not in self._depth:
            self._depth[key] = create(backend, model_id, str(self.device))
            self.loads["depth"] += 1
        return self._depth[key]

    def adopt(self, role: str, model_id: str, model: Any) -> None:
        """Serve `model_id` from a model built in memory instead of loading weights (the
        real-size GPU benchmark with random weights; tests). `model` is the prior or inpaint
        pipeline, a `KandinskyV22Pipeline` for 'decoder', or, for 'midas' /
        'depth-anything', a depth estimator already placed on this store's device and
        dtype (`depth_models.ModelDepthEstimator`: built by the caller, so this floor never
        imports the depth modules that import it). Pipelines are cast and placed like
        loaded ones; `loads` does not count them. Raises ValueError for an unknown role."""
        if role in DEFAULT_DEPTH_MODELS:
            self._depth[(role, model_id)] = model
        elif role == "prior":
            self._priors[model_id] = self._place(model.to(dtype=self.dtype))
        elif role == "inpaint":
            self._inpaints[model_id] = self._place(model.to(dtype=self.dtype))
        elif role == "decoder":
            from diffusers import KandinskyV22Img2ImgPipeline

            text_to_image = self._place(model.to(dtype=self.dtype))
            image_to_image = self._place(KandinskyV22Img2ImgPipeline(**text_to_image.components))
            self._decoders[model_id] = DecoderPipelines(text_to_image, image_to_image)
        else:
            raise ValueError(f"unknown role {role!r}")

    # -- loaders: one from_pretrained per component, counted --------------------------------

    def _load_prior(self, model_id: str) -> KandinskyV22PriorPipeline:
        quiet_loading()
        from diffusers import KandinskyV22PriorPipeline
        from transformers import CLIPImageProcessorPil

        # constructed directly: the auto class warns that torchvision is absent
        local = local_only(model_id)
        processor = CLIPImageProcessorPil.from_pretrained(
            model_id, subfolder="image_processor", local_files_only=local
        )
        pipe = KandinskyV22PriorPipeline.from_pretrained(
            model_id, dtype=self.dtype, image_processor=processor, local_files_only=local
        )
        self.loads["prior"] += 1
        return self._place(pipe)

    def _load_decoder(self, model_id: str) -> DecoderPipelines:
        quiet_loading()
        from diffusers import KandinskyV22Img2ImgPipeline, KandinskyV22Pipeline

        text_to_image = KandinskyV22Pipeline.from_pretrained(
            model_id, dtype=self.dtype, local_files_only=local_only(model_id)
        )
        self.loads["decoder"] += 1
        image_to_image = KandinskyV22Img2ImgPipeline(**text_to_image.components)
        self._place(text_to_image)
        self._place(image_to_image)
        return DecoderPipelines(text_to_image, image_to_image)

    def _load_inpaint(self, model_id: str) -> KandinskyV22InpaintPipeline:
        quiet_loading()
        from diffusers import KandinskyV22InpaintPipeline

        pipe = KandinskyV22InpaintPipeline.from_pretrained(
            model_id, dtype=self.dtype, local_files_only=local_only(model_id)
        )
        self.loads["inpaint"] += 1
        return self._place(pipe)

    def _place(self, pipe: Any) -> Any:
        """Move to the device (or set up CPU offload), SDPA attention, no progress bars."""
        for component in pipe.components.values():
            if isinstance(component, torch.nn.Module):
                use_sdpa(component)
        if self.offload:
            pipe.enable_model_cpu_offload(device=self.device)
        else:
            pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        return pipe


def use_sdpa(module: torch.nn.Module) -> None:
    """Make every diffusers attention processor the PyTorch 2 (SDPA) variant.

    diffusers picks SDPA by default; this guards against weights saved with another
    processor setting. Modules without processors (CLIP, the prior) are left alone.
    """
    processors = getattr(module, "attn_processors", None)
    if not processors:
        return
    from diffusers.models import attention_processor as ap

    upgrades = {
        ap.AttnProcessor: ap.AttnProcessor2_0,
        ap.AttnAddedKVProcessor: ap.AttnAddedKVProcessor2_0,
    }
    if any(type(p) in upgrades for p in processors.values()):
        module.set_attn_processor(
            {name: upgrades.get(type(p), type(p))() for name, p in processors.items()}
        )


class _DropTorchvisionFallbackNotice(logging.Filter):
    """transformers warns when a pipeline module imports `CLIPImageProcessor` without
    torchvision; we construct the `*Pil` processors ourselves, so the notice is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "requires torchvision (not installed)" not in record.getMessage()


def quiet_loading() -> None:
    """Before importing pipelines: no library progress bars (the CLI draws its own) and no
    torchvision notice."""
    from transformers.utils import logging as transformers_logging

    notices = logging.getLogger("transformers.utils.import_utils")
    if not any(isinstance(f, _DropTorchvisionFallbackNotice) for f in notices.filters):
        notices.addFilter(_DropTorchvisionFallbackNotice())
    transformers_logging.disable_progress_bar()
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()


@cache
def shared_store(device: str = "auto", dtype: str = "auto", offload: bool = False) -> ModelStore:
    """The process-wide store for these settings: every engine built with them shares models."""
    resolved = resolve_device(device)
    return ModelStore(device=resolved, dtype=resolve_dtype(dtype, resolved), offload=offload)


# ---------------------------------------------------------------------------------------
# Pulling weights into the cache


@dataclass(frozen=True)
class PulledModel:
    role: str
    model_id: str
    path: str  # the local snapshot folder, or the user's own folder


def pull(
    all_models: bool = False,
    progress: Callable[[str], None] | None = None,
    spec: ModelSpec | None = None,
) -> list[PulledModel]:
    """Download the weights the kandinsky engine needs (with `all_models`, also both depth
    models) into the standard Hugging Face cache. Local folders are left as they are."""
    spec = spec or ModelSpec.resolve()
    wanted = _pull_list(spec, all_models)
    if offline() and any(not looks_like_folder(i) for _, i in wanted):
        raise RuntimeFailure(
            "cannot pull weights: HF_HUB_OFFLINE is set, so the Hugging Face hub is not contacted",
            hint="unset HF_HUB_OFFLINE on a machine that can reach huggingface.co",
        )
    status = hub_status()
    if status.mode == "unreachable" and any(not looks_like_folder(i) for _, i in wanted):
        raise RuntimeFailure(
            f"cannot pull weights: the Hugging Face hub at {status.endpoint} is unreachable "
            f"({status.detail})",
            hint="run it on a machine that can reach huggingface.co, then copy its cache here",
        )
    pulled = []
    for number, (role, model_id) in enumerate(wanted, start=1):
        if progress is not None:
            progress(f"[{number}/{len(wanted)}] {role}: {model_id}")
        if looks_like_folder(model_id):
            pulled.append(PulledModel(role, model_id, str(Path(model_id).expanduser())))
            continue
        pulled.append(PulledModel(role, model_id, _download(role, model_id)))
    return pulled


def _pull_list(spec: ModelSpec, all_models: bool) -> list[tuple[str, str]]:
    wanted = [("prior", spec.prior), ("decoder", spec.decoder)]
    if spec.inpaint is not None:
        wanted.append(("inpaint", spec.inpaint))
    if all_models:
        backends = DEFAULT_DEPTH_MODELS if spec.depth is None else {"depth": spec.depth}
        wanted += [("depth", spec.depth or DEFAULT_DEPTH_MODELS[b]) for b in backends]
    elif spec.depth is not None:
        wanted.append(("depth", spec.depth))
    return list(dict.fromkeys(wanted))  # keeps order, drops duplicates


def _download(role: str, model_id: str) -> str:
    """One repo into the cache. Diffusers repos go through diffusers' own download, which
    fetches exactly the files `from_pretrained` reads (safetensors, no duplicate formats)."""
    from huggingface_hub import model_info, snapshot_download

    try:
        model_info(model_id)  # a cheap call first: a clear error when the hub is unreachable
        if role == "depth":
            return snapshot_download(model_id, allow_patterns=_transformers_files(model_id))
        from diffusers import DiffusionPipeline

        return str(DiffusionPipeline.download(model_id))
    except Exception as error:  # network, auth, missing repo: all mean "could not pull"
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise RuntimeFailure(
            f"could not download {model_id} from the Hugging Face hub: {first_line}",
            hint="check the network (and HF_TOKEN for gated repos); on a machine without "
            "access, copy a pulled cache (~/.cache/huggingface) or use --engine preview",
        ) from error


def _transformers_files(model_id: str) -> list[str]:
    """Configs plus one weight format: safetensors when the repo has it, else PyTorch .bin."""
    from huggingface_hub import list_repo_files

    files = list_repo_files(model_id)
    weights = "*.safetensors" if any(f.endswith(".safetensors") for f in files) else "*.bin"
    return ["*.json", "*.txt", weights]
