"""Tasks: specs in ``tasks/*.yaml`` naming the loaders, prompts and graders registered here."""

from ttc_eval.tasks._spec import Task, TaskSpec, available_tasks, find_task_spec, load_task_spec

__all__ = ["Task", "TaskSpec", "available_tasks", "find_task_spec", "load_task_spec"]
