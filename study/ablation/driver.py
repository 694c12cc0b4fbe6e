"""An ablation's steps: `resolve` (every check, before Ray starts and before anything is written), then
`execute` (Ray, the rows in DIR/ablation.parquet as the folds finish, then DIR/ablation.json).

The fold tasks run on the study's per-trial resources; an interrupted ablation reruns only the folds it lacks.
Not here: the command line and the report it writes (study/ablate.py), the plan, the paired runs and the
statistics (effects.py).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from search_spaces import saved_space_setting
from study.ablation.effects import (
    ABLATION_FILE,
    ABLATION_SCHEMA,
    BASE,
    PRESETS,
    Variant,
    base_config,
    effects,
    effects_frame,
    parse_base,
    parse_vary,
    plan_variants,
    run_ablation,
)
from study.cli import EXIT_INTERRUPTED
from study.config import StudyConfig, saved_settings
from study.final.stage import FinalPlan
from study.final.stats import cv_estimate
from study.resources import check_resources, cluster_nodes, init_ray, tasks_at_once, trial_request
from study.results import SCHEMA_VERSION, STUDY_FILE, json_text, read_study, read_table, write_json, write_table
from trainables.data_settings import DataSettings, flat_settings
from trainables.files import exclusive_lock
from trainables.hparams import HParams
from trainables.settings import ConfigError

if TYPE_CHECKING:
    from trainables.inputs import StudyData

log = logging.getLogger(__name__)

ABLATION_JSON, DEFAULT_OUT, LOCK_FILE = "ablation.json", "ablation", ".lock"
DEFAULT_FOLDS, DEFAULT_PRESET = 5, "original"


class AblationInterrupted(Exception):
    """Stopped by Ctrl-C; the finished folds are in ablation.parquet and the same command resumes it."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self, out: Path, done: int, total: int, command: str):
        super().__init__(
            f"ablation interrupted after {done} of {total} fold runs; they are kept in {out / ABLATION_FILE}. "
            f"Resume with the same command: {command}"
        )


@dataclass(frozen=True, eq=False)
class Setup:
    """An ablation checked and ready to run: what it runs, on which data, where its files go."""

    out: Path
    study_name: str
    cfg: StudyConfig  # the study's settings, with this run's resources and Ray address
    variants: list[Variant]  # the base first
    repeats: int
    plan: FinalPlan  # folds, data seed, the fixed hyperparameters (seed, max_epochs, threads, device), resources
    data: StudyData  # the study's training and validation rows (never its test rows), unlabelled texts, vectors
    record: dict[str, Any]  # what the rows depend on; a rerun into `out` must have the same
    base_from: dict[str, Any]  # the final stage's winner it started from, and the --base changes
    done: pd.DataFrame  # rows already in ablation.parquet
    command: str  # the command line, for the resume hint


# ------------------------------------------------------------------------------------------ resolve


def study_settings(study: dict[str, Any], folder: Path, cpus: float | None, gpus: float | None) -> StudyConfig:
    """The study's settings as a StudyConfig (a file's space as study.json recorded it), with this run's resources
    where given."""
    settings = saved_settings(study.get("settings") or {}, f"study.json of {study.get('name')!r}")
    settings["space"] = saved_space_setting(settings.get("space", StudyConfig.space), folder / STUDY_FILE)
    cfg = StudyConfig.from_settings(**settings)
    changes = {"cpus_per_trial": cpus, "gpus_per_trial": gpus}
    return replace(cfg, **{k: v for k, v in changes.items() if v is not None})


