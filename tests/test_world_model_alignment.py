"""The world model's cross-source alignment: the defects an audit found, each pinned by a behaviour, and the
diagnostics a user runs on same-seed Kinova/UMI pairs before training a policy.

1. a pose dimension that one source never moves must not split the latents of the same motion;
2. every batch holds a fixed share of target rows (the only rows the grounding terms see);
3. the posteriors' variance has a floor, so the alignment KL cannot turn into a ~1/var-weighted squared error;
4. the images reach the latent (the visual feature is on the pose's scale);
and `glam-lerobot diagnose` / `train-wm --diagnose-*` report it on recorded same-seed pairs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_world_model import cli, frame_cache, train_args  # noqa: F401  (shared fixtures)
from typer.testing import CliRunner

from glam_lerobot import schema
from glam_lerobot.world_model import data as wm_data


def _source(name: str, role: str, ee: np.ndarray, images: np.ndarray) -> wm_data.Source:
    n = len(ee)
    robot = role == "target"
    return wm_data.Source(
        name=name,
        role=role,
        root=None,
        revision=None,
        images={"overhead": images, "front": images},
        ee_pose=ee.astype(np.float32),
        episode_index=np.zeros(n, np.int64),
        frame_index=np.arange(n),
        state=np.zeros((n, 8), np.float32) if robot else None,
        action=np.zeros((n, 8), np.float32) if robot else None,
    )


def _same_motion_two_sources(n: int = 60, seed: int = 0):
    """A gripper moving along a smooth path, seen by two sources: the Kinova's tilt entries of the 6D rotation
    wobble by servo error (std 0.013), the mocap UMI's never move. Everything else is identical."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, n)
    ee = np.zeros((n, 10))
    ee[:, 0], ee[:, 1], ee[:, 2] = 0.4 + 0.2 * t, 0.1 * np.sin(3 * t), 0.3 - 0.15 * t
    ee[:, 3:9] = [1, 0, 0, 0, -1, 0]  # gripper pointing down
    ee[:, 9] = 0.085 * (t < 0.5)
    umi = ee.copy()
    kinova = ee.copy()
    tilt = [3 + 2, 3 + 5]  # r20 and r21: the tilt from vertical
    kinova[:, tilt] += rng.normal(0, 0.013, (n, 2))
    images = rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8)
    return _source("kinova", "target", kinova, images), _source("umi", "auxiliary", umi, images)


def _latents(model, src: wm_data.Source) -> np.ndarray:
    rows = src.transition_rows()
    imgs = wm_data.gather_images(src, np.concatenate([rows, rows + 1]), ("overhead", "front"), "rgb", 32)
    ee = torch.from_numpy(src.ee_pose[np.concatenate([rows, rows + 1])])
    return model.infer_latents(imgs[: len(rows)], ee[: len(rows)], imgs[len(rows) :], ee[len(rows) :]).numpy()


def test_a_pose_dimension_one_source_never_moves_does_not_split_the_same_motion():
    from glam_lerobot.world_model.glam import GLAM, GLAMConfig

    kinova, umi = _same_motion_two_sources()
    stats = wm_data.compute_stats([kinova, umi], arms=1)
    torch.manual_seed(0)
    model = GLAM(GLAMConfig(image_size=32)).eval()
    model.set_stats({k: {m: torch.from_numpy(v) for m, v in d.items()} for k, d in stats.items()})
    z_k, z_u = _latents(model, kinova), _latents(model, umi)
    same_step = np.linalg.norm(z_k - z_u, axis=1).mean()
    other_step = np.linalg.norm(z_k[:, None] - z_u[None], axis=-1).mean()
    # the wobble stays a wobble: the same motion from the two sources gets (nearly) the same latent
    assert same_step < 0.1 * other_step, (same_step, other_step)
    rot = schema.ee_rotation_dims(1)  # because the rotation keeps the identity normalisation
    assert (stats["ee_pose"]["std"][rot] == 1).all() and (stats["ee_pose"]["mean"][rot] == 0).all()


def test_policy_normalisation_keeps_the_rotation_on_its_own_scale(tmp_path):
    from glam_lerobot import synthetic
    from glam_lerobot.policies.stats import compute_policy_stats
    from glam_lerobot.writing import write_dataset

    feats = synthetic.features(32, robot=True)
    write_dataset(
        tmp_path / "k", "test/k", 10, feats, [synthetic.job(i, length=25) for i in range(2)], synthetic.produce
    )
    stats = compute_policy_stats(tmp_path / "k", feats, chunk_size=4, latent=False)
    ee = stats[schema.EE_POSE]
    rot = list(range(3, 9))  # the 6D rotation
    assert (ee["min"][rot] == -1).all() and (ee["max"][rot] == 1).all()
    pos = [0, 1, 2]
    assert (ee["max"][pos] - ee["min"][pos] < 2).all()  # positions keep their own range


