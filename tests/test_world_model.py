"""The GLAM world model: a user trains it on a tiny mixture, checks its losses, resumes it, and the model obeys Eq. 5.

Datasets are real LeRobot v3 datasets written by glam_lerobot.writing (32x32 AV1 video, lossless mask images).
The auxiliary dataset names its cameras `top`/`side`; the mixture file renames them onto overhead/front.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from glam_lerobot import schema, synthetic
from glam_lerobot.writing import write_dataset

AUX_CAMERAS = {"top": "overhead", "side": "front"}


def produce_with_masks(job: dict) -> dict:
    """synthetic episodes plus a mask per camera (the moving square), with the cameras renamed if asked."""
    ep = synthetic.produce(job)
    frames = ep["frames"]
    for cam in schema.CAMERAS:
        img = frames[schema.image_key(cam)]
        frames[schema.mask_key(cam)] = np.where(img.max(-1, keepdims=True) > 0, 255, 0).astype(np.uint8).repeat(3, -1)
    for own, canonical in job.get("rename", {}).items():
        frames[schema.image_key(own)] = frames.pop(schema.image_key(canonical))
        frames[schema.mask_key(own)] = frames.pop(schema.mask_key(canonical))
    return ep


def features_with_masks(robot: bool, rename: dict[str, str] | None = None) -> dict:
    rename = rename or {}
    inverse = {c: o for o, c in rename.items()}
    cams = tuple(inverse.get(c, c) for c in schema.CAMERAS)
    feats = schema.features(image_size=(32, 32), cameras=cams, robot=robot, masks=True)
    return feats


@pytest.fixture(scope="session")
def mixture_file(tmp_path_factory):
    """kinova (target, 4 episodes) + umi (auxiliary, 3 episodes, cameras top/side), both with masks."""
    base = tmp_path_factory.mktemp("wm-data")
    jobs_k = [{**synthetic.job(i, length=10, seed=1), "rename": {}} for i in range(4)]
    jobs_u = [{**synthetic.job(i, length=9, robot=False, seed=2), "rename": AUX_CAMERAS} for i in range(3)]
    write_dataset(
        base / "kinova",
        "test/kinova",
        10,
        features_with_masks(True),
        jobs_k,
        produce_with_masks,
        glam_meta={"embodiment": "kinova", "arms": 1, "task": "synthetic"},
    )
    write_dataset(
        base / "umi",
        "test/umi",
        10,
        features_with_masks(False, AUX_CAMERAS),
        jobs_u,
        produce_with_masks,
        glam_meta={"embodiment": "umi", "arms": 1, "task": "synthetic"},
    )
    path = base / "mixture.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "target": [{"repo_id": "test/kinova", "root": "kinova"}],
                "auxiliary": [{"repo_id": "test/umi", "root": "umi"}],
                "cameras": {"test/umi": AUX_CAMERAS},
            }
        )
    )
    return path


@pytest.fixture(autouse=True)
def frame_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GLAM_LEROBOT_CACHE", str(tmp_path_factory.getbasetemp() / "frame-cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest, and the test machine is shared
    yield
    torch.set_num_threads(threads)


def cli(*args: str) -> str:
    from glam_lerobot.cli import app

    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def train_args(mixture, out, steps, *extra):
    return [
        "train-wm",
        "--mixture",
        str(mixture),
        "--output",
        str(out),
        "--steps",
        str(steps),
        "--batch-size",
        "8",
        "--threads",
        "1",
        "--save-every",
        "2",
        "--log-every",
        "1",
        *extra,
    ]


def sources(mixture_file, input_kind="rgb"):
    from glam_lerobot.mixture import load_mixture
    from glam_lerobot.world_model.data import load_mixture_sources

    return load_mixture_sources(load_mixture(mixture_file), input_kind, progress=False)


def test_frames_are_decoded_once_into_the_cache_and_match_lerobot(mixture_file):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from glam_lerobot.world_model import frames

    root = mixture_file.parent / "umi"
    key = schema.image_key("top")
    cached = frames.cached_frames(root, key, progress=False)
    path = frames.cache_dir() / frames.fingerprint(root) / f"{key}.npy"
    assert path.exists() and cached.shape == (27, 32, 32, 3) and cached.dtype == np.uint8
    mtime = path.stat().st_mtime_ns
    frames.cached_frames(root, key, progress=False)
    assert path.stat().st_mtime_ns == mtime  # reused, not decoded again
    ds = LeRobotDataset("test/umi", root=root, video_backend="pyav")
    for i in (0, 13, 26):
        ref = (ds[i][key].permute(1, 2, 0).numpy() * 255).round()
        assert np.abs(ref - cached[i]).max() <= 1  # the same decoded frame
    masks = frames.cached_frames(root, schema.mask_key("top"), progress=False)
    assert set(np.unique(masks)) <= {0, 255}  # masks stay binary (lossless images)


def test_transitions_stay_inside_episodes_and_auxiliary_rows_carry_no_action(mixture_file):
    from glam_lerobot.world_model.data import TransitionDataset

    srcs = sources(mixture_file)
    assert [s.role for s in srcs] == ["target", "auxiliary"]
    assert set(srcs[1].images) == {"overhead", "front"}  # top/side renamed by the mixture
    ds = TransitionDataset(srcs, ("overhead", "front"), "rgb", 32)
    assert len(ds) == 4 * 9 + 3 * 8  # one transition fewer than frames per episode
    batch = ds.__getitems__(list(range(len(ds))))
    assert batch["images_t"].shape == (60, 6, 32, 32) and batch["images_t"].dtype == torch.uint8
    aux = batch["is_target"] == 0
    assert int(aux.sum()) == 24 and batch["action"][aux].abs().sum() == 0 and batch["state_t"][aux].abs().sum() == 0
    src = srcs[0]
    rows = src.transition_rows()
    assert (src.episode_index[rows] == src.episode_index[rows + 1]).all()


def test_model_shapes_loss_finite_and_decreasing():
    from glam_lerobot.world_model.glam import GLAM, GLAMConfig

    torch.manual_seed(0)
    model = GLAM(GLAMConfig(image_size=32))
    assert model.encoder.out.out_features == 128 and len(model.idm.net.blocks) == 5
    assert len(model.action_encoder.net.blocks) == 5 and len(model.forward_model.trunk.blocks) == 4
    batch = _batch(8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    history = []
    for _ in range(30):  # the alignment first pulls the IDM away from the forward model's optimum, then both improve
        loss, terms = model(batch)
        assert all(np.isfinite(v) for v in terms.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(terms)
    first, last = history[0], history[-1]
    for term in ("recon", "forward_idm", "forward_enc", "proprio", "action"):  # every prediction term improves
        assert last[term] < first[term], term
    # the alignment KL first grows while the action encoder sharpens its posterior, then the IDM catches up
    assert last["align"] < max(h["align"] for h in history) and last["loss"] < max(h["loss"] for h in history)
    z = model.infer_latents(batch["images_t"], batch["ee_t"], batch["images_next"], batch["ee_next"])
    assert z.shape == (8, 8)
    assert model.decode_action(z).shape == (8, 8)


def test_alignment_term_sends_no_gradient_into_the_action_encoder():
    """Eq. 5's stop-gradient: adding lambda * KL(q_IDM || sg(q_enc)) changes the IDM's gradient, not the encoder's."""
    from glam_lerobot.world_model.glam import GLAM, GLAMConfig

    torch.manual_seed(0)
    model = GLAM(GLAMConfig(image_size=32))
    batch = _batch(6)
    grads = {}
    for weight in (0.0, 1.0):
        model.config.align_weight = weight
        torch.manual_seed(0)  # the same posterior samples in both passes
        loss, terms = model(batch)
        model.zero_grad()
        loss.backward()
        grads[weight] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert terms["align"] > 0
    for name, g in grads[0.0].items():
        if name.startswith("action_encoder."):
            torch.testing.assert_close(grads[1.0][name], g)  # the alignment term moved nothing here
    idm_change = sum((grads[1.0][n] - g).abs().sum() for n, g in grads[0.0].items() if n.startswith("idm."))
    assert idm_change > 0  # ...but it does pull the IDM


