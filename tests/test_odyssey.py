"""`lstmlab odyssey`: the shared random search, the statistics (Welch's t-test, best
trials, diverged trials, the learning-rate share), resumability of trials.jsonl, clear
errors, and the quick suite end to end (every task and variant, the files it writes)."""

from __future__ import annotations

import json
import math
import shutil

import pytest
from scipy import stats

from lstmlab.cli import main
from lstmlab.models.recurrent import GREFF_VARIANTS
from lstmlab.odyssey import report, runner, search
from lstmlab.odyssey.tasks import TASKS



def records_for(task: str, values: dict[str, list[float]], lrs: list[float] | None = None) -> list[dict]:
    out = []
    for variant, metrics in values.items():
        for index, value in enumerate(metrics):
            lr = (lrs or [1e-3] * len(metrics))[index]
            out.append({"task": task, "variant": variant, "trial": index, "suite": "full", "test": value,
                        "hp_lr": lr, "hp_hidden_size": 32, "hp_dropout": 0.1})
    return out


def test_every_variant_gets_the_same_trials_and_the_draws_stay_in_range():
    first = search.draw_trials("lm", 20, (64, 128))
    assert first == search.draw_trials("lm", 20, (64, 128))
    assert first[:5] == search.draw_trials("lm", 5, (64, 128))  # more trials extend, never reshuffle
    assert [t.hyper for t in first] != [t.hyper for t in search.draw_trials("music", 20, (64, 128))]
    for trial in first:
        assert search.LR_RANGE[0] <= trial.hyper["lr"] <= search.LR_RANGE[1]
        assert trial.hyper["hidden_size"] in (64, 128) and 0 <= trial.hyper["dropout"] <= 0.5
    jobs = runner.make_jobs(first[:2], ["V", "NFG"], "full")
    assert [(j["trial"], j["variant"]) for j in jobs] == [(0, "V"), (0, "NFG"), (1, "V"), (1, "NFG")]
    assert jobs[0]["hyper"] == jobs[1]["hyper"] and jobs[0]["seed"] == jobs[1]["seed"]


def test_best_trials_take_ten_percent_but_at_least_five():
    assert report.best_trials([7, 5, 1, 4, 6, 2, 3]) == [1, 2, 3, 4, 5]
    assert report.best_trials(list(range(100, 0, -1))) == list(range(1, 11))
    assert report.best_trials([2.0, 1.0]) == [1.0, 2.0]


def test_welch_test_and_verdicts_against_vanilla():
    vanilla = [1.00, 1.01, 0.99, 1.02, 1.00, 0.98]
    worse = [1.50, 1.52, 1.49, 1.51, 1.55, 1.48]
    same = [1.00, 1.02, 0.98, 1.01, 0.99, 1.00]
    table = report.summarise(records_for("lm", {"V": vanilla, "NFG": worse, "NP": same}), ["V", "NFG", "NP"])
    rows = {row["variant"]: row for row in table["lm"]}
    expected_p = stats.ttest_ind(report.best_trials(worse), report.best_trials(vanilla), equal_var=False).pvalue
    assert math.isclose(rows["NFG"]["p"], expected_p)
    assert rows["NFG"]["verdict"] == "significantly worse" and rows["V"]["verdict"] == "reference"
    assert rows["NP"]["verdict"] == "no significant change" and rows["NP"]["p"] > 0.05
    assert rows["NFG"]["best"] == 5 and math.isclose(rows["NFG"]["mean"], sum(sorted(worse)[:5]) / 5)


def test_a_diverged_or_worse_than_chance_trial_counts_as_chance():
    values = {"V": [1.0, 1.1, 1.2, 1.3, 1.0, 1.1], "NOAF": [float("nan"), 2.0, 2.1, 700.0, 2.2, 2.0]}
    noaf = report.summarise(records_for("lm", values), ["V", "NOAF"], {"lm": 3.0})["lm"][1]
    assert noaf["at_chance"] == 2 and noaf["mean"] == pytest.approx((2.0 + 2.0 + 2.1 + 2.2 + 3.0) / 5)
    assert noaf["median_all"] == pytest.approx(2.15) and noaf["verdict"] == "significantly worse"
    unbounded = report.summarise(records_for("lm", values), ["V", "NOAF"])["lm"][1]
    assert unbounded["mean"] == pytest.approx((2.0 + 2.0 + 2.1 + 2.2 + 700.0) / 5)  # one trial decides it


def test_the_learning_rate_share_is_found_where_the_metric_depends_on_it():
    lrs = [10 ** (-4 + 0.25 * k) for k in range(12)]
    values = {"V": [(math.log10(lr) + 2.5) ** 2 for lr in lrs], "NP": [(math.log10(lr) + 2.5) ** 2 + 0.01 for lr in lrs]}
    shares = report.variance_explained(records_for("lm", values, lrs))
    assert shares["learning rate"] > 0.9 and shares["dropout"] < 0.05


