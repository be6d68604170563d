"""Difficulty estimators: how hard a question is for the model, judged from a few probe
samples before the rest of the budget is spent.

Each estimator is one module here, registered with ``@estimator("name")`` and built through
:data:`ttc_eval.registry.ESTIMATORS` (``ESTIMATORS.create("verifier_score",
aggregation="min")``); ``ttc-eval list estimators`` lists them. The protocol is in
:mod:`ttc_eval.estimators._base`.
"""
