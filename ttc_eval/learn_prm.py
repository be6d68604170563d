"""Train a process reward model on rollout labels (``ttc-eval learn prm DATA --base M --output
DIR``).

The model is a token classifier with two labels in the Qwen2.5-Math-PRM layout, which the
registered ``qwen-prm`` verifier reads: the question and the steps in the chat template, each
step ended by the ``<extra_0>`` tag, P(right) = softmax(logits)[1] at each tag. The tag is
added to the base tokenizer as a special token when it lacks one, and the classifier head is
new. Training is transformers' ``Trainer`` (TRL 1.x has no PRM trainer any more: its
``PRMTrainer`` was experimental and removed), with the inputs built by the very function the
verifier encodes with (:func:`~ttc_eval.verifiers.prm.qwen_prm_inputs`), so training and
scoring cannot drift apart. The loss is the cross-entropy at the tags against the hard labels
(``labels=hard``: any rollout right) or the soft ones (``labels=soft``: the share of rollouts
right, as a target distribution); every other token is ignored. ``--lora`` trains a LoRA
adapter (``peft``) with the head fully trained, merged into the saved weights.

The saved folder is used unchanged as ``--verifier qwen-prm --verifier-model DIR``;
``DIR/learn.json`` records the base, the data's record (the questions it was built from), the
settings, the loss and the wall time.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from ttc_eval.errors import UsageError

PRM_RECIPE_VERSION = "1"
"""Bumped whenever the same data and settings could train another model."""

LABEL_KINDS = ("hard", "soft")


def _data_record(data: Path) -> dict[str, Any]:
    try:
        record = json.loads((data / "learn.json").read_text())
    except (OSError, ValueError):
        raise UsageError(
            f"{data} is not a dataset of `ttc-eval learn prm-data` (no learn.json); build one "
            "with `ttc-eval learn prm-data RUN --output DIR`"
        ) from None
    if not isinstance(record, dict) or record.get("kind") != "prm-data":
        raise UsageError(f"{data}/learn.json is not a prm-data record")
    return record


def encode_rows(
    rows: Any, tokenizer: Any, sep_id: int, labels: str, max_length: int
) -> tuple[list[dict[str, list[Any]]], int]:
    """Model inputs of each stepwise row: ids, mask, and a float target at each step tag
    (-100 elsewhere); steps whose tag falls beyond ``max_length`` are dropped, and rows left
    with none. Also the number of step labels kept."""
    from ttc_eval.verifiers.prm import qwen_prm_inputs

    column = "labels" if labels == "hard" else "soft_labels"
    out: list[dict[str, list[Any]]] = []
    kept = 0
    for question, steps, targets in zip(
        rows["prompt"], rows["completions"], rows[column], strict=True
    ):
        ids, positions = qwen_prm_inputs(tokenizer, sep_id, question, steps)
        if len(positions) != len(steps):
            raise UsageError(
                f"a step of {question[:40]!r} holds the tag text; found {len(positions)} tags "
                f"for {len(steps)} steps"
            )
        ids = ids[:max_length]
        target: list[Any] = [-100.0] * len(ids)
        here = 0
        for p, t in zip(positions, targets, strict=True):
            if p < len(ids):
                target[p] = float(t)
                here += 1
        if here:  # a row with every tag cut off would teach nothing
            out.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": target})
            kept += here
    return out, kept


def step_loss(outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
    """Cross-entropy at the step tags against a target P(right) (0/1 for hard labels)."""
    import torch

    logits = outputs["logits"] if isinstance(outputs, dict) else outputs.logits
    at = labels >= 0
    if not bool(at.any()):
        return logits.sum() * 0.0  # no tag in this batch: no gradient, not NaN
    logp = torch.log_softmax(logits[at].float(), dim=-1)
    p = labels[at].to(logp.dtype)
    return -(p * logp[:, 1] + (1 - p) * logp[:, 0]).mean()


def train_prm(
    data: Path,
    base: str,
    output: Path,
    max_steps: int = 100,
    batch_size: int = 8,
    learning_rate: float = 1e-4,
    max_length: int = 512,
    labels: str = "hard",
    lora: bool = False,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Train a PRM from ``base`` on ``data`` and save it to ``output``; its learn.json."""
    import datasets
    import torch
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from ttc_eval._rundir import write_json
    from ttc_eval.learn_reviser import train_and_save
    from ttc_eval.models import resolve_model
    from ttc_eval.verifiers.prm import QwenPRM

    if max_steps < 1 or batch_size < 1 or learning_rate <= 0 or max_length < 16:
        raise UsageError(
            "--max-steps and --batch-size must be positive, --learning-rate above 0 and "
            "--max-length at least 16"
        )
    if labels not in LABEL_KINDS:
        raise UsageError(f"--labels must be one of {', '.join(LABEL_KINDS)}, not {labels!r}")
    record = _data_record(data)
    if output.exists() and any(output.iterdir()):
        raise UsageError(f"{output} exists and is not empty; pass another --output")
    rows = datasets.load_from_disk(str(data / "data"))
    path = resolve_model(base)
    auto_tok: Any = AutoTokenizer
    auto_model: Any = AutoModelForTokenClassification
    tokenizer = auto_tok.from_pretrained(path)
    tag = QwenPRM.step_sep
    added = tag not in tokenizer.get_vocab()
    if added:
        tokenizer.add_special_tokens({"additional_special_tokens": [tag]})
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    sep_id = int(tokenizer.convert_tokens_to_ids(tag))
    # The new head (and a LoRA adapter) are drawn before the Trainer seeds anything.
    set_seed(seed)
    model = auto_model.from_pretrained(
        path,
        num_labels=2,
        id2label={0: "wrong", 1: "right"},
        label2id={"wrong": 0, "right": 1},
        dtype=torch.float32,
    )
    model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    examples, kept = encode_rows(rows, tokenizer, sep_id, labels, max_length)
    if not kept:
        raise UsageError(f"{data} has no step label within --max-length {max_length}")
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type="TOKEN_CLS",
                       target_modules="all-linear", modules_to_save=["score"],
                       # The tag's new embedding row is trained too (it is read at every
                       # score); the rest of the embedding stays frozen.
                       trainable_token_indices=[sep_id] if added else None),
        )  # fmt: skip
    pad = int(tokenizer.pad_token_id)

    def collate(batch: list[dict[str, list[Any]]]) -> dict[str, Any]:
        width = max(len(b["input_ids"]) for b in batch)

        def padded(key: str, value: float) -> Any:
            return torch.tensor([b[key] + [value] * (width - len(b[key])) for b in batch])

        return {
            "input_ids": padded("input_ids", pad),
            "attention_mask": padded("attention_mask", 0),
            "labels": padded("labels", -100.0),
        }

    scratch = tempfile.TemporaryDirectory(prefix="ttc-learn-prm-")
    args = TrainingArguments(
        output_dir=scratch.name,  # checkpoints are not kept (save_strategy="no")
        max_steps=max_steps,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        logging_steps=max(1, max_steps // 10),
        save_strategy="no",
        report_to=[],
        use_cpu=not torch.cuda.is_available(),
        seed=seed,
        disable_tqdm=not progress,
        remove_unused_columns=False,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=datasets.Dataset.from_list(examples),
        data_collator=collate,
        compute_loss_func=step_loss,
    )
    result, seconds, losses = train_and_save(trainer, tokenizer, output, lora, progress, scratch)
    out = {
        "kind": "prm",
        "version": PRM_RECIPE_VERSION,
        "verifier": "qwen-prm",
        "base": base,
        "data": {
            "path": str(data),
            "solutions": len(rows),
            "step_labels": kept,
            "source": record.get("source"),
        },
        "questions": record.get("questions", []),
        "settings": {
            "max_steps": max_steps,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "max_length": max_length,
            "labels": labels,
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
