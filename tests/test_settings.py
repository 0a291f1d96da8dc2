"""The settings table: one default per option, shared by the CLI, YAML and the Python API."""

from __future__ import annotations

import pytest

from streamdenoise import settings
from streamdenoise.cli import build_parser
from streamdenoise.commands.run import build_config
from streamdenoise.errors import UsageError
from streamdenoise.pipeline import PipelineConfig


def test_python_api_defaults_equal_the_cli_defaults():
    from_cli = build_config(build_parser().parse_args(["run", "demo"]))
    assert PipelineConfig("demo") == from_cli
    assert from_cli.backend == "auto" and from_cli.outputs == ["demo_denoised.mp4"]


def test_lab_configs_take_the_cli_defaults():
    from streamdenoise.lab.speed import BenchConfig
    from streamdenoise.lab.trainer import TrainConfig

    bench = BenchConfig()
    assert (bench.seconds, bench.rounds, bench.sizes) == (
        settings.default("seconds"),
        settings.default("rounds"),
        settings.default("sizes"),
    )
    assert TrainConfig(model="spatial").batch == 16 and TrainConfig().batch == 6
    assert TrainConfig().data == str(settings.data_dir())


def test_every_setting_belongs_to_a_command_and_says_what_it_does():
    commands = (
        settings.RUN, settings.BENCH, settings.EVAL, settings.TRAIN, settings.EXPORT,
        settings.FINETUNE,
    )  # fmt: skip
    used = {name for names in commands for name in names}
    assert set(settings.SETTINGS) == used
    assert all(s.help for s in settings.SETTINGS.values())
    for names in commands:
        flags = [settings.SETTINGS[n].option for n in names]
        assert len(flags) == len(set(flags)), names


def test_defaults_show_in_the_help_from_the_table(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "source queue length [2]" in text
    assert f"[{settings.default('preset')}]" in text


def test_every_run_setting_is_a_yaml_key(tmp_path):
    config = tmp_path / "all.yaml"
    config.write_text("".join(f"{name}: null\n" for name in settings.RUN))
    assert set(settings.load_config_file(config)) == set(settings.RUN)
    config.write_text("queue-size: 3\nbogus: 1\n")
    with pytest.raises(UsageError, match=r"unknown setting.*bogus"):
        settings.load_config_file(config)
    resolved = settings.resolve(settings.RUN, {"queue_size": None}, {"queue_size": 3})
    assert resolved["queue_size"] == 3 and resolved["crf"] == settings.default("crf")
