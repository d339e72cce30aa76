"""Alignment diagnostics: does a world model give the same latent to the same motion from two sources?

Judge a world model here before training a policy on its latents. The probe is a set of *same-seed pairs*:
simulated Kinova and UMI episodes recorded from the same seeds (`sim record --seed S` on both embodiments),
which start from the same scene and whose experts move the same way (equal lengths, no time offset, ~5 mm
apart). Step t of one is the same motion as step t of the other, so a grounded latent space puts them together.
The pairs must be unseen by the world model (record them from seeds outside the training range).

Measured per auxiliary source, against the paired target (Kinova) transitions:
- `distance_ratio`: mean ||z_aux(t) - z_tgt(t)|| over paired steps / mean distance between random transitions
  of the two sources (1 = no agreement, 0 = identical latents);
- `retrieval`: for each aux step t, is the nearest of the target latents *at step t* (one per pair episode) the
  one of its own pair? `retrieval_chance` is what guessing gets (1 / number of candidates);
- `action_error`: RMS error (standardised action units) of the action decoded from the aux latent against the
  paired Kinova's real relative action; `action_error_target` is the same for the Kinova's own IDM latent and
  `action_error_encoder` for the action encoder's (the best the decoder can do);
- `image_content`: how far the latent moves when only the images change (each source's frames replaced by those
  of another pair, i.e. another scene, at the same step; pose kept), over the random distance: ~0 means the IDM
  ignores images. This is the gate's image check;
- `image_swap`: the same with the aux frames replaced by the paired Kinova frames (and back): how much the latent
  depends on which embodiment the images show. Reported, not gated: an embodiment-agnostic input (GLAM-O's
  object masks) keeps it small by design, and the benchmark's GLAM-O models measured 0.045-0.054 here against an
  image_content of 0.35-0.38, so gating on it failed models whose image path was alive;
- `replay` (optional, runs the simulator): decode each aux episode's latents into Kinova actions and execute them
  open-loop from the pair's seed (transfer.decode_latents_to_kinova); success per source, beside the target's
  own IDM latents and the action encoder's latents, whose success is the reference (the target IDM's for a model
  without an action encoder, CLAM);
- `grad_norms`: per weighted loss term, the gradient norm it sends into the IDM and the image encoder on a batch
  of pair transitions (a term 10^4x larger than the others drowns them).

`gate(report)` turns these into pass/fail checks with the thresholds below.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from glam_lerobot import provenance, schema
from glam_lerobot.world_model import data as wm_data
from glam_lerobot.world_model.relabel import idm_latents

# The gate (issue: "GLAM that works"): written once, here.
GATE = {
    "distance_ratio_max": 0.1,
    "retrieval_min": 0.9,
    "replay_share_min": 0.8,  # aux replay success / the action encoder's (CLAM: the target IDM's) replay success
    "image_content_min": 0.05,  # latent movement when only the images change (another scene), / random distance
    # decoded-action RMS error in standardised units (1 = no better than predicting the mean action). Needed
    # beside the distance ratio: same-seed pairs sit ~5 mm apart, so even an untrained IDM that only echoes the
    # pose gives them close latents; only decoding the motion shows that the latent is an action.
    "action_error_max": 0.3,
}


@dataclass
class Pair:
    seed: int
    target_rows: np.ndarray  # transition rows t (t -> t+1) in the target source
    aux_rows: np.ndarray  # the same steps in the auxiliary source


@dataclass
class PairSet:
    target: wm_data.Source
    aux: dict[str, tuple[wm_data.Source, list[Pair]]] = field(default_factory=dict)
    task: str | None = None


def _episodes_by_seed(source: wm_data.Source) -> dict[int, tuple[int, int]]:
    meta = provenance.read(source.root)
    seeds = meta.get("episode_seeds")
    if seeds is None:
        raise ValueError(
            f"{source.root}/meta/glam.json: no 'episode_seeds': diagnostics need simulated episodes "
            "recorded from known seeds (`glam-lerobot sim record --seed S`)"
        )
    return {int(seeds[ep]): (a, b) for ep, a, b in source.episode_bounds() if ep < len(seeds)}


def load_pairs(
    target_root: Path | str, aux_roots: list[Path | str], input_kind: str, camera_map: dict[str, str] | None = None
) -> PairSet:
    """Match episodes of the target pair dataset and each auxiliary one by seed."""
    target_root = Path(target_root)
    target = wm_data.load_source(
        target_root,
        provenance.read(target_root).get("repo_id", target_root.name),
        "target",
        None,
        input_kind,
        camera_map,
        progress=False,
    )
    by_seed = _episodes_by_seed(target)
    out = PairSet(target=target, task=provenance.read(target_root).get("task"))
    for root in map(Path, aux_roots):
        name = provenance.read(root).get("repo_id", root.name)
        if name in out.aux or name == target.name:
            name = f"{name} ({root})"
        src = wm_data.load_source(root, name, "auxiliary", None, input_kind, camera_map, progress=False)
        pairs = []
        for seed, (a, b) in _episodes_by_seed(src).items():
            if seed in by_seed:
                ta, tb = by_seed[seed]
                steps = min(b - a, tb - ta) - 1  # transitions both episodes have
                if steps > 0:
                    pairs.append(Pair(seed, ta + np.arange(steps), a + np.arange(steps)))
        if len(pairs) < 2:
            raise ValueError(
                f"{root}: {len(pairs)} episode(s) share a seed with {target_root}; diagnostics need at "
                "least 2 same-seed pairs (record both embodiments with the same --seed)"
            )
        out.aux[name] = (src, pairs)
    return out


def _other_pair_rows(rows: list[np.ndarray]) -> np.ndarray:
    """For each transition of pair i at step t, the row of pair i + 1 (cyclically) at step t, or its last step if it
    is shorter: the same source and time in another scene."""
    out = []
    for i, r in enumerate(rows):
        other = rows[(i + 1) % len(rows)]
        out.append(other[np.minimum(np.arange(len(r)), len(other) - 1)])
    return np.concatenate(out)


def _rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(((a - b) ** 2).mean(-1)).mean())


def diagnose(model, pairs: PairSet, replay: bool = False, grad_batch: int = 64, seed: int = 0) -> dict:
    """The alignment report of `model` on `pairs` (see the module docstring). Plain dict, JSON-ready."""
    was_training = model.training
    model.eval()
    tgt = pairs.target
    has_decoder = hasattr(model, "action_decoder")
    has_encoder = hasattr(model, "action_encoder")
    report: dict = {"model": model.config.model, "input": model.config.input, "sources": {}}
    for name, (src, plist) in pairs.aux.items():
        t_rows = np.concatenate([p.target_rows for p in plist])
        a_rows = np.concatenate([p.aux_rows for p in plist])
        step = np.concatenate([np.arange(len(p.target_rows)) for p in plist])
        which = np.concatenate([np.full(len(p.target_rows), i) for i, p in enumerate(plist)])
        z_t = idm_latents(model, tgt, t_rows)
        z_a = idm_latents(model, src, a_rows)
        random_d = float(torch.cdist(torch.from_numpy(z_a), torch.from_numpy(z_t)).mean())
        same_d = float(np.linalg.norm(z_a - z_t, axis=1).mean())
        hits, chance = [], []
        for i in range(len(z_a)):
            cand = np.flatnonzero(step == step[i])
            if len(cand) < 2:
                continue
            nearest = cand[np.argmin(np.linalg.norm(z_t[cand] - z_a[i], axis=1))]
            hits.append(which[nearest] == which[i])
            chance.append(1.0 / len(cand))
        # image swap: the aux transitions with the paired Kinova frames (and the other way round), pose kept
        z_a_swap = idm_latents(model, src, a_rows, tgt, t_rows)
        z_t_swap = idm_latents(model, tgt, t_rows, src, a_rows)
        swap = 0.5 * (np.linalg.norm(z_a_swap - z_a, axis=1).mean() + np.linalg.norm(z_t_swap - z_t, axis=1).mean())
        # image content: each source's frames replaced by another pair's (another scene) at the same step, pose kept
        z_a_other = idm_latents(model, src, a_rows, src, _other_pair_rows([p.aux_rows for p in plist]))
        z_t_other = idm_latents(model, tgt, t_rows, tgt, _other_pair_rows([p.target_rows for p in plist]))
        content = 0.5 * (
            np.linalg.norm(z_a_other - z_a, axis=1).mean() + np.linalg.norm(z_t_other - z_t, axis=1).mean()
        )
        row = {
            "pairs": len(plist),
            "transitions": int(len(z_a)),
            "same_seed_distance": same_d,
            "random_distance": random_d,
            "distance_ratio": same_d / max(random_d, 1e-12),
            "retrieval": float(np.mean(hits)) if hits else float("nan"),
            "retrieval_chance": float(np.mean(chance)) if chance else float("nan"),
            "image_swap": float(swap) / max(random_d, 1e-12),
            "image_content": float(content) / max(random_d, 1e-12),
        }
        if has_decoder and tgt.action is not None:
            rel = schema.relative_action(tgt.action[t_rows], tgt.state[t_rows], model.config.arms)
            rel_n = model._norm("action", torch.from_numpy(rel)).numpy()

            def dec(z):
                return model.action_decoder(torch.from_numpy(z)).numpy()

            latents = {"aux": z_a, "target": z_t}
            with torch.no_grad():
                row["action_error"] = _rms(dec(z_a), rel_n)
                row["action_error_target"] = _rms(dec(z_t), rel_n)
                if has_encoder:
                    z_e = model.action_posterior(
                        torch.from_numpy(tgt.state[t_rows]), torch.from_numpy(tgt.action[t_rows])
                    )[0].numpy()
                    latents["encoder"] = z_e
                    row["action_error_encoder"] = _rms(dec(z_e), rel_n)
                    row["encoder_distance_ratio"] = float(np.linalg.norm(z_t - z_e, axis=1).mean()) / max(
                        random_d, 1e-12
                    )
            if replay:
                row["replay"] = _replay(model, pairs.task, tgt.root, plist, latents)
        report["sources"][name] = row
    if hasattr(model, "term_weights"):
        report["grad_norms"] = term_gradient_norms(model, pairs, grad_batch, seed)
    model.train(was_training)
    return report


def _replay(model, task: str | None, target_root: Path, plist: list[Pair], latents: dict[str, np.ndarray]) -> dict:
    """Open-loop Kinova replay of each pair's latents, for each kind in `latents` (aux, target IDM, action
    encoder): arrays over the concatenated transitions of `plist`, as `diagnose` computed them."""
    from glam_lerobot.world_model.transfer import decode_latents_to_kinova

    if task is None:
        raise ValueError(f"{target_root}/meta/glam.json: no 'task': replay needs the simulated task")
    out = {"episodes": len(plist), **dict.fromkeys(latents, 0)}  # CLAM has no action encoder: no "encoder"
    start = 0
    for p in plist:
        end = start + len(p.target_rows)
        for kind, z in latents.items():
            out[kind] += int(decode_latents_to_kinova(model, z[start:end], task, p.seed, None)["success"])
        start = end
    for kind in latents:
        out[f"{kind}_rate"] = out[kind] / max(len(plist), 1)
    return out


def term_gradient_norms(model, pairs: PairSet, size: int = 64, seed: int = 0) -> dict[str, dict[str, float]]:
    """{term: {"idm": norm, "image_encoder": norm}}: the gradient each weighted loss term sends into each part, as
    in training: on a copy in training mode (LAPA's quantiser passes no gradient to its IDM in eval mode, and in
    training mode it updates its codebook, which the model diagnosed must not see)."""
    model = copy.deepcopy(model).train()
    c = model.config
    sources = [pairs.target] + [s for s, _ in pairs.aux.values()]
    ds = wm_data.TransitionDataset(sources, c.cameras, c.input, c.image_size, c.arms)
    sampler = wm_data.StepBatchSampler(len(ds), size, 1, seed, is_target=ds.is_target(), target_fraction=0.5)
    batch = ds.__getitems__(next(iter(sampler)))
    parts = {"idm": list(model.idm.parameters()), "image_encoder": list(model.encoder.parameters())}
    torch.manual_seed(seed)
    terms = model.loss_terms(batch)
    out = {}
    for name, w in model.term_weights().items():
        term = w * terms[name]
        out[name] = {}
        for part, params in parts.items():
            if not term.requires_grad:
                out[name][part] = 0.0
                continue
            grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
            out[name][part] = float(
                torch.sqrt(sum((g.pow(2).sum() for g in grads if g is not None), torch.tensor(0.0)))
            )
    return out


def log_row(report: dict) -> dict:
    """The training log's line: the headline numbers per source, and the IDM gradient norm of each term."""
    row = {}
    for name, r in report["sources"].items():
        for k in ("distance_ratio", "retrieval", "image_content", "image_swap", "action_error"):
            if k in r:
                row[f"{name}/{k}"] = r[k]
    for term, g in report.get("grad_norms", {}).items():
        row[f"grad_idm/{term}"] = g["idm"]
    return row


