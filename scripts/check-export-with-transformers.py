#!/usr/bin/env python3
"""Checks an `mmx export` folder with the real Hugging Face transformers code (4.50.0), and writes what it computed so the
project can compare itself with it.

Given EXPORT (a folder written by `./mmx export`), it
  1. loads it with `Qwen2_5_VLForConditionalGeneration.from_pretrained(EXPORT, output_loading_info=True)` (fp32,
     ignore_mismatched_sizes=True so that a wrongly shaped tensor is listed rather than raised) and
     fails unless missing_keys, unexpected_keys, mismatched_keys and error_msgs are all empty;
  2. loads the config with `AutoConfig` (must be a Qwen2_5_VLConfig) and the image processor with
     `Qwen2VLImageProcessor.from_pretrained(EXPORT)` (the export's preprocessor_config.json);
  3. renders the export's chat template (`chat_template` of tokenizer_config.json and of chat_template.json, whichever
     exist; both must render the same) with transformers' own `_compile_jinja_template` (real Jinja2, sandboxed,
     trim_blocks and lstrip_blocks as transformers sets them) for a few conversations, the way
     `tokenizer.apply_chat_template` calls it (messages, tools=None, documents=None, add_generation_prompt, the special
     tokens map), and writes them to --chat-out (JSON) for `scripts/compare-chat-renderings.fsx`;
  4. writes a parity fixture to --fixture-out in the layout `./mmx parity --fixture` reads: checkpoint/ (a copy of the
     export), image.png, inputs.safetensors, outputs.safetensors and fixture.json, the reference computed by transformers
     from the exported weights (logits of one forward pass, the rope index, greedy ids from `generate`).

Runs on Debian 12 without PyPI: Debian's python3-torch 1.13.1 (+ numpy, PIL, packaging, filelock, regex, requests,
tqdm, yaml, fsspec, jinja2), transformers v4.50.0 and huggingface_hub v0.29.3 as source trees on PYTHONPATH:

    PYTHONPATH=<transformers>/src:<huggingface_hub>/src /usr/bin/python3 scripts/check-export-with-transformers.py \
        EXPORT --fixture-out FIXTURE --chat-out chat.json

Exit code 0 when every check passed, 1 otherwise (the failing check is printed).
"""
import argparse
import importlib
import importlib.machinery
import importlib.metadata as _md
import json
import os
import shutil
import struct
import sys
import types

import torch

# ---------------------------------------------------------------------------------------------------------------------
# Compatibility layer, must run before transformers is imported. Taken from the project's fixture generator
# /work/shared/fixtures/hf-parity/make-fixture-cpu.py (see its docstring and qwen25vl-tiny/README.md for why each shim
# exists); none of it is on the model's numerical path:
#   - torch 1.13 lacks torch.distributed.tensor and torch.compiler (used at import time), and its fsdp package does not
#     import under Python 3.11 (generate() only asks isinstance(model, FullyShardedDataParallel));
#   - safetensors (Rust) is not in Debian 12: a pure-Python reader/writer of the format;
#   - tokenizers is not in Debian 12: import-only (no tokenizer is used here);
#   - package metadata for those stand-ins and the huggingface_hub source tree, for transformers' version checks.
# ---------------------------------------------------------------------------------------------------------------------
def _module(name, package=False):
    m = types.ModuleType(name)
    m.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=package)
    if package:
        m.__path__ = []
    sys.modules[name] = m
    return m


def _torch_shims():
    try:
        importlib.import_module("torch.distributed.tensor")
    except ImportError:
        torch.distributed.tensor = _module("torch.distributed.tensor")
    if not hasattr(torch, "compiler"):
        c = _module("torch.compiler")
        c.disable = lambda fn=None, recursive=True: (lambda f: f) if fn is None else fn
        c.is_compiling = lambda: False
        torch.compiler = c
    try:
        importlib.import_module("torch.distributed.fsdp")
    except Exception:
        for k in [k for k in sys.modules if k.startswith(("torch.distributed.fsdp", "torch.distributed._shard"))]:
            del sys.modules[k]
        f = _module("torch.distributed.fsdp", package=True)

        class FullyShardedDataParallel(torch.nn.Module):  # never instantiated
            pass

        f.FullyShardedDataParallel = FullyShardedDataParallel
        torch.distributed.fsdp = f
    # Not in make-fixture-cpu.py (it used a strict load_state_dict, not from_pretrained): from_pretrained (4.50) calls
    # load_state_dict(..., assign=...), a keyword torch 2.1 added. assign=True only hands the file's tensors to the
    # module instead of copying them into its parameters (and 4.50 asks for it only when the dtypes already agree), so
    # torch 1.13's copying load stores the same values.
    import inspect

    if "assign" not in inspect.signature(torch.nn.Module.load_state_dict).parameters:
        _load = torch.nn.Module.load_state_dict

        def load_state_dict(self, state_dict, strict=True, assign=False):
            return _load(self, state_dict, strict=strict)

        torch.nn.Module.load_state_dict = load_state_dict


