"""Fine-tune a reviser on revision chains (``ttc-eval learn reviser DATA --base M --output DIR``).

Supervised fine-tuning with TRL's ``SFTTrainer`` on the dataset ``learn revision-data``
writes (prompt-completion conversational rows: the loss is on the completion, the correct
attempt, only), optionally through a LoRA adapter (``peft``) merged back into the weights
at the end. The output is an ordinary transformers model folder: ``--revision-model DIR``
(the ``reviser`` role) runs it on the hf backend as it is. ``DIR/learn.json`` records the
base model, the data's record (the questions it was built from), the settings, the loss
and the wall time.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from ttc_eval.errors import UsageError

REVISER_RECIPE_VERSION = "1"
"""Bumped whenever the same data and settings could train another model."""


def _data_record(data: Path) -> dict[str, Any]:
    try:
        record = json.loads((data / "learn.json").read_text())
    except (OSError, ValueError):
        raise UsageError(
            f"{data} is not a dataset of `ttc-eval learn revision-data` (no learn.json); "
            "build one with `ttc-eval learn revision-data RUN --output DIR`"
        ) from None
    if not isinstance(record, dict) or record.get("kind") != "revision-data":
        raise UsageError(f"{data}/learn.json is not a revision-data record")
    return record


def train_and_save(
    trainer: Any,
    tokenizer: Any,
    output: Path,
    lora: bool,
    progress: bool,
    scratch: tempfile.TemporaryDirectory[str],
) -> tuple[Any, float, list[float]]:
    """Train, merge a LoRA adapter back, save the model and tokenizer to ``output``; the
    training result, the wall time and the logged losses (shared by ``learn prm``)."""
    if not progress:
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # it prints every log line when bars are off
    started = time.monotonic()
    with scratch:
        result = trainer.train()
    seconds = time.monotonic() - started
    trained: Any = trainer.model
    if lora:
        trained = trained.merge_and_unload()
    trained.save_pretrained(str(output))
    tokenizer.save_pretrained(str(output))
    losses = [float(e["loss"]) for e in trainer.state.log_history if "loss" in e]
    return result, seconds, losses


def train_reviser(
    data: Path,
    base: str,
    output: Path,
    max_steps: int = 60,
    batch_size: int = 4,
    learning_rate: float = 5e-5,
    max_length: int = 768,
    lora: bool = False,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune ``base`` on ``data`` and save it to ``output``; its learn.json."""
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.trainer.sft_config import SFTConfig
    from trl.trainer.sft_trainer import SFTTrainer

    from ttc_eval._rundir import write_json
    from ttc_eval.models import resolve_model

    if max_steps < 1 or batch_size < 1 or learning_rate <= 0 or max_length < 16:
        raise UsageError(
            "--max-steps and --batch-size must be positive, --learning-rate above 0 and "
            "--max-length at least 16"
        )
    record = _data_record(data)
    if output.exists() and any(output.iterdir()):
        raise UsageError(f"{output} exists and is not empty; pass another --output")
    rows = datasets.load_from_disk(str(data / "data"))
    rows = rows.remove_columns([c for c in rows.column_names if c not in ("prompt", "completion")])
    path = resolve_model(base)
    auto_tok: Any = AutoTokenizer
    auto_model: Any = AutoModelForCausalLM
    tokenizer = auto_tok.from_pretrained(path)
    model = auto_model.from_pretrained(path, dtype=torch.float32)
    peft_config = None
    if lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type="CAUSAL_LM",
                                 target_modules="all-linear")  # fmt: skip
    scratch = tempfile.TemporaryDirectory(prefix="ttc-learn-")
    config = SFTConfig(
        output_dir=scratch.name,  # checkpoints are not kept (save_strategy="no")
        max_steps=max_steps,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        max_length=max_length,
        logging_steps=max(1, max_steps // 10),
        save_strategy="no",
        report_to=[],
        use_cpu=not torch.cuda.is_available(),
        seed=seed,
        disable_tqdm=not progress,
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=rows,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    result, seconds, losses = train_and_save(trainer, tokenizer, output, lora, progress, scratch)
    out = {
        "kind": "reviser",
        "version": REVISER_RECIPE_VERSION,
        "base": base,
        "data": {"path": str(data), "examples": len(rows), "source": record.get("source")},
        "questions": record.get("questions", []),
        "settings": {
            "max_steps": max_steps,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "max_length": max_length,
            "lora": lora,
            "seed": seed,
        },
        "train_loss": float(result.training_loss),
        "first_logged_loss": losses[0] if losses else None,
        "last_logged_loss": losses[-1] if losses else None,
        "seconds": seconds,
    }
    write_json(output / "learn.json", out)
    return out
