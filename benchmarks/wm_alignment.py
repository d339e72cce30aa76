"""The world-model alignment experiment: one mixture, one seed, one budget, a variant per world-model choice, each
judged by the alignment diagnostics on unseen same-seed Kinova/UMI pairs (glam_lerobot/world_model/diagnose.py).

    uv run python benchmarks/wm_alignment.py --workdir runs/wm-alignment [--steps 1500] [--variants a,b,...]
        [--run LABEL:RUN_DIR ...] [--results benchmarks/results/wm-alignment] [--jobs 2]

Data (recorded once, with `glam-lerobot sim record`, 64 px, ground-truth masks): lift, 10 Kinova episodes
(seeds 0-9) + 20 UMI episodes (seeds 1000-1019) for training; 6 Kinova + 6 UMI episodes from seeds 5000-5005
as the held-out same-seed pairs. Every variant is one `glam-lerobot train-wm` call on that mixture, batch 32,
seed 0, one torch thread, with `--diagnose-target/--diagnose-aux` on the pairs (the final report includes
open-loop Kinova replay). A finished variant is reused. `--run LABEL:DIR` adds any other world-model folder (one
trained by an older commit, another seed), its command rebuilt from its config.json. Every row is judged by one
`glam-lerobot diagnose` on the pairs. Writes results.json, results.md (table + commands) and alignment.png.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

# name: (extra train-wm flags, what the variant tests)
VARIANTS = {
    "rgb": (["--input", "rgb"], "GLAM, every default"),
    "rgb_no_feature_norm": (["--input", "rgb", "--no-feature-norm"], "GLAM without the LayerNorm on y"),
    "rgb_pair_input": (["--input", "rgb", "--no-idm-delta"], "GLAM, IDM reads (x_t, x_t+1)"),
    "masks": (["--input", "masks"], "GLAM-O, every default"),
    "masks_pair_input": (["--input", "masks", "--no-idm-delta"], "GLAM-O, IDM reads (x_t, x_t+1)"),
    "masks_no_min_std": (["--input", "masks", "--min-std", "0"], "GLAM-O, no posterior std floor"),
    "masks_min_std_0.3": (["--input", "masks", "--min-std", "0.3"], "GLAM-O, posterior std floor 0.3"),
    "masks_uniform_batches": (["--input", "masks", "--target-fraction", "0"], "GLAM-O, uniform batches"),
    "masks_step_forward": (["--input", "masks", "--step-forward"], "GLAM-O, forward error in per-step units"),
    "rgb_step_forward": (["--input", "rgb", "--step-forward"], "GLAM, forward error in per-step units"),
    "masks_idm_dropout": (
        ["--input", "masks", "--idm-feature-dropout", "0.5"],
        "GLAM-O, dropout 0.5 on the IDM's image input",
    ),
    "masks_align_stops_at_idm": (
        ["--input", "masks", "--align-feature-grad", "0"],
        "GLAM-O, alignment does not train the image encoder",
    ),
    "masks_image_shift_4": (
        ["--input", "masks", "--image-shift", "4"],
        "GLAM-O, random-shift augmentation of the frames (up to 4 px, --image-shift 4)",
    ),
    "masks_align_feature_grad_0.1": (
        ["--input", "masks", "--align-feature-grad", "0.1"],
        "GLAM-O, 10% of the alignment gradient into the image encoder",
    ),
}
TRAIN = (10, 0)  # Kinova episodes, first seed
AUX = (20, 1000)  # UMI episodes, first seed
PAIRS = (24, 5000)  # held-out same-seed pairs (replay success out of 24: a 6-pair set was too noisy)


def sh(cmd: list[str], log: Path | None = None) -> None:
    print("$", shlex.join(cmd), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    with open(log, "w") if log else open(os.devnull, "w") as f:
        subprocess.run(cmd, check=True, env=env, stdout=f, stderr=subprocess.STDOUT)


def cli() -> list[str]:
    return [str(Path(sys.executable).with_name("glam-lerobot"))]


def record(work: Path) -> dict[str, Path]:
    data = {
        "kinova": ("kinova", *TRAIN),
        "umi": ("umi", *AUX),
        "kinova_pairs": ("kinova", *PAIRS),
        "umi_pairs": ("umi", *PAIRS),
    }
    roots = {}
    for name, (emb, n, seed) in data.items():
        root = work / "data" / f"{name}_lift"
        if not root.exists():
            sh(
                cli()
                + [
                    "sim",
                    "record",
                    "--embodiment",
                    emb,
                    "--task",
                    "lift",
                    "--episodes",
                    str(n),
                    "--seed",
                    str(seed),
                    "--root",
                    str(root),
                    "--image-size",
                    "64",
                    "--masks",
                    "--workers",
                    "1",
                ]
            )
        roots[name] = root
    mixture = work / "mixture.yaml"
    mixture.write_text(
        f"name: lift_kinova_umi\ntarget:\n  - {{repo_id: local/kinova_lift, root: {roots['kinova']}}}\n"
        f"auxiliary:\n  - {{repo_id: local/umi_lift, root: {roots['umi']}}}\n"
    )
    roots["mixture"] = mixture
    return roots


def run_name(name: str, seed: int) -> str:
    return name if seed == 0 else f"{name}_s{seed}"


def train(work: Path, roots: dict, name: str, steps: int, seed: int = 0) -> tuple[Path, str]:
    out = work / run_name(name, seed)
    cmd = cli() + [
        "train-wm",
        "--mixture",
        str(roots["mixture"]),
        "--output",
        str(out),
        "--steps",
        str(steps),
        "--batch-size",
        "32",
        "--threads",
        "1",
        "--seed",
        str(seed),
        "--save-every",
        str(steps),
        "--log-every",
        "50",
        "--diagnose-target",
        str(roots["kinova_pairs"]),
        "--diagnose-aux",
        str(roots["umi_pairs"]),
        "--diagnose-every",
        "250",
        *VARIANTS[name][0],
    ]
    if not (out / "diagnostics.json").is_file():
        if out.exists():
            raise SystemExit(f"{out} holds an unfinished run: remove it")
        sh(cmd, work / f"{out.name}.log")
    return out, shlex.join(["glam-lerobot", *cmd[1:]])


def diagnose(roots: dict, run: Path) -> Path:
    """`glam-lerobot diagnose` of `run` on the pairs (cached); the folder holding its diagnostics.json."""
    out = run.parent / "diagnose-pairs" / run.name
    if not (out / "diagnostics.json").is_file():
        sh(
            cli()
            + [
                "diagnose",
                "--world-model",
                str(run),
                "--target",
                str(roots["kinova_pairs"]),
                "--aux",
                str(roots["umi_pairs"]),
                "--output",
                str(out),
            ]
        )
    return out


def command_of(run: Path) -> str:
    """The train-wm call that made `run`, rebuilt from the settings its config.json records."""
    config = json.loads((run / "config.json").read_text())
    settings = dict(config["training"]["settings"])
    skip = {
        "diagnose_target",
        "diagnose_aux",
        "diagnose_every",
        "diagnose_replay",
        "num_workers",
        "save_every",
        "log_every",
        "image_size",
    }
    if "min_std" in settings:  # the model's own config says which options it was built with (absent = off)
        for k in ("feature_norm", "idm_delta", "step_forward"):
            settings[k] = bool(config["model"].get(k))
        if "align_into_features" in settings:  # the first version of --align-feature-grad (a bool)
            settings["align_feature_grad"] = 1.0 if settings.pop("align_into_features") else 0.0
        settings.setdefault("target_fraction", None)
    flags = []
    for k, v in settings.items():
        if k == "target_fraction" and v is None and "min_std" in settings:
            flags += ["--target-fraction", "0"]  # uniform batches
            continue
        if k in skip or v is None:
            continue
        flag = "--" + k.replace("_", "-")
        flags += ([flag] if v else [f"--no-{k.replace('_', '-')}"]) if isinstance(v, bool) else [flag, str(v)]
    return "glam-lerobot train-wm --mixture MIXTURE --output " + run.name + " " + " ".join(flags)


def row(label: str, run: Path, what: str, command: str, diag: Path) -> dict:
    d = json.loads((diag / "diagnostics.json").read_text())
    ((src, r),) = d["sources"].items()
    rp = r.get("replay", {})
    align = (
        [json.loads(line)["align"] for line in (run / "losses.jsonl").read_text().splitlines()[-5:]]
        if (run / "losses.jsonl").is_file()
        else []
    )
    g = d.get("grad_norms", {})
    others = max((v["idm"] for k, v in g.items() if k != "align"), default=0.0)
    return {
        "variant": label,
        "what": what,
        "command": command,
        "distance_ratio": r["distance_ratio"],
        "retrieval": r["retrieval"],
        "retrieval_chance": r["retrieval_chance"],
        "image_content": r.get("image_content"),  # absent from reports written before it existed
        "image_swap": r["image_swap"],
        "action_error_umi": r.get("action_error"),
        "action_error_kinova": r.get("action_error_target"),
        "action_error_encoder": r.get("action_error_encoder"),
        "replay_umi": rp.get("aux"),
        "replay_kinova": rp.get("target"),
        "replay_encoder": rp.get("encoder"),
        "replay_episodes": rp.get("episodes"),
        "grad_idm_align": g.get("align", {}).get("idm"),
        "grad_idm_largest_other": others,
        "align_kl_last": sum(align) / len(align) if align else None,
        "gate": d["gate"],
        "passed": d["passed"],
    }


def fmt(v, pct=False):
    if v is None:
        return "-"
    return f"{v:.0%}" if pct else f"{v:.3g}"


def write_results(rows: list[dict], out: Path, steps: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "# World-model alignment on lift (one seed, CPU)",
        "",
        f"Data: {TRAIN[0]} Kinova (seeds {TRAIN[1]}-{TRAIN[1] + TRAIN[0] - 1}) + {AUX[0]} UMI lift episodes, 64 px; "
        f"{steps} world-model steps (unless the row says otherwise) at batch 32, training seed in the row's name (none: 0); diagnostics on {PAIRS[0]} unseen same-seed Kinova/UMI pairs "
        f"(seeds {PAIRS[1]}-{PAIRS[1] + PAIRS[0] - 1}). Differences of a few points in retrieval or one replay "
        "episode are within one seed's noise: compare rows across seeds.",
        "",
        "| variant | distance ratio (gate <= 0.1) | same-step retrieval (>= 90%) | image sensitivity, another scene (>= 0.05) | paired "
        "image swap | decoded-action "
        "error UMI / Kinova / encoder (<= 0.3) | open-loop replay UMI / Kinova / encoder | grad into IDM: align / "
        "largest other | gate |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        n = r["replay_episodes"] or 0
        lines.append(
            f"| {r['variant']} | {fmt(r['distance_ratio'])} | {fmt(r['retrieval'], True)} (chance "
            f"{fmt(r['retrieval_chance'], True)}) | {fmt(r.get('image_content'))} | {fmt(r['image_swap'])} | "
            f"{fmt(r['action_error_umi'])} / "
            f"{fmt(r['action_error_kinova'])} / {fmt(r['action_error_encoder'])} | {r['replay_umi']}/{n} / "
            f"{r['replay_kinova']}/{n} / {r['replay_encoder']}/{n} | {fmt(r['grad_idm_align'])} / "
            f"{fmt(r['grad_idm_largest_other'])} | {'pass' if r['passed'] else 'FAIL'} |"
        )
    lines += ["", "Commands:", ""] + [f"- {r['variant']}: `{r['command']}`" for r in rows]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    _plot(rows, out / "alignment.png")
    print("\n".join(lines))


def _plot(rows: list[dict], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["variant"] for r in rows]
    fig, axes = plt.subplots(1, 5, figsize=(20, 3.8))
    panels = [
        ("distance_ratio", "same-seed / random distance", 0.1, "<="),
        ("retrieval", "same-step retrieval", 0.9, ">="),
        ("image_content", "image sensitivity (another scene)", 0.05, ">="),
        ("action_error_umi", "decoded UMI action error", 0.3, "<="),
        ("replay_share", "UMI replay / action encoder's replay", 0.8, ">="),
    ]
    for r in rows:
        r.setdefault("replay_share", (r["replay_umi"] or 0) / max(r["replay_encoder"] or 0, 1))
    for ax, (key, title, gate, side) in zip(axes, panels, strict=True):
        vals = [r.get(key) or 0 for r in rows]
        ax.barh(
            range(len(rows)),
            vals,
            color=["tab:green" if (v <= gate if side == "<=" else v >= gate) else "tab:red" for v in vals],
        )
        ax.axvline(gate, color="k", ls=":", lw=1)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels(names if ax is axes[0] else [""] * len(rows), fontsize=8)
        ax.set_title(f"{title} ({side} {gate})", fontsize=9)
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path("runs/wm-alignment"))
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--variants", default=",".join(VARIANTS), help="variants to train ('' for none)")
    ap.add_argument("--run", action="append", default=[], help="LABEL:RUN_DIR, an existing world-model folder")
    ap.add_argument("--results", type=Path, default=Path("benchmarks/results/wm-alignment"))
    ap.add_argument("--seeds", default="0", help="training seeds of each variant, e.g. 0,1,2")
    ap.add_argument("--jobs", type=int, default=1, help="variants trained side by side (one torch thread each)")
    args = ap.parse_args()
    work = args.workdir.resolve()
    roots = record(work)
    rows = []
    for spec in args.run:
        label, _, run = spec.partition(":")
        run = Path(run).resolve()
        rows.append(row(label, run, "an existing run", command_of(run), diagnose(roots, run)))
    names = [n for n in args.variants.split(",") if n]
    if bad := [n for n in names if n not in VARIANTS]:
        raise SystemExit(f"unknown variant(s) {bad}; choose from {', '.join(VARIANTS)}")
    from concurrent.futures import ThreadPoolExecutor

    jobs = [(n, int(seed)) for n in names for seed in args.seeds.split(",")]
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:  # each job is its own train-wm process
        runs = list(pool.map(lambda job: train(work, roots, job[0], args.steps, job[1]), jobs))
    rows += [
        row(run.name, run, VARIANTS[n][1] + (f", seed {seed}" if seed else ""), cmd, diagnose(roots, run))
        for (n, seed), (run, cmd) in zip(jobs, runs, strict=True)
    ]
    write_results(rows, args.results, args.steps)


if __name__ == "__main__":
    main()
