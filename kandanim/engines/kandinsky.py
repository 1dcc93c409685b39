"""The `kandinsky` engine: Kandinsky 2.2 through diffusers, behind the engine protocol.

The render loop owns motion (depth → warp → `repair` → colour coherence); this engine only
makes images:

* `prepare` loads the models once (`ModelStore`) and runs the prior **once per scene
  prompt**, caching image embeddings *and* negative embeddings made from the negative
  prompt, so the negative prompt really conditions every decoder call.
* `first_frame` is the user's `init_image`, else img2img of the previous scene's frame
  (a dissolve), else text-to-image, through the stock diffusers pipelines.
* `repair` is the hot path, one call per diffused frame. It runs its own short denoising
  loops over the shared components, entirely on the device: the warped frame is uploaded
  and MoVQ-encoded once, holes are filled in latent space (the inpainting UNet where
  available, else the decoder UNet at a higher strength over the mask), the whole frame
  is refined by img2img at `frame.strength`, and the result is decoded once. The stock
  inpaint pipeline is not used here: it always runs the full schedule from pure noise
  and prepares its mask with a per-pixel Python loop (one host sync per latent pixel).

Per-frame seeds (`scene.seed + frame.index`) keep a static shot from burning in and make
every frame reproducible on its own. During a `morph` the conditioning names two scenes and
their embeddings are slerped by the transition weight.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from kandanim.depth import DepthEstimator
from kandanim.engines.base import Conditioning
from kandanim.models import (
    DecoderPipelines,
    ModelSpec,
    ModelStore,
    out_of_memory_as_failure,
    shared_store,
)
from kandanim.plan import FramePlan, Plan, ScenePlan

log = logging.getLogger(__name__)

MODEL_DEPTH_BACKENDS = ("midas", "depth-anything")
PRIOR_STEPS = 25  # diffusers' default for the 2.2 prior
PRIOR_GUIDANCE = 4.0
# A dissolve's first frame of scene B is img2img of scene A's last frame at this strength:
# high enough that B's prompt replaces A's content and style, low enough that A's layout
# (horizon, large shapes, light direction) survives, so the cross-fade blends two pictures
# of one composition instead of double-exposing two unrelated ones.
SOURCE_STRENGTH = 0.6
# Holes (disoccluded or new border pixels) start from a smooth fill of their surroundings,
# which gives colour but no detail; they are re-noised this far before denoising, on a
# schedule of at most FILL_STEPS steps so the fill stays a fraction of the frame's cost.
FILL_STRENGTH = 0.8
FILL_STEPS = 25
LATENT_SCALE = 8  # MoVQ downsampling: one latent pixel per 8×8 image pixels


@dataclass(frozen=True)
class Embeddings:
    """Prior output for one prompt: positive and negative image embeddings, (1, D) each."""

    positive: torch.Tensor
    negative: torch.Tensor

    def for_guidance(self, guidance: float, dtype: torch.dtype) -> torch.Tensor:
        """The UNet's `image_embeds`: [negative; positive] under guidance, else positive."""
        if guidance > 1.0:
            return torch.cat([self.negative, self.positive]).to(dtype)
        return self.positive.to(dtype)


@dataclass(frozen=True)
class _Denoiser:
    """The UNet and scheduler of one pass, and whether it takes inpainting inputs."""

    unet: Any
    scheduler: Any
    inpainting: bool