def test_every_batch_holds_the_target_share_whatever_the_mixture():
    is_target = np.zeros(500, bool)
    is_target[:40] = True  # 8% of the transitions are the target robot's
    sampler = wm_data.StepBatchSampler(500, 32, 20, seed=3, is_target=is_target, target_fraction=0.5)
    batches = list(sampler)
    assert all(int(is_target[b].sum()) == 16 for b in batches)
    assert len({i for b in batches for i in b if is_target[i]}) > 30  # drawn over the whole target set
    resumed = list(
        wm_data.StepBatchSampler(500, 32, 20, seed=3, start_step=12, is_target=is_target, target_fraction=0.5)
    )
    assert resumed == batches[12:]  # resume draws the same batches
    uniform = list(wm_data.StepBatchSampler(500, 32, 20, seed=3))
    assert np.mean([is_target[b].mean() for b in uniform]) < 0.2  # what a uniform draw gave the grounding terms
    with pytest.raises(ValueError, match="target_fraction"):
        wm_data.StepBatchSampler(500, 32, 1, seed=0, is_target=is_target, target_fraction=1.5)


def test_the_encoder_variance_cannot_collapse_under_the_alignment_kl():
    """The alignment KL weights the mean gap by 1/(2 var_encoder): with a variance floor that weight is bounded."""
    from glam_lerobot.world_model.modules import GaussianHead, kl_gaussians

    head = GaussianHead(4, 3, blocks=1, width=8, min_std=0.1)
    with torch.no_grad():
        head.net.out.bias[3:] = -20.0  # push the raw log-variance to its clamp
    _, logvar = head(torch.zeros(5, 4))
    assert float(logvar.detach().exp().min()) >= 0.1**2 * 0.999
    mean_q = torch.zeros(1, 3, requires_grad=True)
    kl = kl_gaussians(mean_q, torch.zeros(1, 3), torch.ones(1, 3), logvar[:1]).sum()
    (grad,) = torch.autograd.grad(kl, mean_q)
    assert float(grad.abs().max()) <= 1.0 / 0.1**2 + 1e-3  # gap 1 / var floor


def test_step_forward_measures_the_pose_error_in_steps_so_the_grounding_reaches_the_idm():
    """--step-forward (measured, off by default: benchmarks/results/wm-alignment): a forward model that predicts
    "no motion" errs by one step's worth of pose change, ~1 per dimension, instead of ~1e-3 of the mixture's spread,
    and its gradient into the IDM grows by the same factor."""
    from glam_lerobot.world_model.glam import GLAM, GLAMConfig

    kinova, umi = _same_motion_two_sources()
    stats = wm_data.compute_stats([kinova, umi], arms=1)
    rows = kinova.transition_rows()
    ee_t, ee_next = (torch.from_numpy(kinova.ee_pose[r]) for r in (rows, rows + 1))
    errors, grads = {}, {}
    for step_forward in (False, True):
        torch.manual_seed(0)
        model = GLAM(GLAMConfig(image_size=32, step_forward=step_forward))
        model.set_stats({k: {m: torch.from_numpy(v) for m, v in d.items()} for k, d in stats.items()})
        f = model.config.feature_dim
        x_t = torch.cat([torch.zeros(len(rows), f), model._norm("ee_pose", ee_t)], -1)
        x_next = torch.cat([torch.zeros(len(rows), f), model._norm("ee_pose", ee_next)], -1)
        z = torch.zeros(len(rows), model.config.latent_dim, requires_grad=True)
        (g,) = torch.autograd.grad(model.forward_error(x_t, z, x_next).mean(), z)  # same initial weights both times
        grads[step_forward] = float(g.norm())
        with torch.no_grad():  # a forward model that predicts no change
            for p in model.forward_model.parameters():
                p.zero_()
            errors[step_forward] = float(model.forward_error(x_t, z, x_next).mean())
    assert errors[False] < 0.01 and 0.5 < errors[True] < 5  # ~one step's change per pose dimension
    assert grads[True] > 30 * grads[False]


