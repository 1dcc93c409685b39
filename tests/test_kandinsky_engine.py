"""The kandinsky engine on tiny models (CPU, 64×64): prior caching, negative prompts,
seeds, init images, morph conditioning, hole filling and the fallback without inpainting."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from kandanim.camera import Pose
from kandanim.engines.kandinsky import (
    FILL_STEPS,
    FILL_STRENGTH,
    Embeddings,
    KandinskyEngine,
    _Denoiser,
    denoising_steps,
    fill_from_surroundings,
    latent_keep_mask,
    slerp,
)
from kandanim.models import ModelStore
from kandanim.plan import FramePlan, Plan, ScenePlan

SIZE = 64
STEPS = 10
CPU = torch.device("cpu")


def scene_plan(
    index: int, prompt: str, negative: str = "low quality", seed: int = 7, **changes: object
) -> ScenePlan:
    scene = ScenePlan(
        index=index,
        prompt=prompt,
        negative_prompt=negative,
        effect=None,
        start=4 * index,
        stop=4 * index + 4,
        duration=1.0,
        seed=seed,
        steps=STEPS,
        guidance=4.0,
        cadence=1,
        depth="flat",
        colour_coherence=False,
        sharpen=0.0,
        init_image=None,
        transition_in="cut",
        transition_frames=0,
    )
    return replace(scene, **changes)


def frame_plan(index: int, scene: int = 0, strength: float = 0.3) -> FramePlan:
    return FramePlan(
        index=index,
        scene=scene,
        t=index / 4,
        local_t=0.0,
        pose=Pose(),
        fov=40.0,
        near=1.0,
        far=10.0,
        strength=strength,
        diffuse=True,
    )


def make_plan(folders, scenes: tuple[ScenePlan, ...], **models: str) -> Plan:
    chosen = {
        "prior": str(folders.prior),
        "decoder": str(folders.decoder),
        "inpaint": str(folders.inpaint),
        **models,
    }
    frames = tuple(frame_plan(i, min(i // 4, len(scenes) - 1)) for i in range(4 * len(scenes)))
    return Plan(
        fps=4,
        width=SIZE,
        height=SIZE,
        seed=7,
        engine="kandinsky",
        scenes=scenes,
        frames=frames,
        models=chosen,
    )


@pytest.fixture(scope="module")
def store(tiny_models) -> ModelStore:
    """One store for the module: models load once, as they would in a process."""
    return ModelStore(device=CPU)


@pytest.fixture(scope="module")
def two_scenes() -> tuple[ScenePlan, ScenePlan]:
    return scene_plan(0, "a lighthouse at dusk"), scene_plan(1, "a steampunk city", seed=1007)


@pytest.fixture
def engine(store, tiny_models, two_scenes) -> KandinskyEngine:
    engine = KandinskyEngine(store)
    engine.prepare(make_plan(tiny_models, two_scenes))
    return engine


@pytest.fixture
def warped() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    holes = np.zeros((SIZE, SIZE), dtype=bool)
    holes[:, :12] = True  # new border on the left, as a camera move right leaves
    image[holes] = 0
    return image, holes


class UNetSpy:
    """Records the `image_embeds` of every forward call of one UNet."""

    def __init__(self, unet: torch.nn.Module) -> None:
        self.calls: list[torch.Tensor] = []
        self.handle = unet.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, module, args, kwargs):
        self.calls.append(kwargs["added_cond_kwargs"]["image_embeds"].clone())

    def close(self) -> None:
        self.handle.remove()


@pytest.fixture
def spy_unet(store, tiny_models):
    spies: list[UNetSpy] = []

    def attach(unet: torch.nn.Module) -> UNetSpy:
        spies.append(UNetSpy(unet))
        return spies[-1]

    yield attach
    for spy in spies:
        spy.close()


def prior_calls(monkeypatch, store, folder) -> list[tuple[str, str | None]]:
    """Spy on the prior pipeline's __call__: one (prompt, negative) entry per run."""
    prior = store.prior(str(folder))
    calls: list[tuple[str, str | None]] = []
    original = type(prior).__call__

    def counting(self, *args, **kwargs):
        calls.append((kwargs.get("prompt"), kwargs.get("negative_prompt")))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(prior), "__call__", counting)
    return calls


# -- prepare and the prior -------------------------------------------------------------------


