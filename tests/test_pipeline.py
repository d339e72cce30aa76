"""Pipelines as a user runs them: a micro recipe end to end, a second run that skips everything, an interrupted run
that resumes at the failed stage, and bad recipes refused before anything runs.

The micro recipe records 2 Kinova + 2 UMI `lift` episodes at 32x32 in MuJoCo, adds ground-truth masks, pushes to the
loopback Hub, trains GLAM for 3 steps, relabels, trains `glam_mip` with stock lerobot-train for 2 steps, evaluates
one short episode with stock lerobot-eval, plots and summarises.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
import yaml

from glam_lerobot import pipeline

os.environ.setdefault("SVT_LOG", "1")

# Two stock LeRobot subprocesses (train, eval) and MuJoCo recordings: about 2-3 minutes of CPU on an idle machine,
# far longer on a busy shared one, hence a longer limit than the suite's default.
pytestmark = pytest.mark.timeout(2400)

MICRO = {
    "name": "micro",
    "description": "Tiny end-to-end run for the tests.",
    "full_scale": "More episodes, more steps, bigger images, a GPU.",
    "vars": {"size": 32, "task": "lift", "data": "${workdir}/data"},
    "stages": [
        {
            "name": "kinova",
            "run": "record",
            "with": {
                "embodiment": "kinova",
                "task": "${task}",
                "episodes": 2,
                "seed": "${seed}",
                "image_size": "${size}",
                "workers": 1,
            },
            "outputs": {"dataset": "${data}/kinova"},
        },
        {
            "name": "umi",
            "run": "record",
            "with": {
                "embodiment": "umi",
                "task": "${task}",
                "episodes": 2,
                "seed": "${seed}",  # same seeds as the Kinova's: the pairs of the alignment gate
                "image_size": "${size}",
                "workers": 1,
            },
            "outputs": {"dataset": "${data}/umi"},
        },
        {"name": "masks", "run": "masks", "with": {"dataset": "${kinova.dataset}", "backend": "groundtruth"}},
        {"name": "share", "run": "push", "with": {"path": "${kinova.dataset}", "repo_id": "pipeline/kinova-lift"}},
        {
            "name": "mix",
            "run": "mixture",
            "with": {"target": ["${kinova.dataset}"], "auxiliary": ["${umi.dataset}"]},
            "outputs": {"mixture": "${workdir}/mixture.yaml"},
        },
        {
            "name": "wm",
            "run": "train_wm",
            "with": {
                "mixture": "${mix.mixture}",
                "steps": 3,
                "batch_size": 8,
                "latent_dim": 4,
                "log_every": 1,
                "save_every": 2,
                "threads": 1,
                "diagnose_target": "${kinova.dataset}",
                "diagnose_aux": ["${umi.dataset}"],
                "diagnose_every": 2,
            },
        },
        {
            "name": "latents",
            "run": "relabel",
            "with": {"world_model": "${wm.world_model}", "mixture": "${mix.mixture}"},
        },
        {
            "name": "policy",
            "run": "train_policy",
            "with": {
                "dataset": "${latents.merged}",
                "policy": "glam_mip",
                "steps": 2,
                "batch_size": 4,
                "log_freq": 1,
                "device": "cpu",
                "args": {"policy.mip_blocks": 2},
            },
        },
        {
            "name": "eval",
            "run": "evaluate",
            "with": {
                "policy": "${policy.policy}",
                "task": "${task}",
                "episodes": 1,
                "image_size": "${size}",
                "episode_length": 6,
                "device": "cpu",
            },
        },
        {
            "name": "plots",
            "run": "plot",
            "with": {
                "world_models": {"GLAM": "${wm.world_model}"},
                "policies": {"glam_mip": "${policy.policy}"},
                "latents": ["${latents.merged}"],
                "evals": {"GLAM": "${eval.eval}"},
            },
        },
        {
            "name": "transfer",
            "run": "transfer",
            "with": {"world_model": "${wm.world_model}", "datasets": ["${umi.dataset}"], "episodes": [0]},
        },
        {"name": "summary", "run": "summary"},
    ],
}


def write_recipe(folder: Path, data: dict, name: str = "recipe.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def frame_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("frames")
    old = os.environ.get("GLAM_LEROBOT_CACHE")
    os.environ["GLAM_LEROBOT_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("GLAM_LEROBOT_CACHE", None)
    else:
        os.environ["GLAM_LEROBOT_CACHE"] = old


@pytest.fixture(scope="module")
def micro(tmp_path_factory, hub, frame_cache):
    """The micro recipe, run once for the module: (recipe file, workdir, first run's report)."""
    base = tmp_path_factory.mktemp("pipeline")
    path = write_recipe(base, MICRO)
    recipe = pipeline.load_recipe(path, workdir=base / "run")
    report = pipeline.run_recipe(recipe)
    return path, base / "run", report


def test_micro_recipe_runs_end_to_end(micro):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from PIL import Image

    from glam_lerobot import hub, provenance, schema

    path, workdir, report = micro
    assert report.status() == {s["name"]: "ran" for s in MICRO["stages"]}
    kinova = workdir / "data" / "kinova"
    assert LeRobotDataset("local/glam-sim-kinova-lift", root=kinova, video_backend="pyav").meta.total_episodes >= 1
    masked = workdir / "masks"
    assert schema.mask_key("overhead") in json.loads((masked / "meta" / "info.json").read_text())["features"]
    assert provenance.read(masked)["parent"]["root"] == str(kinova)
    pushed = json.loads((workdir / ".pipeline" / "share.json").read_text())["info"]
    revs = {(r.kind, r.name): r.commit for r in hub.revisions("pipeline/kinova-lift", repo_type="dataset")}
    assert revs[("branch", "main")] == pushed["commit"] and ("tag", "v3.0") in revs
    mixture = yaml.safe_load((workdir / "mixture.yaml").read_text())
    assert [d["root"] for d in mixture["target"]] == [str(kinova)]
    assert (workdir / "wm" / "model.safetensors").is_file()
    merged = workdir / "latents" / "mixture"
    info = json.loads((merged / "meta" / "info.json").read_text())
    assert schema.LATENT_CHUNK in info["features"] and schema.ACTION_IS_REAL in info["features"]
    ckpt = workdir / "policy" / "checkpoints" / "last" / "pretrained_model"
    assert json.loads((ckpt / "config.json").read_text())["type"] == "glam_mip"
    losses = json.loads((workdir / "policy" / "losses.json").read_text())
    assert [r["step"] for r in losses] == [1, 2]
    eval_info = json.loads((workdir / "eval" / "eval_info.json").read_text())
    assert eval_info["overall"]["n_episodes"] == 1
    for png in ("training_curves.png", "latents.png", "success.png"):
        with Image.open(workdir / "plots" / png) as im:
            assert im.size[0] > 100
    summary = (workdir / "summary" / "summary.md").read_text()
    k = round(eval_info["overall"]["pc_success"] / 100)
    assert f"eval: {k}/1 episodes of lift ({eval_info['overall']['pc_success']:.0f}%, 95% Wilson [" in summary
    gate = json.loads((workdir / "wm" / "diagnostics.json").read_text())
    verdict = "passed" if gate["passed"] else "FAILED"  # 3 steps: FAILED, but the section must say what was checked
    assert f"## World-model alignment gate (wm): {verdict}" in summary and "same-step retrieval" in summary
    assert str(ckpt.parent.parent.parent) in summary and "More episodes, more steps" in summary
    strips = sorted((workdir / "transfer").glob("*.png"))  # the UMI episode replayed on the Kinova, frame by frame
    assert strips and all(f"replay strip {png.stem}: {png}" in summary for png in strips)
    done = json.loads((workdir / ".pipeline" / "wm.json").read_text())
    assert done["info"]["steps"] == 3 and done["outputs"]["world_model"] == str(workdir / "wm")


def test_second_run_skips_every_stage(micro):
    path, workdir, _ = micro
    before = {p.name: p.stat().st_mtime_ns for p in (workdir / ".pipeline").glob("*.json")}
    report = pipeline.run_recipe(pipeline.load_recipe(path, workdir=workdir))
    assert set(report.status().values()) == {"skipped"}
    assert {p.name: p.stat().st_mtime_ns for p in (workdir / ".pipeline").glob("*.json")} == before


def test_show_and_changed_settings_through_the_cli(micro):
    from typer.testing import CliRunner

    from glam_lerobot.cli import app

    path, workdir, _ = micro
    cli = CliRunner(env={"COLUMNS": "400"})  # rich wraps at the terminal width
    out = cli.invoke(app, ["pipeline", "show", str(path), "--workdir", str(workdir)])
    assert out.exit_code == 0, out.output
    assert out.output.count(") done") == len(MICRO["stages"]) and "pending" not in out.output
    # a changed variable changes the fingerprint of the stages that use it and of everything after them
    out = cli.invoke(app, ["pipeline", "show", str(path), "--workdir", str(workdir), "--set", "size=48"])
    assert out.exit_code == 0 and "(record) changed" in out.output and "(masks) changed" in out.output
    out = cli.invoke(app, ["pipeline", "run", str(path), "--workdir", str(workdir), "--set", "size=48"])
    assert out.exit_code == 1 and "stage 'kinova' was finished earlier with other settings" in out.output
    assert f"remove {workdir / '.pipeline' / 'kinova.json'}" in out.output


def test_an_interrupted_run_resumes_at_the_failed_stage(micro, tmp_path, monkeypatch):
    """The world model crashes after its first checkpoint; the second run resumes it, and relabels after it."""
    _, workdir, _ = micro
    recipe = {
        "name": "resume",
        "stages": [  # an input that exists on disk already (no stage needed)
            {"name": "mix", "run": "mixture", "with": {"target": [str(workdir / "data" / "kinova")]}},
            {
                "name": "wm",
                "run": "train_wm",
                "with": {
                    "mixture": "${mix.mixture}",
                    "steps": 4,
                    "batch_size": 8,
                    "latent_dim": 4,
                    "save_every": 2,
                    "log_every": 1,
                    "threads": 1,
                },
            },
            {
                "name": "latents",
                "run": "relabel",
                "with": {"world_model": "${wm.world_model}", "mixture": "${mix.mixture}", "merged": False},
            },
            {"name": "summary", "run": "summary"},
        ],
    }
    path = write_recipe(tmp_path, recipe)
    real = pipeline.KINDS["train_wm"]
    calls = []

    def crash_after_first_checkpoint(stage, ctx):
        calls.append(stage.name)
        if len(calls) == 1:  # train to step 2 (a checkpoint), then die as an interrupted run would
            from glam_lerobot.mixture import load_mixture
            from glam_lerobot.world_model.train import TrainSettings, train_world_model

            w = {k: v for k, v in stage.settings.items() if k != "mixture"}
            train_world_model(
                load_mixture(stage.settings["mixture"]),
                stage.outputs["world_model"],
                TrainSettings(**{**w, "steps": 2}),
            )
            (stage.outputs["world_model"] / "model.safetensors").unlink()  # as if killed before the final save
            raise KeyboardInterrupt("killed")
        return real.run(stage, ctx)

    monkeypatch.setitem(pipeline.KINDS, "train_wm", dataclasses.replace(real, run=crash_after_first_checkpoint))
    run_dir = tmp_path / "run"
    with pytest.raises(pipeline.StageFailed, match="stage 'wm'"):
        pipeline.run_recipe(pipeline.load_recipe(path, workdir=run_dir))
    assert (run_dir / ".pipeline" / "mix.json").exists() and not (run_dir / ".pipeline" / "wm.json").exists()
    assert (run_dir / "wm" / "checkpoints").is_dir()

    report = pipeline.run_recipe(pipeline.load_recipe(path, workdir=run_dir))
    assert report.status() == {"mix": "skipped", "wm": "ran", "latents": "ran", "summary": "ran"}
    wm = next(r for r in report.results if r.name == "wm").info
    assert wm["resumed_from"] == 2 and wm["steps"] == 4  # continued from the checkpoint, not from scratch
    steps = [json.loads(line)["step"] for line in (run_dir / "wm" / "losses.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    assert (run_dir / "latents" / "datasets").is_dir() and not (run_dir / "latents" / "mixture").exists()


def _refused(tmp_path: Path, data: dict, match: str, **kwargs) -> None:
    path = write_recipe(tmp_path, data)
    with pytest.raises(pipeline.RecipeError, match=match):
        pipeline.load_recipe(path, workdir=tmp_path / "run", **kwargs)
    assert not (tmp_path / "run").exists()  # refused before anything ran


def _record(name="kinova", **extra):
    return {"name": name, "run": "record", "with": {"embodiment": "kinova", "task": "lift", "episodes": 1, **extra}}


def test_bad_recipes_fail_before_anything_runs(tmp_path):
    _refused(tmp_path, {"jobs": 0, "stages": [_record()]}, r"'jobs' must be a whole number >= 1 .*not 0")
    _refused(
        tmp_path,
        {"stages": [_record(), {"name": "x", "run": "teleport"}]},
        r"stage 'x': unknown stage kind 'teleport' \(run: one of record, ingest",
    )
    _refused(
        tmp_path, {"stages": [_record(seed="${start}")]}, r"stage 'kinova': with.seed: \$\{start\}: no variable 'start'"
    )
    _refused(
        tmp_path,
        {"stages": [_record(), {"name": "wm", "run": "train_wm", "with": {"mixture": "${workdir}/mixture.yaml"}}]},
        r"stage 'wm': input mixture = .*/run/mixture.yaml: no earlier stage writes it and it does not exist",
    )
    _refused(
        tmp_path,
        {
            "stages": [
                {"name": "wm", "run": "train_wm", "with": {"mixture": "${mix.mixture}"}},
                {"name": "mix", "run": "mixture", "with": {"target": ["/nowhere"]}},
            ]
        },
        r"no earlier stage named 'mix'; 'mix' comes later in the recipe",
    )
    _refused(tmp_path, {"stages": [_record(episdoes=3)]}, r"record has no setting 'episdoes'")
    _refused(
        tmp_path,
        {"stages": [_record(), {"name": "wm", "run": "train_wm", "with": {"mixture": "${kinova.mixture}"}}]},
        r"stage 'kinova' has no output 'mixture' \(it has dataset\)",
    )
    _refused(tmp_path, {"stages": [_record(), _record()]}, r"stage 'kinova': a stage of this name comes earlier")
    _refused(
        tmp_path, {"stages": [_record()]}, r"--set epochs: the recipe has no variable 'epochs'", overrides={"epochs": 3}
    )
    with pytest.raises(pipeline.RecipeError, match="no shipped recipe of that name"):
        pipeline.load_recipe(tmp_path / "missing.yaml")


def test_shipped_recipes_load_and_the_default_is_found_by_name(tmp_path):
    shipped = sorted(p for d in pipeline.shipped_recipe_dirs() for p in d.glob("*.yaml"))
    assert {p.stem for p in shipped} >= {"default", "stack_two", "stack_two_cpu", "stack_three", "stack_three_cpu"}
    for path in shipped:
        recipe = pipeline.load_recipe(path, workdir=tmp_path / path.stem)
        kinds = [s.kind for s in recipe.stages]
        assert kinds[-1] == "summary" and "evaluate" in kinds and recipe.full_scale, path
    for name in ("stack_two", "stack_three"):  # the paper's experiments: GLAM, GLAM-O and MIP on 100 + 400 episodes
        paper = pipeline.load_recipe(name, workdir=tmp_path / name)
        episodes = {s.settings["embodiment"]: s.settings["episodes"] for s in paper.stages if s.kind == "record"}
        assert episodes == {"kinova": 100, "umi": 400}
        policies = {s.settings["policy"] for s in paper.stages if s.kind == "train_policy"}
        inputs = {s.settings["input"] for s in paper.stages if s.kind == "train_wm"}
        assert policies == {"glam_mip", "mip"} and inputs == {"rgb", "masks"}
    default = pipeline.load_recipe(None, workdir=tmp_path / "d")
    assert default.path.name == "default.yaml" and not any(s.kind == "push" for s in default.stages)


def test_ingest_stage_reads_a_umi_replay_buffer(tmp_path):
    """Raw files are inputs that exist on disk; `options` go to the reader's plan() as the CLI's flags would."""
    from test_ingest_umi import write_buffer  # a real UMI ReplayBuffer written with zarr + JpegXL

    from glam_lerobot import provenance

    buffer = write_buffer(tmp_path / "dataset.zarr.zip")
    recipe = {
        "name": "ingest",
        "stages": [
            {
                "name": "umi",
                "run": "ingest",
                "with": {
                    "format": "umi",
                    "paths": [str(buffer)],
                    "repo_id": "lab/umi_cups",
                    "options": {"fps": 10, "camera_map": "camera0=front,camera1=overhead", "task": "cup"},
                },
            },
            {"name": "summary", "run": "summary"},
        ],
    }
    path = write_recipe(tmp_path, recipe)
    report = pipeline.run_recipe(pipeline.load_recipe(path, workdir=tmp_path / "run"))
    assert report.status() == {"umi": "ran", "summary": "ran"}
    assert report.results[0].info == {"episodes": 2, "frames": 19, "bad": 0}
    meta = provenance.read(tmp_path / "run" / "umi")
    assert meta["source"]["format"] == "umi-replay-buffer" and meta["source"]["files"][0]["path"] == str(buffer)
    assert "pipeline run" in meta["source"]["command"]

    recipe["stages"][0]["with"]["paths"] = [str(tmp_path / "missing.zarr.zip")]
    _refused(
        tmp_path / "bad", recipe, r"stage 'umi': input paths\[0\] = .*missing.zarr.zip: no earlier stage writes it"
    )


def test_a_policy_stage_can_train_on_one_role_of_a_merged_mixture():
    """`roles: [target]` on train_policy: the episodes of the mixture's target sources, from its meta/glam.json."""
    from glam_lerobot.pipeline.stages.policy import episodes_of_roles

    meta = {
        "sources": [
            {"index": 0, "role": "target", "episodes": 3},
            {"index": 1, "role": "auxiliary", "episodes": 2},
            {"index": 2, "role": "target", "episodes": 1},
        ]
    }
    assert episodes_of_roles(meta, ["target"]) == [0, 1, 2, 5]
    assert episodes_of_roles(meta, ["auxiliary"]) == [3, 4]
    with pytest.raises(ValueError, match="no source of the mixture has a role"):
        episodes_of_roles(meta, ["third"])
    with pytest.raises(ValueError, match="merged mixture written by relabel"):
        episodes_of_roles({}, ["target"])


def _nap_kinds(monkeypatch, spans: dict, fail: set):
    """Two stand-in kinds: `nap` (works in a child process, as lerobot-train does) and `note` (works in-process)."""
    import time

    def work(stage, ctx):
        start = time.time()
        time.sleep(float(stage.settings.get("seconds", 0.4)))
        if stage.name in fail:
            raise RuntimeError(f"{stage.name} broke")
        stage.outputs["out"].mkdir(parents=True, exist_ok=True)
        spans[stage.name] = (start, time.time())
        return {"slept": stage.settings.get("seconds", 0.4)}

    base = dict(settings=("seconds", "after"), inputs=("after",), outputs=("out",))
    monkeypatch.setitem(pipeline.KINDS, "nap", pipeline.Kind(work, subprocess=True, **base))
    monkeypatch.setitem(pipeline.KINDS, "note", pipeline.Kind(work, **base))


SIDE_BY_SIDE = {
    "name": "side",
    "jobs": 2,
    "stages": [
        {"name": "record", "run": "note", "with": {"seconds": 0.1}},
        {"name": "glam", "run": "nap", "with": {"after": ["${record.out}"]}},
        {"name": "glam_eval", "run": "nap", "with": {"after": ["${glam.out}"], "seconds": 0.1}},
        {"name": "mip", "run": "nap", "with": {"after": ["${record.out}"]}},
        {"name": "mip_eval", "run": "nap", "with": {"after": ["${mip.out}"], "seconds": 0.1}},
        {"name": "plots", "run": "note", "with": {"after": ["${glam_eval.out}", "${mip_eval.out}"], "seconds": 0}},
        {"name": "summary", "run": "summary"},
    ],
}


def test_policy_stages_run_side_by_side_with_jobs(tmp_path, monkeypatch):
    """With `jobs: 2`, the two policies train at once, each evaluation follows its policy, the plots wait for both,
    and the summary's wall clock counts the overlap once."""
    spans, fail = {}, set()
    _nap_kinds(monkeypatch, spans, fail)
    path = write_recipe(tmp_path, SIDE_BY_SIDE)
    report = pipeline.run_recipe(pipeline.load_recipe(path, workdir=tmp_path / "run"))
    assert set(report.status().values()) == {"ran"}
    assert spans["mip"][0] < spans["glam"][1] and spans["glam"][0] < spans["mip"][1]  # they overlapped
    assert spans["glam_eval"][0] >= spans["glam"][1] and spans["mip_eval"][0] >= spans["mip"][1]
    assert spans["plots"][0] >= max(spans["glam_eval"][1], spans["mip_eval"][1])
    assert (tmp_path / "run" / "logs" / "glam.console.log").read_text().count("done") == 1
    summary = json.loads((tmp_path / "run" / "summary" / "summary.json").read_text())
    stage_sum = sum(r["seconds"] for r in summary["stages"])
    assert summary["seconds"] < stage_sum - 0.3  # 0.4 s of the two naps overlapped

    spans.clear()  # one job: the recipe's order, one stage after the other
    report = pipeline.run_recipe(pipeline.load_recipe(path, workdir=tmp_path / "one"), jobs=1)
    order = sorted(spans, key=lambda k: spans[k][0])
    assert order == ["record", "glam", "glam_eval", "mip", "mip_eval", "plots"]
    assert all(spans[a][1] <= spans[b][0] for a, b in zip(order, order[1:], strict=False))


def test_a_failure_beside_another_stage_keeps_the_others_work(tmp_path, monkeypatch):
    """MIP's training breaks while GLAM's runs: GLAM and its evaluation still finish (they do not need MIP), the
    run reports the failure, and running again redoes what needs MIP alone."""
    spans, fail = {}, {"mip"}
    _nap_kinds(monkeypatch, spans, fail)
    path = write_recipe(tmp_path, SIDE_BY_SIDE)
    with pytest.raises(pipeline.StageFailed, match="stage 'mip'.*mip broke"):
        pipeline.run_recipe(pipeline.load_recipe(path, workdir=tmp_path / "run"))
    markers = sorted(p.stem for p in (tmp_path / "run" / ".pipeline").glob("*.json") if "started" not in p.name)
    assert markers == ["glam", "glam_eval", "record"]
    fail.clear()
    report = pipeline.run_recipe(pipeline.load_recipe(path, workdir=tmp_path / "run"))
    assert report.status() == {
        "record": "skipped",
        "glam": "skipped",
        "glam_eval": "skipped",
        "mip": "ran",
        "mip_eval": "ran",
        "plots": "ran",
        "summary": "ran",
    }