_ST_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64,
    "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
}
_ST_NAMES = {v: k for k, v in _ST_DTYPES.items()}


class _SafeSlice:
    def __init__(self, owner, name):
        self._owner, self._name, self._info = owner, name, owner._header[name]

    def get_dtype(self):
        return self._info["dtype"]

    def get_shape(self):
        return list(self._info["shape"])

    def __getitem__(self, idx):
        return self._owner.get_tensor(self._name)[idx]


class _SafeOpen:
    def __init__(self, filename, framework="pt", device="cpu"):
        if framework not in ("pt", "torch"):
            raise ValueError("safetensors stand-in: framework='pt' only")
        self._path, self._device = str(filename), device
        with open(self._path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n).decode("utf-8"))
        self._start = 8 + n
        self._meta = header.pop("__metadata__", None)
        self._header = header

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def keys(self):
        return sorted(self._header)

    def metadata(self):
        return self._meta

    def get_slice(self, name):
        return _SafeSlice(self, name)

    def get_tensor(self, name):
        info = self._header[name]
        begin, end = info["data_offsets"]
        with open(self._path, "rb") as f:
            f.seek(self._start + begin)
            buf = bytearray(f.read(end - begin))
        dtype, shape = _ST_DTYPES[info["dtype"]], list(info["shape"])
        t = torch.empty(shape, dtype=dtype) if end == begin else torch.frombuffer(buf, dtype=dtype).reshape(shape).clone()
        dev = f"cuda:{self._device}" if isinstance(self._device, int) else self._device
        return t if dev in (None, "cpu") else t.to(dev)


def _st_bytes(t):
    t = t.detach().to("cpu").contiguous().reshape(-1)
    if t.numel() == 0:
        return b""
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    return t.view(torch.uint8).numpy().tobytes()


def _st_save(tensors, metadata=None):
    items = sorted(tensors.items(), key=lambda kv: (-kv[1].element_size(), kv[0]))  # the real writer's order
    header, blobs, off = {}, [], 0
    for name, t in items:
        b = _st_bytes(t)
        header[name] = {"dtype": _ST_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata is not None:
        header = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}, **header}
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    return struct.pack("<Q", len(hb)) + hb + b"".join(blobs)


def _st_save_file(tensors, filename, metadata=None):
    with open(filename, "wb") as f:
        f.write(_st_save(tensors, metadata))


def _st_load_file(filename, device="cpu"):
    with _SafeOpen(filename, "pt", device) as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def _storage_ptr(t):
    try:
        return t.untyped_storage().data_ptr()
    except Exception:
        try:
            return t.storage().data_ptr()
        except NotImplementedError:
            return 0


def _storage_size(t):
    try:
        return t.untyped_storage().nbytes()
    except AttributeError:
        try:
            return t.storage().size() * t.element_size()
        except NotImplementedError:
            return t.nelement() * t.element_size()


_FAKE_DISTS = {}  # normalised name -> version, answered by the metadata finder below