class KandinskyEngine:
    name = "kandinsky"
    supports_morph = True

    def __init__(
        self,
        store: ModelStore | None = None,
        *,
        source_strength: float = SOURCE_STRENGTH,
        fill_strength: float = FILL_STRENGTH,
        fill_steps: int = FILL_STEPS,
    ) -> None:
        self.store = store or shared_store()
        self.source_strength = source_strength
        self.fill_strength = fill_strength
        self.fill_steps = fill_steps
        self.spec = ModelSpec.resolve()
        self._size = (0, 0)
        self._scenes: tuple[ScenePlan, ...] = ()
        self._embeddings: dict[tuple[str, str, str, int], Embeddings] = {}
        self._estimators: dict[str, DepthEstimator] = {}

    # -- protocol ------------------------------------------------------------------------

    def prepare(self, plan: Plan) -> None:
        self.spec = ModelSpec.resolve(plan.models)
        self._size = (plan.width, plan.height)
        self._scenes = plan.scenes
        # one error naming every missing model, before anything loads
        self.store.check(self.spec, depth_backends=[s.depth for s in plan.scenes])
        self.store.prior(self.spec.prior)
        self.store.decoder(self.spec.decoder)
        self.store.inpaint(self.spec.inpaint)
        for scene in plan.scenes:
            self._scene_embeddings(scene)

    def first_frame(
        self, scene: ScenePlan, frame: FramePlan, source: np.ndarray | None
    ) -> np.ndarray:
        width, height = self._size
        if scene.init_image is not None:
            from kandanim.images import load_image

            return load_image(scene.init_image, width, height)
        embeddings = self._scene_embeddings(scene)
        decoder = self._decoder()
        with out_of_memory_as_failure(f"making the first frame of scene {scene.index + 1}"):
            if source is not None:
                images = decoder.image_to_image(
                    image=self._to_unit_tensor(source),
                    image_embeds=embeddings.positive,
                    negative_image_embeds=embeddings.negative,
                    height=height,
                    width=width,
                    num_inference_steps=scene.steps,
                    strength=self.source_strength,
                    guidance_scale=scene.guidance,
                    generator=self._generator(scene.seed + frame.index),
                    output_type="pt",
                ).images
            else:
                images = decoder.text_to_image(
                    image_embeds=embeddings.positive,
                    negative_image_embeds=embeddings.negative,
                    height=height,
                    width=width,
                    num_inference_steps=scene.steps,
                    guidance_scale=scene.guidance,
                    generator=self._generator(scene.seed),
                    output_type="pt",
                ).images
            return _unit_to_frame(images)

    @torch.no_grad()
    def repair(
        self,
        warped: np.ndarray,
        holes: np.ndarray,
        frame: FramePlan,
        scene: ScenePlan,
        conditioning: Conditioning,
    ) -> np.ndarray:
        _check_frame(warped, holes)
        embeddings = self.conditioning_embeddings(conditioning, fallback=scene)
        generator = self._generator(scene.seed + frame.index)
        decoder = self._decoder()
        with out_of_memory_as_failure(f"repairing frame {frame.index}"):
            image = self._to_signed_tensor(warped)
            hole_mask = None
            if holes.any():  # checked in numpy, on the host: no device sync
                hole_mask = torch.from_numpy(np.ascontiguousarray(holes)).to(self.store.device)
                image = fill_from_surroundings(image, hole_mask[None, None])
            latents = decoder.movq.encode(image, return_dict=False)[0]
            if hole_mask is not None:
                latents = self._fill_holes(latents, hole_mask, embeddings, scene, generator)
            refiner = _Denoiser(decoder.unet, decoder.scheduler, inpainting=False)
            latents = self._denoise(
                refiner,
                latents,
                embeddings,
                scene.steps,
                frame.strength,
                scene.guidance,
                generator,
            )
            decoded = decoder.movq.decode(latents, force_not_quantize=True, return_dict=False)[0]
            return _signed_to_frame(decoded)

    def depth_estimator(self, backend: str) -> DepthEstimator:
        if backend in MODEL_DEPTH_BACKENDS:
            # the store caches by (backend, model id): a later plan may name another model
            from kandanim.depth_models import create_model_estimator

            return self.store.depth_estimator(
                backend, self.spec.depth_model(backend), create_model_estimator
            )
        if backend not in self._estimators:
            from kandanim.depth import create_estimator

            self._estimators[backend] = create_estimator(backend)
        return self._estimators[backend]

    # -- embeddings ----------------------------------------------------------------------

    def conditioning_embeddings(
        self, conditioning: Conditioning, fallback: ScenePlan | None = None
    ) -> Embeddings:
        """The embeddings for (scene index, weight) pairs: one scene's own, or during a
        morph the slerp of several, weighted (positive and negative alike)."""
        pairs = [(i, w) for i, w in conditioning if w > 0.0]
        if not pairs:
            if fallback is None:
                raise ValueError("conditioning has no scene with a positive weight")
            return self._scene_embeddings(fallback)
        first, total = pairs[0]
        blended = self._scene_embeddings(self._scene(first))
        for index, weight in pairs[1:]:
            other = self._scene_embeddings(self._scene(index))
            t = weight / (total + weight)
            blended = Embeddings(
                slerp(blended.positive, other.positive, t),
                slerp(blended.negative, other.negative, t),
            )
            total += weight
        return blended

    def _scene(self, index: int) -> ScenePlan:
        if not 0 <= index < len(self._scenes):
            raise IndexError(f"conditioning names scene {index}, the plan has {len(self._scenes)}")
        return self._scenes[index]

    def _scene_embeddings(self, scene: ScenePlan) -> Embeddings:
        """Run the prior for a scene's prompt, at most once per (prior, prompt, negative, seed)."""
        key = (self.spec.prior, scene.prompt, scene.negative_prompt, scene.seed)
        if key not in self._embeddings:
            prior = self.store.prior(self.spec.prior)
            # An empty negative prompt means "no negative": the prior then returns the
            # embedding of a blank image, the unconditional input the decoder was trained on.
            negative = scene.negative_prompt.strip() or None
            with out_of_memory_as_failure(f"encoding the prompt of scene {scene.index + 1}"):
                output = prior(
                    prompt=scene.prompt,
                    negative_prompt=negative,
                    num_inference_steps=PRIOR_STEPS,
                    guidance_scale=PRIOR_GUIDANCE,
                    generator=self._generator(scene.seed),
                )
            self._embeddings[key] = Embeddings(
                output.image_embeds.to(self.store.device, self.store.dtype),
                output.negative_image_embeds.to(self.store.device, self.store.dtype),
            )
        return self._embeddings[key]

    # -- the denoising passes ----------------------------------------------------------------

    def _fill_holes(
        self,
        latents: torch.Tensor,
        holes: torch.Tensor,
        embeddings: Embeddings,
        scene: ScenePlan,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """Repaint the latent cells the holes touch; keep every other cell as it was."""
        keep = latent_keep_mask(holes, latents.shape[-2:]).to(latents.dtype)
        inpaint = self.store.inpaint(self.spec.inpaint)
        if inpaint is not None:
            denoiser = _Denoiser(inpaint.unet, inpaint.scheduler, inpainting=True)
        else:
            decoder = self._decoder()
            denoiser = _Denoiser(decoder.unet, decoder.scheduler, inpainting=False)
        return self._denoise(
            denoiser,
            latents,
            embeddings,
            min(scene.steps, self.fill_steps),
            self.fill_strength,
            scene.guidance,
            generator,
            keep=keep,
        )

    def _denoise(
        self,
        denoiser: _Denoiser,
        clean: torch.Tensor,
        embeddings: Embeddings,
        steps: int,
        strength: float,
        guidance: float,
        generator: torch.Generator,
        keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """img2img in latent space: noise `clean` to the level `strength` of a `steps`-step
        schedule and denoise the last ~steps×strength steps.

        With `keep` (1 = keep, 0 = repaint, on the latent grid) the kept cells are reset to
        `clean`, noised to the current level, after every step (as diffusers' inpainting
        pipelines do), so only the repainted cells change. An inpainting UNet also sees
        the kept latents and the mask as extra input channels.
        """
        unet, scheduler = denoiser.unet, denoiser.scheduler
        timesteps = schedule_tail(scheduler, steps, strength)
        device = clean.device
        levels = torch.tensor(timesteps, device=device)  # one upload for the whole loop
        noise = torch.randn(clean.shape, generator=generator, device=device, dtype=clean.dtype)
        latents = scheduler.add_noise(clean, noise, levels[:1])
        image_embeds = embeddings.for_guidance(guidance, unet.dtype)
        guided = guidance > 1.0
        extra = None
        if denoiser.inpainting:
            # the inpainting UNet was trained with mask 1 = keep (diffusers inverts the
            # user's mask, where white = repaint, before it reaches the UNet)
            mask = keep if keep is not None else torch.ones_like(clean[:, :1])
            extra = torch.cat([clean * mask, mask], dim=1)
        for i, t in enumerate(timesteps):
            model_input = latents if extra is None else torch.cat([latents, extra], dim=1)
            if guided:
                model_input = torch.cat([model_input, model_input])
            output = unet(
                sample=model_input.to(unet.dtype),
                timestep=t,
                encoder_hidden_states=None,
                added_cond_kwargs={"image_embeds": image_embeds},
                return_dict=False,
            )[0]
            noise_pred = _guided_prediction(output, clean.shape[1], guidance, scheduler)
            latents = scheduler.step(
                noise_pred.to(latents.dtype), t, latents, generator=generator, return_dict=False
            )[0]
            if keep is not None:
                if i + 1 < len(timesteps):
                    known = scheduler.add_noise(clean, noise, levels[i + 1 : i + 2])
                else:
                    known = clean
                latents = keep * known + (1.0 - keep) * latents
        return latents

    # -- helpers -------------------------------------------------------------------------

    def _decoder(self) -> DecoderPipelines:
        return self.store.decoder(self.spec.decoder)

    def _generator(self, seed: int) -> torch.Generator:
        # on the compute device, so noise is drawn there (no host→device copy per step)
        device = self.store.device
        return torch.Generator(device=device).manual_seed(int(seed))

    def _to_unit_tensor(self, frame: np.ndarray) -> torch.Tensor:
        """uint8 (H, W, 3) → (1, 3, H, W) in [0, 1] on the device (uploaded as bytes)."""
        data = torch.from_numpy(np.ascontiguousarray(frame)).to(self.store.device)
        return data.permute(2, 0, 1)[None].to(self.store.dtype) / 255.0

    def _to_signed_tensor(self, frame: np.ndarray) -> torch.Tensor:
        return self._to_unit_tensor(frame) * 2.0 - 1.0


# ---------------------------------------------------------------------------------------
# Pure tensor helpers (no models)


def denoising_steps(steps: int, strength: float) -> int:
    """UNet steps of an img2img pass: steps × strength rounded half up, at least one
    (50 × 0.15 → 8), so a low strength still cleans the frame."""
    return min(steps, max(1, math.floor(steps * strength + 0.5)))


def schedule_tail(scheduler: Any, steps: int, strength: float) -> list[int]:
    """The last `denoising_steps` timesteps of a `steps`-step schedule, as Python ints so the
    loop never reads a device tensor back."""
    scheduler.set_timesteps(steps, device="cpu")
    return [int(t) for t in scheduler.timesteps[-denoising_steps(steps, strength) :]]


def _guided_prediction(
    output: torch.Tensor, channels: int, guidance: float, scheduler: Any
) -> torch.Tensor:
    """Classifier-free guidance on the predicted noise. The Kandinsky UNet also predicts a
    variance (the second half of its channels); it is kept, from the conditioned half, only
    for schedulers that learn it, as the diffusers pipelines do."""
    noise, variance = output.split(channels, dim=1)
    if guidance > 1.0:
        uncond, cond = noise.chunk(2)
        noise = uncond + guidance * (cond - uncond)
        variance = variance.chunk(2)[1]
    if getattr(scheduler.config, "variance_type", None) in ("learned", "learned_range"):
        return torch.cat([noise, variance], dim=1)
    return noise


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation of embedding rows: the direction moves along the great
    circle, the length linearly; exact at t = 0 and 1, linear when a ∥ b."""
    a32, b32 = a.float(), b.float()
    norm_a = a32.norm(dim=-1, keepdim=True)
    norm_b = b32.norm(dim=-1, keepdim=True)
    unit_a = a32 / norm_a.clamp_min(1e-12)
    unit_b = b32 / norm_b.clamp_min(1e-12)
    cos = (unit_a * unit_b).sum(dim=-1, keepdim=True).clamp(-1.0, 1.0)
    angle = torch.arccos(cos)
    sin = torch.sin(angle)
    nearly_parallel = sin < 1e-4
    safe_sin = torch.where(nearly_parallel, torch.ones_like(sin), sin)
    spherical = (torch.sin((1.0 - t) * angle) * unit_a + torch.sin(t * angle) * unit_b) / safe_sin
    linear = (1.0 - t) * unit_a + t * unit_b
    direction = torch.where(nearly_parallel, linear, spherical)
    length = (1.0 - t) * norm_a + t * norm_b
    return (direction * length).to(a.dtype)


def latent_keep_mask(
    holes: torch.Tensor, latent_size: torch.Size | tuple[int, int]
) -> torch.Tensor:
    """(1, 1, h, w) mask on the latent grid, 1 = keep. A latent cell is repainted when any of
    its pixels is a hole, and so are its 8 neighbours: MoVQ's receptive field spans cells,
    so a one-cell margin hides the seam (diffusers' inpaint pipelines widen it the same way)."""
    mask = holes.reshape(1, 1, *holes.shape[-2:]).float()
    touched = F.adaptive_max_pool2d(mask, tuple(latent_size))
    widened = F.max_pool2d(touched, kernel_size=3, stride=1, padding=1)
    return 1.0 - widened


def fill_from_surroundings(image: torch.Tensor, holes: torch.Tensor) -> torch.Tensor:
    """Fill hole pixels with a smooth extension of the known ones (push-pull pyramid).

    Known pixels are averaged down a pyramid with their coverage as weight, then each level
    fills its holes from the next coarser one on the way back up. Gives the repainting pass
    the right colours to start from; on the device, a handful of pooling ops.
    """
    known = (~holes).to(image.dtype)
    levels: list[tuple[torch.Tensor, torch.Tensor]] = []
    colour, weight = image * known, known
    while min(colour.shape[-2:]) > 1:
        levels.append((colour, weight))
        colour = F.avg_pool2d(colour, 2, ceil_mode=True)
        weight = F.avg_pool2d(weight, 2, ceil_mode=True)
    filled = colour / weight.clamp_min(1e-6)
    for colour, weight in reversed(levels):
        coarse = F.interpolate(filled, size=colour.shape[-2:], mode="bilinear", align_corners=False)
        average = colour / weight.clamp_min(1e-6)
        # where a level has some coverage, its own average wins in proportion to it
        filled = average * weight + coarse * (1.0 - weight)
    return torch.where(holes, filled, image)


def _check_frame(warped: np.ndarray, holes: np.ndarray) -> None:
    if warped.ndim != 3 or warped.shape[2] != 3 or warped.dtype != np.uint8:
        raise ValueError(
            f"expected an RGB uint8 (H, W, 3) frame, got {warped.dtype} {warped.shape}"
        )
    if holes.shape != warped.shape[:2] or holes.dtype != np.bool_:
        raise ValueError(f"expected a bool (H, W) hole mask, got {holes.dtype} {holes.shape}")
    if warped.shape[0] % LATENT_SCALE or warped.shape[1] % LATENT_SCALE:
        raise ValueError(f"frame sides must be multiples of {LATENT_SCALE}, got {warped.shape[:2]}")


def _signed_to_frame(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [-1, 1] → uint8 (H, W, 3): converted on the device, copied once."""
    return _unit_to_frame(image * 0.5 + 0.5)


def _unit_to_frame(image: torch.Tensor) -> np.ndarray:
    pixels = (image[0].float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    return pixels.permute(1, 2, 0).contiguous().cpu().numpy()
