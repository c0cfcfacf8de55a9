#!/usr/bin/python3
"""Writes the image-preprocessing parity fixture under tests/fixtures/preprocess/.

The expected values come from Pillow (Image.resize with BICUBIC, exactly what Hugging Face's slow
Qwen2VLImageProcessor calls for uint8 images) followed by the processor's documented steps, written out here with
numpy so that transformers is not needed:

  convert("RGB") -> smart_resize (factor = patch_size * merge_size) -> Image.resize(BICUBIC)
  -> float64 * rescale_factor -> float32 -> (x - mean) / std in float32 -> channels first
  -> repeat the single frame to temporal_patch_size -> patch rows (c, t, ph, pw) in merge-size blocks.

Needs only Debian's python3-pil and python3-numpy:  apt-get install -y python3-pil python3-numpy
Run from the repository root:  /usr/bin/python3 scripts/make-preprocess-fixture.py

Files written (all little-endian):
  inputs/*.png, *.jpg    the source images (drawn here, deterministic)
  pixel_values.f32       float32 rows of every case, concatenated  [sum rows, 1176]
  resized.u8             Pillow's resized uint8 RGB (H, W, 3) of every case, concatenated
  decoded.u8             Pillow's decoded uint8 RGB (H, W, 3) of every case, concatenated
  fixture.json           one entry per case: file, limits, sizes, grid_thw and byte offsets into the binaries
"""
import json
import math
import os
import sys

import numpy as np
from PIL import Image, __version__ as pillow_version

OUT = os.path.join("tests", "fixtures", "preprocess")
PATCH, TEMPORAL, MERGE = 14, 2, 2
FACTOR = PATCH * MERGE
MIN_PIXELS, MAX_PIXELS = 56 * 56, 28 * 28 * 16384
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
RESCALE = 1 / 255