def test_align_feature_grad_scales_the_alignment_gradient_into_the_image_encoder_only():
    """--align-feature-grad g: the alignment term's gradient into the image encoder is g times the full one; the
    IDM's is unchanged (same values, only the path into y is scaled)."""
    from glam_lerobot.world_model.glam import GLAM, GLAMConfig

    batch = _batch(6)
    grads = {}
    for g in (1.0, 0.1, 0.0):
        torch.manual_seed(0)
        model = GLAM(GLAMConfig(image_size=32, align_feature_grad=g))
        torch.manual_seed(1)
        align = model.loss_terms(batch)["align"]
        model.zero_grad()
        align.backward()
        grads[g] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    enc = [n for n in grads[1.0] if n.startswith("encoder.")]
    assert enc and all(n not in grads[0.0] or grads[0.0][n].abs().max() == 0 for n in enc)
    for n in enc:
        torch.testing.assert_close(grads[0.1][n], 0.1 * grads[1.0][n], rtol=1e-3, atol=1e-6)
    for n in (n for n in grads[1.0] if n.startswith("idm.")):
        torch.testing.assert_close(grads[0.1][n], grads[1.0][n])
        torch.testing.assert_close(grads[0.0][n], grads[1.0][n])


def test_image_shift_moves_both_frames_of_a_transition_together_and_only_in_training():
    from glam_lerobot.world_model.glam import GLAM, GLAMConfig, random_shift

    torch.manual_seed(0)
    frames = torch.zeros(4, 1, 16, 16, dtype=torch.uint8)
    frames[:, :, 6:9, 6:9] = 255  # an object at the centre, one pixel to the right in the next frame
    following = torch.roll(frames, 1, dims=-1)
    shifted_t, shifted_next = random_shift(frames, following, 3)
    for a, b in zip(shifted_t, shifted_next, strict=True):
        ys, xs = torch.nonzero(a[0] > 0, as_tuple=True)
        ys2, xs2 = torch.nonzero(b[0] > 0, as_tuple=True)
        assert len(xs) == 9 and torch.equal(ys, ys2) and torch.equal(xs + 1, xs2)  # the motion is kept
    centres = {(int(torch.nonzero(a[0])[0, 0]), int(torch.nonzero(a[0])[0, 1])) for a in shifted_t}
    assert len(centres) > 1  # ... and where the scene sits changes

    model = GLAM(GLAMConfig(image_size=32, image_shift=4))
    batch = _batch(6)
    model.eval()
    with torch.no_grad():
        z1 = model.infer_latents(batch["images_t"], batch["ee_t"], batch["images_next"], batch["ee_next"])
        torch.manual_seed(5)
        recon_eval = model.loss_terms(batch)["recon"]
        torch.manual_seed(5)
        model.train()
        recon_train = model.loss_terms(batch)["recon"]
    z2 = model.infer_latents(batch["images_t"], batch["ee_t"], batch["images_next"], batch["ee_next"])
    torch.testing.assert_close(z1, z2)  # inference reads the frames as they are
    assert recon_train != recon_eval  # training sees shifted frames