def gate(report: dict, losses: list[dict] | None = None, warmup: int = 0) -> list[dict]:
    """Pass/fail checks of a report (and of the training log's alignment KL, when given)."""
    checks = []

    def check(name, value, ok, threshold):
        checks.append({"check": name, "value": value, "threshold": threshold, "passed": bool(ok)})

    for name, r in report["sources"].items():
        check(
            f"{name}: same-seed/random latent distance",
            r["distance_ratio"],
            r["distance_ratio"] <= GATE["distance_ratio_max"],
            f"<= {GATE['distance_ratio_max']}",
        )
        check(
            f"{name}: same-step retrieval",
            r["retrieval"],
            r["retrieval"] >= GATE["retrieval_min"],
            f">= {GATE['retrieval_min']:.0%}",
        )
        # reports written before image_content existed only have the paired swap
        image = r.get("image_content", r["image_swap"])
        check(
            f"{name}: image sensitivity (another scene's frames)",
            image,
            image >= GATE["image_content_min"],
            f">= {GATE['image_content_min']}",
        )
        if "action_error" in r:
            check(
                f"{name}: decoded-action error",
                r["action_error"],
                r["action_error"] <= GATE["action_error_max"],
                f"<= {GATE['action_error_max']}",
            )
        if "replay" in r:
            rp = r["replay"]
            # the reference: the action encoder's latents, or for a model without one (CLAM) the target IDM's own
            ref, label = ("encoder", "action encoder's") if "encoder" in rp else ("target", "target IDM's")
            check(
                f"{name}: replay success / {label}",
                rp["aux_rate"] / rp[f"{ref}_rate"] if rp[ref] else 0.0,
                rp[ref] > 0 and rp["aux_rate"] >= GATE["replay_share_min"] * rp[f"{ref}_rate"],
                f">= {GATE['replay_share_min']:.0%} ({ref} {rp[ref]}/{rp['episodes']})",
            )
    if losses:
        after = [r["align"] for r in losses if r["step"] >= warmup and "align" in r]
        if len(after) >= 4:
            k = max(len(after) // 4, 1)
            first, last = float(np.mean(after[:k])), float(np.mean(after[-k:]))
            check(
                "alignment KL falls after warm-up",
                last / max(first, 1e-12),
                last < first,
                "last quarter < first quarter",
            )
    return checks


def lines(report: dict, checks: list[dict]) -> list[str]:
    out = []
    for name, r in report["sources"].items():
        s = (
            f"{name} vs target ({r['pairs']} same-seed pairs, {r['transitions']} transitions): distance ratio "
            f"{r['distance_ratio']:.3f}, same-step retrieval {r['retrieval']:.0%} (chance "
            f"{r['retrieval_chance']:.0%}), image sensitivity {r['image_content']:.3f} (paired frames "
            f"{r['image_swap']:.3f})"
        )
        if "action_error" in r:
            s += (
                f", decoded-action error {r['action_error']:.3f} (target's own {r['action_error_target']:.3f}"
                + (f", encoder {r['action_error_encoder']:.3f}" if "action_error_encoder" in r else "")
                + ")"
            )
        out.append(s)
        if "replay" in r:
            rp = r["replay"]
            names = {"aux": "aux latents", "target": "target IDM", "encoder": "action encoder"}
            out.append(
                "  open-loop Kinova replay: "
                + ", ".join(f"{names[k]} {rp[k]}/{rp['episodes']}" for k in names if k in rp)
            )
    if "grad_norms" in report:
        g = report["grad_norms"]
        out.append(
            "gradient norms into IDM / image encoder: "
            + ", ".join(
                f"{k} {v['idm']:.3g}/{v['image_encoder']:.3g}" for k, v in g.items() if v["idm"] or v["image_encoder"]
            )
        )
    failed = [c for c in checks if not c["passed"]]
    out.append(
        f"alignment gate: {'PASSED' if not failed else 'FAILED'} ({len(checks) - len(failed)}/{len(checks)} checks)"
        + "".join(f"\n  FAIL {c['check']}: {c['value']:.3g} (want {c['threshold']})" for c in failed)
    )
    return out


def write(report: dict, checks: list[dict], output: Path | str) -> Path:
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    path = output / "diagnostics.json"
    path.write_text(json.dumps({**report, "gate": checks, "passed": all(c["passed"] for c in checks)}, indent=2) + "\n")
    return path