def smart_resize(height, width, factor, min_pixels, max_pixels):
    """Qwen2-VL's smart_resize (Python's round is round-half-to-even, as in the processor)."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError("aspect ratio above 200")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def pixel_rows(resized_rgb):
    """Rescale, normalize and cut into patch rows in the checkpoint's order."""
    image = resized_rgb.astype(np.float64) * RESCALE
    image = image.astype(np.float32)
    mean = np.array(MEAN, dtype=np.float32)
    std = np.array(STD, dtype=np.float32)
    image = (image - mean) / std
    image = image.transpose(2, 0, 1)  # channels first
    patches = np.stack([image] * TEMPORAL)  # one image = one temporal patch of identical frames
    t, c, h, w = patches.shape
    grid_t, grid_h, grid_w = t // TEMPORAL, h // PATCH, w // PATCH
    patches = patches.reshape(grid_t, TEMPORAL, c, grid_h // MERGE, MERGE, PATCH, grid_w // MERGE, MERGE, PATCH)
    patches = patches.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    rows = patches.reshape(grid_t * grid_h * grid_w, c * TEMPORAL * PATCH * PATCH)
    return np.ascontiguousarray(rows, dtype="<f4"), (grid_t, grid_h, grid_w)


def draw_scene(width, height, seed):
    """Gradients, hard edges, a disc and a noisy block: smooth and sharp content for the resampler."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 255 * x / max(width - 1, 1)
    g = 255 * y / max(height - 1, 1)
    b = 127 + 120 * np.sin(x / 5.0) * np.cos(y / 7.0)
    img = np.stack([r, g, b], axis=-1)
    img[height // 4: height // 2, width // 5: width // 2] = [250, 20, 30]
    disc = (x - 0.7 * width) ** 2 + (y - 0.6 * height) ** 2 < (0.18 * min(width, height)) ** 2
    img[disc] = [10, 200, 240]
    ny, nx = height // 6, width // 6
    img[-ny - 2:-2, 2:2 + nx] = rng.randint(0, 256, size=(ny, nx, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def make_inputs(inputs_dir):
    """The source images; returns [(file name, min_pixels, max_pixels, what it checks)]."""
    cases = []

    Image.fromarray(draw_scene(120, 90, 1), "RGB").save(os.path.join(inputs_dir, "scene_120x90.png"))
    cases.append(("scene_120x90.png", MIN_PIXELS, MAX_PIXELS, "RGB PNG, mild downscale in both directions"))

    gray = draw_scene(30, 20, 2).mean(axis=-1).astype(np.uint8)
    Image.fromarray(gray, "L").save(os.path.join(inputs_dir, "gray_30x20.png"))
    cases.append(("gray_30x20.png", MIN_PIXELS, MAX_PIXELS, "grayscale PNG, upscaled to reach min_pixels"))

    rgb = draw_scene(150, 40, 3)
    alpha = np.tile(np.linspace(0, 255, 150).astype(np.uint8), (40, 1))[..., None]
    Image.fromarray(np.concatenate([rgb, alpha], axis=-1), "RGBA").save(os.path.join(inputs_dir, "rgba_150x40.png"))
    cases.append(("rgba_150x40.png", MIN_PIXELS, MAX_PIXELS, "RGBA PNG (alpha dropped), wide aspect"))

    Image.fromarray(draw_scene(320, 240, 4), "RGB").save(os.path.join(inputs_dir, "scene_320x240.png"))
    cases.append(("scene_320x240.png", MIN_PIXELS, 28 * 28 * 8, "strong downscale through max_pixels (antialias)"))

    Image.fromarray(draw_scene(97, 61, 5), "RGB").save(os.path.join(inputs_dir, "photo_97x61.jpg"), quality=90)
    cases.append(("photo_97x61.jpg", MIN_PIXELS, MAX_PIXELS, "JPEG (decoder differences included)"))
    return cases


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def main():
    inputs_dir = os.path.join(OUT, "inputs")
    os.makedirs(inputs_dir, exist_ok=True)
    cases = make_inputs(inputs_dir)

    pixel_blobs, resized_blobs, decoded_blobs, entries = [], [], [], []
    rows_offset = resized_offset = decoded_offset = 0
    for name, min_pixels, max_pixels, note in cases:
        with Image.open(os.path.join(inputs_dir, name)) as source:
            image = source.convert("RGB")
        decoded = np.asarray(image, dtype=np.uint8)
        height, width = decoded.shape[:2]
        rh, rw = smart_resize(height, width, FACTOR, min_pixels, max_pixels)
        resized = np.asarray(image.resize((rw, rh), resample=Image.BICUBIC), dtype=np.uint8)
        rows, grid = pixel_rows(resized)
        entries.append({
            "file": "inputs/" + name,
            "note": note,
            "min_pixels": min_pixels,
            "max_pixels": max_pixels,
            "height": height,
            "width": width,
            "resized_height": rh,
            "resized_width": rw,
            "grid_thw": list(grid),
            "rows": int(rows.shape[0]),
            "row_offset": rows_offset,
            "resized_offset": resized_offset,
            "decoded_offset": decoded_offset,
        })
        pixel_blobs.append(rows.tobytes())
        resized_blobs.append(resized.tobytes())
        decoded_blobs.append(decoded.tobytes())
        rows_offset += rows.shape[0]
        resized_offset += resized.size
        decoded_offset += decoded.size

    write_atomic(os.path.join(OUT, "pixel_values.f32"), b"".join(pixel_blobs))
    write_atomic(os.path.join(OUT, "resized.u8"), b"".join(resized_blobs))
    write_atomic(os.path.join(OUT, "decoded.u8"), b"".join(decoded_blobs))
    meta = {
        "made_by": "scripts/make-preprocess-fixture.py",
        "pillow": pillow_version,
        "numpy": np.__version__,
        "row_width": 3 * TEMPORAL * PATCH * PATCH,
        "processor": {
            "patch_size": PATCH, "temporal_patch_size": TEMPORAL, "merge_size": MERGE,
            "image_mean": MEAN, "image_std": STD, "rescale_factor": RESCALE, "resample": 3,
        },
        "cases": entries,
    }
    write_atomic(os.path.join(OUT, "fixture.json"), (json.dumps(meta, indent=2) + "\n").encode())
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {len(entries)} cases, {rows_offset} rows, {total} bytes under {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
