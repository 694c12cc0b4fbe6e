"""Performance benchmark: the study (Ray Tune + OptunaSearch + ASHA) against what a user would pick instead.

What it measures, on the Greek election tweets (`valid_set.csv`, a seeded stratified 80/20 split; Word2Vec on
the training texts + `test_set.csv`), with a cheap search space registered here (`perf`: small bidirectional
RNN/LSTM/GRU models over 100-d vectors, max_len 32) and the same trial budget for every run. For each seed the
runs below are made side by side (their order rotates with the seed); each figure is a ratio of two runs of one
seed, and the table shows the median over seeds:
1. `study.search.driver.run_study` (2 trials at once, 1 CPU each, ASHA) against a plain sequential Optuna study
   (`optuna.create_study`, the same seeded TPESampler and start-up trials, one trial at a time with 2 torch
   threads, `trainables.train.fit` as the objective, `trial.report` / `should_prune` every epoch with a
   SuccessiveHalvingPruner on ASHA's rungs, the same space and the same EncodedData): the wall time from the
   start (data loading, Ray's start-up included) until the epoch that reached the run's best validation
   macro-F1, and that best value. Goal: <= 0.5 of Optuna's time at an equal or better best value.
2. ASHA against no early stopping (the same study with `grace_period = max_epochs`, so ASHA has no rung below
   `max_t` and never stops a trial, i.e. FIFO): trial-epochs spent and the best value. Goal: <= 0.35 of the
   trial-epochs at a best value within 0.01.
3. Per-trial overhead: from a slot freeing (the end of the last epoch of the trial that held it) to the next
   trial's first training step (its first epoch's end minus that epoch's `epoch_time_s`), split into the part
   before the trial function starts and the part inside it; ours (`reuse_actors=True`) against the same study
   with actor reuse switched off (a new worker process per trial, as a straightforward Tune script does), and
   the memory of each trial process (RSS, USS, and whether the model's frozen embedding matrix is the
   object-store array itself, with no private copy). Goal: <= 1 s and no copy.
4. Concurrency: the share of the study's wall time (and of its trial phase) during which 2 trials were really
   training, with the tail (the time one trial trains alone after the last one started).
5. `fit` against a bare PyTorch loop: measured by benchmarks/throughput.py (its section of BENCHMARKS.md).

How the times are taken: in this script only, the trial function is wrapped so that each trial process appends
wall-clock events (trial function entered, each epoch's end with its `epoch_time_s` and macro-F1, its memory at
the first epoch) to a JSON-lines file; the Ray runs are otherwise `run_study` exactly as `python -m study.run`
runs it (`run_study(..., trainable=...)`; the no-reuse run passes `reuse_actors=False`).

Run (not part of CI; needs ../shared/data; about 45-60 min on 2 CPU cores):
    python benchmarks/performance.py            # 3 seeds, 30 trials, 9 epochs; updates BENCHMARKS.md
    python benchmarks/performance.py --quick    # 1 seed, 6 trials, 3 epochs (a few minutes); writes nothing
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from rich.console import Console
from rich.table import Table
from sections import (  # benchmarks/ on sys.path
    add_output_arguments,
    closing,
    data_folder_missing,
    markdown_table,
    publish,
)

import search_spaces
from search_spaces import SearchSpace
from study.config import ASHA_METRICS, StudyConfig
from study.results import EPOCHS_FILE, read_table
from trainables.hparams import HParams
from trainables.inputs import encode, load_dataset
from trainables.metrics import METRIC
from trainables.prepare import EncodedData
from trainables.train import NonFiniteLossError, fit

SECTION = "performance"
GOALS = {"time_to_best": 0.5, "trial_epochs": 0.35, "overhead_s": 1.0, "best_within": 0.01}

PERF_SPACE = SearchSpace(
    name="perf",
    description="cheap models for benchmarks/performance.py: hidden 8-48, 1-2 layers, lr 1e-4..3e-2",
    params={
        "cell": CategoricalDistribution(["rnn", "lstm", "gru"]),
        "attention": CategoricalDistribution([True, False]),
        "hidden_size": IntDistribution(8, 48, log=True),
        "num_layers": IntDistribution(1, 2),
        "dropout": FloatDistribution(0.0, 0.5),
        "clip": FloatDistribution(0.1, 5.0, log=True),
        "lr": FloatDistribution(1e-4, 3e-2, log=True),
        "batch_size": CategoricalDistribution([64, 128, 256]),
    },
    fixed={"bidirectional": True, "skip": True},
)


# ---------------------------------------------------------------------------------------------------------------
# what one run leaves behind


@dataclass(frozen=True)
class TrialTimes:
    trial_id: str
    pid: int
    entered: float  # the trial function started (wall clock, s)
    first_step: float  # its first training step: first epoch's end minus that epoch's time
    end: float  # its last epoch's end
    values: tuple[tuple[float, float], ...]  # (epoch end, val_macro_f1) of every epoch
    memory: dict[str, Any] = field(default_factory=dict)  # measured in the trial process at its first epoch


@dataclass(frozen=True)
class Run:
    kind: str  # "asha" | "fifo" | "no-reuse" | "optuna"
    seed: int
    t0: float  # the call started (before data loading and Ray's start-up)
    t_end: float
    trials: tuple[TrialTimes, ...]
    trial_epochs: int
    load: tuple[float, float]  # 1-min load average at the start and at the end
    threads: int = 1  # torch threads per trial
    probe: dict[int, float] = field(default_factory=dict)  # Optuna: one-epoch probe time by thread count

    @property
    def wall_s(self) -> float:
        return self.t_end - self.t0

    @property
    def best(self) -> float:
        return max((v for t in self.trials for _, v in t.values), default=float("nan"))

    @property
    def time_to_best_s(self) -> float:
        """From the start to the end of the first epoch that reached the run's best value."""
        return self.time_to_value_s(self.best)

    def time_to_value_s(self, target: float) -> float:
        """From the start to the end of the first epoch that reached `target` (inf: never)."""
        return min((t for tr in self.trials for t, v in tr.values if v >= target), default=math.inf) - self.t0

    def overheads(self) -> list[tuple[float, float]]:
        """(before the trial function, inside it before the first step) for every trial that took a freed slot.

        A new trial starts only when a slot frees, so the k-th start after the initial ones pairs with the k-th
        trial end.
        """
        ends = sorted(t.end for t in self.trials)
        by_start = sorted(self.trials, key=lambda t: t.entered)
        concurrent = max_concurrent(self.trials)
        out = []
        for freed, trial in zip(ends, by_start[concurrent:], strict=False):
            out.append((trial.entered - freed, trial.first_step - trial.entered))
        return out

    def running_shares(self) -> dict[str, float]:
        """Seconds with 0, 1, 2, ... trials training, over the trial phase; the tail; the phase's length."""
        events = sorted([(t.first_step, 1) for t in self.trials] + [(t.end, -1) for t in self.trials])
        if not events:
            return {"phase_s": 0.0, "tail_s": 0.0}
        seconds: dict[int, float] = {}
        running, last = 0, events[0][0]
        for t, step in events:
            seconds[running] = seconds.get(running, 0.0) + t - last
            running, last = running + step, t
        last_start = max(t.first_step for t in self.trials)
        ends = sorted(t.end for t in self.trials)
        tail = ends[-1] - max(last_start, ends[-2] if len(ends) > 1 else last_start)
        return {
            **{f"n{k}_s": v for k, v in seconds.items()},
            "phase_s": events[-1][0] - events[0][0],
            "tail_s": tail,
        }


