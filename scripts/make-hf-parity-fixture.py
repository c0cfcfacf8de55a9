#!/usr/bin/env python3
"""Builds the Hugging Face parity fixture for the C# Qwen2.5-VL (issue 6).

Needs PyTorch, transformers (>= 4.49, with Qwen2.5-VL), safetensors, numpy and Pillow; a GPU is not required but the
fixture is meant to be made where transformers is installed. Nothing is downloaded: the model is random and tiny, the
image is synthesised, and the prompt's token ids are written by hand (no tokenizer needed).

    python3 scripts/make-hf-parity-fixture.py --out tests/fixtures/hf-parity/qwen25vl-tiny

Writes into --out:
  checkpoint/                 config.json + model.safetensors (save_pretrained, the naming of the installed transformers)
  image.png                   the synthetic input image
  inputs.safetensors          input_ids [1, S] int64, attention_mask [1, S] int64, pixel_values [N, 1176] fp32,
                              image_grid_thw [1, 3] int64, position_ids [3, 1, S] int64, rope_deltas [1, 1] int64
  outputs.safetensors         logits [1, S, vocab] fp32, greedy_ids [1, G] int64 (the generated continuation)
  fixture.json                versions, seed, shapes, and what each tensor is

A C# test then loads checkpoint/, feeds the same inputs and compares logits (<= 1e-3), position ids (exact) and the greedy
continuation (exact).
"""
import argparse
import json
import os

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

import transformers
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

# Special tokens renumbered into the tiny vocabulary (same roles as Qwen's 151652/151653/151655/151656/151645).
VOCAB = 1024
VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD, IM_END, BOS = 998, 999, 1000, 1001, 1002, 1003


def tiny_config() -> Qwen2_5_VLConfig:
    text = dict(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=4096, rope_theta=1000000.0, rms_norm_eps=1e-6,
        rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]}, tie_word_embeddings=False, hidden_act="silu",
        use_sliding_window=False, attention_dropout=0.0,
    )
    vision = dict(
        depth=2, hidden_size=32, intermediate_size=64, num_heads=2, in_channels=3, patch_size=14, spatial_merge_size=2,
        temporal_patch_size=2, tokens_per_second=2, window_size=112, out_hidden_size=64, fullatt_block_indexes=[1],
        hidden_act="silu",
    )
    cfg = Qwen2_5_VLConfig(
        vision_config=vision, image_token_id=IMAGE_PAD, video_token_id=VIDEO_PAD, vision_start_token_id=VISION_START,
        vision_end_token_id=VISION_END, bos_token_id=BOS, eos_token_id=IM_END, **text,
    )
    # Older transformers read the text fields at the top level, newer ones under text_config: set both.
    if hasattr(cfg, "text_config") and cfg.text_config is not None:
        for k, v in text.items():
            setattr(cfg.text_config, k, v)
    return cfg


def synthetic_image(width: int = 140, height: int = 84) -> Image.Image:
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([(x * 255 // (width - 1)), (y * 255 // (height - 1)), ((x + y) * 7) % 256], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--new-tokens", type=int, default=8)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(args.seed)

    cfg = tiny_config()
    model = Qwen2_5_VLForConditionalGeneration(cfg).eval().to(torch.float32)
    # Non-trivial norm scales and biases, so a wrongly loaded bias or norm cannot hide.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name or "ln_q" in name:
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(os.path.join(args.out, "checkpoint"), safe_serialization=True)

    # Image → pixel rows with the reference processor (28-multiple sides inside [min_pixels, max_pixels]).
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor

    image = synthetic_image()
    image.save(os.path.join(args.out, "image.png"))
    processor = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=28 * 28 * 64, patch_size=14, merge_size=2, temporal_patch_size=2)
    vision = processor(images=[image], return_tensors="pt")
    pixel_values = vision["pixel_values"].to(torch.float32)
    grid = vision["image_grid_thw"].to(torch.int64)
    n_image_tokens = int(grid.prod(-1).item()) // 4

    # <bos> 5 6 7 <vision_start> <image_pad>×n <vision_end> 8 9 10 11
    ids = [BOS, 5, 6, 7, VISION_START] + [IMAGE_PAD] * n_image_tokens + [VISION_END, 8, 9, 10, 11]
    input_ids = torch.tensor([ids], dtype=torch.int64)
    attention_mask = torch.ones_like(input_ids)

    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values, image_grid_thw=grid)
        get_rope_index = model.model.get_rope_index if hasattr(model, "model") and hasattr(model.model, "get_rope_index") else model.get_rope_index
        position_ids, rope_deltas = get_rope_index(input_ids, grid, None, attention_mask=attention_mask)
        generated = model.generate(
            input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values, image_grid_thw=grid,
            max_new_tokens=args.new_tokens, do_sample=False, eos_token_id=None, pad_token_id=0,
        )
    greedy = generated[:, input_ids.shape[1]:].contiguous()

    save_file({
        "input_ids": input_ids, "attention_mask": attention_mask, "pixel_values": pixel_values.contiguous(),
        "image_grid_thw": grid.contiguous(), "position_ids": position_ids.to(torch.int64).contiguous(),
        "rope_deltas": rope_deltas.to(torch.int64).reshape(1, 1).contiguous(),
    }, os.path.join(args.out, "inputs.safetensors"))
    save_file({"logits": out.logits.to(torch.float32).contiguous(), "greedy_ids": greedy.to(torch.int64)},
              os.path.join(args.out, "outputs.safetensors"))
    with open(os.path.join(args.out, "fixture.json"), "w") as f:
        json.dump({
            "transformers": transformers.__version__, "torch": torch.__version__, "seed": args.seed,
            "sequence_length": input_ids.shape[1], "image_tokens": n_image_tokens, "grid_thw": grid.tolist(),
            "vocab_size": VOCAB, "tolerance_logits": 1e-3,
            "tokens": {"vision_start": VISION_START, "vision_end": VISION_END, "image_pad": IMAGE_PAD, "im_end": IM_END, "bos": BOS},
        }, f, indent=2)
    print(f"wrote {args.out}: S={input_ids.shape[1]}, image tokens={n_image_tokens}, greedy={greedy.tolist()}")


if __name__ == "__main__":
    main()
