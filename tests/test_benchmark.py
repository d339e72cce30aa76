"""`glam-lerobot benchmark`: the intervals it reports, and a micro run end to end (twice: the second from cache).

The micro scale records one episode per source with the simulator's own `sim record`, trains for two steps and
evaluates one 4-step rollout through stock lerobot-train / lerobot-eval: it checks the plumbing, not the paper.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from glam_lerobot import benchmark, stats
from glam_lerobot.world_model.frames import read_numeric


# --- intervals, against published hand-computed values ------------------------------------------------------------
def test_wilson_interval_matches_newcombe_1998_examples():
    # Newcombe (1998), Stat. Med. 17:857, Table I: 81/263 -> 0.2553-0.3662, 15/148 -> 0.0624-0.1605
    assert stats.wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=5e-5)
    assert stats.wilson(15, 148) == pytest.approx((0.0624, 0.1605), abs=5e-5)
    # the edges: 0/10 -> [0, z^2/(n+z^2)], 10/10 mirrors it
    z2 = stats.Z95**2
    assert stats.wilson(0, 10) == pytest.approx((0.0, z2 / (10 + z2)))
    assert stats.wilson(10, 10) == pytest.approx((10 / (10 + z2), 1.0))
    with pytest.raises(ValueError, match="k=11"):
        stats.wilson(11, 10)


def test_newcombe_wilson_difference_matches_newcombe_1998_method_10():
    # Newcombe (1998), Stat. Med. 17:873, Table II, method 10: 56/70 - 48/80 -> +0.0524 to +0.3339
    d, lo, hi = stats.newcombe_wilson(56, 70, 48, 80)
    assert d == pytest.approx(0.2) and (lo, hi) == pytest.approx((0.0524, 0.3339), abs=5e-5)
    # 9/10 - 3/10 -> +0.1705 to +0.8090
    assert stats.newcombe_wilson(9, 10, 3, 10)[1:] == pytest.approx((0.1705, 0.8090), abs=5e-5)
    # swapping the groups mirrors the interval
    d2, lo2, hi2 = stats.newcombe_wilson(48, 80, 56, 70)
    assert (d2, lo2, hi2) == pytest.approx((-d, -hi, -lo))


def test_summary_pools_seeds_and_compares_glam_o_with_the_best_baseline():
    from glam_lerobot.benchmark import compare, summarise

    results = [{"method": "mip", "seed": s, "k": k, "n": 10, "rate": k / 10} for s, k in enumerate((3, 2, 4))]
    results += [{"method": "lapa", "seed": s, "k": k, "n": 10, "rate": k / 10} for s, k in enumerate((5, 5, 6))]
    results += [{"method": "glam_o", "seed": s, "k": k, "n": 10, "rate": k / 10} for s, k in enumerate((9, 8, 9))]
    summary = summarise(results)
    assert summary["mip"]["k"] == 9 and summary["mip"]["n"] == 30
    assert summary["lapa"]["wilson95"] == pytest.approx(list(stats.wilson(16, 30)))
    c = compare(summary)
    assert c["best_baseline"] == "lapa"
    assert (c["difference"], *c["newcombe_wilson95"]) == pytest.approx(stats.newcombe_wilson(26, 30, 16, 30))


def test_the_cost_table_takes_the_median_of_each_stage_over_seeds():
    results = [
        {"run": "glam_o-t1-a8", "timings": {"world_model_s": w, "policy_s": p, "evaluate_s": 60}}
        for w, p in ((600, 300), (900, 480), (660, 1200))
    ]
    results.append({"run": "mip-t1-a0", "timings": {"policy_s": 120, "evaluate_s": 30}})
    results.append({"run": "mip-t1-a0", "cached": True})  # a run finished before timings were kept
    cost = benchmark.cost_summary(results)
    assert cost["glam_o-t1-a8"] == {
        "seeds": 3,
        "world_model": 11.0,
        "relabel": None,
        "policy": 8.0,
        "evaluate": 1.0,
        "total": 24.0,  # the median run (660 + 1200 + 60 s), not the sum of the stages' medians
    }
    assert cost["mip-t1-a0"]["seeds"] == 1 and cost["mip-t1-a0"]["total"] == 2.5
    assert "| glam_o-t1-a8 | 3 | 11.0 | - | 8.0 | 1.0 | 24.0 |" in benchmark.cost_markdown(cost)


# --- a micro run, end to end, twice ---------------------------------------------------------------------------------
def test_the_scaling_report_asks_whether_auxiliary_data_substitutes_for_target_data(tmp_path):
    scale = benchmark.SCALES["starved"]

    def result(method, target, aux, k):
        return {"method": method, "target_chunks": target, "aux_chunks": aux, "k": k, "n": 100}

    results = [result("mip", 1, 0, 30), result("mip", 5, 0, 70), result("glam_o", 1, 0, 25), result("glam_o", 1, 8, 66)]
    curves = benchmark.scaling_summary(results, scale)
    assert curves["mip"]["50"]["target_episodes"] == 50 and curves["glam_o"]["90"]["aux_episodes"] == 80
    sub = benchmark.substitution(curves)
    # GLAM-O on 10 + 80 against MIP on 50 (not the 10-episode MIP, not GLAM-O without auxiliary data)
    assert (sub["glam_o"]["k"], sub["mip"]["k"]) == (66, 70) and sub["difference"] == pytest.approx(-0.04)
    assert sub["within_mip_interval"] and sub["newcombe_wilson95"][0] < 0 < sub["newcombe_wilson95"][1]
    curves["substitution"] = sub
    text = benchmark.scaling_markdown(curves)
    assert "| GLAM-O | 10 | 80 | 66/100 |" in text and "inside MIP's Wilson interval" in text
    benchmark.scaling_plot(curves, tmp_path / "scaling.png", "lift")  # the report's curves, substitution included
    assert (tmp_path / "scaling.png").stat().st_size > 10_000
    results[-1] = result("glam_o", 1, 8, 40)
    assert not benchmark.substitution(benchmark.scaling_summary(results, scale))["within_mip_interval"]


def test_micro_benchmark_runs_end_to_end_and_the_second_run_reuses_the_cache(tmp_path, monkeypatch):
    from glam_lerobot.cli import app

    monkeypatch.setenv("GLAM_LEROBOT_CACHE", str(tmp_path / "frame-cache"))
    monkeypatch.setenv("SVT_LOG", "1")
    out = tmp_path / "bench"
    args = [
        "benchmark",
        "--task",
        "lift",
        "--methods",
        "mip,glam_o",
        "--seeds",
        "1",
        "--scale",
        "micro",
        "--output",
        str(out),
    ]
    first = CliRunner().invoke(app, [*args, "--jobs", "2"])  # the two runs train side by side
    assert first.exit_code == 0, first.output + repr(first.exception)
    assert "2 run(s) trained, 0 reused" in first.output
    report = json.loads((out / "results.json").read_text())
    assert set(report["summary"]) == {"mip", "glam_o"}
    for m in ("mip", "glam_o"):
        s = report["summary"][m]
        assert s["n"] == 1 and s["wilson95"] == pytest.approx(list(stats.wilson(s["k"], 1)))
    assert report["comparison"]["best_baseline"] == "mip"
    assert (out / "success_rates.png").stat().st_size > 1000 and "| GLAM-O |" in (out / "results.md").read_text()
    # every rollout is traced: Figure 7 (GLAM-O's and MIP's rollouts from one held-out placement and the expert's)
    assert (out / "figure7_joints.png").stat().st_size > 10_000 and "Motion smoothness" in (
        out / "results.md"
    ).read_text()
    assert len(list((out / "runs" / "mip-t1-a0" / "seed-0" / "eval" / "traces").glob("seed-*.npz"))) == 1
    # what each run cost, from its stages' own clocks: MIP has no world model, GLAM-O every stage
    cost = report["cost"]
    assert cost["mip-t1-a0"]["world_model"] is None and cost["mip-t1-a0"]["policy"] > 0
    assert (
        all(cost["glam_o-t1-a1"][s] > 0 for s in benchmark.STAGES)
        and "What a run cost here" in (out / "results.md").read_text()
    )
    # every step of each run is on disk: data, world model (GLAM-O only), relabelled mixture, policy, evaluation
    glam_o = out / "runs" / "glam_o-t1-a1" / "seed-0"
    assert (glam_o / "wm" / "model.safetensors").is_file() and (glam_o / "relabel" / "mixture" / "meta").is_dir()
    assert (glam_o / "policy" / "checkpoints" / "last" / "pretrained_model").is_dir()
    assert json.loads((glam_o / "wm" / "config.json").read_text())["model"]["input"] == "masks"
    assert not (out / "runs" / "mip-t1-a0" / "seed-0" / "wm").exists()
    # MIP trains on the target data plus its per-frame action chunks (row t: actions t, t+1, ... of its episode)
    chunked = read_numeric(out / "data" / "target-000@chunks", ["action", "chunk.action", "chunk.action_is_pad"])
    action, pad = chunked["action"], chunked["chunk.action_is_pad"]
    chunk = chunked["chunk.action"].reshape(len(action), -1, action.shape[1])
    assert np.allclose(chunk[:, 0], action) and np.allclose(chunk[:-1, 1], action[1:])
    assert pad[-1, 1:].all() and not pad[0, :2].any() and np.allclose(chunk[-1, 1:], action[-1])
    eval_seeds = {tuple(r["eval_seeds"]) for r in report["runs"]}
    assert len(eval_seeds) == 1 and min(next(iter(eval_seeds))) >= 9_000_000  # the same held-out seeds for all
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*") if p.is_file()}

    second = CliRunner().invoke(app, args)  # one at a time this time: nothing left to do
    assert second.exit_code == 0, second.output + repr(second.exception)
    assert "0 run(s) trained, 2 reused" in second.output
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*") if p.is_file()} == stamps
    assert json.loads((out / "results.json").read_text())["summary"] == report["summary"]

    # a report of what has finished, while (or instead of) training the rest: seed 1 is listed, not trained
    partial = CliRunner().invoke(app, [*args[:-5], "2", *args[-4:], "--finished-only"])
    assert partial.exit_code == 0, partial.output + repr(partial.exception)
    assert "0 run(s) trained, 2 reused" in partial.output and not (out / "runs" / "mip-t1-a0" / "seed-1").exists()
    assert "Not finished when this report was written" in (out / "results.md").read_text()
    assert {(r["method"], r["seed"]) for r in json.loads((out / "results.json").read_text())["missing"]} == {
        ("mip", 1),
        ("glam_o", 1),
    }

    # on a fresh machine (new output, data recorded again), an earlier report's finished runs count as done:
    # nothing is retrained and the tables are the same; a report of other data restores nothing
    fresh = tmp_path / "fresh"
    resumed = CliRunner().invoke(app, [*args[:-1], str(fresh), "--resume-from", str(out / "results.json")])
    assert resumed.exit_code == 0, resumed.output + repr(resumed.exception)
    assert "0 run(s) trained, 2 reused" in resumed.output and "2 finished run(s) restored" in resumed.output
    assert json.loads((fresh / "results.json").read_text())["summary"] == report["summary"]
    other_data = {**report, "data": {**report["data"], "target-000": {"episodes": 1, "frames": 99999}}}
    (tmp_path / "other.json").write_text(json.dumps(other_data))
    refused = CliRunner().invoke(
        app, [*args[:-1], str(tmp_path / "fresh2"), "--resume-from", str(tmp_path / "other.json")]
    )
    assert refused.exit_code == 1 and "nothing restored" in refused.output
    assert not (tmp_path / "fresh2" / "runs").exists()
    (tmp_path / "truncated.json").write_text((out / "results.json").read_text()[:500])
    broken = CliRunner().invoke(
        app, [*args[:-1], str(tmp_path / "fresh3"), "--resume-from", str(tmp_path / "truncated.json")]
    )
    assert broken.exit_code == 1 and "not a benchmark's results.json" in broken.output.replace("\n", " ")
    assert not (tmp_path / "fresh3" / "runs").exists()

    # asking the same folder for another scale is refused, before anything is overwritten
    other = CliRunner().invoke(app, [*args[:-4], "--scale", "cpu", "--output", str(out)])
    assert other.exit_code == 1 and "other settings" in other.output


def test_a_failing_run_does_not_stop_the_others_and_is_named(tmp_path, monkeypatch):
    """The benchmark's runs are recipes on the pipeline runner (run_recipes); one that fails is reported by name."""
    from types import SimpleNamespace

    from glam_lerobot.pipeline import runner

    def fake_run_recipe(recipe, console=None, progress=True):
        if recipe.name.startswith("clam"):
            raise runner.StageFailed("policy", "train_policy", RuntimeError("lerobot-train failed (exit 1)"))
        return SimpleNamespace(results=[])

    monkeypatch.setattr(benchmark, "run_recipe_of", lambda run, *a: SimpleNamespace(name=run.name, stages=[]))
    monkeypatch.setattr(runner, "run_recipe", fake_run_recipe)
    monkeypatch.setattr(benchmark, "finish", lambda *a: {"k": 1, "n": 2, "cached": False})
    runs = benchmark.main_runs(["mip", "clam", "glam"], 1, benchmark.SCALES["micro"])
    seen = []
    with pytest.raises(RuntimeError) as err:
        benchmark.execute_all(
            runs, SimpleNamespace(task="lift"), benchmark.SCALES["micro"], tmp_path, jobs=1, log=seen.append
        )
    assert "1 of 3 runs failed" in str(err.value) and "clam-t1-a0 seed 0: stage 'policy'" in str(err.value)
    assert "lerobot-train failed" in str(err.value)
    assert any(line.startswith("done: glam-t1-a1") for line in seen)  # the run after the failure still ran