def test_prior_runs_once_per_scene_in_prepare(monkeypatch, store, tiny_models, two_scenes):
    calls = prior_calls(monkeypatch, store, tiny_models.prior)
    engine = KandinskyEngine(store)
    plan = make_plan(tiny_models, two_scenes)
    engine.prepare(plan)
    assert calls == [("a lighthouse at dusk", "low quality"), ("a steampunk city", "low quality")]
    engine.prepare(plan)  # a second plan with the same scenes: cached
    engine.first_frame(two_scenes[0], plan.frames[0], None)
    engine.repair(
        np.zeros((SIZE, SIZE, 3), np.uint8),
        np.zeros((SIZE, SIZE), bool),
        plan.frames[1],
        two_scenes[0],
        [(0, 1.0)],
    )
    assert len(calls) == 2


def test_prepare_of_two_plans_loads_each_model_once(tiny_models, two_scenes):
    store = ModelStore(device=CPU)
    for scenes in (two_scenes, two_scenes[:1]):
        KandinskyEngine(store).prepare(make_plan(tiny_models, scenes))
    assert dict(store.loads) == {"prior": 1, "decoder": 1, "inpaint": 1}


def test_negative_prompt_conditions_the_decoder(store, tiny_models, warped, spy_unet):
    plain = scene_plan(0, "a lighthouse at dusk", negative="")
    blurry = replace(plain, negative_prompt="blurry, washed out")
    engine = KandinskyEngine(store)
    engine.prepare(make_plan(tiny_models, (plain, replace(blurry, index=1))))
    spy = spy_unet(store.decoder(str(tiny_models.decoder)).unet)
    image, _ = warped
    no_holes = np.zeros((SIZE, SIZE), bool)
    engine.repair(image, no_holes, frame_plan(1), plain, [(0, 1.0)])
    engine.repair(image, no_holes, frame_plan(1), blurry, [(1, 1.0)])
    steps = denoising_steps(STEPS, 0.3)
    assert len(spy.calls) == 2 * steps
    without, with_negative = spy.calls[0], spy.calls[steps]
    assert without.shape == (2, 32)  # [negative; positive] under guidance
    assert not torch.allclose(without[0], with_negative[0])
    # the negative half is the prior's embedding of the negative prompt itself
    prior = store.prior(str(tiny_models.prior))
    direct = prior(
        prompt=blurry.prompt,
        negative_prompt=blurry.negative_prompt,
        num_inference_steps=25,
        guidance_scale=4.0,
        generator=torch.Generator().manual_seed(blurry.seed),
    )
    torch.testing.assert_close(with_negative[0], direct.negative_image_embeds[0])
    torch.testing.assert_close(with_negative[1], direct.image_embeds[0])


# -- repair --------------------------------------------------------------------------------


def test_repair_is_reproducible_per_seed_and_varies_between_frames(engine, two_scenes, warped):
    image, holes = warped
    scene = two_scenes[0]
    first = engine.repair(image, holes, frame_plan(1), scene, [(0, 1.0)])
    again = engine.repair(image, holes, frame_plan(1), scene, [(0, 1.0)])
    assert first.shape == (SIZE, SIZE, 3) and first.dtype == np.uint8
    assert np.array_equal(first, again)
    next_frame = engine.repair(image, holes, frame_plan(2), scene, [(0, 1.0)])
    other_seed = engine.repair(image, holes, frame_plan(1), replace(scene, seed=8), [(0, 1.0)])
    assert not np.array_equal(first, next_frame)  # seed + frame index: no burn-in
    assert not np.array_equal(first, other_seed)


def test_repair_runs_steps_times_strength_and_fills_holes_with_inpainting(
    engine, store, tiny_models, two_scenes, warped, spy_unet
):
    decoder = spy_unet(store.decoder(str(tiny_models.decoder)).unet)
    inpaint = spy_unet(store.inpaint(str(tiny_models.inpaint)).unet)
    image, holes = warped
    engine.repair(
        image, np.zeros_like(holes), frame_plan(1, strength=0.3), two_scenes[0], [(0, 1.0)]
    )
    assert (len(decoder.calls), len(inpaint.calls)) == (denoising_steps(STEPS, 0.3), 0)
    engine.repair(image, holes, frame_plan(1, strength=0.5), two_scenes[0], [(0, 1.0)])
    assert len(inpaint.calls) == denoising_steps(min(STEPS, FILL_STEPS), FILL_STRENGTH)
    assert len(decoder.calls) == denoising_steps(STEPS, 0.3) + denoising_steps(STEPS, 0.5)


def test_without_inpaint_model_holes_are_filled_by_img2img(
    store, tiny_models, two_scenes, warped, spy_unet
):
    engine = KandinskyEngine(store)
    engine.prepare(make_plan(tiny_models, two_scenes, inpaint="none"))
    decoder = spy_unet(store.decoder(str(tiny_models.decoder)).unet)
    image, holes = warped
    repaired = engine.repair(image, holes, frame_plan(1), two_scenes[0], [(0, 1.0)])
    fill = denoising_steps(min(STEPS, FILL_STEPS), FILL_STRENGTH)
    assert len(decoder.calls) == fill + denoising_steps(STEPS, 0.3)
    assert repaired.shape == image.shape


