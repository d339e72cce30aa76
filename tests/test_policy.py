"""Stage-2 policies (`glam_mip`, `mip`): MIP by hand, Eq. 8's masking, and the plugin through stock LeRobot.

The datasets are tiny merged mixtures as `glam-lerobot relabel` writes them (canonical schema + `latent.chunk`,
`latent.chunk_is_pad`, `mixture.action_is_real`, `mixture.source`), written with glam_lerobot.writing at 32x32.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from glam_lerobot import schema, synthetic
from glam_lerobot.world_model.relabel import action_chunks

os.environ.setdefault("SVT_LOG", "1")  # the AV1 encoder's banner per episode buries the test output

CHUNK = 20
LATENT_DIM = 4
REPO = "test/mixture"


# --- a tiny relabelled mixture -------------------------------------------------------------------------------
def mixture_features(image_size: int = 32) -> dict:
    feats = schema.features(image_size=(image_size, image_size), robot=True)
    feats[schema.LATENT_CHUNK] = {"dtype": "float32", "shape": (CHUNK * LATENT_DIM,), "names": None}
    feats[schema.LATENT_CHUNK_IS_PAD] = {"dtype": "float32", "shape": (CHUNK,), "names": None}
    feats[schema.ACTION_CHUNK] = {"dtype": "float32", "shape": (CHUNK * schema.STATE_DIM_PER_ARM,), "names": None}
    feats[schema.ACTION_CHUNK_IS_PAD] = {"dtype": "float32", "shape": (CHUNK,), "names": None}
    feats[schema.ACTION_IS_REAL] = {"dtype": "float32", "shape": (1,), "names": None}
    feats[schema.SOURCE] = {"dtype": "int64", "shape": (1,), "names": None}
    return feats


def produce_mixture(job: dict) -> dict:
    """A synthetic episode as mixture frames; job["robot"] False makes it auxiliary (zero state/action filler)."""
    episode = synthetic.produce({**job, "robot": True})
    frames = episode["frames"]
    ee = frames[schema.EE_POSE]
    T = len(ee)
    # stand-in IDM latents: the ee motion to the next frame and the gripper (any per-frame signal will do here)
    motion = np.diff(np.concatenate([ee, ee[-1:]]), axis=0)
    latents = np.concatenate([motion[:, :3] * 10, ee[:, -1:]], axis=1).astype(np.float32)
    chunk, pad = np.zeros((T, CHUNK, LATENT_DIM), np.float32), np.ones((T, CHUNK), np.float32)
    for t in range(T):
        n = min(CHUNK, T - t)
        chunk[t, :n], pad[t, :n] = latents[t : t + n], 0.0
    frames[schema.LATENT_CHUNK], frames[schema.LATENT_CHUNK_IS_PAD] = chunk.reshape(T, -1), pad
    frames[schema.ACTION_IS_REAL] = np.full((T, 1), float(job["robot"]), np.float32)
    frames[schema.SOURCE] = np.full((T, 1), 0 if job["robot"] else 1, np.int64)
    if not job["robot"]:
        frames[schema.STATE] = np.zeros_like(frames[schema.STATE])
        frames[schema.ACTION] = np.zeros_like(frames[schema.ACTION])
    frames[schema.ACTION_CHUNK], frames[schema.ACTION_CHUNK_IS_PAD] = action_chunks(
        frames[schema.ACTION], np.zeros(T, np.int64), CHUNK
    )
    return episode


@pytest.fixture(scope="module")
def mixture(tmp_path_factory) -> Path:
    from glam_lerobot.writing import write_dataset

    root = tmp_path_factory.mktemp("policy") / "mixture"
    jobs = [
        synthetic.job(0, length=30, robot=True),
        synthetic.job(1, length=24, robot=True),
        synthetic.job(2, length=30, robot=False),
        synthetic.job(3, length=26, robot=False),
    ]
    write_dataset(root, REPO, schema.DEFAULT_FPS, mixture_features(), jobs, produce_mixture)
    return root


def _policy_and_batch(root: Path, policy_type: str = "glam_mip", batch_size: int = 8, seed: int = 0, **settings):
    """What lerobot-train does before the first step: dataset, policy, processors, one preprocessed batch."""
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.datasets.factory import resolve_delta_timestamps
    from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata
    from lerobot.policies.factory import make_policy, make_pre_post_processors

    import glam_lerobot.policies.register  # noqa: F401  (lerobot-train imports it through the plugin)

    torch.manual_seed(seed)
    cfg = PreTrainedConfig.get_choice_class(policy_type)(device="cpu", push_to_hub=False, **settings)
    meta = LeRobotDatasetMetadata(REPO, root=root)
    ds = LeRobotDataset(REPO, root=root, delta_timestamps=resolve_delta_timestamps(cfg, meta), video_backend="pyav")
    policy = make_policy(cfg, ds_meta=meta)
    pre, post = make_pre_post_processors(cfg, dataset_stats=meta.stats)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    return policy, pre, post, ds, pre(next(iter(loader)))


# --- MIP by hand ---------------------------------------------------------------------------------------------
class AffineNet(torch.nn.Module):
    """net(x, t, c) = 0.5 x + t + c: small enough to compute MIP's two calls by hand."""

    def forward(self, x, t, cond):
        return 0.5 * x + t[:, None, None] + cond[:, None, :]