def test_a_benchmark_trains_every_methods_first_seed_before_any_second_seed(tmp_path, monkeypatch):
    """Stopped after three runs, a benchmark of three methods x 2 seeds has each method's seed 0 (method-major
    order would have given two seeds of one method and nothing of the third)."""
    from types import SimpleNamespace

    from glam_lerobot.pipeline import runner

    monkeypatch.setattr(benchmark, "run_recipe_of", lambda run, *a: SimpleNamespace(name=run.name, stages=[]))
    monkeypatch.setattr(runner, "run_recipe", lambda recipe, console=None, progress=True: SimpleNamespace(results=[]))
    monkeypatch.setattr(benchmark, "finish", lambda run, *a: {"k": 1, "n": 2, "seed": run.seed, "cached": False})
    runs = benchmark.main_runs(["mip", "clam", "glam"], 2, benchmark.SCALES["micro"])
    seen = []
    benchmark.execute_all(runs, SimpleNamespace(task="lift"), benchmark.SCALES["micro"], tmp_path, log=seen.append)
    done = [line.removeprefix("done: ").split(":")[0] for line in seen if line.startswith("done: ")]
    assert done == [
        "mip-t1-a0 seed 0",
        "clam-t1-a0 seed 0",
        "glam-t1-a1 seed 0",
        "mip-t1-a0 seed 1",
        "clam-t1-a0 seed 1",
        "glam-t1-a1 seed 1",
    ]