def test_train_is_deterministic_resumable_and_writes_a_model_folder(mixture_file, tmp_path):
    from glam_lerobot.world_model.checkpoint import load_world_model

    out = cli(*train_args(mixture_file, tmp_path / "a", 4))
    assert "samples/s" in out
    cli(*train_args(mixture_file, tmp_path / "b", 4))
    a = (tmp_path / "a" / "losses.jsonl").read_text()
    assert a == (tmp_path / "b" / "losses.jsonl").read_text()  # same seed, same losses
    rows = [json.loads(line) for line in a.splitlines()]
    assert rows[-1]["step"] == 4 and all(np.isfinite(r["loss"]) for r in rows)
    # an interrupted run (2 steps) resumed to 4 logs exactly what the uninterrupted one did
    cli(*train_args(mixture_file, tmp_path / "c", 2))
    cli(*train_args(mixture_file, tmp_path / "c", 4, "--resume"))
    assert (tmp_path / "c" / "losses.jsonl").read_text() == a
    for name in ("model.safetensors", "config.json", "training_curve.png", "README.md"):
        assert (tmp_path / "a" / name).is_file(), name
    model, config = load_world_model(tmp_path / "a")
    assert config["model"]["cameras"] == ["overhead", "front"] and config["training"]["step"] == 4
    assert [s["role"] for s in config["sources"]] == ["target", "auxiliary"]
    assert float(model.ee_pose_std.min()) > 0  # normalisation statistics travel with the weights
    # a different seed gives different losses
    cli(*train_args(mixture_file, tmp_path / "d", 1, "--seed", "1"))
    assert (tmp_path / "d" / "losses.jsonl").read_text().splitlines()[0] != a.splitlines()[0]