def max_concurrent(trials: Sequence[TrialTimes]) -> int:
    events = sorted([(t.entered, 1) for t in trials] + [(t.end, -1) for t in trials], key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def trials_from_events(events: dict[str, list[dict[str, Any]]]) -> tuple[TrialTimes, ...]:
    out = []
    for trial_id, evs in events.items():
        entered = next(e["t"] for e in evs if e["event"] == "entered")
        epochs = sorted((e for e in evs if e["event"] == "epoch"), key=lambda e: e["epoch"])
        if not epochs:
            continue
        memory = next((e["memory"] for e in epochs if e.get("memory")), {})
        out.append(
            TrialTimes(
                trial_id=trial_id,
                pid=int(epochs[0]["pid"]),
                entered=entered,
                first_step=epochs[0]["t"] - epochs[0]["epoch_time_s"],
                end=epochs[-1]["t"],
                values=tuple((e["t"], e["value"]) for e in epochs),
                memory=memory,
            )
        )
    return tuple(sorted(out, key=lambda t: t.entered))


# ---------------------------------------------------------------------------------------------------------------
# measurements inside a trial process


def _kb_fields(lines: Sequence[str]) -> dict[str, int]:
    out = {}
    for line in lines:
        parts = line.split()
        if len(parts) >= 3 and parts[-1] == "kB":
            out[parts[0].rstrip(":")] = int(parts[1])
    return out


def process_memory(array: np.ndarray | None) -> dict[str, Any]:
    """This process's RSS/PSS/USS (kB), and the memory mapping that holds `array` with its private share."""
    with open("/proc/self/smaps_rollup") as f:
        rollup = _kb_fields(f.read().splitlines())
    out: dict[str, Any] = {
        "rss_kb": rollup.get("Rss", 0),
        "pss_kb": rollup.get("Pss", 0),
        "uss_kb": rollup.get("Private_Clean", 0) + rollup.get("Private_Dirty", 0),
    }
    if array is None:
        return out
    addr = array.__array_interface__["data"][0]
    with open("/proc/self/smaps") as f:
        block: list[str] | None = None
        for line in f:
            head = line.split()
            if "-" in head[0] and not head[0].endswith(":"):
                if block is not None:
                    break
                lo, hi = (int(x, 16) for x in head[0].split("-"))
                if lo <= addr < hi:
                    block = [line]
                    out["emb_mapping"] = head[5] if len(head) > 5 else "[anonymous]"
                    out["emb_mapping_shared"] = head[1][3] == "s"
            elif block is not None:
                block.append(line)
    fields_ = _kb_fields(block or [])
    out["emb_mapping_private_kb"] = fields_.get("Private_Clean", 0) + fields_.get("Private_Dirty", 0)
    out["emb_bytes"] = int(array.nbytes)
    return out


def embedding_is_shared(hp: HParams, data: EncodedData) -> bool:
    """Whether the model that `fit` builds reads the frozen vectors from `data.embeddings` itself (no copy)."""
    from trainables.train import build_model

    model = build_model(hp, data)
    return model.embedding is not None and model.embedding.weight.data_ptr() == data.embeddings.ctypes.data


def timed_trainable(timeline_dir: str) -> Callable[..., None]:
    """trainables.trainable.train_sentiment, logging wall-clock events to `timeline_dir/<trial_id>.jsonl`."""

    def train_sentiment(config: dict[str, Any], data: EncodedData, fixed: dict[str, Any]) -> None:
        from ray import tune

        from trainables import train, trainable

        entered = time.time()
        path = os.path.join(timeline_dir, f"{tune.get_context().get_trial_id()}.jsonl")

        def log(event: dict[str, Any]) -> None:
            with open(path, "a") as f:
                f.write(json.dumps({"pid": os.getpid(), **event}) + "\n")

        log({"event": "entered", "t": entered})

        def timed_fit(hp, data, report=None, state=None):
            def timed_report(r):
                t = time.time()
                event = {"event": "epoch", "t": t, "epoch": r.metrics["epoch"], "value": r.metrics[METRIC]}
                event["epoch_time_s"] = r.metrics["epoch_time_s"]
                if r.metrics["epoch"] == 1:
                    event["memory"] = {
                        **process_memory(data.embeddings),
                        "emb_in_model_shared": embedding_is_shared(hp, data),
                    }
                log(event)
                report(r)

            return train.fit(hp, data, timed_report, state)

        trainable.fit = timed_fit  # the trial process's own module; the study's code is otherwise unchanged
        trainable.train_sentiment(config, data, fixed)

    return train_sentiment


# ---------------------------------------------------------------------------------------------------------------
# the runs


@dataclass(frozen=True)
class Budget:
    num_samples: int
    max_epochs: int
    grace_period: int
    reduction_factor: int
    n_startup_trials: int
    optuna_threads: int
    asha_metric: str = METRIC  # what ASHA (and the Optuna baseline's pruner) ranks trials by at the rungs


def study_config(greek: Path, budget: Budget, seed: int, name: str, results_dir: Path, fifo: bool) -> StudyConfig:
    search_spaces.SPACES[PERF_SPACE.name] = PERF_SPACE
    return StudyConfig.from_settings(
        train=str(greek / "valid_set.csv"),
        unlabelled=(str(greek / "test_set.csv"),),
        valid_fraction=0.2,
        vector_size=100,
        max_len=32,
        space=PERF_SPACE.name,
        num_samples=budget.num_samples,
        max_epochs=budget.max_epochs,
        grace_period=budget.max_epochs if fifo else budget.grace_period,
        reduction_factor=budget.reduction_factor,
        asha_metric=budget.asha_metric,
        n_startup_trials=budget.n_startup_trials,
        max_concurrent=2,
        cpus_per_trial=1,
        seed=seed,
        name=name,
        results_dir=str(results_dir),
    )


def read_timeline(folder: Path) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for p in folder.glob("*.jsonl"):
        out[p.stem] = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
    return out


def run_ray(kind: str, cfg: StudyConfig, work: Path, on_phase: Callable[[str], None] | None = None) -> Run:
    """`run_study(cfg)` with the timed trial function; `kind` "no-reuse" switches actor reuse off."""
    import ray.cloudpickle

    from study.search.driver import run_study

    if __name__ != "__main__":  # Ray workers cannot import this module: ship its functions by value
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    timeline = work / f"{cfg.name}-timeline"
    timeline.mkdir(parents=True)
    load0 = os.getloadavg()[0]
    t0 = time.time()
    try:
        outcome = run_study(
            cfg,
            console=Console(file=io.StringIO()),
            trainable=timed_trainable(str(timeline)),
            reuse_actors=kind != "no-reuse",
            on_phase=on_phase,
        )
    finally:
        t_end = time.time()
    errored = outcome.trials[outcome.trials["status"] == "errored"]
    if len(errored):
        raise RuntimeError(f"{len(errored)} trial(s) of {cfg.name} failed: {errored['error'].iloc[0]}")
    epochs = read_table(outcome.folder / EPOCHS_FILE)
    return Run(
        kind=kind,
        seed=cfg.seed,
        t0=t0,
        t_end=t_end,
        trials=trials_from_events(read_timeline(timeline)),
        trial_epochs=len(epochs),
        load=(load0, os.getloadavg()[0]),
    )


PROBE = HParams(cell="lstm", hidden_size=24, num_layers=1, batch_size=128, max_epochs=1, device="cpu")


def probe_threads(data: EncodedData, rounds: int = 2) -> dict[int, float]:
    """Median one-epoch `fit` time with 1 and with 2 torch threads, alternating which goes first."""
    times: dict[int, list[float]] = {1: [], 2: []}
    for i in range(rounds):
        for threads in (1, 2) if i % 2 == 0 else (2, 1):
            t = time.perf_counter()
            fit(replace(PROBE, num_threads=threads), data)
            times[threads].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def run_optuna(cfg: StudyConfig, budget: Budget, warm: EncodedData) -> Run:
    """A plain sequential Optuna study of the same space and budget, `fit` as the objective.

    `budget.optuna_threads` 0: the faster of 1 and 2 torch threads in a probe made just before (untimed), as a
    user who has the whole machine would choose; on a busy machine 2 threads can be many times slower than 1.
    """
    probe = probe_threads(warm) if budget.optuna_threads == 0 else {}
    threads = budget.optuna_threads or min(probe, key=probe.get)
    load0 = os.getloadavg()[0]
    t0 = time.time()
    data = encode(load_dataset(cfg), cfg)  # the Word2Vec cache is warm, as it is for the Ray runs
    if data.fingerprint != warm.fingerprint:
        raise RuntimeError(f"the Optuna run's data differs from the study's: {data.fingerprint} != {warm.fingerprint}.")
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=cfg.seed, n_startup_trials=budget.n_startup_trials, constant_liar=True),
        pruner=optuna.pruners.SuccessiveHalvingPruner(
            min_resource=budget.grace_period, reduction_factor=budget.reduction_factor, min_early_stopping_rate=0
        ),
    )
    events: dict[str, list[dict[str, Any]]] = {}
    fixed = {
        **PERF_SPACE.fixed,
        "seed": cfg.seed,
        "max_epochs": cfg.max_epochs,
        "num_threads": threads,
        "device": "cpu",
    }
    for _ in range(cfg.num_samples):
        trial = study.ask(dict(PERF_SPACE.params))
        log = events.setdefault(str(trial.number), [])
        log.append({"event": "entered", "t": time.time()})
        hp = HParams.from_dict({**fixed, **trial.params})

        def report(r, trial=trial, log=log, hp=hp):
            event = {"event": "epoch", "t": time.time(), "epoch": r.metrics["epoch"], "value": r.metrics[METRIC]}
            event.update(pid=os.getpid(), epoch_time_s=r.metrics["epoch_time_s"])
            if r.metrics["epoch"] == 1:
                event["memory"] = {
                    **process_memory(data.embeddings),
                    "emb_in_model_shared": embedding_is_shared(hp, data),
                }
            log.append(event)
            sign = 1.0 if ASHA_METRICS[budget.asha_metric] == "max" else -1.0  # the pruner maximises, as the study
            trial.report(sign * r.metrics[budget.asha_metric], r.metrics["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned()

        try:
            history = fit(hp, data, report)
            study.tell(trial, history[-1][METRIC])
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        except NonFiniteLossError:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
    t_end = time.time()
    trials = trials_from_events(events)
    return Run(
        kind="optuna",
        seed=cfg.seed,
        t0=t0,
        t_end=t_end,
        trials=trials,
        trial_epochs=sum(len(t.values) for t in trials),
        load=(load0, os.getloadavg()[0]),
        threads=threads,
        probe=probe,
    )


KINDS = ("asha", "optuna", "fifo", "no-reuse")


def run_seed(greek: Path, budget: Budget, seed: int, work: Path, data: EncodedData, console: Console) -> dict:
    order = KINDS[seed % len(KINDS) :] + KINDS[: seed % len(KINDS)]  # the first run of a seed rotates
    runs = {}
    for kind in order:
        cfg = study_config(greek, budget, seed, f"{kind}-seed{seed}", work / "results", fifo=kind == "fifo")
        run = run_optuna(cfg, budget, data) if kind == "optuna" else run_ray(kind, cfg, work)
        runs[kind] = run
        console.print(
            f"seed {seed} {kind:>8}: wall {run.wall_s:6.1f} s, best {run.best:.4f} after {run.time_to_best_s:6.1f} s, "
            f"{run.trial_epochs} trial-epochs, load {run.load[0]:.1f}->{run.load[1]:.1f}"
        )
    return runs


# ---------------------------------------------------------------------------------------------------------------
# figures


def _median(values: Sequence[float]) -> float:
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def seed_figures(runs: dict[str, Run]) -> dict[str, float]:
    asha, opt, fifo, noreuse = runs["asha"], runs["optuna"], runs["fifo"], runs["no-reuse"]
    over = asha.overheads()
    over_nr = noreuse.overheads()
    share = asha.running_shares()
    mem = [t.memory for t in asha.trials if t.memory]
    return {
        "ttb_ours": asha.time_to_best_s,
        "ttb_optuna": opt.time_to_best_s,
        "ttb_ratio": asha.time_to_best_s / opt.time_to_best_s,
        # time to a value both runs reached: the lower of the two bests
        "ttt_ours": asha.time_to_value_s(min(asha.best, opt.best)),
        "ttt_optuna": opt.time_to_value_s(min(asha.best, opt.best)),
        "ttt_ratio": asha.time_to_value_s(min(asha.best, opt.best)) / opt.time_to_value_s(min(asha.best, opt.best)),
        "best_ours": asha.best,
        "best_optuna": opt.best,
        "best_fifo": fifo.best,
        "wall_ours": asha.wall_s,
        "wall_optuna": opt.wall_s,
        "wall_fifo": fifo.wall_s,
        "epochs_ours": asha.trial_epochs,
        "epochs_optuna": opt.trial_epochs,
        "epochs_fifo": fifo.trial_epochs,
        "epochs_ratio": asha.trial_epochs / fifo.trial_epochs,
        "epoch_s_ours": _median([a - b for t in asha.trials for (a, _), (b, _) in zip(t.values[1:], t.values)]),
        "epoch_s_optuna": _median([a - b for t in opt.trials for (a, _), (b, _) in zip(t.values[1:], t.values)]),
        "overhead_ours": _median([a + b for a, b in over]),
        "overhead_ours_before": _median([a for a, _ in over]),
        "overhead_ours_inside": _median([b for _, b in over]),
        "overhead_noreuse": _median([a + b for a, b in over_nr]),
        "overhead_noreuse_before": _median([a for a, _ in over_nr]),
        "overhead_noreuse_inside": _median([b for _, b in over_nr]),
        "overhead_optuna": _median([a + b for a, b in opt.overheads()]),
        "overhead_ratio": _median([a + b for a, b in over]) / _median([a + b for a, b in over_nr]),
        "processes_ours": len({t.pid for t in asha.trials}),
        "processes_noreuse": len({t.pid for t in noreuse.trials}),
        "rss_mb": _median([m["rss_kb"] / 1024 for m in mem]),
        "uss_mb": _median([m["uss_kb"] / 1024 for m in mem]),
        "uss_mb_noreuse": _median([t.memory["uss_kb"] / 1024 for t in noreuse.trials if t.memory]),
        "emb_mb": mem[0]["emb_bytes"] / 2**20 if mem else float("nan"),
        "emb_private_kb": max((m.get("emb_mapping_private_kb", 0) for m in mem), default=float("nan")),
        "emb_copies": sum(1 for m in mem if not (m.get("emb_mapping_shared") and m.get("emb_in_model_shared"))),
        "emb_mapping": mem[0].get("emb_mapping", "") if mem else "",
        "share_2_wall": share.get("n2_s", 0.0) / asha.wall_s,
        "share_2_phase": share.get("n2_s", 0.0) / share["phase_s"],
        "tail_s": share["tail_s"],
        "startup_s": min(t.first_step for t in asha.trials) - asha.t0,
        "startup_optuna_s": min(t.first_step for t in opt.trials) - opt.t0,
        "load": max(r.load[i] for r in runs.values() for i in (0, 1)),
        "optuna_threads": opt.threads,
        "probe_1": opt.probe.get(1, float("nan")),
        "probe_2": opt.probe.get(2, float("nan")),
        "best_ours_minus_optuna": asha.best - opt.best,
        "best_ours_minus_fifo": asha.best - fifo.best,
    }


def summary_rows(figs: list[dict[str, float]]) -> list[tuple[str, str, str, str, str, str]]:
    """(figure, ours, alternative, ratio, goal, met) with medians over seeds."""

    def m(key: str) -> float:
        return _median([f[key] for f in figs])

    best_gap = m("best_ours_minus_optuna")
    fifo_gap = m("best_ours_minus_fifo")
    ok = {
        "ttb": m("ttb_ratio") <= GOALS["time_to_best"] and best_gap >= 0,
        "epochs": m("epochs_ratio") <= GOALS["trial_epochs"] and fifo_gap >= -GOALS["best_within"],
        "overhead": m("overhead_ours") <= GOALS["overhead_s"] and sum(f["emb_copies"] for f in figs) == 0,
    }
    yes = {True: "yes", False: "no"}
    return [
        (
            "1. time to best val macro-F1 (s): ours / sequential Optuna",
            f"{m('ttb_ours'):.0f}",
            f"{m('ttb_optuna'):.0f}",
            f"{m('ttb_ratio'):.2f}",
            "<= 0.5",
            yes[ok["ttb"]],
        ),
        (
            "1. time to the lower of the two best values (s): ours / sequential Optuna",
            f"{m('ttt_ours'):.0f}",
            f"{m('ttt_optuna'):.0f}",
            f"{m('ttt_ratio'):.2f}",
            "",
            "",
        ),
        (
            "1. wall time of the whole budget (s): ours / sequential Optuna",
            f"{m('wall_ours'):.0f}",
            f"{m('wall_optuna'):.0f}",
            f"{_median([f['wall_ours'] / f['wall_optuna'] for f in figs]):.2f}",
            "",
            "",
        ),
        (
            "1. best val macro-F1: ours − Optuna",
            f"{m('best_ours'):.4f}",
            f"{m('best_optuna'):.4f}",
            f"{best_gap:+.4f}",
            ">= 0",
            yes[best_gap >= 0],
        ),
        (
            "2. trial-epochs: ASHA / FIFO",
            f"{m('epochs_ours'):.0f}",
            f"{m('epochs_fifo'):.0f}",
            f"{m('epochs_ratio'):.2f}",
            "<= 0.35",
            yes[ok["epochs"]],
        ),
        (
            "2. best val macro-F1: ASHA − FIFO",
            f"{m('best_ours'):.4f}",
            f"{m('best_fifo'):.4f}",
            f"{fifo_gap:+.4f}",
            ">= -0.01",
            yes[fifo_gap >= -GOALS["best_within"]],
        ),
        (
            "3. slot freed → next trial's first step (s): reuse / no reuse",
            f"{m('overhead_ours'):.2f} ({m('overhead_ours_before'):.2f} + {m('overhead_ours_inside'):.2f})",
            f"{m('overhead_noreuse'):.2f} ({m('overhead_noreuse_before'):.2f} + {m('overhead_noreuse_inside'):.2f})",
            f"{m('overhead_ratio'):.2f}",
            "<= 1 s",
            yes[m("overhead_ours") <= GOALS["overhead_s"]],
        ),
        (
            "3. trial process memory (MB): USS, reuse / no reuse",
            f"{m('uss_mb'):.0f} (RSS {m('rss_mb'):.0f})",
            f"{m('uss_mb_noreuse'):.0f}",
            f"{m('uss_mb') / m('uss_mb_noreuse'):.2f}",
            "no copy",
            "",
        ),
        (
            f"3. embedding matrix ({m('emb_mb'):.1f} MB) copies in trial processes",
            f"{sum(int(f['emb_copies']) for f in figs)} (private {max(f['emb_private_kb'] for f in figs):.0f} kB)",
            "",
            "",
            "0",
            yes[sum(f["emb_copies"] for f in figs) == 0],
        ),
        (
            "4. share of wall time with 2 trials training (trial phase)",
            f"{m('share_2_wall'):.2f} ({m('share_2_phase'):.2f})",
            "",
            "",
            "",
            "",
        ),
        ("4. tail: one trial alone after the last start (s)", f"{m('tail_s'):.1f}", "", "", "", ""),
        ("5. fit / bare PyTorch loop", "see the throughput section", "", "", "", ""),
    ]


SEED_HEADER = (
    "seed",
    "ttb ours s",
    "ttb Optuna s",
    "time to the lower best s ours / Optuna",
    "best ours",
    "best Optuna",
    "best FIFO",
    "wall ours / Optuna / FIFO s",
    "trial-epochs ours / Optuna / FIFO",
    "epoch s ours / Optuna",
    "overhead s reuse / none / Optuna",
    "processes reuse / none",
    "2 training: wall / phase",
    "tail s",
    "start-up s ours / Optuna",
    "Optuna threads (probe s, 1 / 2 threads)",
    "max load",
)


def seed_cells(seed: int, f: dict[str, float]) -> list[str]:
    return [
        str(seed),
        f"{f['ttb_ours']:.0f}",
        f"{f['ttb_optuna']:.0f}",
        f"{f['ttt_ours']:.0f} / {f['ttt_optuna']:.0f}",
        f"{f['best_ours']:.4f}",
        f"{f['best_optuna']:.4f}",
        f"{f['best_fifo']:.4f}",
        f"{f['wall_ours']:.0f} / {f['wall_optuna']:.0f} / {f['wall_fifo']:.0f}",
        f"{f['epochs_ours']:.0f} / {f['epochs_optuna']:.0f} / {f['epochs_fifo']:.0f}",
        f"{f['epoch_s_ours']:.2f} / {f['epoch_s_optuna']:.2f}",
        f"{f['overhead_ours']:.2f} / {f['overhead_noreuse']:.2f} / {f['overhead_optuna']:.2f}",
        f"{f['processes_ours']:.0f} / {f['processes_noreuse']:.0f}",
        f"{f['share_2_wall']:.2f} / {f['share_2_phase']:.2f}",
        f"{f['tail_s']:.1f}",
        f"{f['startup_s']:.1f} / {f['startup_optuna_s']:.1f}",
        f"{f['optuna_threads']:.0f} ({f['probe_1']:.1f} / {f['probe_2']:.1f})",
        f"{f['load']:.1f}",
    ]


SUMMARY_HEADER = ("figure", "ours", "alternative", "ratio / difference", "goal", "met")


def rich_tables(figs: list[dict[str, float]], seeds: Sequence[int]) -> list[Table]:
    summary = Table(title="Performance (medians over seeds)")
    for name in SUMMARY_HEADER:
        summary.add_column(name, justify="left" if name == "figure" else "right")
    for row in summary_rows(figs):
        summary.add_row(*row)
    per_seed = Table(title="Per seed")
    for name in SEED_HEADER:
        per_seed.add_column(name, justify="right")
    for seed, f in zip(seeds, figs, strict=True):
        per_seed.add_row(*seed_cells(seed, f))
    return [summary, per_seed]


def describe(d: Any) -> str:
    if isinstance(d, CategoricalDistribution):
        return "{" + ", ".join(map(str, d.choices)) + "}"
    return f"{d.low:g}-{d.high:g}" + (" (log)" if d.log else "")


def markdown(figs: list[dict[str, float]], args: argparse.Namespace, budget: Budget, total_s: float) -> str:
    sp = ", ".join(f"`{k}` {describe(v)}" for k, v in PERF_SPACE.params.items())
    lines = [
        "## Performance: the study against sequential Optuna, FIFO and no actor reuse",
        "",
        f"`python benchmarks/performance.py --seeds {','.join(map(str, args.seeds))} --num-samples "
        f"{budget.num_samples} --max-epochs {budget.max_epochs} --n-startup-trials {budget.n_startup_trials} "
        f"--optuna-threads {budget.optuna_threads}"
        + (f" --asha-metric {budget.asha_metric}" if budget.asha_metric != METRIC else "")
        + f"`, total {total_s / 60:.1f} min. Greek `valid_set.csv` "
        "(seeded stratified 80/20 split), Word2Vec on its training texts + `test_set.csv`, 100-d vectors, "
        f"max_len 32. Every run: {budget.num_samples} trials, at most {budget.max_epochs} epochs, TPE with "
        f"{budget.n_startup_trials} random start-up trials, the run's seed for the sampler and the trials. Ours: "
        "`run_study`, 2 trials at once, 1 CPU (1 torch thread) each, ASHA (grace period "
        f"{budget.grace_period}, reduction factor {budget.reduction_factor}, trials ranked at the rungs by "
        f"{budget.asha_metric}), `reuse_actors=True`. Sequential "
        "Optuna: one trial at a time, "
        + (
            f"{budget.optuna_threads} torch threads"
            if budget.optuna_threads
            else "1 or 2 torch threads, whichever was faster in a one-epoch probe just before the run (untimed; "
            "on a busy machine 2 threads can be many times slower, the OpenMP threads waiting for each other)"
        )
        + ", SuccessiveHalvingPruner on the "
        "same rungs and the same ranking, `fit` as the objective (validation macro-F1 for both searchers). "
        "FIFO: ours with `grace_period = max_epochs` (ASHA never stops a "
        "trial). No reuse: ours with `reuse_actors=False` (a new trial process each trial). Times run from "
        "the call (data loading and Ray's start-up included) to the end of the first epoch that reached the "
        "run's best value. Overhead: from the end of a slot's last epoch to the next trial's first training "
        "step (before the trial function + inside it). Ratios and differences are medians over seeds of the "
        "per-seed values.",
        "",
        f"Space `perf` (registered by the script): {sp}; fixed {PERF_SPACE.fixed}.",
        "",
        *markdown_table(SUMMARY_HEADER, summary_rows(figs)),
        "",
        "Per seed:",
        "",
        *markdown_table(SEED_HEADER, (seed_cells(s, f) for s, f in zip(args.seeds, figs, strict=True))),
        "",
        "Item 5 (`fit` against a bare PyTorch loop) is measured by `benchmarks/throughput.py`; see its section.",
        *closing(args, 1, "; load = the highest 1-minute load average at the start or end of a run"),
    ]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1 seed, 6 trials, 3 epochs; writes only to --output")
    p.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2])
    p.add_argument("--num-samples", type=int, default=30, help="trials per run (default: 30)")
    p.add_argument("--max-epochs", type=int, default=9, help="epochs of a trial never stopped (default: 9)")
    p.add_argument("--grace-period", type=int, default=1, help="ASHA's grace period (default: 1)")
    p.add_argument("--reduction-factor", type=int, default=3, help="ASHA's reduction factor (default: 3)")
    p.add_argument(
        "--asha-metric",
        choices=tuple(ASHA_METRICS),
        default=METRIC,
        help="what ASHA and the Optuna baseline's pruner rank trials by at the rungs (default: val_macro_f1)",
    )
    p.add_argument("--n-startup-trials", type=int, default=8, help="TPE's random trials (default: 8)")
    p.add_argument(
        "--optuna-threads",
        type=int,
        default=0,
        help="torch threads of the Optuna run (default: 0, the faster of 1 and 2 in a probe before each run)",
    )
    p.add_argument("--work-dir", type=Path, default=None, help="where the runs write (default: a temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the runs' results folders")
    p.add_argument("--save", type=Path, default=None, help="write the figures to this JSON file after each seed")
    p.add_argument("--render", type=Path, default=None, help="run nothing: print and write the figures of --save")
    add_output_arguments(p, SECTION, "a paragraph added under the tables")
    return p


