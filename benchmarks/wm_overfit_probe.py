"""Does the IDM generalise, or memorise its target episodes? One world model, three decoded-action errors.

    uv run python benchmarks/wm_overfit_probe.py --world-model W --train KINOVA_TRAIN_ROOT --held-out KINOVA_PAIRS_ROOT

Decodes the IDM's latents with the model's own action decoder and reports the RMS error (in units of the action's
std) against the Kinova's real relative actions, on the training episodes and on held-out ones; the action
encoder's latents on the held-out ones (what the decoder can do); and a probe: a 2-layer MLP trained on the
training episodes to predict the encoder's latents from the pose and its change only (no images), decoded the same
way. A held-out IDM error far above both the training error and the probe's says the IDM memorises.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from glam_lerobot import schema
from glam_lerobot.world_model import data as wm_data
from glam_lerobot.world_model.checkpoint import load_world_model


def transitions(model, root: str):
    s = wm_data.load_source(root, root, "target", None, model.config.input, None, progress=False)
    r = s.transition_rows()
    with torch.no_grad():
        z_enc, _ = model.action_posterior(torch.from_numpy(s.state[r]), torch.from_numpy(s.action[r]))
        both = np.concatenate([r, r + 1])
        imgs = wm_data.gather_images(s, both, model.config.cameras, model.config.input, model.config.image_size)
        ee = torch.from_numpy(s.ee_pose[both])
        z_idm = model.infer_latents(imgs[: len(r)], ee[: len(r)], imgs[len(r) :], ee[len(r) :])
    pose = np.concatenate([s.ee_pose[r], s.ee_pose[r + 1] - s.ee_pose[r]], 1)
    return pose, z_enc.numpy(), z_idm.numpy(), schema.relative_action(s.action[r], s.state[r])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world-model", required=True)
    ap.add_argument("--train", required=True, help="the target dataset the world model trained on")
    ap.add_argument("--held-out", required=True, help="target episodes it never saw (e.g. the diagnostics pairs)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model, _ = load_world_model(args.world_model)
    x_tr, enc_tr, idm_tr, rel_tr = transitions(model, args.train)
    x_te, enc_te, idm_te, rel_te = transitions(model, args.held_out)

    def err(z, rel):
        with torch.no_grad():
            a = model.decode_action(torch.from_numpy(np.asarray(z, np.float32))).numpy()
        return float(np.sqrt((((a - rel) / model.action_std.numpy()) ** 2).mean()))

    m, s = x_tr.mean(0), x_tr.std(0) + 1e-6
    probe = torch.nn.Sequential(
        torch.nn.Linear(x_tr.shape[1], 256), torch.nn.GELU(), torch.nn.Linear(256, 256), torch.nn.GELU(),
        torch.nn.Linear(256, enc_tr.shape[1]),
    )  # fmt: skip
    opt = torch.optim.Adam(probe.parameters(), 1e-3, weight_decay=1e-4)
    xa, ya = torch.tensor((x_tr - m) / s, dtype=torch.float32), torch.tensor(enc_tr)
    for _ in range(2000):
        loss = (probe(xa) - ya).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        z_probe = probe(torch.tensor((x_te - m) / s, dtype=torch.float32)).numpy()
    print(f"IDM latents, training episodes:      {err(idm_tr, rel_tr):.3f}")
    print(f"IDM latents, held-out episodes:      {err(idm_te, rel_te):.3f}")
    print(f"encoder latents, held-out episodes:  {err(enc_te, rel_te):.3f}")
    print(f"pose-only probe, held-out episodes:  {err(z_probe, rel_te):.3f}")


if __name__ == "__main__":
    main()