def _stand_ins():
    try:
        import safetensors.torch  # noqa: F401
    except ImportError:
        st = _module("safetensors", package=True)
        st.__version__ = "0.4.5"
        st.safe_open = _SafeOpen
        st.SafetensorError = ValueError
        stt = _module("safetensors.torch")
        stt.save_file, stt.load_file, stt.save = _st_save_file, _st_load_file, _st_save
        stt.storage_ptr, stt.storage_size = _storage_ptr, _storage_size
        st.torch = stt
        _FAKE_DISTS["safetensors"] = st.__version__
    try:
        import tokenizers  # noqa: F401
    except ImportError:
        class _Stub:
            def __init__(self, *a, **k):
                raise RuntimeError("tokenizers is a stand-in here")

        def _getattr(name):
            if name.startswith("__"):
                raise AttributeError(name)
            return type(name, (_Stub,), {})

        tk = _module("tokenizers", package=True)
        tk.__getattr__ = _getattr
        for sub in ("models", "decoders", "normalizers", "pre_tokenizers", "processors", "trainers"):
            m = _module("tokenizers." + sub)
            m.__getattr__ = _getattr
            setattr(tk, sub, m)
    try:
        _md.version("huggingface_hub")
    except _md.PackageNotFoundError:
        import huggingface_hub  # a source checkout on PYTHONPATH

        _FAKE_DISTS["huggingface_hub"] = huggingface_hub.__version__

    class _Dist(_md.Distribution):
        def __init__(self, name, ver):
            self._text = f"Metadata-Version: 2.1\nName: {name}\nVersion: {ver}\n"

        def read_text(self, filename):
            return self._text if filename == "METADATA" else None

        def locate_file(self, path):
            return path

    class _Finder(_md.DistributionFinder):
        def find_spec(self, *a, **k):
            return None

        def find_distributions(self, context=_md.DistributionFinder.Context()):
            name = (context.name or "").lower().replace("-", "_")
            if name in _FAKE_DISTS:
                yield _Dist(name, _FAKE_DISTS[name])

    if _FAKE_DISTS:
        sys.meta_path.append(_Finder())


_torch_shims()
_stand_ins()

# ---------------------------------------------------------------------------------------------------------------------
# The check.
# ---------------------------------------------------------------------------------------------------------------------
import jinja2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import transformers  # noqa: E402
from transformers import AutoConfig, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration  # noqa: E402
from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor  # noqa: E402
from transformers.utils.chat_template_utils import _compile_jinja_template  # noqa: E402

FAILURES = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what, flush=True)
    if not ok:
        FAILURES.append(what)


