"""Model ids, devices, the model store, weights errors, `models pull` and `doctor`."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from kandanim import models
from kandanim.cli import app
from kandanim.errors import RuntimeFailure, UserError, WeightsMissing
from kandanim.models import ModelSpec, ModelStore, pull, resolve_device, resolve_dtype
from kandanim.spec import DEFAULT_DECODER, DEFAULT_INPAINT, DEFAULT_PRIOR

CPU = torch.device("cpu")


def assert_both_remedies(error: WeightsMissing) -> None:
    assert "kandanim models pull" in error.message
    assert "--engine preview" in error.message


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    left, right = a.state_dict(), b.state_dict()
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


# -- which weights -----------------------------------------------------------------------


def test_spec_defaults_come_from_the_schema_module(no_model_env):
    spec = ModelSpec.resolve()
    assert (spec.prior, spec.decoder, spec.inpaint, spec.depth) == (
        DEFAULT_PRIOR,
        DEFAULT_DECODER,
        DEFAULT_INPAINT,
        None,
    )
    assert spec.depth_model("midas") == "Intel/dpt-hybrid-midas"


def test_spec_screenplay_beats_environment_beats_defaults():
    env = {"KANDANIM_PRIOR": "env/prior", "KANDANIM_DECODER": "env/decoder"}
    spec = ModelSpec.resolve({"prior": "play/prior", "decoder": None}, env=env)
    assert spec.prior == "play/prior"
    assert spec.decoder == "env/decoder"
    assert spec.inpaint == DEFAULT_INPAINT


def test_spec_inpaint_none_disables_inpainting_and_round_trips():
    spec = ModelSpec.resolve({"inpaint": "none", "depth": "my/depth"}, env={})
    assert spec.inpaint is None
    assert spec.depth_model("depth-anything") == "my/depth"
    assert ModelSpec.resolve(spec.as_dict(), env={}) == spec


def test_spec_rejects_unknown_roles():
    with pytest.raises(UserError, match="unknown model role"):
        ModelSpec.resolve({"vae": "x/y"}, env={})


@pytest.mark.parametrize(
    ("model_id", "folder"),
    [
        ("owner/name", False),
        ("./models/prior", True),
        ("/abs/prior", True),
        ("a/b/c", True),
        ("~/prior", True),
        ("prior", True),
    ],
)
def test_hub_ids_and_folders_are_told_apart(model_id, folder):
    assert models.looks_like_folder(model_id) is folder


# -- devices ---------------------------------------------------------------------------


def test_auto_device_is_the_cpu_without_accelerators(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(models, "_mps_available", lambda: False)
    assert resolve_device("auto") == CPU
    assert resolve_dtype("auto", CPU) == torch.float32


def test_auto_device_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float16
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(models, "_mps_available", lambda: True)
    assert resolve_device("auto").type == "mps"


def test_device_and_dtype_errors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="unknown device"):
        resolve_device("tpu")
    with pytest.raises(RuntimeFailure, match="no CUDA device"):
        resolve_device("cuda")
    with pytest.raises(UserError, match="unknown dtype"):
        resolve_dtype("fp8", CPU)
    assert resolve_dtype("bf16", CPU) == torch.bfloat16


def test_out_of_memory_becomes_a_runtime_failure_with_remedies():
    with pytest.raises(RuntimeFailure) as caught, models.out_of_memory_as_failure("frame 3"):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
    assert "frame 3" in caught.value.message
    assert "resolution" in caught.value.hint and "--offload" in caught.value.hint
    with pytest.raises(ValueError), models.out_of_memory_as_failure("x"):
        raise ValueError("unrelated")  # anything else passes through untouched


# -- the store ---------------------------------------------------------------------------


def test_store_round_trips_tiny_models_bit_exactly(tiny_models):
    import tiny_models as tm

    store = ModelStore(device=CPU)
    prior = store.prior(str(tiny_models.prior))
    built = tm.tiny_prior_pipeline()
    for name in ("prior", "text_encoder", "image_encoder"):
        assert same_weights(getattr(prior, name), getattr(built, name)), name
    decoder = store.decoder(str(tiny_models.decoder))
    assert same_weights(decoder.unet, tm.tiny_unet())
    assert same_weights(decoder.movq, tm.tiny_movq())
    inpaint = store.inpaint(str(tiny_models.inpaint))
    assert same_weights(inpaint.unet, tm.tiny_unet(in_channels=9, seed=1))
    # the offline tokenizer made it through save/load
    ids = prior.tokenizer("a lighthouse").input_ids
    assert ids == built.tokenizer("a lighthouse").input_ids


def test_store_loads_each_component_once_and_shares_decoder_parts(tiny_models):
    store = ModelStore(device=CPU)
    for _ in range(2):
        store.prior(str(tiny_models.prior))
        decoder = store.decoder(str(tiny_models.decoder))
        store.inpaint(str(tiny_models.inpaint))
    assert dict(store.loads) == {"prior": 1, "decoder": 1, "inpaint": 1}
    t2i, i2i = decoder.text_to_image, decoder.image_to_image
    assert t2i.unet is i2i.unet and t2i.movq is i2i.movq and t2i.scheduler is i2i.scheduler


def test_store_uses_sdpa_attention(tiny_models):
    store = ModelStore(device=CPU)
    unet = store.decoder(str(tiny_models.decoder)).unet
    kinds = {type(p).__name__ for p in unet.attn_processors.values()}
    assert kinds and all(k.endswith("2_0") for k in kinds), kinds


def test_use_sdpa_upgrades_classic_attention_processors():
    import tiny_models as tm
    from diffusers.models.attention_processor import AttnAddedKVProcessor

    unet = tm.tiny_unet()
    unet.set_attn_processor(AttnAddedKVProcessor())
    models.use_sdpa(unet)
    assert {type(p).__name__ for p in unet.attn_processors.values()} == {"AttnAddedKVProcessor2_0"}


def test_missing_local_folder_is_one_clear_error(tmp_path):
    store = ModelStore(device=CPU)
    with pytest.raises(WeightsMissing) as caught:
        store.decoder(str(tmp_path / "no-such-decoder"))
    assert "no-such-decoder" in caught.value.message
    assert_both_remedies(caught.value)
    assert store.loads["decoder"] == 0


def test_uncached_hub_id_offline_fails_fast_with_remedies():
    store = ModelStore(device=CPU)
    started = time.monotonic()
    with pytest.raises(WeightsMissing) as caught:
        store.prior("kandinsky-community/kandinsky-2-2-prior")
    assert "kandinsky-2-2-prior" in caught.value.message
    assert_both_remedies(caught.value)
    # no hub round trip: the offline cache check answers (a generous bound, not a benchmark)
    assert time.monotonic() - started < 30


def test_check_names_every_missing_model_in_one_error(tmp_path, tiny_models):
    spec = ModelSpec(prior=str(tmp_path / "p"), decoder="kandinsky-community/kandinsky-2-2-decoder")
    with pytest.raises(WeightsMissing) as caught:
        ModelStore(device=CPU).check(spec, depth_backends=["midas", "heuristic", "midas"])
    assert str(tmp_path / "p") in caught.value.message
    assert "kandinsky-2-2-decoder" in caught.value.message
    assert caught.value.message.count("Intel/dpt-hybrid-midas") == 1
    assert_both_remedies(caught.value)
    present = ModelSpec(
        prior=str(tiny_models.prior), decoder=str(tiny_models.decoder), depth=str(tiny_models.midas)
    )
    ModelStore(device=CPU).check(present, depth_backends=["midas", "depth-anything"])


def test_missing_inpaint_model_falls_back_instead_of_failing(tmp_path):
    store = ModelStore(device=CPU)
    assert store.inpaint(str(tmp_path / "no-inpaint")) is None
    assert store.inpaint(None) is None


# -- pull --------------------------------------------------------------------------------


def test_pull_offline_fails_at_once(no_model_env):
    with pytest.raises(RuntimeFailure, match="HF_HUB_OFFLINE"):
        pull()


def test_pull_leaves_local_folders_alone(tiny_models):
    spec = ModelSpec(prior=str(tiny_models.prior), decoder=str(tiny_models.decoder), inpaint=None)
    lines: list[str] = []
    pulled = pull(spec=spec, progress=lines.append)
    assert [(p.role, p.path) for p in pulled] == [
        ("prior", str(tiny_models.prior)),
        ("decoder", str(tiny_models.decoder)),
    ]
    assert len(lines) == 2 and lines[0].startswith("[1/2] prior")


def test_pull_reports_an_unreachable_hub_as_runtime_failure(monkeypatch):
    import huggingface_hub

    def unreachable(repo_id, **kwargs):
        raise ConnectionError("[Errno -2] Name or service not known")

    monkeypatch.setattr(models, "offline", lambda: False)
    monkeypatch.setattr(huggingface_hub, "model_info", unreachable)
    with pytest.raises(RuntimeFailure) as caught:
        pull(spec=ModelSpec())
    assert "Name or service not known" in caught.value.message
    assert "kandinsky-2-2-prior" in caught.value.message


def test_pull_list_with_all_adds_both_depth_models():
    wanted = models._pull_list(ModelSpec(), all_models=True)
    assert [r for r, _ in wanted] == ["prior", "decoder", "inpaint", "depth", "depth"]


# -- CLI: doctor and models pull ------------------------------------------------------------


def test_doctor_reports_devices_codecs_and_weights(tiny_model_env, monkeypatch):
    from kandanim.doctor import run_checks

    monkeypatch.delenv("KANDANIM_DEPTH")  # the default depth models: not cached here

    checks = {c.name: c for c in run_checks()}
    assert checks["packages"].ok
    assert checks["encoder libx264"].ok and checks["encoder libx264"].required
    assert (
        checks["weights prior"].ok and str(tiny_model_env.prior) in checks["weights prior"].detail
    )
    midas = checks["weights depth midas"]
    assert not midas.ok and "models pull --all" in midas.fix
    assert all(c.fix for c in checks.values() if not c.ok)


def test_doctor_command_prints_a_table_and_exits_zero(tiny_model_env):
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "encoder libx264" in result.stdout and "weights decoder" in result.stdout


def test_models_pull_command_offline_exits_one_without_traceback(no_model_env):
    result = CliRunner().invoke(app, ["models", "pull"])
    assert result.exit_code == 1
    assert "HF_HUB_OFFLINE" in result.output and "Traceback" not in result.output


def test_models_pull_command_lists_local_folders(tiny_model_env, monkeypatch):
    monkeypatch.setenv("KANDANIM_INPAINT", "none")
    result = CliRunner().invoke(app, ["models", "pull"])
    assert result.exit_code == 0, result.output
    assert Path(tiny_model_env.prior).name in result.stdout