def measure(args: argparse.Namespace, budget: Budget, greek: Path, console: Console) -> tuple[list[dict], float]:
    """Every run of every seed; the figures of each seed and the total time. Saved after each seed with --save."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="performance-"))
    t0 = time.perf_counter()
    figs: list[dict] = []
    try:
        warm = study_config(greek, budget, 0, "warm", work, fifo=False)
        data = encode(load_dataset(warm), warm)  # fills the Word2Vec cache, untimed
        for seed in args.seeds:
            figs.append(seed_figures(run_seed(greek, budget, seed, work, data, console)))
            if args.save:
                done = {"figures": figs, "seeds": args.seeds[: len(figs)], "budget": asdict(budget)}
                args.save.write_text(json.dumps({**done, "total_s": time.perf_counter() - t0}, indent=1))
    finally:
        if not args.keep and args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    return figs, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.quick:
        args.seeds, args.num_samples, args.max_epochs, args.n_startup_trials = [0], 6, 3, 2
    console = Console(stderr=True)
    greek = args.data_dir / "greek-election-tweets-ys19-2023"
    if data_folder_missing(greek, console):
        return 2
    budget = Budget(
        args.num_samples,
        args.max_epochs,
        args.grace_period,
        args.reduction_factor,
        args.n_startup_trials,
        args.optuna_threads,
        args.asha_metric,
    )
    if args.render:
        saved = json.loads(args.render.read_text())
        figs, total, args.seeds, budget = saved["figures"], saved["total_s"], saved["seeds"], Budget(**saved["budget"])
    else:
        figs, total = measure(args, budget, greek, console)
    out = Console(width=None if sys.stdout.isatty() else 200)
    for table in rich_tables(figs, args.seeds):
        out.print(table)
    console.print(f"total {total / 60:.1f} min")
    publish(SECTION, markdown(figs, args, budget, total), args, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
