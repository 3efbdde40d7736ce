"""``ember guide``: one experiment in the terminal, the site, and the quiz, through ember.cli."""

import json
from pathlib import Path

from ember import cli
from ember.guide import site as site_module
from ember.guide.registry import get_experiment


def test_guide_n_runs_one_experiment_and_prints_table_and_figure(tmp_path, capsys):
    code = cli.main(["guide", "7", "--quick", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("Q7 (part 1): What is the cost function?")
    assert "dCE/dlogit" in out and "[held  ]" in out and "the claim held" in out
    figures = [line.split("figure: ", 1)[1] for line in out.splitlines() if "figure: " in line]
    assert figures and all(Path(f).exists() and f.endswith(".png") for f in figures)
    assert all(Path(f).is_relative_to(tmp_path.resolve()) for f in figures)


def test_guide_n_without_an_experiment_prints_the_answer(tmp_path, capsys):
    assert cli.main(["guide", "26", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "It no longer is" in out and "has no experiment" in out
    assert not (tmp_path / "q26").exists()


def test_guide_builds_the_site_and_prints_its_path(tmp_path, capsys, monkeypatch):
    only = {7: get_experiment(7)}  # one cheap experiment keeps the test fast
    monkeypatch.setattr(site_module, "experiments", lambda: only)
    out_dir = tmp_path / "site"
    assert cli.main(["guide", "--quick", "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert f"guide written: {(out_dir / 'index.html').resolve()}" in out
    assert (out_dir / "q75.html").exists()
    results = json.loads((out_dir / "results.json").read_text())
    assert results["quick"] is True and results["results"]["q7"]["passed"] is True


def test_guide_quiz_reads_the_terminal(tmp_path, capsys, monkeypatch):
    answers = iter(["backprop is the chain rule", "y"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    progress = tmp_path / "p.json"
    args = ["guide", "--quiz", "--part", "3", "--count", "1", "--no-run"]
    assert cli.main([*args, "--progress", str(progress), "--seed", "4"]) == 0
    out = capsys.readouterr().out
    assert "1 question(s) from part 3" in out and "Knew 1 of 1" in out
    (entry,) = json.loads(progress.read_text())["questions"].items()
    assert 42 <= int(entry[0]) <= 52 and entry[1]["known"] == 1


def test_ember_help_lists_guide(capsys):
    parser = cli.build_parser()
    text = parser.format_help()
    assert "guide" in text


def test_cli_modules_import_nothing_heavy():
    # `ember --help` imports the subcommand modules: they must not pull in the experiments,
    # matplotlib or the registry until a command runs
    import subprocess
    import sys

    code = (
        "import sys, ember.guide.cli, ember.gradcheck_cli, ember.guide; "
        "heavy = [m for m in ('matplotlib', 'ember.guide.registry', 'ember.guide.experiments',"
        " 'ember.models', 'ember.layers.conv') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
