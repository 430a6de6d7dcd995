import subprocess
import sys

from click.testing import CliRunner

from ferkeras.cli import main


def test_help_lists_the_commands():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("train", "evaluate", "convert", "bench", "cam", "summary"):
        assert f"  {command} " in result.output


def test_help_does_not_import_tensorflow():
    code = "import sys; from ferkeras.cli import main; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_summary_prints_size_and_macs():
    result = CliRunner().invoke(main, ["summary", "--set", "model.width=0.5", "--set", "data.crop=44"])
    assert result.exit_code == 0, result.output
    assert "2,826,471 parameters" in result.output and "44x44x1" in result.output


def test_bad_option_value_is_one_line():
    result = CliRunner().invoke(main, ["summary", "--set", "model.stem=tiny"])
    assert result.exit_code != 0
    assert result.output.strip() == "Error: config: model.stem='tiny' is not one of imagenet, small, small_pool"