def test_swapping_only_the_images_moves_the_latent():
    from glam_lerobot.world_model.glam import GLAM, GLAMConfig

    torch.manual_seed(0)
    model = GLAM(GLAMConfig(image_size=32)).eval()
    g = torch.Generator().manual_seed(1)
    imgs = [torch.randint(0, 255, (16, 6, 32, 32), dtype=torch.uint8, generator=g) for _ in range(4)]
    ee_t, ee_next = torch.randn(16, 10, generator=g), torch.randn(16, 10, generator=g)
    z = model.infer_latents(imgs[0], ee_t, imgs[1], ee_next)
    z_swap = model.infer_latents(imgs[2], ee_t, imgs[3], ee_next)  # same poses, other images
    z_pose = model.infer_latents(imgs[0], ee_t + 1.0, imgs[1], ee_next - 1.0)  # same images, other poses
    image_effect = (z_swap - z).norm(dim=1).mean()
    pose_effect = (z_pose - z).norm(dim=1).mean()
    assert image_effect > 0.3 * pose_effect, (float(image_effect), float(pose_effect))
    y = model.encode_images(imgs[0]).detach()
    assert 0.5 < float(y.std(dim=1).mean()) < 2.0  # the visual feature sits on the standardised pose's scale


@pytest.fixture(scope="module")
def pairs(sim_mixture, tmp_path_factory):
    """The lift mixture (conftest) and, beside it, held-out Kinova/UMI pairs from seeds 700-702 and UMI episodes
    from seeds nobody shares (900-901)."""
    from glam_lerobot.sim.record import record

    base = tmp_path_factory.mktemp("wm-pairs")
    for emb in ("kinova", "umi"):
        record("lift", emb, 3, 700, base / f"{emb}_pairs", repo_id=f"test/{emb}-pairs", image_size=32, workers=1)
    record("lift", "umi", 2, 900, base / "umi_elsewhere", repo_id="test/umi-elsewhere", image_size=32, workers=1)
    return {"mixture": sim_mixture, "base": base}


