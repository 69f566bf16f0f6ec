"""The ``noisereg`` command: a thin shell over :mod:`noisereg.study`.

    noisereg --version | --install-completion | --show-completion   (completion for the shell in use)
    noisereg study [CONFIG | BUILTIN] [--list] [--out DIR] [--storage URL] [--device cpu|cuda]
                   [--workers N] [--heartbeat SECONDS] [--retry SECONDS] [--no-train] [--quiet]
    noisereg worker --storage URL --study NAME [--device cpu|cuda] [--processes N]
                    [--max-replicas N] [--heartbeat SECONDS] [--retry SECONDS] [--quiet]
    noisereg report RUN_DIR [--storage URL] [--study NAME]
    noisereg export RUN_DIR --to csv|parquet|tensorboard|mlflow [--out PATH] [--force] [--storage URL]
                    [--study NAME]
    noisereg robustness RUN_DIR [--storage URL] [--study NAME] [--sigma S] [--n N] [--n0 N0]
                        [--alpha A] [--inputs K] [--quiet]

Exit codes: 0 done; 1 a failure during the work (a cell's training failed, the run finished with
cells that failed, the database server stayed unreachable, or a file of the run directory could not
be written; finished cells are kept); 2 bad input: the study, its data, an option or the run
directory cannot be used (nothing was trained or stored); 130 interrupted (finished cells are kept;
rerun to resume). ``export`` writes all or nothing: 2 when ``--out`` exists without ``--force`` or
the target's package is missing, 1 when writing fails (``--out`` is left as it was). An error is one
line naming what failed (the key, the file, the cell);
``noisereg --debug ...`` (or ``NOISEREG_DEBUG=1``) also prints its traceback. Messages of the store
and the runner (a reconnection, a lost cell, a cell waited for) go to standard error. ``report`` and
``--list`` do not import torch from this module.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from noisereg import cli_output

__all__ = ["app", "main"]

app = typer.Typer(add_completion=True, no_args_is_help=True, help="Train with injected noise and measure what it does.")


def _print_version(value: bool) -> None:
    if value:
        from noisereg import __version__

        typer.echo(f"noisereg {__version__}")
        raise typer.Exit()


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"


class NoiseGeneratorChoice(str, Enum):
    philox = "philox"
    torch = "torch"


_RETRY_HELP = "Seconds to keep retrying a database server that cannot be reached (a restart) before giving up."


@app.callback()
def _options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Print the traceback of an error (also: NOISEREG_DEBUG=1).")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Train with injected noise and measure what it does."""
    cli_output.DEBUG["on"] = debug or os.environ.get("NOISEREG_DEBUG", "") not in ("", "0")


