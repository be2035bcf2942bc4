from click.testing import CliRunner

import cli


def test_synth_then_summary(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli.cli, ["synth", "--out", str(tmp_path), "--machines", "bearing", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "wrote 300 clips" in result.output
    assert "bearing    00,01,02         150        30        60        60" in result.output
    again = runner.invoke(cli.cli, ["synth", "--out", str(tmp_path), "--machines", "bearing"])
    assert again.exit_code == 2 and again.output.count("\n") == 1 and "--force" in again.output
    summary = runner.invoke(cli.cli, ["summary", "--data", str(tmp_path)])
    assert summary.exit_code == 0 and "bearing" in summary.output


def test_bad_machine_and_missing_data_are_one_line_errors(tmp_path):
    runner = CliRunner()
    bad = runner.invoke(cli.cli, ["synth", "--out", str(tmp_path), "--machines", "fan,drill"])
    assert bad.exit_code == 2 and bad.output.strip() == \
        "error: unknown machine type(s) drill; use any of fan, gearbox, bearing, slider, valve, ToyCar, ToyTrain"
    missing = runner.invoke(cli.cli, ["summary", "--data", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "no machine folders" in missing.output and "Traceback" not in missing.output
