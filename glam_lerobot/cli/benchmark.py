"""CLI for the benchmark stage: the paper's comparison (Figure 3, Figure 4, Table 1) in the simulator."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    app.command("benchmark")(benchmark)


def benchmark(
    task: str = typer.Option(
        "lift",
        help="simulated task: lift | pick_place | knock_down | stack_two | stack_three "
        "(lift is the one policies learn at the cpu scale; the paper's stack_two "
        "needs --scale paper)",
    ),
    methods: str = typer.Option(
        "mip,clam,lapa,glam,glam_o", help="comma-separated: mip, clam, clam_o, lapa, lapa_o, glam, glam_o, glam_o_3src"
    ),
    seeds: int = typer.Option(3, help="training seeds per method (the paper: 3)"),
    scale: str = typer.Option(
        "cpu",
        help="paper (paper data sizes, for a GPU), cpu (about an hour per seed on 2 cores "
        "with --jobs 2 for lift), starved (10 target episodes, the regime of the paper's Figure 4), "
        "starved_long (the same, 5k policy steps), small or "
        "micro (plumbing smoke test); defined in glam_lerobot/benchmark.py SCALES",
    ),
    output: Path = typer.Option(Path("benchmark"), help="output folder (runs are cached here: rerun to resume)"),
    scaling: bool = typer.Option(
        False,
        "--scaling",
        help="also the data-scaling curves (Figure 4): MIP with more "
        "target episodes vs GLAM-O with more auxiliary episodes",
    ),
    jobs: int = typer.Option(
        1,
        min=1,
        help="runs trained at the same time, each in its own process with the "
        "scale's torch threads (cpu scale: 1 thread, so --jobs 2 on 2 cores)",
    ),
    data_dir: Path = typer.Option(
        None, help="where the recorded datasets live (shared between outputs) \\[default: OUTPUT/data]"
    ),
    finished_only: bool = typer.Option(
        False,
        "--finished-only",
        help="train nothing: write the tables and plots from the runs already finished in OUTPUT "
        "(while another benchmark still trains there, or after one was stopped) and list the missing ones",
    ),
    resume_from: Path = typer.Option(
        None,
        exists=True,
        dir_okay=False,
        help="an earlier report's results.json (e.g. benchmarks/results/lift-starved/): its finished runs count "
        "as done in OUTPUT, so that a fresh machine adds seeds or methods without retraining them; the data is "
        "recorded again and must match the report's episode and frame counts",
    ),
) -> None:
    """Train every method on the same simulated data and evaluate each on held-out seeds.

    Records (or reuses) Kinova target and UMI auxiliary episodes with `sim record` into DATA_DIR, then per method
    and seed: train-wm (glam/clam/lapa, RGB or masks) -> relabel -> lerobot-train (glam_mip, or mip for the MIP
    baseline) -> lerobot-eval on glam_kinova. Each step is cached in OUTPUT/runs/<run>/seed-<s>/ and skipped when
    complete. Writes OUTPUT/results.md (table), success_rates.png (95% Wilson bars; Newcombe-Wilson interval of
    GLAM-O minus the best baseline), results.json (every number), and with --scaling scaling.png.
    """
    from rich.console import Console
    from rich.markup import escape

    from glam_lerobot.benchmark import check_request, run_benchmark, summary_lines

    console = Console(stderr=True)
    names = [m.strip() for m in methods.split(",") if m.strip()]
    try:
        check_request(task, names, seeds, scale)
        report = run_benchmark(
            task,
            names,
            seeds,
            scale,
            output,
            scaling=scaling,
            data_dir=data_dir,
            jobs=jobs,
            finished_only=finished_only,
            resume_from=resume_from,
            log=lambda msg: console.print(f"[dim]{escape(msg)}[/]"),
        )
    except (ValueError, FileExistsError, FileNotFoundError, RuntimeError) as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from None
    for line in summary_lines(report, output):
        typer.echo(line)
