"""Seeded tiny models with the real architectures, saved as folders the production loader reads.

The shapes follow diffusers' own fast tests (a two-block UNet, 32-wide CLIP models), with
two changes that NOTES.md explains: the MoVQ downsamples ×8 like the real one (four levels,
so a 64×64 frame is an 8×8 latent and tests stay fast), and the CLIP tokenizer is built
offline from a byte-level vocabulary written here. Every builder seeds torch first, so the
same call gives the same weights; modules come back in eval mode, as `from_pretrained`
returns them, so a saved and reloaded model compares bit-exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
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
    CLIPTokenizer,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
    DepthAnythingConfig,
    DepthAnythingForDepthEstimation,
    Dinov2Config,
    DPTConfig,
    DPTForDepthEstimation,
)

EMBED_DIM = 32  # CLIP image-embedding width the prior makes and the UNet consumes
TOKEN_LIMIT = 77  # the real CLIP context; without it the prior pads to 1e30 tokens
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


@dataclass(frozen=True)
class TinyFolders:
    prior: Path
    decoder: Path
    inpaint: Path
    midas: Path
    depth_anything: Path


def byte_symbols() -> list[str]:
    """One printable character per byte, as byte-level BPE writes them: printable Latin-1
    bytes stand for themselves, the rest are shifted past 255 so none is whitespace."""
    printable = (
        set(range(ord("!"), ord("~") + 1)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    )
    shifted = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(shifted)) for b in range(256)]


def byte_level_vocab() -> dict[str, int]:
    """The 256 byte-level symbols, their end-of-word forms, then the two special tokens."""
    symbols = byte_symbols()
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab.update({s + "</w>": len(symbols) + i for i, s in enumerate(symbols)})
    vocab[BOS] = len(vocab)
    vocab[EOS] = len(vocab)
    return vocab


def tiny_tokenizer() -> CLIPTokenizer:
    return CLIPTokenizer(vocab=byte_level_vocab(), merges=[], model_max_length=TOKEN_LIMIT)


def tiny_text_encoder(vocab_size: int, bos_id: int, eos_id: int) -> CLIPTextModelWithProjection:
    torch.manual_seed(0)
    config = CLIPTextConfig(
        bos_token_id=bos_id,
        eos_token_id=eos_id,  # pooled output is taken at the first EOS the tokenizer writes
        pad_token_id=eos_id,
        hidden_size=EMBED_DIM,
        projection_dim=EMBED_DIM,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=vocab_size,
        max_position_embeddings=TOKEN_LIMIT,
    )
    return CLIPTextModelWithProjection(config).eval()


def tiny_image_encoder() -> CLIPVisionModelWithProjection:
    torch.manual_seed(0)
    config = CLIPVisionConfig(
        hidden_size=EMBED_DIM,
        image_size=28,  # the prior only runs it on a blank image for the zero embedding
        projection_dim=EMBED_DIM,
        intermediate_size=37,
        num_attention_heads=4,
        num_channels=3,
        num_hidden_layers=2,
        patch_size=14,
    )
    return CLIPVisionModelWithProjection(config).eval()


def tiny_prior_transformer() -> PriorTransformer:
    torch.manual_seed(0)
    prior = PriorTransformer(
        num_attention_heads=2, attention_head_dim=12, embedding_dim=EMBED_DIM, num_layers=1
    )
    # clip_std starts at zero, which would make every embedding zero after post-processing
    prior.clip_std = torch.nn.Parameter(torch.ones(prior.clip_std.shape))
    return prior.eval()


def tiny_prior_pipeline() -> KandinskyV22PriorPipeline:
    tokenizer = tiny_tokenizer()
    vocab = tokenizer.get_vocab()
    return KandinskyV22PriorPipeline(
        prior=tiny_prior_transformer(),
        image_encoder=tiny_image_encoder(),
        text_encoder=tiny_text_encoder(len(vocab), vocab[BOS], vocab[EOS]),
        tokenizer=tokenizer,
        scheduler=UnCLIPScheduler(
            variance_type="fixed_small_log",
            prediction_type="sample",
            num_train_timesteps=1000,
            clip_sample=True,
            clip_sample_range=10.0,
        ),
        image_processor=CLIPImageProcessorPil(
            crop_size=28, size={"shortest_edge": 28}, do_center_crop=True, resample=3
        ),
    )


def tiny_unet(in_channels: int = 4, seed: int = 0) -> UNet2DConditionModel:
    """The decoder UNet; `in_channels=9` is the inpainting variant (latent + masked + mask)."""
    torch.manual_seed(seed)
    return UNet2DConditionModel(
        in_channels=in_channels,
        out_channels=8,  # mean and learned variance, like the real decoder
        addition_embed_type="image",
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn",
        block_out_channels=(32, 64),
        layers_per_block=1,
        encoder_hid_dim=EMBED_DIM,
        encoder_hid_dim_type="image_proj",
        cross_attention_dim=32,
        attention_head_dim=4,
        resnet_time_scale_shift="scale_shift",
        class_embed_type=None,
    ).eval()


def tiny_movq() -> VQModel:
    """Four levels, ×8 like the real MoVQ (diffusers' test MoVQ is ×2 and 10× slower here)."""
    torch.manual_seed(0)
    return VQModel(
        block_out_channels=[32, 32, 64, 64],
        down_block_types=["DownEncoderBlock2D"] * 3 + ["AttnDownEncoderBlock2D"],
        up_block_types=["AttnUpDecoderBlock2D"] + ["UpDecoderBlock2D"] * 3,
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        norm_type="spatial",
        num_vq_embeddings=12,
        vq_embed_dim=4,
    ).eval()


def decoder_scheduler() -> DDPMScheduler:
    """The real decoder's scheduler settings (linear betas 0.00085…0.012, epsilon)."""
    return DDPMScheduler(
        num_train_timesteps=1000,
        beta_schedule="linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        prediction_type="epsilon",
        variance_type="fixed_small",
        steps_offset=1,
        timestep_spacing="leading",
    )


def tiny_decoder_pipeline() -> KandinskyV22Pipeline:
    return KandinskyV22Pipeline(unet=tiny_unet(), scheduler=decoder_scheduler(), movq=tiny_movq())


def tiny_inpaint_pipeline() -> KandinskyV22InpaintPipeline:
    return KandinskyV22InpaintPipeline(
        unet=tiny_unet(in_channels=9, seed=1), scheduler=decoder_scheduler(), movq=tiny_movq()
    )


def tiny_dpt() -> DPTForDepthEstimation:
    torch.manual_seed(0)
    config = DPTConfig(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=37,
        image_size=32,
        patch_size=16,
        backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[16, 16, 32, 32],
        fusion_hidden_size=16,
        is_hybrid=False,
        use_auxiliary_head=False,
    )
    return DPTForDepthEstimation(config).eval()


def tiny_depth_anything() -> DepthAnythingForDepthEstimation:
    torch.manual_seed(0)
    backbone = Dinov2Config(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=37,
        image_size=28,
        patch_size=14,
        out_indices=[1, 2, 3, 4],
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        patch_size=14,
        reassemble_hidden_size=32,
        neck_hidden_sizes=[8, 16, 16, 32],
        fusion_hidden_size=16,
        head_hidden_size=8,
    )
    return DepthAnythingForDepthEstimation(config).eval()


def build_tiny_models(root: Path) -> TinyFolders:
    """Build every tiny model and `save_pretrained` each into a folder under `root`."""
    folders = TinyFolders(
        prior=root / "prior",
        decoder=root / "decoder",
        inpaint=root / "inpaint",
        midas=root / "midas",
        depth_anything=root / "depth-anything",
    )
    tiny_prior_pipeline().save_pretrained(folders.prior)
    tiny_decoder_pipeline().save_pretrained(folders.decoder)
    tiny_inpaint_pipeline().save_pretrained(folders.inpaint)
    tiny_dpt().save_pretrained(folders.midas)
    tiny_depth_anything().save_pretrained(folders.depth_anything)
    return folders