def _base(study: dict[str, Any], folder: Path, changes: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The base's factors and where they came from: the final stage's winner (or none) with `changes` on top."""
    winner = (study.get("final") or {}).get("winner")
    if winner is None and not changes:
        raise ConfigError(
            f"{str(folder)!r} has no final stage (study.json has no `final` winner), so there is no winner to "
            "start from; give the base with `--base factor=value ...` (e.g. --base cell=lstm --base hidden_size=64), "
            "or run the study to its end first."
        )
    fixed = (study.get("space") or {}).get("fixed") or {}
    base = base_config(fixed, (winner or {}).get("params") or {}, changes)
    source = {"trial_id": winner.get("trial_id"), "rank": winner.get("rank")} if winner else None
    return base, {"winner": source, "changes": changes}


def _data(cfg: StudyConfig, study: dict[str, Any]) -> StudyData:
    """The study's data as it read it: labelled rows (training + validation, not its test rows), unlabelled texts."""
    from trainables.inputs import load_dataset, study_data

    ds = load_dataset(cfg)
    then = study.get("data") or {}
    now = {"n_train": len(ds.train), "n_valid": len(ds.valid)}
    changed = [f"{k} {then[k]} then, {v} now" for k, v in now.items() if k in then and then[k] != v]
    if changed:
        raise ConfigError(
            f"the data of study {study.get('name')!r} changed since it ran ({', '.join(changed)}); restore the files "
            f"it read ({ds.train_path})."
        )
    return study_data(ds, cfg)


def _previous(out: Path, record: dict[str, Any]) -> pd.DataFrame:
    """The rows an earlier run of the same plan left in `out` (none for a new folder).

    Raises:
        ConfigError: `out` is a file, holds something else, or holds an ablation of another plan.
    """
    if out.exists() and not out.is_dir():
        raise ConfigError(f"`--out` {str(out)!r} is a file; give a folder (it is created when missing).")
    info_path = out / ABLATION_JSON
    if info_path.is_file():
        try:
            old = json.loads(info_path.read_text(encoding="utf-8")).get("plan") or {}
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{str(info_path)!r} is not valid JSON ({e}); give another `--out`.") from None
        differ = [k for k in dict.fromkeys([*record, *old]) if old.get(k) != record.get(k)]
        if differ:
            raise ConfigError(
                f"`--out` {str(out)!r} holds an ablation of another plan (it differs in: {', '.join(differ)}); "
                "rerun its own command to resume it, or give another `--out`."
            )
    elif out.exists() and any(out.iterdir()):
        raise ConfigError(
            f"`--out` {str(out)!r} holds files but no {ABLATION_JSON}, so it is no ablation's folder; "
            "give a new or empty folder."
        )
    path = out / ABLATION_FILE
    return read_table(path, ABLATION_SCHEMA) if path.is_file() else pd.DataFrame(columns=ABLATION_SCHEMA.names)


def resolve(args: argparse.Namespace, command: str) -> Setup:
    """Check everything the ablation needs and plan it; nothing is written and Ray is not started.

    Raises:
        ConfigError, DataError, ResultsError: a bad argument, study folder, data file or `--out`.
    """
    from trainables.data import text_groups
    from trainables.folds import fold_indices

    folder = Path(args.folder)
    study = read_study(folder)
    cfg = replace(study_settings(study, folder, args.cpus_per_trial, args.gpus_per_trial), address=args.address)
    base, base_from = _base(study, folder, parse_base(args.base))
    preset = PRESETS[args.preset or DEFAULT_PRESET] if args.preset or not args.vary else {}
    variants = plan_variants(base, {**preset, **parse_vary(args.vary)})  # a factor in both: --vary's values
    if args.repeats < 1:
        raise ConfigError(f"`--repeats` must be >= 1, but got {args.repeats}.")
    max_epochs = cfg.max_epochs if args.max_epochs is None else args.max_epochs
    fixed = cfg.fixed_hparams(max_epochs=max_epochs)  # the base holds the space's fixed ones
    try:
        HParams.from_dict({**fixed, **base})
    except ValueError as e:
        raise ConfigError(f"`--max-epochs`: {e}") from None
    data = _data(cfg, study)
    labelled = data.labelled
    groups = text_groups(labelled, data.clean)
    for r in range(args.repeats):  # every repeat's folds can be split (`--folds` within the smallest class)
        fold_indices(labelled.labels, args.folds, cfg.data_seed + r, groups)
    plan = FinalPlan(
        len(variants), args.folds, cfg.data_seed, fixed, cfg.cpus_per_trial, cfg.gpus_per_trial, cfg.max_failures
    )
    record = {
        "study": study.get("name"),
        "base": base,
        "variants": [{"name": v.name, "factor": v.factor, "value": v.value} for v in variants[1:]],
        "folds": args.folds,
        "seed": cfg.seed,
        "data_seed": cfg.data_seed,
        "max_epochs": max_epochs,
        "data": flat_settings(cfg, DataSettings),
        "labelled_rows": len(labelled),
        "classes": list(labelled.classes),
    }
    record = json.loads(json_text(record))  # as ablation.json holds it: tuples as lists
    out = Path(args.out) if args.out else folder / DEFAULT_OUT
    done = _previous(out, record)
    name = str(study.get("name") or folder.name)
    return Setup(out, name, cfg, variants, args.repeats, plan, data, record, base_from, done, command)


# ------------------------------------------------------------------------------------------ execute


@contextlib.contextmanager
def _claimed(out: Path):
    """`out`, created when missing, locked against a second ablation writing into it at the same time."""
    out.mkdir(parents=True, exist_ok=True)
    lock = out / LOCK_FILE
    busy = f"`--out` {str(out)!r} is in use by another `study.ablate` process (lock {str(lock)!r}); wait for it to "
    with exclusive_lock(lock, lambda: ConfigError(busy + "finish or give another `--out`.")):
        yield


def current_rows(rows: pd.DataFrame, variants: list[Variant], repeats: int) -> pd.DataFrame:
    """The rows of this plan's variants and repeats, in the plan's order (the base first)."""
    order = {v.name: i for i, v in enumerate(variants)}
    mine = rows[rows["variant"].isin(order) & (rows["repeat"] < repeats)]
    keys = mine.assign(_order=mine["variant"].map(order))
    return keys.sort_values(["_order", "repeat", "fold"], kind="stable").drop(columns="_order").reset_index(drop=True)


def summarise(rows: pd.DataFrame, folds: int) -> dict[str, Any]:
    """The base's CV estimate and every variant's effect, as ablation.json holds them."""
    base = rows[(rows["variant"] == BASE) & rows["error"].isna()]
    return {
        "base_score": {m: vars(cv_estimate(base[m].to_numpy(dtype=float), folds)) for m in ("macro_f1", "auc")},
        "base_fold_time_s": float(base["time_s"].median()) if len(base) else None,
        "effects": effects_frame(effects(rows, folds)).to_dict("records"),
        "errors": int(rows["error"].notna().sum()),
    }


def _progress(row: dict[str, Any], n: int, total: int) -> None:
    where = f"[{n}/{total}] {row['variant']} · repeat {row['repeat']} · fold {row['fold']}"
    if row.get("error"):
        log.warning("%s failed: %s", where, row["error"])
    else:
        numbers = (row["macro_f1"], row["auc"], row["best_epoch"], row["epochs"], row["time_s"])
        log.info("%s: macro-F1 %.3f, AUC %.3f (best epoch %d of %d), %.1f s", where, *numbers)


def execute(s: Setup, on_row: Callable[[dict[str, Any]], None] | None = None) -> tuple[dict[str, Any], pd.DataFrame]:
    """Run the folds `s.done` lacks on Ray, keeping ablation.parquet current, then write ablation.json.

    Args:
        on_row: called with each new row once it is in ablation.parquet (a test or a benchmark may stop the
            run from here by raising KeyboardInterrupt).

    Returns:
        ablation.json as written, and the plan's rows (every variant, repeat and fold).

    Raises:
        ConfigError: no node can hold a fold task's resources (nothing written), or `out` is in use.
        AblationInterrupted: Ctrl-C; the finished rows are kept and the same command resumes.
    """
    rows = s.done.to_dict("records")
    total = len(s.variants) * s.repeats * s.plan.folds
    done = len(current_rows(s.done, s.variants, s.repeats))
    started = time.time()
    info = {
        "schema_version": SCHEMA_VERSION,
        "plan": s.record,
        "base_from": s.base_from,
        "repeats": s.repeats,
        "resources": {"cpus_per_task": s.plan.cpus, "gpus_per_task": s.plan.gpus, "address": s.cfg.address or None},
        "command": s.command,
        "status": "running",
        "started_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    ray_started = done < total and init_ray(s.cfg)
    plan = s.plan
    try:
        if done < total:
            # refuse per-task requests no node can hold, as a study does (Ray would otherwise wait for ever)
            nodes = cluster_nodes(s.cfg, checkpoints=False)
            check_resources(s.cfg, nodes)
            plan = replace(plan, at_once=tasks_at_once(trial_request(s.cfg), nodes))  # fold tasks at once
        with _claimed(s.out):
            if done < total:
                write_json(info, s.out / ABLATION_JSON)
                log.info("Ablation of %s: %d of %d fold runs to go, into %s", s.study_name, total - done, total, s.out)

                def record(row: dict[str, Any]) -> None:
                    nonlocal done
                    rows.append(row)
                    write_table(rows, s.out / ABLATION_FILE, ABLATION_SCHEMA)
                    done += 1
                    _progress(row, done, total)
                    if on_row is not None:
                        on_row(row)

                try:
                    run_ablation(plan, s.variants, s.repeats, s.data, s.done, record)
                except KeyboardInterrupt:
                    write_json({**info, "status": "interrupted", "rows_done": done}, s.out / ABLATION_JSON)
                    raise AblationInterrupted(s.out, done, total, s.command) from None
            mine = current_rows(pd.DataFrame(rows, columns=ABLATION_SCHEMA.names), s.variants, s.repeats)
            info = {
                **info,
                "status": "completed",
                "finished_at": dt.datetime.now(dt.UTC).isoformat(),
                "wall_time_s": time.time() - started,
                "rows_done": len(mine),
                **summarise(mine, s.plan.folds),
            }
            write_json(info, s.out / ABLATION_JSON)
            return info, mine
    finally:
        if ray_started:
            import ray

            ray.shutdown()


def ablate(
    args: argparse.Namespace, console, command: str, on_row: Callable[[dict], None] | None = None
) -> tuple[Path, dict[str, Any], pd.DataFrame]:
    """The command's steps: resolve, execute, then each verdict on the console.

    Returns:
        The ablation's folder, ablation.json as written and the plan's rows (what its report draws).
    """
    setup = resolve(args, command)
    info, rows = execute(setup, on_row)
    for effect in info["effects"]:
        console.print(effect["line"], soft_wrap=True, markup=False)
    return setup.out, info, rows