def test_glam_o_reads_the_mask_columns(mixture_file, tmp_path):
    from glam_lerobot.world_model.checkpoint import load_world_model

    cli(*train_args(mixture_file, tmp_path / "o", 2, "--input", "masks", "--latent-dim", "16"))
    model, config = load_world_model(tmp_path / "o")
    assert config["model"]["input"] == "masks" and model.encoder.conv[0].in_channels == 2
    assert model.config.latent_dim == 16


def test_bad_input_is_refused_with_a_clear_message(mixture_file, tmp_path):
    from glam_lerobot.cli import app

    runner = CliRunner()
    cli(*train_args(mixture_file, tmp_path / "run", 1))
    again = runner.invoke(app, train_args(mixture_file, tmp_path / "run", 2))
    assert again.exit_code == 1 and "--resume" in again.output
    nothing = runner.invoke(app, train_args(mixture_file, tmp_path / "empty-run", 2, "--resume"))
    assert nothing.exit_code == 0  # an empty/new folder with --resume simply starts
    # a mixture whose auxiliary dataset has no masks, trained with --input masks
    base = mixture_file.parent
    if not (base / "umi-nomask").exists():
        write_dataset(
            base / "umi-nomask",
            "test/umi-nomask",
            10,
            synthetic.features(32, robot=False),
            [synthetic.job(0, length=5, robot=False)],
            synthetic.produce,
        )
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "name": "bad",
                "target": [{"repo_id": "test/kinova", "root": str(base / "kinova")}],
                "auxiliary": [{"repo_id": "test/umi-nomask", "root": str(base / "umi-nomask")}],
            }
        )
    )
    res = runner.invoke(app, train_args(bad, tmp_path / "bad-run", 2, "--input", "masks"))
    assert res.exit_code == 1 and "test/umi-nomask" in res.output and "mask" in res.output
    assert not (tmp_path / "bad-run" / "model.safetensors").exists()


def _batch(b: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "images_t": torch.randint(0, 255, (b, 6, 32, 32), dtype=torch.uint8, generator=g),
        "images_next": torch.randint(0, 255, (b, 6, 32, 32), dtype=torch.uint8, generator=g),
        "ee_t": torch.randn(b, 10, generator=g),
        "ee_next": torch.randn(b, 10, generator=g),
        "state_t": torch.randn(b, 8, generator=g),
        "state_next": torch.randn(b, 8, generator=g),
        "action": torch.randn(b, 8, generator=g),
        "is_target": (torch.arange(b) % 2 == 0).float(),
    }