@app.command()
def study(
    config: Annotated[
        str | None, typer.Argument(help="A study TOML file or a built-in study name (default: case-study).")
    ] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the built-in studies and exit.")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Run directory (default: runs/<study name>).")] = None,
    storage: Annotated[
        str | None,
        typer.Option("--storage", help="SQLAlchemy URL of the Optuna storage (default: SQLite in the run directory)."),
    ] = None,
    device: Annotated[Device, typer.Option("--device", help="Where the engine trains.")] = Device.cpu,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Engine worker processes (default: the CPU count, at most 4).")
    ] = min(4, os.cpu_count() or 1),
    heartbeat: Annotated[
        int | None,
        typer.Option(
            "--heartbeat",
            min=1,
            help="Seconds between heartbeats of running cells (default 10); a cell silent for 3x this is retried.",
        ),
    ] = None,
    retry: Annotated[float | None, typer.Option("--retry", min=0, help=_RETRY_HELP + " (default 60)")] = None,
    no_train: Annotated[
        bool,
        typer.Option(
            "--no-train",
            help="Create the study in the storage and enqueue its cells for 'noisereg worker'; train nothing.",
        ),
    ] = False,
    noise_generator: Annotated[
        NoiseGeneratorChoice | None,
        typer.Option(
            "--noise-generator", help="What draws the noise on a CPU, in place of the file's noise_generator key."
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no table.")] = False,
) -> None:
    """Run a study (or resume it in its run directory), print the result table, write the report."""
    from noisereg.study.config import UserStudyConfig, builtin_topics, resolve_study

    console = cli_output.make_console(quiet)
    if list_:
        for topic, names in builtin_topics().items():
            cli_output.make_console(False).print(f"[bold underline]{topic}[/bold underline]", highlight=False)
            for name in names:
                cfg = resolve_study(name)
                first = re.split(r"\.\s", cfg.description, maxsplit=1)[0].rstrip(".")
                cli_output.make_console(False).print(
                    f"  [bold]{name}[/bold]: {first}. ({len(cfg.arms)} arms, {cfg.seeds} seeds)", highlight=False
                )
        return
    with cli_output.exit_codes("interrupted: finished cells are stored; run the same command again to resume"):
        with cli_output.deprecations():
            cfg = resolve_study(config)
        run_dir = out if out is not None else Path("runs") / cfg.name
        heartbeat = 10 if heartbeat is None else heartbeat
        retry = 60.0 if retry is None else retry
        if isinstance(cfg, UserStudyConfig):  # [model] names the user's factory: the same pipeline
            from noisereg.seeding import noise_generator_family, use_noise_generator
            from noisereg.study.model_file import enqueue_config, run_config

            family = noise_generator.value if noise_generator is not None else noise_generator_family()
            with use_noise_generator(family):
                if no_train:
                    cells, states = enqueue_config(
                        cfg,
                        run_dir,
                        storage=storage,
                        device=device.value,
                        heartbeat_interval=heartbeat,
                        retry_for=retry,
                        source=str(config),
                    )
                    cli_output.print_enqueued(console, cfg.name or run_dir.name, cells, states, run_dir)
                    return
                result = run_config(
                    cfg,
                    run_dir,
                    storage=storage,
                    workers=workers,
                    device=device.value,
                    heartbeat_interval=heartbeat,
                    retry_for=retry,
                    source=str(config),
                )
            cli_output.print_summary(console, result.summary, run_dir)
            return
        from noisereg.study.run.runner import enqueue_study, run_study

        if noise_generator is not None:
            cfg = cfg.model_copy(update={"noise_generator": noise_generator.value})
        if no_train:
            prep, store = enqueue_study(
                cfg, run_dir, storage=storage, heartbeat_interval=heartbeat, device=device.value, retry_for=retry
            )
            with store:
                states = store.unfinished()
            cli_output.print_enqueued(console, cfg.name, len(prep.cells), states, run_dir)
            return
        with cli_output.ProgressBar(console, quiet) as advance:
            summary = run_study(
                cfg,
                run_dir,
                storage=storage,
                device=device.value,
                workers=workers,
                progress=advance,
                heartbeat_interval=heartbeat,
                retry_for=retry,
            )
    cli_output.print_summary(console, summary, run_dir)


@app.command()
def worker(
    storage: Annotated[str, typer.Option("--storage", help="SQLAlchemy URL of the storage that holds the study.")],
    study_name: Annotated[str, typer.Option("--study", help="The study's name in the storage.")],
    device: Annotated[Device, typer.Option("--device", help="Where the engine trains.")] = Device.cpu,
    processes: Annotated[int, typer.Option("--processes", min=1, help="Engine processes of this worker.")] = 1,
    max_replicas: Annotated[
        int | None,
        typer.Option(
            "--max-replicas", min=1, help="Most replicas of compatible cells trained as one batch (default 128)."
        ),
    ] = None,
    heartbeat: Annotated[
        int,
        typer.Option("--heartbeat", min=1, help="Seconds between heartbeats; the same for every worker of a study."),
    ] = 10,
    retry: Annotated[float, typer.Option("--retry", min=0, help=_RETRY_HELP)] = 60.0,
    models: Annotated[
        Path | None,
        typer.Option(
            "--models",
            help="Directory for the trained weights (the study's <run dir>/models) so `noisereg robustness` can measure them.",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no closing line.")] = False,
) -> None:
    """Train waiting cells of a stored study until none is left (start as many as you like, anywhere)."""
    from noisereg.study.store import Store

    console = cli_output.make_console(quiet)
    with cli_output.exit_codes("interrupted: finished cells are stored; the cells in training went back to the queue"):
        from noisereg.study.run.workers import WORKER_MAX_REPLICAS, run_worker

        batch = WORKER_MAX_REPLICAS if max_replicas is None else max_replicas
        with (
            Store(storage, study_name, heartbeat_interval=heartbeat, retry_for=retry) as store,
            cli_output.ProgressBar(console, quiet) as advance,
        ):
            done = run_worker(
                store, device=device.value, workers=processes, max_replicas=batch, progress=advance, models_dir=models
            )
    console.print(
        f"worker: trained {len(done.trained)} cell(s); {len(done.unfinished)} of the study's cells without a result.",
        highlight=False,
    )
    if done.unfinished:
        raise cli_output.fail(
            f"cells without a result: {', '.join(sorted(done.unfinished))}; their errors are in the storage; "
            "enqueue them again with 'noisereg study CONFIG --storage URL --no-train'",
            1,
        )


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by 'noisereg study'.")],
    storage: Annotated[
        str | None, typer.Option("--storage", help="Storage URL, if not the run directory's own.")
    ] = None,
    study_name: Annotated[str | None, typer.Option("--study", help="Study name, if run.json is missing.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Do not print the table.")] = False,
) -> None:
    """Rebuild summary.json, summary.md, report.html and the plots from the stored results alone."""
    from noisereg.study.report import build_report

    with cli_output.exit_codes("interrupted: the report may be incomplete; run the same command again"):
        summary = build_report(run_dir, storage=storage, study=study_name)
    cli_output.print_summary(cli_output.make_console(quiet), summary, run_dir)


class ExportFormat(str, Enum):
    csv = "csv"
    parquet = "parquet"
    tensorboard = "tensorboard"
    mlflow = "mlflow"


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by 'noisereg study'.")],
    to: Annotated[
        ExportFormat,
        typer.Option(
            "--to",
            help="csv or parquet: a tidy table; tensorboard: scalars per cell and seed; mlflow: a run per cell "
            "(every stage: curves, finals, CV, certified accuracy).",
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Where to write (default: RUN_DIR/results.csv, results.parquet, tensorboard/ or mlruns/)."
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out with a fresh export.")] = False,
    storage: Annotated[
        str | None, typer.Option("--storage", help="Storage URL, if not the run directory's own.")
    ] = None,
    study_name: Annotated[str | None, typer.Option("--study", help="Study name, if run.json is missing.")] = None,
) -> None:
    """Export the stored results (no retraining), all or nothing: a failure leaves --out as it was.

    Exit 2 when the run, an option or the target cannot be used (--out exists without --force, a
    missing optional package); 1 when writing fails (a bug or a full disk: --debug shows the traceback).
    """
    from noisereg.study.export import ExportError, export_run
    from noisereg.study.report import read_run
    from noisereg.study.store import Store, StoreError

    default = {"csv": "results.csv", "parquet": "results.parquet", "tensorboard": "tensorboard", "mlflow": "mlruns"}
    target = out or run_dir / default[to.value]
    try:
        url, name = read_run(run_dir, storage, study_name)
        with Store(url, name) as store:
            written = export_run(store, to.value, target, force=force)
    except KeyboardInterrupt:
        raise cli_output.fail(f"interrupted: {target} was left as it was", 130) from None
    # not exit_codes: there any ValueError is the user's, and a bug inside the export (a ValueError
    # of zip or numpy) would read as a usage error
    except (StoreError, ExportError) as exc:
        raise cli_output.error(exc, 2) from None
    except Exception as exc:
        raise cli_output.error(exc, 1) from None
    Console().print(f"Exported: {written}")


@app.command()
def robustness(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by 'noisereg study'.")],
    storage: Annotated[
        str | None, typer.Option("--storage", help="Storage URL, if not the run directory's own.")
    ] = None,
    study_name: Annotated[str | None, typer.Option("--study", help="Study name, if run.json is missing.")] = None,
    sigma: Annotated[
        float | None, typer.Option("--sigma", help="Smoothing noise σ (robustness.smoothing.sigma).")
    ] = None,
    n: Annotated[
        int | None, typer.Option("--n", help="Estimation samples per certified input (robustness.smoothing.n).")
    ] = None,
    n0: Annotated[
        int | None, typer.Option("--n0", help="Selection samples per certified input (robustness.smoothing.n0).")
    ] = None,
    alpha: Annotated[
        float | None, typer.Option("--alpha", help="Certification level (robustness.smoothing.alpha).")
    ] = None,
    inputs: Annotated[
        int | None, typer.Option("--inputs", help="Test inputs certified per seed (robustness.smoothing.inputs).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Do not print the tables.")] = False,
) -> None:
    """Measure a study's stored models (calibration, corruptions, certified accuracy), rebuild the report."""
    from noisereg.study.measure.robustness import measure_run
    from noisereg.study.report.documents import robustness_tables

    given = {"sigma": sigma, "n": n, "n0": n0, "alpha": alpha, "inputs": inputs}
    smoothing = {k: v for k, v in given.items() if v is not None}
    console = cli_output.make_console(quiet)
    with cli_output.exit_codes("interrupted: the measurements finished so far are stored; run the same command again"):
        with console.status("measuring the stored models"):
            summary = measure_run(
                run_dir, storage=storage, study=study_name, changes={"smoothing": smoothing} if smoothing else None
            )
    for title, note, headers, rows in robustness_tables(summary):
        table = Table(title=title, caption=note)
        for i, header in enumerate(headers):
            table.add_column(header, justify="left" if i == 0 else "right", overflow="fold")
        for row in rows:
            table.add_row(*(Text(cell) for cell in row))
        console.print(table)
    console.print(f"Report: {run_dir / 'report.html'}")
    missing = summary["measured"]["without_models"]
    if missing:
        raise cli_output.fail(
            f"{len(missing)} cell(s) have no stored models in {run_dir / 'models'}: {', '.join(missing)}", 1
        )


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``) and return its exit code."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    messages = logging.StreamHandler(sys.stderr)  # this call's stderr: main may run many times in one process
    messages.setFormatter(logging.Formatter("noisereg: %(message)s"))
    logger = logging.getLogger("noisereg")
    logger.addHandler(messages)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        app(args=argv if argv is not None else sys.argv[1:], prog_name="noisereg")
    except SystemExit as exc:  # click's standalone mode ends every run with SystemExit
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        logger.removeHandler(messages)
        logger.setLevel(level)
    return 0