def test_hole_filling_keeps_the_known_latents_exactly(engine, store, tiny_models, two_scenes):
    inpaint = store.inpaint(str(tiny_models.inpaint))
    clean = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    keep = torch.ones(1, 1, 8, 8)
    keep[..., :3] = 0.0
    embeddings = engine.conditioning_embeddings([(0, 1.0)])
    result = engine._denoise(
        _Denoiser(inpaint.unet, inpaint.scheduler, inpainting=True),
        clean,
        embeddings,
        steps=10,
        strength=0.8,
        guidance=4.0,
        generator=torch.Generator().manual_seed(1),
        keep=keep,
    )
    assert torch.equal(result[..., 3:], clean[..., 3:])
    assert not torch.allclose(result[..., :3], clean[..., :3])


def test_morph_passes_slerped_embeddings_to_the_decoder(
    engine, store, tiny_models, two_scenes, warped, spy_unet
):
    spy = spy_unet(store.decoder(str(tiny_models.decoder)).unet)
    image, _ = warped
    no_holes = np.zeros((SIZE, SIZE), bool)
    engine.repair(image, no_holes, frame_plan(3), two_scenes[1], [(0, 0.75), (1, 0.25)])
    a = engine.conditioning_embeddings([(0, 1.0)])
    b = engine.conditioning_embeddings([(1, 1.0)])
    expected = torch.cat([slerp(a.negative, b.negative, 0.25), slerp(a.positive, b.positive, 0.25)])
    torch.testing.assert_close(spy.calls[0], expected)
    for endpoint, weight in ((a, 0.0), (b, 1.0)):
        got = engine.conditioning_embeddings([(0, 1.0 - weight), (1, weight)])
        torch.testing.assert_close(got.positive, endpoint.positive)


# -- first frames --------------------------------------------------------------------------


def test_first_frame_from_text_is_seeded(engine, two_scenes):
    first = engine.first_frame(two_scenes[0], frame_plan(0), None)
    assert first.shape == (SIZE, SIZE, 3) and first.dtype == np.uint8
    assert np.array_equal(first, engine.first_frame(two_scenes[0], frame_plan(0), None))
    assert not np.array_equal(first, engine.first_frame(two_scenes[1], frame_plan(0), None))


def test_first_frame_of_a_dissolve_starts_from_the_source(engine, two_scenes, warped):
    source, _ = warped
    from_text = engine.first_frame(two_scenes[1], frame_plan(4, 1), None)
    from_source = engine.first_frame(two_scenes[1], frame_plan(4, 1), source)
    assert from_source.shape == source.shape
    assert not np.array_equal(from_source, from_text)
    assert np.array_equal(from_source, engine.first_frame(two_scenes[1], frame_plan(4, 1), source))


def test_init_image_is_the_first_frame(engine, two_scenes, tmp_path: Path):
    from PIL import Image

    from kandanim import images

    picture = np.random.default_rng(3).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(picture).save(path)
    scene = replace(two_scenes[0], init_image=path)
    first = engine.first_frame(scene, frame_plan(0), None)
    assert np.array_equal(first, images.load_image(path, SIZE, SIZE))
    assert np.array_equal(first, picture)


# -- depth ------------------------------------------------------------------------------


def test_model_depth_backend_uses_the_plans_depth_model(store, tiny_models, two_scenes):
    engine = KandinskyEngine(store)
    engine.prepare(make_plan(tiny_models, two_scenes, depth=str(tiny_models.midas)))
    estimator = engine.depth_estimator("midas")
    assert engine.depth_estimator("midas") is estimator
    depth = estimator.inverse_depth(np.zeros((SIZE, SIZE, 3), np.uint8))
    assert depth.shape == (SIZE, SIZE) and depth.dtype == np.float32


def test_classical_depth_backends_come_from_the_depth_module(engine):
    from kandanim.depth import FlatDepth, HeuristicDepth

    assert isinstance(engine.depth_estimator("flat"), FlatDepth)
    assert isinstance(engine.depth_estimator("heuristic"), HeuristicDepth)
    flat = engine.depth_estimator("flat").inverse_depth(np.zeros((SIZE, SIZE, 3), np.uint8))
    assert flat.shape == (SIZE, SIZE)
    assert np.ptp(flat) == 0, "flat depth is constant"


# -- pure helpers ------------------------------------------------------------------------------


