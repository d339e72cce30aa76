"""The baselines of the paper, built from GLAM's modules: CLAM (action decoder on the IDM) and LAPA (NSVQ codes).

A user trains each with `glam-lerobot train-wm --method clam|lapa` on the same tiny mixture as the GLAM tests
(real LeRobot v3 datasets, 32x32), and the structural claims are checked on the models themselves.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_world_model import cli, frame_cache, mixture_file, sources, train_args  # noqa: F401  (shared fixtures)

from glam_lerobot.world_model import data as wm_data
from glam_lerobot.world_model.glam import GLAMConfig


def _batch(mixture_file, input_kind="rgb", n=12, seed=0):  # noqa: F811
    srcs = sources(mixture_file, input_kind)
    ds = wm_data.TransitionDataset(srcs, ("overhead", "front"), input_kind, 32)
    g = torch.Generator().manual_seed(seed)
    batch = ds.__getitems__(torch.randint(0, len(ds), (n,), generator=g).tolist())
    assert 0 < batch["is_target"].sum() < n  # both kinds of row
    return srcs, batch


def _model(method: str, srcs, input_kind="rgb"):
    from glam_lerobot.world_model.methods import build_model

    torch.manual_seed(0)
    model = build_model(GLAMConfig(input=input_kind, image_size=32, model=method, mlp_width=64, conv_width=8))
    model.set_stats(
        {k: {m: torch.from_numpy(v) for m, v in d.items()} for k, d in wm_data.compute_stats(srcs, 1).items()}
    )
    return model


def _decoder_input_depends_on_idm(model, batch) -> bool:
    """Run the training loss, catch what the action decoder reads, and ask autograd whether it depends on the IDM."""
    seen = []
    handle = model.action_decoder.register_forward_hook(lambda mod, inp, out: seen.append(inp[0]))
    model.loss(batch)
    handle.remove()
    assert seen, "the action decoder was not used by the loss"
    grads = torch.autograd.grad(seen[0].sum(), list(model.idm.parameters()), allow_unused=True)
    return any(g is not None and g.abs().sum() > 0 for g in grads)


def test_clam_action_loss_reaches_the_idm_but_glams_does_not(mixture_file):  # noqa: F811
    srcs, batch = _batch(mixture_file)
    clam, glam = _model("clam", srcs), _model("glam", srcs)
    assert _decoder_input_depends_on_idm(clam, batch)
    assert not _decoder_input_depends_on_idm(glam, batch)

    # CLAM's action term alone moves every IDM layer
    terms = clam.loss_terms(batch)
    grads = torch.autograd.grad(terms["action"], list(clam.idm.parameters()), allow_unused=True)
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
    # and CLAM has no target-model posterior: the IDM is its only posterior
    assert not hasattr(clam, "action_encoder") and not hasattr(clam, "proprio_forward")
    assert type(clam.encoder) is type(glam.encoder) and type(clam.forward_model) is type(glam.forward_model)


def test_clam_learns_from_target_rows_only(mixture_file):  # noqa: F811
    srcs, batch = _batch(mixture_file)
    clam = _model("clam", srcs)
    aux = batch["is_target"] < 0.5
    torch.manual_seed(3)
    before = clam.loss(batch)[0].item()
    noisy = {k: v.clone() for k, v in batch.items()}
    noisy["images_t"][aux] = 255 - noisy["images_t"][aux]
    noisy["ee_next"][aux] += 5.0
    torch.manual_seed(3)
    assert clam.loss(noisy)[0].item() == pytest.approx(before, rel=1e-6)


def test_nsvq_outputs_code_vectors_and_replaces_dead_codes():
    from glam_lerobot.world_model.lapa import NSVQ

    torch.manual_seed(0)
    vq = NSVQ(groups=2, codebook_size=4, code_dim=3)
    z = torch.randn(5, 6)
    vq.train()
    out, idx = vq(z)  # the first call starts the codes on encoder outputs
    # training: noise substitution keeps the quantisation error's norm, not the code itself
    q = vq.codebook.detach()[idx.reshape(-1)]
    np.testing.assert_allclose(
        (out.reshape(-1, 3) - z.reshape(-1, 3)).norm(dim=-1).detach(),
        (q - z.reshape(-1, 3)).norm(dim=-1),
        rtol=1e-5,
        atol=1e-6,
    )
    assert out.requires_grad and torch.autograd.grad(out.sum(), vq.codebook)[0].abs().sum() > 0
    vq.eval()
    hard, idx = vq(z)
    torch.testing.assert_close(hard.reshape(-1, 3), vq.codebook.detach()[idx.reshape(-1)])

    # a batch that uses one code only: at the 10th update the unused codes move onto encoder outputs
    vq.train()
    vq.recent_counts.zero_()
    vq.updates.zero_()
    same = vq.codebook.detach()[0].repeat(8, 2) + 1e-4 * torch.randn(8, 6)
    unused_before = vq.codebook.detach()[1:].clone()
    for _ in range(10):
        vq(same)
    assert not torch.allclose(vq.codebook.detach()[1:], unused_before)
    assert int(vq.code_counts.sum()) == 5 * 2 + 10 * 8 * 2  # every training token was counted


def test_perplexity_against_hand_values():
    from glam_lerobot.world_model.lapa import perplexity

    assert perplexity(torch.tensor([7.0, 0, 0, 0])) == pytest.approx(1.0)  # collapse
    assert perplexity(torch.tensor([2.0, 2, 2, 2])) == pytest.approx(4.0)  # uniform
    # p = (1/2, 1/4, 1/4): H = 1.5 ln 2 -> 2^1.5
    assert perplexity(torch.tensor([2.0, 1, 1, 0])) == pytest.approx(2**1.5)


def test_train_lapa_reports_codebook_usage_and_relabels_with_codes(mixture_file, tmp_path):  # noqa: F811
    from glam_lerobot.world_model.checkpoint import load_world_model
    from glam_lerobot.world_model.lapa import LAPA, codebook_usage

    out = cli(*train_args(mixture_file, tmp_path / "lapa", 4, "--method", "lapa", "--input", "masks"))
    assert "perplexity" in out and "codes_used" in out
    logged = [json.loads(line) for line in (tmp_path / "lapa" / "losses.jsonl").read_text().splitlines()]
    assert len(logged) == 4
    for row in logged:
        assert 1.0 <= row["perplexity"] <= 8.0 and 0 < row["codes_used"] <= 1.0
    model, config = load_world_model(tmp_path / "lapa")
    assert isinstance(model, LAPA) and config["model_type"] == "lapa" and config["model"]["input"] == "masks"
    usage = codebook_usage(model)
    assert sum(usage["counts"]) == 4 * 8 * 4  # steps x batch x tokens
    assert 0 < usage["fraction_used"] <= 1 and 1 <= usage["perplexity"] <= 8

    # relabel's latents are concatenations of codebook vectors
    srcs, batch = _batch(mixture_file, "masks")
    z = model.infer_latents(batch["images_t"], batch["ee_t"], batch["images_next"], batch["ee_next"])
    codes = model.quantizer.codebook.detach()
    tokens = z.reshape(-1, codes.shape[1])
    assert (tokens[:, None] - codes[None]).norm(dim=-1).min(-1).values.max() < 1e-6


def test_train_clam_cli_and_reload(mixture_file, tmp_path):  # noqa: F811
    from glam_lerobot.world_model.checkpoint import load_world_model
    from glam_lerobot.world_model.clam import CLAM

    cli(*train_args(mixture_file, tmp_path / "clam", 3, "--method", "clam"))
    model, config = load_world_model(tmp_path / "clam")
    assert isinstance(model, CLAM) and config["model_type"] == "clam"
    logged = [json.loads(line) for line in (tmp_path / "clam" / "losses.jsonl").read_text().splitlines()]
    assert {"action", "forward_idm", "recon"} <= set(logged[-1]) and "align" not in logged[-1]
    assert all(np.isfinite(r["loss"]) for r in logged)