def test_results_resume_and_a_torn_last_line_is_ignored(tmp_path, monkeypatch):
    calls = []

    def fake_trial(task, variant, hyper, seed, suite, steps):
        calls.append((task, variant))
        return {"test": hyper["lr"] * 100, "validation": 0.0, "steps": 1, "seconds": 0.0, "capped": False,
                "wall_seconds": 0.0}

    monkeypatch.setattr("lstmlab.odyssey.tasks.run_trial", fake_trial)
    jobs = runner.make_jobs(search.draw_trials("adding", 3, (8,)), ["V", "NIG"], "quick")
    first = runner.run_jobs(jobs, tmp_path, 1, print, progress=False)
    assert len(calls) == 6 and len(first) == 6
    with open(tmp_path / runner.RESULTS_FILE, "a") as handle:
        handle.write('{"task": "add')  # a run killed mid-write
    second = runner.run_jobs(jobs, tmp_path, 1, print, progress=False)
    assert len(calls) == 6 and second == first
    more = runner.make_jobs(search.draw_trials("adding", 4, (8,)), ["V", "NIG"], "quick")
    runner.run_jobs(more, tmp_path, 1, print, progress=False)
    assert len(calls) == 8  # only trial 3's two variants
    assert len(runner.read_results(tmp_path)) == 8  # the torn line is gone, every line whole
    longer = runner.make_jobs(search.draw_trials("adding", 1, (8,)), ["V"], "quick", steps=50)
    runner.run_jobs(longer, tmp_path, 1, print, progress=False)
    assert len(calls) == 9  # another number of updates is another trial


def test_a_damaged_results_file_is_refused(tmp_path):
    (tmp_path / runner.RESULTS_FILE).write_text('not json\n{"task": "lm"}\n')
    with pytest.raises(ValueError, match="line 1: not a trial record"):
        runner.read_results(tmp_path)


@pytest.mark.parametrize("args, message", [
    (["--tasks", "lm,vision"], "--tasks: expected a comma list of lm, adding, music, speech"),
    (["--variants", "V,XYZ"], "--variants: expected a comma list of V, NIG"),
    (["--trials", "0"], "expected at least 1"),
    (["--steps", "0"], "expected at least 1"),
])
def test_bad_options_are_one_line_errors(args, message, capsys, tmp_path):
    assert main(["odyssey", "--suite", "quick", "--out", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err


def test_quick_suite_runs_every_task_and_variant(use_small_cache, tmp_path, capsys):
    out = tmp_path / "study"
    tasks = [name for name in TASKS if name != "speech" or shutil.which("espeak-ng")]  # speech needs espeak-ng
    assert main(["odyssey", "--suite", "quick", "--jobs", "2", "--out", str(out), "--no-progress",
                 "--tasks", ",".join(tasks)]) == 0
    records = runner.read_results(out)
    trials = len(tasks) * len(GREFF_VARIANTS) * 2
    assert len(records) == trials
    assert {r["variant"] for r in records} == set(GREFF_VARIANTS) and {r["task"] for r in records} == set(tasks)
    assert all(math.isfinite(r["test"]) and r["steps"] == TASKS[r["task"]].sizes["quick"].steps or r.get("success")
               for r in records)
    text = (out / "odyssey.md").read_text()
    for needle in (*(f"### {task}:" for task in tasks), "Greff et al.'s conclusions and ours", "| NFG |",
                   "Machine:", "Command: `lstmlab odyssey"):
        assert needle in text
    for picture in ("odyssey.png", "learning_rate.png"):
        assert (out / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    assert {row["variant"] for row in summary["table"]["music"]} == set(GREFF_VARIANTS)
    capsys.readouterr()
    assert main(["odyssey", "--suite", "quick", "--out", str(out), "--no-progress", "--tasks", ",".join(tasks)]) == 0
    assert f"{trials} of {trials} trials are in" in capsys.readouterr().out  # resumed: nothing to run
    (out / "odyssey.md").unlink()
    assert main(["odyssey", "--suite", "quick", "--out", str(out), "--tasks", "music", "--report-only"]) == 0
    assert "report of the 18 of 18 trials" in capsys.readouterr().out and (out / "odyssey.md").is_file()
    assert main(["odyssey", "--suite", "quick", "--out", str(tmp_path / "empty"), "--report-only"]) == 2
    assert "holds none of these trials" in capsys.readouterr().err


def test_variant_names_map_to_lstm_options_and_conflicts_are_refused():
    from lstmlab.models.lm import LanguageModel, LMModelConfig
    from lstmlab.models.recurrent import with_variant

    assert with_variant({}, "NFG") == {"peephole": True, "forget_gate": False}
    assert with_variant({"peephole": False, "zoneout": 0.1}, "NP") == {"peephole": False, "zoneout": 0.1}
    with pytest.raises(ValueError, match="variant='NP' sets peephole=False, but peephole=True was also given"):
        with_variant({"peephole": True}, "NP")
    with pytest.raises(ValueError, match="variant: expected one of V, NIG"):
        with_variant({}, "XX")
    for name, options in GREFF_VARIANTS.items():
        lstm = LanguageModel(LMModelConfig(variant=name, hidden_size=8, embedding_size=4, num_layers=1), 10).lstm
        for option, value in options.items():
            assert getattr(lstm.spec, option) == value, (name, option)
    with pytest.raises(ValueError, match="is an LSTM variant"):
        LanguageModel(LMModelConfig(variant="NFG", cell="gru"), 10)