def test_train_wm_logs_alignment_diagnostics_and_ends_with_the_gate(pairs, tmp_path):
    base = pairs["base"]
    out = cli(
        "train-wm",
        "--mixture",
        str(pairs["mixture"]),
        "--output",
        str(tmp_path / "wm"),
        "--steps",
        "4",
        "--batch-size",
        "8",
        "--threads",
        "1",
        "--log-every",
        "1",
        "--diagnose-every",
        "2",
        "--diagnose-target",
        str(base / "kinova_pairs"),
        "--diagnose-aux",
        str(base / "umi_pairs"),
    )
    assert "alignment gate:" in out and "open-loop Kinova replay" in out
    log = [json.loads(line) for line in (tmp_path / "wm" / "diagnostics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4]
    assert all(np.isfinite(r["test/umi-pairs/distance_ratio"]) and r["grad_idm/align"] > 0 for r in log)
    report = json.loads((tmp_path / "wm" / "diagnostics.json").read_text())
    row = report["sources"]["test/umi-pairs"]
    assert row["pairs"] == 3 and 1 / 3 <= row["retrieval_chance"] <= 1 / 2  # 3 candidates (2 past a short episode)
    assert row["replay"]["episodes"] == 3 and 0 <= row["replay"]["aux"] <= 3
    assert not report["passed"]  # four steps of training do not align anything, and the gate says so
    assert "Alignment diagnostics" in (tmp_path / "wm" / "README.md").read_text()


def test_diagnose_command_reports_and_refuses_unpaired_episodes(pairs, tmp_path):
    from glam_lerobot.cli import app

    base = pairs["base"]
    cli(
        "train-wm",
        "--mixture",
        str(pairs["mixture"]),
        "--output",
        str(tmp_path / "wm"),
        "--steps",
        "2",
        "--batch-size",
        "8",
        "--threads",
        "1",
    )
    args = [
        "diagnose",
        "--world-model",
        str(tmp_path / "wm"),
        "--target",
        str(base / "kinova_pairs"),
        "--no-replay",
        "--output",
        str(tmp_path / "d"),
    ]
    out = cli(*args, "--aux", str(base / "umi_pairs"))
    assert "same-step retrieval" in out and "gradient norms into IDM" in out and "alignment gate: FAILED" in out
    report = json.loads((tmp_path / "d" / "diagnostics.json").read_text())
    assert {"distance_ratio", "retrieval", "action_error", "image_swap"} <= set(report["sources"]["test/umi-pairs"])
    strict = CliRunner().invoke(app, [*args, "--aux", str(base / "umi_pairs"), "--strict"])
    assert strict.exit_code == 1  # CI can stop before a policy is trained on a misaligned model
    unpaired = CliRunner().invoke(app, [*args, "--aux", str(base / "umi_elsewhere")])
    assert unpaired.exit_code == 1 and "share a seed" in unpaired.output


@pytest.mark.parametrize("method", ["clam", "lapa"])
def test_diagnose_reports_the_baselines_too(pairs, tmp_path, method):
    """The benchmark's CLAM and LAPA world models get the same report as GLAM's, with the gradient of their own
    loss terms (the GLAM terms they do not have are not asked for)."""
    cli(*train_args(pairs["mixture"], tmp_path / "wm", 2, "--method", method))
    cli(
        "diagnose",
        "--world-model",
        str(tmp_path / "wm"),
        "--target",
        str(pairs["base"] / "kinova_pairs"),
        "--aux",
        str(pairs["base"] / "umi_pairs"),
        "--no-replay",
    )
    report = json.loads((tmp_path / "wm" / "diagnostics.json").read_text())
    assert (
        set(report["grad_norms"])
        == {"clam": {"recon", "forward_idm", "action", "kl_idm"}, "lapa": {"recon", "forward", "next_frame"}}[method]
    )
    assert report["grad_norms"]["recon"]["image_encoder"] > 0
    assert report["grad_norms"]["forward_idm" if method == "clam" else "forward"]["idm"] > 0  # as in training
    assert {"distance_ratio", "retrieval", "image_swap"} <= set(report["sources"]["test/umi-pairs"])


def test_the_replay_check_of_a_model_without_an_action_encoder_compares_with_its_own_target_latents():
    from glam_lerobot.world_model.diagnose import gate

    def report(replay):
        row = {"distance_ratio": 0.05, "retrieval": 0.95, "image_swap": 0.1, "action_error": 0.2, "replay": replay}
        return {"sources": {"umi": row}}

    clam = gate(report({"episodes": 10, "aux": 9, "target": 10, "aux_rate": 0.9, "target_rate": 1.0}))
    assert [c["check"] for c in clam if not c["passed"]] == []
    assert "umi: replay success / target IDM's" in [c["check"] for c in clam]
    glam = {"episodes": 10, "aux": 6, "target": 6, "encoder": 9, "aux_rate": 0.6, "target_rate": 0.6}
    checks = gate(report({**glam, "encoder_rate": 0.9}))
    (replay,) = [c for c in checks if "replay" in c["check"]]
    assert replay["check"] == "umi: replay success / action encoder's" and not replay["passed"]
    assert replay["value"] == pytest.approx(0.6 / 0.9)


def _two_scene_pairs(n: int = 12):
    """Two same-seed pairs whose Kinova and UMI frames are identical (an embodiment the images do not show) and
    whose two scenes differ; the poses follow the same motion in both sources."""
    from glam_lerobot.world_model.diagnose import Pair, PairSet

    rng = np.random.default_rng(0)
    scenes = [rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8) for _ in range(2)]
    ee = np.concatenate([_same_motion_two_sources(n, seed)[0].ee_pose for seed in range(2)])

    def source(name, role):
        src = _source(name, role, ee, np.concatenate(scenes))
        src.episode_index = np.repeat([0, 1], n)
        src.frame_index = np.tile(np.arange(n), 2)
        return src

    tgt, aux = source("kinova", "target"), source("umi", "auxiliary")
    rows = [np.arange(n - 1), n + np.arange(n - 1)]
    return PairSet(target=tgt, aux={"umi": (aux, [Pair(s, r, r) for s, r in enumerate(rows)])})


def test_the_image_check_asks_whether_images_reach_the_latent_not_whether_the_embodiment_does():
    """Swapping a pair's frames moves nothing when both embodiments' frames look alike (what GLAM-O's object masks
    aim for), so the gate's image check replaces the frames with another scene's: alive passes, dead fails."""
    from glam_lerobot.world_model.diagnose import diagnose, gate
    from glam_lerobot.world_model.glam import GLAM, GLAMConfig

    torch.manual_seed(0)
    pairs = _two_scene_pairs()
    model = GLAM(GLAMConfig(image_size=32))
    alive = diagnose(model, pairs)["sources"]["umi"]
    assert alive["image_swap"] < 1e-6 and alive["image_content"] > 0.05
    (check,) = [c for c in gate({"sources": {"umi": alive}}) if "image" in c["check"]]
    assert check["passed"] and check["value"] == alive["image_content"]

    for p in model.encoder.parameters():  # a dead image path: the same visual feature for every frame
        torch.nn.init.zeros_(p)
    dead = diagnose(model, pairs)["sources"]["umi"]
    assert dead["image_content"] < 1e-6
    assert not [c for c in gate({"sources": {"umi": dead}}) if "image" in c["check"]][0]["passed"]