def synthetic_image(width, height):
    """The hf-parity fixtures' image: R = x·255/(w-1), G = y·255/(h-1), B = 7(x+y) mod 256."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([(x * 255 // (width - 1)), (y * 255 // (height - 1)), ((x + y) * 7) % 256], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


# Conversations as transformers hands them to the template: content is a string or a list of {"type": ...} parts.
IMAGE = {"type": "image"}


def text(t):
    return {"type": "text", "text": t}


CONVERSATIONS = [
    ("user only, string", [{"role": "user", "content": "Hello"}], False),
    ("system + user + assistant", [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                                   {"role": "assistant", "content": "Hello."}], False),
    ("image then text, generation prompt", [{"role": "user", "content": [IMAGE, text("What is shown?")]}], True),
    ("text, image, text, image; multi-turn", [
        {"role": "system", "content": "S"},
        {"role": "user", "content": [text("Compare "), IMAGE, text(" and "), IMAGE]},
        {"role": "assistant", "content": [text("Same.")]},
        {"role": "user", "content": "Sure?"}], True),
    ("two images, assistant answer", [{"role": "user", "content": [IMAGE, IMAGE, text("Both?")]},
                                      {"role": "assistant", "content": "Yes."}], False),
    ("newlines, spaces, unicode", [
        {"role": "system", "content": "  Answer in JSON.\n\n"},
        {"role": "user", "content": [IMAGE, text("Line 1\n  Line 2\t(tab) — ünïcode 肺 {{ not jinja }} {% raw %}")]},
        {"role": "assistant", "content": "{\"finding\": \"opacity\"}\n"},
        {"role": "user", "content": [text("")]}], True),
    ("empty system prompt", [{"role": "system", "content": ""}, {"role": "user", "content": [IMAGE]}], True),
]


def special_tokens_map(tokenizer_config):
    """What `tokenizer.special_tokens_map` holds for a tokenizer built from this tokenizer_config.json: the set special
    tokens and additional_special_tokens. apply_chat_template passes it to the template as keyword arguments."""
    out = {}
    for k in ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"):
        v = tokenizer_config.get(k)
        if isinstance(v, dict):
            v = v.get("content")
        if v is not None:
            out[k] = v
    extra = tokenizer_config.get("additional_special_tokens") or []
    if extra:
        out["additional_special_tokens"] = [e["content"] if isinstance(e, dict) else e for e in extra]
    return out


def render_chats(export, chat_out):
    templates = {}
    tok_cfg_path = os.path.join(export, "tokenizer_config.json")
    tok_cfg = {}
    if os.path.exists(tok_cfg_path):
        with open(tok_cfg_path) as f:
            tok_cfg = json.load(f)
        if "chat_template" in tok_cfg:
            templates["tokenizer_config.json"] = tok_cfg["chat_template"]
    ct_path = os.path.join(export, "chat_template.json")
    if os.path.exists(ct_path):
        with open(ct_path) as f:
            templates["chat_template.json"] = json.load(f)["chat_template"]
    check(len(templates) > 0, f"chat template found in {sorted(templates) or 'none of tokenizer_config.json, chat_template.json'}")
    if not templates:
        return
    kwargs = special_tokens_map(tok_cfg)
    cases = []
    for name, messages, gen in CONVERSATIONS:
        rendered = {}
        for source, template in templates.items():
            compiled = _compile_jinja_template(template)
            # tokenization_utils_base.apply_chat_template (4.50): render(messages=, tools=, documents=,
            # add_generation_prompt=, **{**special_tokens_map, **kwargs})
            rendered[source] = compiled.render(messages=messages, tools=None, documents=None, add_generation_prompt=gen, **kwargs)
        same = len(set(rendered.values())) == 1
        check(same, f"chat '{name}': every template file renders the same text")
        cases.append({"name": name, "messages": messages, "add_generation_prompt": gen, "rendered": next(iter(rendered.values())),
                      "rendered_by_file": rendered})
    out = {"transformers": transformers.__version__, "jinja2": jinja2.__version__, "export": os.path.abspath(export),
           "template_files": sorted(templates), "template_kwargs": kwargs, "cases": cases}
    with open(chat_out, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2, ensure_ascii=False)
    print(f"wrote {chat_out}: {len(cases)} conversations rendered by Jinja2 {jinja2.__version__}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("export", help="a folder written by ./mmx export")
    ap.add_argument("--fixture-out", required=True, help="parity fixture folder to write (replaced if it exists)")
    ap.add_argument("--chat-out", required=True, help="JSON file of the rendered chat strings")
    ap.add_argument("--width", type=int, default=140)
    ap.add_argument("--height", type=int, default=84)
    ap.add_argument("--prefix", default="5,6,7", help="plain text ids between bos and vision_start")
    ap.add_argument("--suffix", default="8,9,10,11", help="plain text ids after vision_end")
    ap.add_argument("--new-tokens", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    export = os.path.abspath(a.export)
    print(f"transformers {transformers.__version__} ({os.path.dirname(transformers.__file__)}), torch {torch.__version__}, "
          f"jinja2 {jinja2.__version__}; export {export}")

    # 1. The weights, loaded by transformers' own loader; every key must match. ignore_mismatched_sizes=True makes a
    # wrongly shaped tensor a mismatched_keys entry (reported, then failed below) instead of a load_state_dict error.
    model, info = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        export, output_loading_info=True, torch_dtype=torch.float32, ignore_mismatched_sizes=True)
    model.eval()
    for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        v = list(info.get(k, []))
        print(f"{k}: {v}")
        check(not v, f"{k} empty")
    n_params = sum(p.numel() for p in model.parameters())
    print(f"loaded {type(model).__name__}: {n_params} parameters, attn_implementation={model.config._attn_implementation}, "
          f"tie_word_embeddings={model.config.tie_word_embeddings}")
    # The loaded weights are the file's, bit for bit (fp32 widening of a bf16 file is exact).
    from safetensors import safe_open
    files = sorted(f for f in os.listdir(export) if f.endswith(".safetensors"))
    state = model.state_dict()
    stored, differ = 0, []
    for fn in files:
        with safe_open(os.path.join(export, fn), "pt") as f:
            for k in f.keys():
                stored += 1
                if k not in state or not torch.equal(state[k], f.get_tensor(k).to(torch.float32)):
                    differ.append(k)
    check(not differ, f"{stored} stored tensors equal the loaded parameters (differ: {differ[:5]})")

    # 2. Config and image processor, from the export's files.
    config = AutoConfig.from_pretrained(export)
    check(isinstance(config, Qwen2_5_VLConfig), f"AutoConfig gives {type(config).__name__}")
    processor = Qwen2VLImageProcessor.from_pretrained(export)
    print(f"image processor: min_pixels={processor.min_pixels} max_pixels={processor.max_pixels} patch={processor.patch_size} "
          f"merge={processor.merge_size} temporal={processor.temporal_patch_size} resample={processor.resample} "
          f"mean={processor.image_mean} std={processor.image_std}")

    # 3. The chat template, rendered by Jinja2 as transformers renders it.
    render_chats(export, a.chat_out)

    if FAILURES:  # a reference from a wrongly loaded model would mislead
        print(f"FAILED: {len(FAILURES)} check(s): {FAILURES}; no fixture written")
        sys.exit(1)

    # 4. The parity fixture, computed from the exported weights.
    out = os.path.abspath(a.fixture_out)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    shutil.copytree(export, os.path.join(out, "checkpoint"))
    image = synthetic_image(a.width, a.height)
    image.save(os.path.join(out, "image.png"))
    vision = processor(images=[Image.open(os.path.join(out, "image.png"))], return_tensors="pt")
    pixel_values = vision["pixel_values"].to(torch.float32)
    grid = vision["image_grid_thw"].to(torch.int64)
    merge = config.vision_config.spatial_merge_size
    n_image = int(grid.prod(-1).sum().item()) // (merge * merge)
    ints = lambda s: [int(v) for v in s.split(",") if v.strip()]  # noqa: E731
    bos = config.bos_token_id if config.bos_token_id is not None else ints(a.prefix)[0]
    ids = [bos] + ints(a.prefix) + [config.vision_start_token_id] + [config.image_token_id] * n_image + \
          [config.vision_end_token_id] + ints(a.suffix)
    input_ids = torch.tensor([ids], dtype=torch.int64)
    attention_mask = torch.ones_like(input_ids)
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values, image_grid_thw=grid).logits
        position_ids, rope_deltas = model.get_rope_index(input_ids, grid, None, attention_mask=attention_mask)
        generated = model.generate(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values,
                                   image_grid_thw=grid, max_new_tokens=a.new_tokens, do_sample=False, eos_token_id=None,
                                   pad_token_id=0)
    greedy = generated[:, input_ids.shape[1]:].contiguous()
    check(greedy.shape[1] == a.new_tokens, f"generate gave {greedy.shape[1]} new tokens (no stop token)")
    save_file({"input_ids": input_ids, "attention_mask": attention_mask, "pixel_values": pixel_values.contiguous(),
               "image_grid_thw": grid.contiguous(), "position_ids": position_ids.to(torch.int64).contiguous(),
               "rope_deltas": rope_deltas.to(torch.int64).reshape(1, 1).contiguous()}, os.path.join(out, "inputs.safetensors"))
    save_file({"logits": logits.to(torch.float32).contiguous(), "greedy_ids": greedy.to(torch.int64)},
              os.path.join(out, "outputs.safetensors"))
    top2 = logits[0].topk(2, dim=-1).values
    meta = {
        "transformers": transformers.__version__, "torch": torch.__version__, "made_by": "scripts/check-export-with-transformers.py",
        "export": export, "weights_dtype_in_file": str(config.torch_dtype), "computed_in": "float32",
        "attn_implementation": model.config._attn_implementation, "sequence_length": input_ids.shape[1],
        "image_tokens": n_image, "image_size": {"width": a.width, "height": a.height}, "grid_thw": grid.tolist(),
        "vocab_size": config.vocab_size, "tolerance_logits": 1e-4,
        "min_top1_top2_margin": float((top2[:, 0] - top2[:, 1]).min()),
        "tokens": {"vision_start": config.vision_start_token_id, "vision_end": config.vision_end_token_id,
                   "image_pad": config.image_token_id, "bos": bos},
        "greedy_ids": greedy[0].tolist(),
    }
    with open(os.path.join(out, "fixture.json"), "w") as f:
        json.dump(meta, f, indent=2)
    print(f"wrote fixture {out}: seq={input_ids.shape[1]} image tokens={n_image} grid={grid.tolist()} "
          f"max|logit|={logits.abs().max().item():.4g} greedy={greedy[0].tolist()} rope_deltas={rope_deltas.reshape(-1).tolist()}")

    if FAILURES:
        print(f"FAILED: {len(FAILURES)} check(s): {FAILURES}")
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
