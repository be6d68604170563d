"""Prompt builders: a problem to chat messages."""

from __future__ import annotations

from ttc_eval.registry import prompt
from ttc_eval.types import Problem

DEFAULT_INSTRUCTION = (
    "Solve the following problem step by step. Separate the steps with a blank line. "
    "Write the final answer as \\boxed{{answer}}.\n\n{question}"
)


@prompt("boxed_steps")
def boxed_steps(
    problem: Problem, template: str = DEFAULT_INSTRUCTION, system: str | None = None
) -> list[dict[str, str]]:
    """Steps separated by a blank line (PRMs score steps) and a final ``\\boxed{}`` answer."""
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": template.format(question=problem.question)})
    return messages


@prompt("raw")
def raw(problem: Problem) -> str:
    """The question is already the whole prompt (lm-eval's few-shot context): no chat
    template, as lm-eval does without ``--apply_chat_template``."""
    return problem.question


@prompt("chat")
def chat(problem: Problem, system: str | None = None) -> list[dict[str, str]]:
    """The question as the one user message, through the model's chat template."""
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": problem.question})
    return messages