def test_mip_loss_and_sampler_match_hand_computed_values():
    from glam_lerobot.policies.mip_core import mip_loss, mip_sample

    target = torch.full((1, 2, 3), 1.0)  # batch 1, chunk 2, 3 dims
    cond = torch.zeros(1, 3)
    noise = torch.full_like(target, 2.0)
    loss, pred1, parts = mip_loss(AffineNet(), target, cond, noise=noise, t_star=0.9)
    # step 1: x = 0, t = 0 -> prediction 0: per chunk step 3 dims * (0 - 1)^2 / 0.9^2
    # step 2: x = 1 + 0.1 * 2 = 1.2, t = 0.9 -> 0.6 + 0.9 = 1.5: 3 * (1.5 - 1)^2 / 0.1^2 = 75
    assert parts["mip_step0"] == pytest.approx(3 / 0.81, rel=1e-5)
    assert parts["mip_step1"] == pytest.approx(75.0, rel=1e-5)
    assert loss.item() == pytest.approx(3 / 0.81 + 75.0, rel=1e-5)
    assert torch.allclose(pred1, torch.full_like(target, 1.5))
    # padding: a mask that drops the second chunk step changes nothing here (both steps are equal) ...
    loss_masked, _, _ = mip_loss(AffineNet(), target, cond, torch.tensor([[1.0, 0.0]]), noise=noise, t_star=0.9)
    assert loss_masked.item() == pytest.approx(loss.item(), rel=1e-6)
    # ... but a masked step with a wild target is ignored entirely
    wild = target.clone()
    wild[0, 1] = 1e6
    loss_wild, _, _ = mip_loss(AffineNet(), wild, cond, torch.tensor([[1.0, 0.0]]), noise=noise, t_star=0.9)
    assert loss_wild.item() == pytest.approx(loss.item(), rel=1e-6)
    # sampler: call 1 -> 0.5 * 0 + 0 + c = c; call 2 -> 0.5 * c + 0.9 + c
    c = torch.tensor([[0.2, -0.4, 1.0]])
    out = mip_sample(AffineNet(), c, (2, 3), t_star=0.9)
    assert torch.allclose(out, (1.5 * c + 0.9)[:, None, :].expand(1, 2, 3))


def test_ema_follows_the_published_rule():
    from glam_lerobot.policies.mip_core import ema_decay, ema_update

    model, ema = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
        ema.weight.fill_(0.0)
    ema_update(ema, model, 0.995)
    assert ema.weight.item() == pytest.approx(0.005)
    assert ema_decay(0, 0.995, warmup=False) == 0.995
    assert ema_decay(0, 0.995) == pytest.approx(0.1) and ema_decay(10_000, 0.995) == 0.995


# --- Eq. 8 on a real mixture batch ---------------------------------------------------------------------------
def test_mixture_columns_reach_the_policy_and_aux_frames_never_touch_the_action_loss(mixture):
    policy, _, _, _, batch = _policy_and_batch(mixture, batch_size=16)
    real = batch[schema.ACTION_IS_REAL].reshape(-1)
    assert batch[schema.LATENT_CHUNK].shape == (16, CHUNK * LATENT_DIM)  # survived LeRobot's preprocessor
    assert batch[schema.ACTION_CHUNK].shape == (16, CHUNK * 8) and 0 < real.sum() < 16  # both kinds of frame
    assert policy.config.latent_dim == LATENT_DIM

    action = batch[schema.ACTION_CHUNK].clone().requires_grad_(True)
    state = batch[schema.STATE].clone().requires_grad_(True)
    torch.manual_seed(1)
    loss, parts = policy.forward({**batch, schema.ACTION_CHUNK: action, schema.STATE: state})
    assert torch.isfinite(loss) and parts["action_loss"] > 0 and parts["latent_loss"] > 0
    loss.backward()
    aux = real < 0.5
    assert action.grad[aux].abs().max() == 0 and state.grad[aux].abs().max() == 0
    assert action.grad[~aux].abs().sum() > 0 and state.grad[~aux].abs().sum() > 0
    # and garbage in the aux frames' filler does not change the loss
    torch.manual_seed(1)
    junk = batch[schema.ACTION_CHUNK].clone()
    junk[aux] = 1e4
    loss_junk, _ = policy.forward({**batch, schema.ACTION_CHUNK: junk, schema.STATE: batch[schema.STATE]})
    assert loss_junk.item() == pytest.approx(loss.item(), rel=1e-5)