def test_the_runner_runs_independent_recipes_side_by_side_and_reports_each_failure(tmp_path):
    """pipeline.run_recipes with 2 jobs (spawned processes): two recipes run, a failing one is returned, not raised."""
    from glam_lerobot import pipeline

    def recipe(name: str, bad: bool):
        data = {
            "name": name,
            "stages": [
                {
                    "name": "mix",
                    "run": "mixture",
                    "with": {"target": [str(tmp_path / ("notads" if bad else "ds"))]},
                    "outputs": {"mixture": str(tmp_path / name / "mixture.yaml")},
                }
            ],
        }
        return pipeline.parse_recipe(data, workdir=tmp_path / name)

    from conftest import write_tiny_dataset

    write_tiny_dataset(tmp_path / "ds", repo_id="test/ds", episodes=1, frames=3)
    (tmp_path / "notads").mkdir()
    (tmp_path / "notads" / "notes.txt").write_text("not a dataset")
    ended = []
    out = pipeline.run_recipes(
        [recipe("good", False), recipe("bad", True)],
        jobs=2,
        logs=[tmp_path / "good.log", tmp_path / "bad.log"],
        on_done=lambda i, o: ended.append(i),
    )
    assert sorted(ended) == [0, 1]
    assert out[0].status() == {"mix": "ran"} and (tmp_path / "good" / "mixture.yaml").is_file()
    assert isinstance(out[1], pipeline.StageFailed) and out[1].stage == "mix"
    assert "failed" in (tmp_path / "bad.log").read_text()


def test_bad_requests_fail_before_anything_is_written(tmp_path):
    from glam_lerobot.cli import app

    for bad, message in (
        (["--methods", "mip,dreamer"], "unknown ['dreamer']"),
        (["--scale", "huge"], "huge"),
        (["--task", "juggle"], "juggle"),
        (["--seeds", "0"], "at least 1"),
    ):
        res = CliRunner().invoke(app, ["benchmark", "--output", str(tmp_path / "b"), *bad])
        assert res.exit_code == 1 and message in res.output, res.output
    assert not (tmp_path / "b").exists()