def test_slerp_endpoints_length_and_parallel_vectors():
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(1, 32, generator=generator), 3.0 * torch.randn(1, 32, generator=generator)
    torch.testing.assert_close(slerp(a, b, 0.0), a)
    torch.testing.assert_close(slerp(a, b, 1.0), b)
    middle = slerp(a, b, 0.5)
    torch.testing.assert_close(middle.norm(), (a.norm() + b.norm()) / 2)
    # the midpoint direction bisects the angle
    cos = torch.nn.functional.cosine_similarity
    torch.testing.assert_close(cos(middle, a), cos(middle, b))
    torch.testing.assert_close(slerp(a, 2.0 * a, 0.5), 1.5 * a)  # parallel: no NaN


def test_denoising_steps_round_half_up_with_at_least_one():
    assert denoising_steps(50, 0.15) == 8
    assert denoising_steps(50, 0.6) == 30
    assert denoising_steps(5, 0.01) == 1
    assert denoising_steps(10, 1.0) == 10


def test_latent_keep_mask_repaints_touched_cells_and_their_neighbours():
    holes = torch.zeros(1, 1, 64, 64, dtype=torch.bool)
    holes[..., 0, 0] = True  # one pixel in the top-left cell
    keep = latent_keep_mask(holes, (8, 8))
    assert keep.shape == (1, 1, 8, 8)
    assert keep[0, 0, :2, :2].sum() == 0 and keep.sum() == 64 - 4


def test_fill_from_surroundings_keeps_known_pixels_and_blends_colours():
    image = torch.full((1, 3, 32, 32), -1.0)
    image[..., 16:] = 1.0  # black left half, white right half
    holes = torch.zeros(1, 1, 32, 32, dtype=torch.bool)
    holes[..., 12:20] = True  # a gap across the edge
    filled = fill_from_surroundings(image, holes)
    known = ~holes.expand_as(image)
    assert torch.equal(filled[known], image[known])
    gap = filled[0, 0, 16, 12:20]
    assert gap[0] < gap[-1] and -1.0 <= gap.min() and gap.max() <= 1.0
    assert torch.all(gap[1:] >= gap[:-1])  # a monotone ramp from black to white


def test_embeddings_for_guidance_orders_negative_first():
    e = Embeddings(torch.ones(1, 4), torch.zeros(1, 4))
    assert e.for_guidance(4.0, torch.float32)[0].sum() == 0
    assert e.for_guidance(1.0, torch.float32).shape == (1, 4)


@pytest.fixture(scope="module")
def store64(tiny_models) -> ModelStore:
    return ModelStore(device=CPU, dtype=torch.float64)


@pytest.mark.parametrize(("steps", "strength"), [(20, 0.5), (20, 0.15), (50, 0.2)])
def test_repair_without_holes_is_diffusers_img2img_bit_for_bit(
    store64, tiny_models, two_scenes, steps: int, strength: float
):
    """The loop's numerics are the reference's: with no holes, `repair` gives exactly the
    frame of diffusers' `KandinskyV22Img2ImgPipeline` for the same embeddings, seed, steps
    and strength, whenever steps × strength is whole (else the two round the number of
    denoising steps differently).

    In float64: in float32 the CPU kernels round differently depending on where tensors
    happen to sit in memory (the same UNet on the same inputs gave outputs 2e-6 apart from
    two call sites here), so last-bit float32 equality would test the allocator, not the
    loop; in float64 those differences are ~1e-15 and the uint8 frames must be identical.
    """
    scene = replace(two_scenes[0], steps=steps)
    engine = KandinskyEngine(store64)
    engine.prepare(make_plan(tiny_models, (scene,)))
    frame = replace(frame_plan(3), strength=strength)
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    ours = engine.repair(image, np.zeros((SIZE, SIZE), bool), frame, scene, [(0, 1.0)])

    embeddings = engine.conditioning_embeddings([(0, 1.0)])
    decoder = store64.decoder(str(tiny_models.decoder))
    unit = torch.from_numpy(image).permute(2, 0, 1)[None].double() / 255.0
    reference = decoder.image_to_image(
        image=unit,
        image_embeds=embeddings.positive,
        negative_image_embeds=embeddings.negative,
        height=SIZE,
        width=SIZE,
        num_inference_steps=steps,
        strength=strength,
        guidance_scale=scene.guidance,
        generator=torch.Generator("cpu").manual_seed(scene.seed + frame.index),
        output_type="pt",
    ).images
    expected = (reference[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.array_equal(ours, expected)
    assert float(np.abs(ours.astype(int) - image).mean()) > 1.0  # the frame did change