@pytest.mark.parametrize("policy_type", ["glam_mip", "mip"])
def test_the_action_chunk_column_trains_exactly_like_lerobots_delta_query(mixture, policy_type):
    """Same weights, same batch: the loss from `chunk.action` equals the loss from the 20-step delta query."""
    losses = {}
    for column in (True, False):
        policy, _, _, _, batch = _policy_and_batch(
            mixture, policy_type=policy_type, batch_size=16, action_chunk_column=column
        )
        assert (schema.ACTION_CHUNK in batch) and batch[schema.ACTION].ndim == (2 if column else 3)
        torch.manual_seed(1)
        losses[column] = policy.forward(batch)[0].item()
    assert losses[True] == pytest.approx(losses[False], rel=1e-6)


def test_a_mixture_without_the_action_chunk_column_is_refused_with_the_way_out(mixture):
    policy, _, _, _, batch = _policy_and_batch(mixture, batch_size=4)
    batch.pop(schema.ACTION_CHUNK)
    with pytest.raises(KeyError, match="relabel again, or pass --policy.action_chunk_column=false"):
        policy.forward(batch)


def test_toolkit_columns_also_survive_a_preprocessor_reloaded_from_a_checkpoint(mixture, tmp_path):
    """lerobot-train --resume rebuilds the preprocessor from disk with LeRobot's own batch converter."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.policies.factory import make_pre_post_processors

    policy, pre, post, _, _ = _policy_and_batch(mixture, batch_size=2)
    pre.save_pretrained(tmp_path)
    post.save_pretrained(tmp_path)
    reloaded, _ = make_pre_post_processors(policy.config, pretrained_path=str(tmp_path))
    raw = torch.utils.data.default_collate(
        [LeRobotDataset(REPO, root=mixture, video_backend="pyav")[i] for i in (0, 40)]
    )
    out = reloaded(raw)
    for key in (schema.LATENT_CHUNK, schema.LATENT_CHUNK_IS_PAD, schema.ACTION_IS_REAL, schema.SOURCE):
        torch.testing.assert_close(out[key], raw[key])


def test_predicted_chunk_is_relative_to_the_state_at_the_chunk_start(mixture):
    policy, _, post, _, batch = _policy_and_batch(mixture, policy_type="mip", batch_size=2)
    policy.eval()
    one = {k: (v[:1] if torch.is_tensor(v) else v) for k, v in batch.items()}
    chunk = policy.predict_action_chunk(one)
    assert chunk.shape == (1, CHUNK, 8)
    # select_action executes n_action_steps of that one chunk, even if the state changes in between
    policy.reset()
    first = policy.select_action(one)
    later = [
        policy.select_action({**one, schema.STATE: one[schema.STATE] + 1.0})
        for _ in range(policy.config.n_action_steps - 1)
    ]
    assert torch.allclose(first, chunk[:, 0])
    assert torch.allclose(torch.stack(later, 1), chunk[:, 1 : policy.config.n_action_steps])
    assert post(first).shape == (1, 8)


# --- the plugin through stock lerobot-train -------------------------------------------------------------------
def _lerobot(cmd: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name(cmd)
    env = {**os.environ, "SVT_LOG": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


@pytest.mark.parametrize("policy_type", ["glam_mip", "mip"])
def test_stock_lerobot_train_then_saved_policy_acts_the_same_after_reload(mixture, tmp_path, policy_type, hub):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors

    import glam_lerobot.policies.register  # noqa: F401

    out = tmp_path / "run"
    _lerobot(
        "lerobot-train",
        f"--policy.type={policy_type}",
        f"--dataset.repo_id={REPO}",
        f"--dataset.root={mixture}",
        "--policy.push_to_hub=false",
        "--steps=3",
        "--batch_size=4",
        "--num_workers=0",
        "--log_freq=1",
        "--save_freq=3",
        f"--output_dir={out}",
        "--policy.device=cpu",
        "--policy.mip_blocks=2",
        cwd=tmp_path,
    )
    ckpt = out / "checkpoints" / "last" / "pretrained_model"
    config = json.loads((ckpt / "config.json").read_text())
    assert config["type"] == policy_type and config["chunk_size"] == CHUNK
    if policy_type == "glam_mip":
        assert config["latent_dim"] == LATENT_DIM

    policy = get_policy_class(policy_type).from_pretrained(ckpt)
    assert int(policy.ema_steps) == 3  # lerobot-train called update() after every step
    pre, post = make_pre_post_processors(policy.config, pretrained_path=str(ckpt))
    frame = LeRobotDataset(REPO, root=mixture, video_backend="pyav")[5]
    obs = {k: v for k, v in frame.items() if k.startswith("observation.")}
    policy.reset()
    actions = [post(policy.select_action(pre(dict(obs)))) for _ in range(3)]
    assert actions[0].shape == (1, 8) and all(torch.isfinite(a).all() for a in actions)

    policy.save_pretrained(tmp_path / "again")
    reloaded = get_policy_class(policy_type).from_pretrained(tmp_path / "again")
    reloaded.reset()
    again = [post(reloaded.select_action(pre(dict(obs)))) for _ in range(3)]
    for a, b in zip(actions, again, strict=True):
        torch.testing.assert_close(a, b)
    # the policy's own statistics came through the checkpoint (not the identity defaults)
    assert not torch.allclose(reloaded.action_norm.max, torch.ones(8))

    if policy_type == "glam_mip":
        # the checkpoint pushes as lerobot-train's --policy.push_to_hub does it, to the test Hub on loopback
        from lerobot.configs.train import TrainPipelineConfig

        repo_id = "tester/glam_mip-policy"
        train_cfg = TrainPipelineConfig.from_pretrained(ckpt)
        policy.config.repo_id = repo_id
        policy.push_model_to_hub(train_cfg)
        pre.push_to_hub(repo_id)
        post.push_to_hub(repo_id)
        pulled = get_policy_class(policy_type).from_pretrained(repo_id)
        pre_hub, post_hub = make_pre_post_processors(pulled.config, pretrained_path=repo_id)
        pulled.reset()
        from_hub = [post_hub(pulled.select_action(pre_hub(dict(obs)))) for _ in range(3)]
        for a, b in zip(actions, from_hub, strict=True):
            torch.testing.assert_close(a, b)
        # and stock lerobot-eval runs it in the simulator (env plugin glam_kinova)
        _lerobot(
            "lerobot-eval",
            f"--policy.path={ckpt}",
            "--env.type=glam_kinova",
            "--env.task=lift",
            "--env.image_size=32",
            "--env.episode_length=12",
            "--eval.n_episodes=1",
            "--eval.batch_size=1",
            f"--output_dir={tmp_path / 'eval'}",
            cwd=tmp_path,
        )
        info = json.loads((tmp_path / "eval" / "eval_info.json").read_text())
        assert info["overall"]["n_episodes"] == 1 and "pc_success" in info["overall"]


def test_glam_mip_refuses_a_dataset_without_latents(tmp_path):
    from glam_lerobot.writing import write_dataset

    root = tmp_path / "plain"
    write_dataset(
        root, "test/plain", schema.DEFAULT_FPS, synthetic.features(), [synthetic.job(0, length=24)], synthetic.produce
    )
    with pytest.raises(ValueError, match="latent.chunk"):
        _policy_and_batch(root)
    # mip (the BC baseline) trains on exactly this kind of target-only dataset
    policy, _, _, _, batch = _policy_and_batch(root, policy_type="mip", batch_size=4)
    loss, _ = policy.forward(batch)
    assert torch.isfinite(loss)


# --- DINOv2-S/14 from weights on disk -------------------------------------------------------------------------
def test_dinov2_encoder_loads_weights_with_the_official_key_names(tmp_path):
    from safetensors.torch import save_file

    from glam_lerobot.policies.backbone import Dinov2Encoder

    torch.manual_seed(0)
    source = Dinov2Encoder(image_size=28, depth=1)  # the real S/14 widths; one block keeps the test fast
    keys = set(source.state_dict())
    assert {
        "cls_token",
        "pos_embed",
        "patch_embed.proj.weight",
        "blocks.0.attn.qkv.weight",
        "blocks.0.ls1.gamma",
        "blocks.0.mlp.fc1.weight",
        "norm.weight",
    } <= keys
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(tmp_path / "dinov2.safetensors"))
    loaded = Dinov2Encoder(tmp_path / "dinov2.safetensors", image_size=28, depth=1)
    images = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(loaded(images), source(images))
    assert loaded(images).shape == (2, 384)
    with pytest.raises(FileNotFoundError, match="DINOv2 weights not found"):
        Dinov2Encoder(tmp_path / "missing.pth")
