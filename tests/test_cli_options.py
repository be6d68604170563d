"""`ttc-eval run`'s options come from RunConfig; model roles; subcommands from the registry.

The run ids below were computed by the version before roles (commit e2e2ab0), whose
``RunConfig`` had ``revision_model`` and ``revision_template`` fields: every config that version
could express keeps its run id, whichever spelling sets it now.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pytest

from ttc_eval.cli import (
    LIST_KINDS,
    Command,
    add_run_options,
    build_parser,
    config_from_args,
    main,
    parse_args,
)
from ttc_eval.config import SHORTHANDS, RoleSpec, RunConfig, option, option_of, positive_int
from ttc_eval.errors import UsageError
from ttc_eval.registry import ALL_REGISTRIES, COMMANDS

TEMPLATE = "T {question} {attempts}"

# Run ids of the version before roles.
DEFAULT_ID = "arith-smollm2-135m-1a5a54379e"
REVISION_MODEL_ID = "arith-smollm2-135m-233a468ce8"  # revision_model="X"
REVISION_TEMPLATE_ID = "arith-smollm2-135m-d36b9ec633"  # revision_template=TEMPLATE
VERIFIER_MODEL_ID = "arith-smollm2-135m-aa0e27f3f8"  # verifier_args={"model": "M"}
BOTH_ID = "arith-smollm2-135m-dfb83c9172"  # revision_model="X", revision_template=TEMPLATE
FAKE_ID = "arith-smollm2-135m-073204fcfb"  # backend="fake", budgets=(1, 2)
FAKE_REVISER_VERIFIER_ID = "arith-smollm2-135m-6fe7fae929"  # ... revision_model="X", verifier M

# config.json of a run written by the version before roles (its "config" object).
OLD_CONFIG: dict[str, Any] = {
    "model": "smollm2-135m",
    "backend": "hf",
    "backend_args": {},
    "task": "arith",
    "data_files": None,
    "include_path": [],
    "limit": None,
    "strategies": [{"name": "majority", "args": {}}, {"name": "best_of_n", "args": {}}],
    "verifier": "logprob",
    "verifier_args": {},
    "budgets": [1, 2, 4, 8, 16],
    "seed": 0,
    "temperature": 0.7,
    "top_p": 1.0,
    "max_tokens": 96,
    "step_delimiter": "\n\n",
    "output_dir": "runs",
    "run_id": None,
    "leaderboard_dir": "leaderboards",
    "cache": True,
    "chunk_samples": 256,
    "bins": ["oracle", "predicted", "label"],
    "difficulty_samples": None,
    "shard": None,
    "revision_model": None,
    "revision_template": None,
    "grader": None,
    "num_fewshot": None,
    "apply_chat_template": False,
    "stop": [],
}
# Its identity()["settings"] as recorded: the settings less those that change no number, and
# less the later ones (grader, few-shot, chat template, stop) that were unset.
OLD_SETTINGS_IDENTITY = {
    k: v
    for k, v in OLD_CONFIG.items()
    if k not in ("output_dir", "run_id", "leaderboard_dir", "cache", "chunk_samples", "bins")
    and k not in ("grader", "num_fewshot", "apply_chat_template", "stop")
}
OLD_ID = "arith-smollm2-135m-8aa5a8753e"
OLD_REVISIONS_ID = "arith-smollm2-135m-f68ee0569a"  # + revisions, smollm2-360m, TEMPLATE


def config_of(*argv: str) -> RunConfig:
    return config_from_args(parse_args(["run", *argv]))


def exit_code(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as e:  # argparse usage errors
        return int(e.code or 0)


# 1. Each option is declared once, on its field.


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


def test_run_options_are_the_declared_fields_and_shorthands() -> None:
    parser = build_parser().commands["run"]
    declared = {
        opt.flag_for(f.name) for f in fields(RunConfig) if (opt := option_of(f)) is not None
    }
    shorthands = {sh.flag for sh in SHORTHANDS}
    invocation = {"-h", "--help", "--config", "--force-new", "--quiet", "--verbose"}
    assert _flags(parser) == declared | shorthands | invocation
    assert not declared & shorthands
    # Settings of config files only: no flag of their own.
    assert {f.name for f in fields(RunConfig) if option_of(f) is None} == {
        "roles",
        "step_delimiter",
        "cache",
        "chunk_samples",
        "stop",
    }
    # Each shorthand writes into a field.
    assert {sh.field for sh in SHORTHANDS} <= {f.name for f in fields(RunConfig)}
    assert {"--verifier-model", "--revision-model", "--revision-template", "--base-url",
            "--no-cache", "--role"} == shorthands  # fmt: skip


@dataclass(frozen=True)
class _Extended(RunConfig):
    """A config with one more setting, declared as every other one."""

    beam_width: int = field(
        default=3, metadata=option("beams kept per step", metavar="M", parse=positive_int)
    )


def test_a_declared_field_is_a_flag_a_yaml_key_and_a_setting(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_run_options(parser, _Extended)
    assert "--beam-width" in _flags(parser)
    assert "beams kept per step (default: 3)" in parser.format_help().replace("\n", " ")
    config = config_from_args(parser.parse_args(["--beam-width", "5"]), _Extended)
    assert isinstance(config, _Extended) and config.beam_width == 5
    (tmp_path / "c.yaml").write_text("beam_width: 7\nbackend: fake\n")
    config = config_from_args(parser.parse_args(["--config", str(tmp_path / "c.yaml")]), _Extended)
    assert (config.beam_width, config.backend) == (7, "fake")


def test_flags_behave_as_before() -> None:
    config = config_of(
        "--backend-args", "dtype=float32", "--base-url", "http://h/v1",
        "--strategy", "best_of_n:mode=naive,majority", "--verifier", "none",
        "--include-path", "a", "--include-path", "b", "--bins", "oracle",
        "--budgets", "4,1", "--no-cache", "--apply-chat-template", "--temperature", "0",
    )  # fmt: skip
    assert config.backend_args == {"dtype": "float32", "base_url": "http://h/v1"}
    assert [(s.name, dict(s.args)) for s in config.strategies] == [
        ("best_of_n", {"mode": "naive"}),
        ("majority", {}),
    ]
    assert config.verifier is None and config.include_path == ("a", "b")
    assert config.bins == ("oracle",) and config.budgets == (1, 4)
    assert config.cache is False and config.apply_chat_template is True
    assert config.temperature == 0.0
    default = config_of()
    assert default == RunConfig() and default.default_run_id() == DEFAULT_ID


# 2. Roles.


def test_role_flag_parses_into_a_role_spec() -> None:
    config = config_of("--role", "reviser=X:backend=fake:dtype=float32:batch_size=8")
    assert config.roles == {"reviser": RoleSpec("X", "fake", {"dtype": "float32", "batch_size": 8})}
    assert config.revision_model == "X" and config.revision_template is None
    config = config_of("--role", "judge=J", "--role", "reviser=:backend=vllm")
    assert config.roles == {"judge": RoleSpec("J"), "reviser": RoleSpec(backend="vllm")}
    assert config.revision_model is None


def test_role_spec_round_trips() -> None:
    spec = RoleSpec.parse("Qwen/Q-7B:backend=openai:base_url=http://h:8000/v1")
    assert spec == RoleSpec("Qwen/Q-7B", "openai", {"base_url": "http://h:8000/v1"})
    assert RoleSpec.from_dict(spec.to_dict()) == spec
    assert RoleSpec.from_dict("M") == RoleSpec("M")
    assert RoleSpec.from_dict(None) == RoleSpec() and RoleSpec().to_dict() == {}
    assert RoleSpec.parse("qwen:7b:temperature=0") == RoleSpec("qwen:7b", None, {"temperature": 0})
    with pytest.raises(UsageError, match="needs a backend name"):
        RoleSpec.parse("M:backend=")


def test_roles_resolve_against_the_policy() -> None:
    config = RunConfig(
        model="P",
        backend="hf",
        backend_args={"dtype": "float32"},
        roles={
            "reviser": RoleSpec("R", template=TEMPLATE),
            "judge": RoleSpec("J", backend="openai", backend_args={"base_url": "u"}),
            "critic": RoleSpec(backend="vllm"),
        },
        verifier_args={"model": "V", "device": "cpu"},
    )
    assert config.role("policy") == RoleSpec("P", "hf", {"dtype": "float32"})
    assert config.role("reviser") == RoleSpec("R", "hf", {"dtype": "float32"}, TEMPLATE)
    assert config.role("judge") == RoleSpec("J", "openai", {"base_url": "u"})
    assert config.role("critic") == RoleSpec("P", "vllm", {})  # another backend: its own args
    assert config.role("unnamed") == config.role("policy")
    assert config.role("verifier") == RoleSpec("V")
    assert RunConfig().role("verifier") == RoleSpec()


def test_config_json_records_roles() -> None:
    config = config_of("--role", "reviser=X:backend=fake", "--role", "judge=J")
    d = config.to_dict()
    assert d["roles"] == {"judge": {"model": "J"}, "reviser": {"model": "X", "backend": "fake"}}
    assert "revision_model" not in d and "revision_template" not in d
    assert RunConfig.from_dict(d) == config


# 3. Run ids: every spelling of a config the earlier version could express keeps its id.


def test_run_ids_are_those_of_the_version_before_roles(tmp_path: Path) -> None:
    assert RunConfig().default_run_id() == DEFAULT_ID
    (tmp_path / "t.txt").write_text(TEMPLATE)
    template = ["--revision-template", str(tmp_path / "t.txt")]
    for spelling, expected in [
        (["--role", "reviser=X"], REVISION_MODEL_ID),
        (["--revision-model", "X"], REVISION_MODEL_ID),
        (template, REVISION_TEMPLATE_ID),
        (["--role", "verifier=M"], VERIFIER_MODEL_ID),
        (["--verifier-model", "M"], VERIFIER_MODEL_ID),
        (["--verifier-args", "model=M"], VERIFIER_MODEL_ID),
        (["--revision-model", "X", *template], BOTH_ID),
        (["--role", "reviser=X", *template], BOTH_ID),
        (["--role", "reviser=X", "--revision-model", "X"], REVISION_MODEL_ID),
    ]:
        assert config_of(*spelling).default_run_id() == expected, spelling
    for settings, expected in [
        ({"roles": {"reviser": "X"}}, REVISION_MODEL_ID),
        ({"roles": {"reviser": {"model": "X"}}}, REVISION_MODEL_ID),
        ({"revision_model": "X"}, REVISION_MODEL_ID),
        ({"roles": {"reviser": {"template": TEMPLATE}}}, REVISION_TEMPLATE_ID),
        ({"revision_template": TEMPLATE}, REVISION_TEMPLATE_ID),
        ({"revision_model": "X", "revision_template": TEMPLATE}, BOTH_ID),
        ({"roles": {"verifier": "M"}}, VERIFIER_MODEL_ID),
        ({"roles": {"verifier": "M"}, "verifier_args": {"model": "M"}}, VERIFIER_MODEL_ID),
        ({"roles": {"reviser": None}}, DEFAULT_ID),
    ]:
        assert RunConfig.from_dict(settings).default_run_id() == expected, settings
    assert RunConfig(roles={"reviser": RoleSpec("X")}).default_run_id() == REVISION_MODEL_ID
    assert RunConfig(roles={"verifier": "M"}).default_run_id() == VERIFIER_MODEL_ID
    fake = ["--backend", "fake", "--budgets", "1,2"]
    assert config_of(*fake).default_run_id() == FAKE_ID
    reviser_verifier = config_of(*fake, "--role", "reviser=X", "--role", "verifier=M")
    assert reviser_verifier.default_run_id() == FAKE_REVISER_VERIFIER_ID


def test_a_config_file_with_roles_loads_with_the_same_ids(tmp_path: Path) -> None:
    conf = tmp_path / "c.yaml"
    conf.write_text("roles: {reviser: X}\n")
    config = config_of("--config", str(conf))
    assert config.roles == {"reviser": RoleSpec("X")}
    assert config.default_run_id() == REVISION_MODEL_ID
    conf.write_text(
        "backend: fake\nbudgets: [1, 2]\nroles:\n  reviser: X\n  verifier: M\n"
        "  judge: {model: J, backend: openai, backend_args: {base_url: 'http://h:8000/v1'}}\n"
    )
    config = config_of("--config", str(conf))
    assert config.role("judge") == RoleSpec("J", "openai", {"base_url": "http://h:8000/v1"})
    assert config.verifier_args == {"model": "M"}
    # Only what the earlier version could not say changes the id: the judge.
    assert config.default_run_id() != FAKE_REVISER_VERIFIER_ID
    assert config.identity()["roles"] == {"judge": config.roles["judge"].to_dict()}
    conf.write_text("backend: fake\nbudgets: [1, 2]\nroles: {reviser: X, verifier: M}\n")
    assert config_of("--config", str(conf)).default_run_id() == FAKE_REVISER_VERIFIER_ID
    # Flags override the file, part by part.
    conf.write_text(f"roles: {{reviser: {{model: Y, template: '{TEMPLATE}'}}}}\n")
    assert config_of("--config", str(conf), "--role", "reviser=X").default_run_id() == BOTH_ID
    conf.write_text("revision_model: Y\nverifier_args: {model: N}\n")
    config = config_of("--config", str(conf), "--revision-model", "X", "--role", "verifier=M")
    assert (config.revision_model, config.verifier_args) == ("X", {"model": "M"})


def test_old_config_json_loads_with_its_identity() -> None:
    config = RunConfig.from_dict(OLD_CONFIG)
    assert config.identity() == OLD_SETTINGS_IDENTITY
    assert config.default_run_id() == OLD_ID
    old = {
        **OLD_CONFIG,
        "strategies": [{"name": "revisions", "args": {}}],
        "revision_model": "smollm2-360m",
        "revision_template": TEMPLATE,
    }
    config = RunConfig.from_dict(old)
    assert config.roles == {"reviser": RoleSpec("smollm2-360m", template=TEMPLATE)}
    assert config.default_run_id() == OLD_REVISIONS_ID
    assert RunConfig.from_dict(config.to_dict()).default_run_id() == OLD_REVISIONS_ID


def test_settings_the_earlier_version_lacked_change_the_id() -> None:
    ids = {
        RunConfig(roles={"reviser": RoleSpec("X")}).default_run_id(),
        RunConfig(roles={"reviser": RoleSpec("X", backend="vllm")}).default_run_id(),
        RunConfig(roles={"reviser": RoleSpec("X", backend_args={"dtype": "f"})}).default_run_id(),
        RunConfig(roles={"judge": RoleSpec("X")}).default_run_id(),
        RunConfig(roles={"judge": RoleSpec("Y")}).default_run_id(),
    }
    assert len(ids) == 5
    # The run's backend named again is the run's backend.
    same = RunConfig(backend="fake", roles={"reviser": RoleSpec("X", backend="fake")})
    assert same.roles == {"reviser": RoleSpec("X")}
    assert same == RunConfig(backend="fake", roles={"reviser": RoleSpec("X")})
    # Options that change no number do not count, as for the policy's backend.
    a = RunConfig(roles={"judge": RoleSpec("J", backend_args={"batch_size": 4})})
    assert a.default_run_id() == RunConfig(roles={"judge": RoleSpec("J")}).default_run_id()


# 4. Role usage errors: exit 2, one line saying what to fix.


@pytest.mark.parametrize(
    ("args", "config", "message"),
    [
        ([], "roles: {reviser: {modle: X}}", "unknown keys ['modle'] in role reviser."),
        ([], "roles: {reviser: {modle: X}}", "Did you mean: model?"),
        ([], "roles: [reviser]", "setting roles must be a mapping"),
        ([], "roles: {policy: X}", "use --model"),
        ([], "roles: {reviser: 3}", "role reviser must be a model name or a mapping"),
        ([], "roles: {verifier: {model: M, backend: vllm}}", "the verifier role takes a model"),
        ([], "roles: {reviser: X}\nrevision_model: Y", "two reviser models"),
        (["--role", "policy=X"], None, "use --model"),
        (["--role", "reviser"], None, "argument --role: expected ROLE=MODEL"),
        (["--role", "re-viser=X"], None, "argument --role: expected ROLE=MODEL"),
        (["--role", "reviser=X:backend="], None, "argument --role: backend= in 'X:backend='"),
        (["--role", "verifier=A", "--verifier-model", "B"], None, "give one"),
        (["--role", "reviser=A", "--revision-model", "B"], None, "give one"),
        (["--verifier-args", "model=A", "--role", "verifier=B"], None, "two verifier models"),
    ],
)
def test_bad_roles_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    config: str | None,
    message: str,
) -> None:
    if config is not None:
        (tmp_path / "c.yaml").write_text(config)
        args = [*args, "--config", str(tmp_path / "c.yaml")]
    assert exit_code(["run", "--backend", "fake", "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ttc-eval: error: ") and message in err
    assert "Traceback" not in err and not Path("runs").exists()


def test_run_help_explains_roles(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(["run", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--role ROLE=SPEC" in out and "ROLE=MODEL[:backend=NAME][:template=FILE][:K=V...]" in out
    assert "e.g. reviser=" in out and "as --role reviser=MODEL" in out


# 5. Subcommands register like other components.


def test_list_commands_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "commands"]) == 0
    out = capsys.readouterr().out
    names = {line.split()[0] for line in out.splitlines() if line and not line[0].isspace()}
    assert names == set(COMMANDS.names()) == {
        "run", "report", "compare", "leaderboard", "import", "merge", "compare-flops", "list",
        "lm-eval", "policy", "verifiers", "processbench", "learn", "view",
    }  # fmt: skip
    assert "join shard runs" in out


def test_list_covers_every_registry(capsys: pytest.CaptureFixture[str]) -> None:
    assert set(LIST_KINDS) == {"tasks"} | {r.plural for r in ALL_REGISTRIES}
    for kind in LIST_KINDS:
        assert main(["list", kind]) == 0
        assert capsys.readouterr().out.strip()


def test_a_registered_command_is_dispatched(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--name", default="world", help="who (default: %(default)s)")

    def run(args: argparse.Namespace) -> int:
        print(f"hello {args.name}")
        return 3

    COMMANDS.names()  # built-ins loaded first
    monkeypatch.setitem(COMMANDS._items, "hello", Command("hello", "greet", add_arguments, run))
    assert main(["hello", "--name", "you"]) == 3
    assert capsys.readouterr().out == "hello you\n"
    assert exit_code(["hello", "--nmae", "x"]) == 2
    assert "(did you mean --name?)" in capsys.readouterr().err
