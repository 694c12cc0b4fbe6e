"""Ablation benchmark: the original work's experiments (`python -m study.ablate --preset original`) on the Greek
data with intervals, and the ablation's wall time against `study.evaluate` run for each variant in turn.

What it measures:
(1) Quality. A `default`-space study on `valid_set.csv` (labelled) with `test_set.csv` (unlabelled: Word2Vec
    only); its winner is the base: the final stage's winner where the study has one, else its best trial's
    configuration through `--base`. (The original work's own best configuration is no base here: with its lr
    1e-4 and batch 2048 on 4,186 training tweets per fold it learns nothing in a few epochs; macro-F1 0.167, see
    the quality section.) Then `python -m study.ablate STUDY --preset original --folds 5`: every variant against
    the base, with its 95% interval, p and Holm-adjusted p. Then the original work's conclusions, each a paired
    comparison of two configurations that differ in one factor, over the same folds (ablation.parquet):
    "attention helps" (attention on - off > 0), "GRU is as good as LSTM" (GRU - LSTM within +-0.02 macro-F1),
    "skip connections help" (skip on - off > 0), "more layers help a little" (3 layers - 1 > 0).
(2) Speed. A smaller plan (the base and three variants: another cell, attention flipped, another layer count;
    4 folds, 3 epochs) run as `python -m study.ablate` and as `python -m study.evaluate` once per
    configuration, one after another, each with one fold task at a time (`--cpus-per-trial` every CPU, one
    torch thread: the sequential protocol, as `study.evaluate` ran before its folds became Ray tasks). Each side
    starts from an empty Word2Vec cache (the evaluate runs share theirs, as a user's runs would, so both train
    each fold's Word2Vec once), in fresh processes, in
    alternating order (ablation first, then evaluate first); wall time from start to exit, Ray's start and
    every process start included. Ratio = ablation / sequential; target <= 0.6 on 2 cores. The two paths'
    fold scores are compared too: the same folds, Word2Vec and seeds must give the same numbers.

Run (not part of CI; needs ../shared/data):
    python benchmarks/ablation.py           # about 40 min on 2 shared cores; updates BENCHMARKS.md
    python benchmarks/ablation.py --quick   # a 4-trial study, 2 folds, 1 epoch, 32-d vectors; writes only to --output
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's packages, also when another one is installed

import pandas as pd  # noqa: E402
from rich.console import Console  # noqa: E402
from sections import (  # noqa: E402 - benchmarks/ on sys.path
    add_output_arguments,
    closing,
    data_folder_missing,
    markdown_table,
    publish,
)

from study.ablation.effects import ABLATION_FILE, ABLATION_SCHEMA, BASE, parse_base, value_text  # noqa: E402
from study.final.stats import paired  # noqa: E402
from study.results import BEST_METRIC, read_table  # noqa: E402

SECTION = "ablation"
TICK = os.sysconf("SC_CLK_TCK")
TARGET = 0.6
CPUS = os.cpu_count() or 1  # `study.evaluate --cpus-per-trial CPUS`: one fold task at a time, the sequential protocol
GREEK = "greek-election-tweets-ys19-2023"
MARGIN = 0.02  # "as good as": the whole 95% interval within +-MARGIN macro-F1


@dataclass(frozen=True)
class Claim:
    text: str
    a: tuple[str, object]  # (factor, value) of the configuration the claim favours (or either, for "as good as")
    b: tuple[str, object]
    kind: str  # "helps" | "as good as"


CLAIMS = (
    Claim("attention helps", ("attention", True), ("attention", False), "helps"),
    Claim("GRU is as good as LSTM", ("cell", "gru"), ("cell", "lstm"), "as good as"),
    Claim("skip connections help", ("skip", True), ("skip", False), "helps"),
    Claim("more layers help a little", ("num_layers", 3), ("num_layers", 1), "helps"),
)


def _env(cache: Path) -> dict[str, str]:
    """The environment of every command run here: this checkout, its own Word2Vec cache, Ray's workers at nice 0.

    Ray starts its workers at nice 15. On a machine shared with other users' processes at nice 0 (this one), the
    ablation's tasks would then yield to them while `study.evaluate`'s process would not, and the speed ratio
    would measure that, not the ablation (0.72-0.86 in a first run here). Both sides run at nice 0.
    """
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "RNN_STUDY_CACHE": str(cache),
        "COLUMNS": "200",
        "RAY_worker_niceness": "0",
    }


def _tree_cpu(root: int, seen: dict[int, float]) -> None:
    """Record in `seen` the CPU seconds so far of `root` and every process under it (Linux /proc)."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # gone meanwhile
            continue
        fields = text[text.rfind(")") + 2 :].split()  # after "pid (name) "
        stats[int(entry)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry))
    todo = [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        if pid in stats:
            seen[pid] = (int(stats[pid][11]) + int(stats[pid][12])) / TICK  # utime + stime


def _run(argv: list[str], env: dict[str, str], what: str) -> tuple[float, float, str]:
    """Run `python ARGV` to its end; (wall s, CPU s of it and every process it started, stdout).

    The CPU time is sampled every 0.5 s from /proc, so Ray's workers (which no `wait` reports to us) count too;
    a process's last half second may be missed. Exits the benchmark when the command fails.
    """
    seen: dict[int, float] = {}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, *argv], cwd=REPO, env=env, stdout=out, stderr=err, text=True)
        while proc.poll() is None:
            _tree_cpu(proc.pid, seen)
            time.sleep(0.5)
        wall = time.perf_counter() - t0
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"error: {what} failed (exit {proc.returncode}):\n{stderr[-3000:]}")
    return wall, sum(seen.values()), stdout


def _spin(seconds: float) -> float:
    """Busy-loop for `seconds` of wall time; the CPU seconds this process got meanwhile."""
    t0, c0 = time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        sum(i * i for i in range(10_000))
    return time.process_time() - c0


def cores_obtained(seconds: float = 5.0) -> tuple[float, float]:
    """The CPU cores this session gets from one busy process, and from two together (the machine may be shared)."""
    import multiprocessing

    one = _spin(seconds) / seconds
    with multiprocessing.get_context("fork").Pool(2) as pool:
        two = sum(pool.map(_spin, [seconds, seconds])) / seconds
    return one, two


def _load() -> float:
    return os.getloadavg()[0]


# ------------------------------------------------------------------------------------------ the study and its base


def run_study(args: argparse.Namespace, data: list[str], tmp: Path, console: Console) -> tuple[Path, dict, float]:
    """A `default`-space study on the Greek data; (its folder, its winner's configuration, wall seconds)."""
    argv = ["-m", "study.run", *data, "--space", "default", "--num-samples", str(args.num_samples)]
    argv += ["--max-epochs", str(args.study_epochs), "--name", "greek", "--results-dir", str(tmp / "results")]
    console.log(f"study: {' '.join(argv[2:])}")
    wall, _, stdout = _run(argv, _env(tmp / "cache-study"), "the study")
    folder = Path(stdout.strip().splitlines()[-1])
    study = json.loads((folder / "study.json").read_text())
    winner = (study.get("final") or {}).get("winner")
    if winner is not None:
        return folder, {"source": f"final-stage winner {winner['trial_id']}", "params": winner["params"]}, wall
    trials = read_table(folder / "trials.parquet").sort_values(BEST_METRIC, ascending=False)
    best = trials.iloc[0]
    names = list((study.get("space") or {}).get("params") or {})
    params = {n: best[f"params_{n}"] for n in names}
    params = {k: v.item() if hasattr(v, "item") else v for k, v in params.items()}
    source = f"best trial {best['trial_id']} (validation macro-F1 {best[BEST_METRIC]:.3f}; no final stage yet)"
    return folder, {"source": source, "params": params, "base_args": _base_args(params)}, wall


def with_changes(base: dict, items: list[str]) -> dict:
    """The base with `--base factor=value` changes (`items`) on top, and the arguments that give them to ablate."""
    if not items:
        return base
    changes = parse_base(items)
    params = {**base["params"], **changes}
    args = _base_args(params if "base_args" in base else changes)
    said = ", ".join(f"{k}={value_text(v)}" for k, v in changes.items())
    return {"source": f"{base['source']}, with {said}", "params": params, "base_args": args}


def _base_args(params: dict) -> list[str]:
    return [w for k, v in params.items() for w in ("--base", f"{k}={value_text(v)}")]


# ------------------------------------------------------------------------------------------ (1) the preset


def run_preset(args, folder: Path, base: dict, tmp: Path, console: Console) -> tuple[dict, pd.DataFrame, float]:
    out = tmp / "preset"
    argv = ["-m", "study.ablate", str(folder), *base.get("base_args", []), "--preset", "original"]
    argv += ["--folds", str(args.folds), "--out", str(out)]
    if args.max_epochs:
        argv += ["--max-epochs", str(args.max_epochs)]
    console.log(f"ablation: {' '.join(argv[2:])}")
    wall, _, _ = _run(argv, _env(tmp / "cache-preset"), "the preset ablation")
    info = json.loads((out / "ablation.json").read_text())
    return info, read_table(out / ABLATION_FILE, ABLATION_SCHEMA), wall


def _config_rows(rows: pd.DataFrame, plan: dict, factor: str, value: object) -> pd.DataFrame | None:
    """The rows of the configuration that is the base with `factor` = `value` (the base itself if it has it)."""
    if plan["base"][factor] == value:
        name = BASE
    else:
        name = f"{factor}={value_text(value)}"
    mine = rows[(rows["variant"] == name) & rows["error"].isna()]
    return mine.set_index(["repeat", "fold"]) if len(mine) else None


def judge(claim: Claim, rows: pd.DataFrame, plan: dict) -> dict:
    """A claim's paired comparison on the ablation's folds and whether it holds at 95%."""
    a, b = (_config_rows(rows, plan, *side) for side in (claim.a, claim.b))
    compared = f"{claim.a[0]}={value_text(claim.a[1])} - {claim.b[0]}={value_text(claim.b[1])}"
    if a is None or b is None:
        return {"claim": claim.text, "compared": compared, "result": None, "verdict": "not in the plan"}
    shared = sorted(set(a.index) & set(b.index))
    r = paired(a.loc[shared, "macro_f1"], b.loc[shared, "macro_f1"], plan["folds"])
    if r.n and (a.loc[shared, "curve"].map(list) == b.loc[shared, "curve"].map(list)).all():
        verdict = "not testable: identical runs (the factor changes nothing in this base)"
    elif claim.kind == "helps":
        verdict = "holds" if r.low > 0 else "contradicted" if r.high < 0 else "not shown (the interval holds 0)"
    else:
        inside = -MARGIN < r.low and r.high < MARGIN
        verdict = (
            "holds"
            if inside
            else "contradicted"
            if r.low > 0 or r.high < 0
            else f"not shown (the interval reaches beyond +-{MARGIN})"
        )
    return {"claim": claim.text, "compared": compared, "result": r, "verdict": verdict}


# ------------------------------------------------------------------------------------------ (2) speed


def speed_plan(base: dict) -> list[tuple[str, object]]:
    """Three one-factor variants of the base: another cell, attention flipped, another layer count."""
    params = base["params"]
    return [
        ("cell", "gru" if params.get("cell", "lstm") == "lstm" else "lstm"),
        ("attention", not params.get("attention", True)),
        ("num_layers", 2 if params.get("num_layers", 2) == 1 else 1),
    ]


def run_ablate_once(args, folder, base, variants, tmp: Path, tag: str) -> tuple[float, float, pd.DataFrame]:
    out = tmp / f"speed-{tag}"
    argv = ["-m", "study.ablate", str(folder), *base.get("base_args", [])]
    argv += [w for f, v in variants for w in ("--vary", f"{f}={value_text(v)}")]
    argv += ["--folds", str(args.speed_folds), "--max-epochs", str(args.speed_epochs), "--out", str(out)]
    wall, cpu, _ = _run(argv, _env(tmp / f"cache-ablate-{tag}"), "the speed ablation")
    return wall, cpu, read_table(out / ABLATION_FILE, ABLATION_SCHEMA)


def run_evaluate_each(args, data, full_base: dict, variants, seed: int, tmp: Path, tag: str):
    """`study.evaluate` once per configuration, one after another, one fold at a time, sharing one (at first
    empty) cache.

    Returns:
        (wall s, CPU s, {configuration: its folds' macro-F1}).
    """
    env = _env(tmp / f"cache-evaluate-{tag}")
    configs = {BASE: full_base, **{f"{f}={value_text(v)}": {**full_base, f: v} for f, v in variants}}
    scores, wall, cpu = {}, 0.0, 0.0
    for name, params in configs.items():
        sets = [w for k, v in {**params, "seed": seed}.items() for w in ("--set", f"{k}={value_text(v)}")]
        argv = ["-m", "study.evaluate", *data, "--folds", str(args.speed_folds), "--cpus-per-trial", str(CPUS)]
        argv += ["--max-epochs", str(args.speed_epochs), *sets, "--json"]
        w, c, stdout = _run(argv, env, f"study.evaluate of {name}")
        wall, cpu = wall + w, cpu + c
        scores[name] = [f["best"]["macro_f1"] for f in json.loads(stdout.strip().splitlines()[-1])["per_fold"]]
    return wall, cpu, scores


def run_speed(args, folder, base, data, info, tmp: Path, console: Console) -> tuple[list[dict], float, tuple]:
    """The speed rounds, the largest difference between the two paths' fold scores, and `cores_obtained()`."""
    cores = cores_obtained()
    console.log(f"this session gets {cores[0]:.2f} cores from one busy process, {cores[1]:.2f} from two")
    variants = speed_plan(base)
    full_base, seed = info["plan"]["base"], info["plan"]["seed"]
    rounds, diffs = [], []
    for i, order in enumerate((("ablate", "evaluate"), ("evaluate", "ablate"))[: args.rounds]):
        walls, cpus, loads = {}, {}, [_load()]
        for side in order:
            if side == "ablate":
                walls[side], cpus[side], rows = run_ablate_once(args, folder, base, variants, tmp, str(i))
            else:
                walls[side], cpus[side], scores = run_evaluate_each(args, data, full_base, variants, seed, tmp, str(i))
            loads.append(_load())
        for name, folds in scores.items():
            mine = rows[rows["variant"] == name].sort_values("fold")["macro_f1"].to_list()
            diffs += [abs(x - y) for x, y in zip(mine, folds, strict=True)]
        ratio = walls["ablate"] / walls["evaluate"]
        rounds.append(
            {
                "round": i + 1,
                "order": " then ".join(order),
                **walls,
                "ratio": ratio,
                "cpu": cpus,
                "projected": cpus["ablate"] / 2 / cpus["evaluate"],  # each side CPU-bound on 2 free cores
                "loads": loads,
            }
        )
        console.log(
            f"speed round {i + 1}: ablate {walls['ablate']:.0f} s ({cpus['ablate']:.0f} s CPU), "
            f"evaluate {walls['evaluate']:.0f} s ({cpus['evaluate']:.0f} s CPU), {ratio:.2f}"
        )
    return rounds, max(diffs) if diffs else math.nan, cores


# ------------------------------------------------------------------------------------------ BENCHMARKS.md


def _ci(diff: float, low: float, high: float) -> str:
    return f"{diff:+.3f} [{low:+.3f}, {high:+.3f}]" if math.isfinite(diff) else "-"


def _p(p: float | None) -> str:
    return "-" if p is None or not math.isfinite(p) else f"{p:.3f}"


def _sharing(cores: tuple[float, float]) -> str:
    """What the probe says about how much CPU parallel processes got here."""
    said = f"In this session one busy process got {cores[0]:.2f} cores and two together {cores[1]:.2f}"
    if cores[1] >= 1.3 * cores[0]:
        return said + "."
    try:
        autogroup = Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        autogroup = False
    why = (
        "its 2 cores are shared with other users' sessions, and Linux shares CPU time between sessions "
        "(autogroup is on), not between processes"
        if autogroup
        else "the machine is shared"
    )
    return f"{said}: {why}, so the ablation's two tasks at a time got no more CPU than `study.evaluate`'s one process."


def _summary(claims: list[dict], effects: pd.DataFrame, plan: dict) -> str:
    """The claims by outcome, and how wide the intervals are, in plain words."""
    by = {}
    for c in claims:
        by.setdefault(c["verdict"].split(" (")[0].split(":")[0], []).append(c["claim"])
    outcomes = "; ".join(f"{k}: {', '.join(v)}" for k, v in by.items())
    half = ((effects["macro_f1_high"] - effects["macro_f1_low"]) / 2).median()
    differ = int((effects["verdict"] != "not distinguishable").sum())
    return (
        f"At 95%, {outcomes}. {differ} of {len(effects)} variants differ from the base after Holm's adjustment. "
        f"The macro-F1 intervals are ±{half:.3f} wide (median over the variants): with one {plan['folds']}-fold CV "
        f"of {plan['labelled_rows']:,} tweets, smaller effects cannot be told from zero, so conclusions drawn from "
        "one validation split of the same data could not be confirmed here. Repeats (`--repeats`) narrow the "
        "interval less than one might hope: the correction's n_test/n_train term does not shrink with repeats."
    )


def markdown(args, study_info: dict, info: dict, rows, claims, rounds, diff, cores, walls) -> str:
    plan = info["plan"]
    base = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={value_text(v)}" for k, v in plan["base"].items()
    )
    score = info["base_score"]["macro_f1"]
    effects = pd.DataFrame(info["effects"])
    table1 = markdown_table(
        ("variant", "Δ macro-F1 [95% CI]", "p", "Holm p", "Δ AUC [95% CI]", "verdict", "fold time × base (median)"),
        (
            (
                e.variant,
                _ci(e.macro_f1_diff, e.macro_f1_low, e.macro_f1_high),
                _p(e.p),
                _p(e.p_holm),
                _ci(e.auc_diff, e.auc_low, e.auc_high),
                e.verdict,
                f"{e.time_ratio:.2f}",
            )
            for e in effects.itertuples()
        ),
    )
    table2 = markdown_table(
        ("the original's conclusion", "compared (paired folds)", "difference [95% CI]", "p", "at 95%"),
        (
            (
                c["claim"],
                c["compared"],
                _ci(c["result"].difference, c["result"].low, c["result"].high) if c["result"] else "-",
                _p(c["result"].p_value) if c["result"] else "-",
                c["verdict"],
            )
            for c in claims
        ),
    )
    table3 = markdown_table(
        (
            "round",
            "order",
            "study.ablate s (CPU s)",
            "study.evaluate × 4 s (CPU s)",
            "ratio",
            "projected on 2 free cores",
            "load (1 min) before / between / after",
        ),
        (
            (
                str(r["round"]),
                r["order"],
                f"{r['ablate']:.0f} ({r['cpu']['ablate']:.0f})",
                f"{r['evaluate']:.0f} ({r['cpu']['evaluate']:.0f})",
                f"{r['ratio']:.2f}",
                f"{r['projected']:.2f}",
                " / ".join(f"{x:.1f}" for x in r["loads"]),
            )
            for r in rounds
        ),
    )
    ratio = statistics.median(r["ratio"] for r in rounds)
    projected = statistics.median(r["projected"] for r in rounds)
    cpu_share = statistics.median(r["cpu"]["ablate"] / r["cpu"]["evaluate"] for r in rounds)
    met = "met" if ratio <= TARGET else "not met"
    speed_variants = speed_plan({"params": plan["base"]})
    saved = (
        f"What the ablation saves is work: it needs {cpu_share:.2f} of the sequential runs' CPU time (Word2Vec, "
        "cleaning and start-up once instead of once per configuration). With 2 cores to itself, both sides "
        f"CPU-bound, it would take about {projected:.2f} of their time (its CPU time / 2 over theirs; a lower "
        "bound, as Ray's start partly waits)."
    )
    verdict_text = f"Median wall-time ratio {ratio:.2f}: the target ≤ {TARGET} is {met} on this machine. "
    verdict_text += f"{_sharing(cores)} {saved}"
    lines = [
        "## Ablations (`python benchmarks/ablation.py`)",
        "",
        f"A `default`-space study of {args.num_samples} trials (at most {args.study_epochs} epochs each) on "
        f"`valid_set.csv` (`test_set.csv` unlabelled, for Word2Vec), {walls['study'] / 60:.1f} min; its "
        f"{study_info['source']} is the base: {base}. Then `python -m study.ablate STUDY --preset original --folds "
        f"{plan['folds']}` (at most {plan['max_epochs']} epochs per fold, a fold scoring its best epoch), "
        f"{len(effects)} variants and the base on the same {plan['folds']} folds of {plan['labelled_rows']} tweets, "
        f"{len(rows)} fold runs as Ray tasks on 2 cores, {walls['preset'] / 60:.1f} min. The base's CV macro-F1: "
        f"{score['mean']:.3f} [{score['low']:.3f}, {score['high']:.3f}]. Intervals: 95%, Nadeau-Bengio corrected; "
        f"p: the corrected paired t-test; Holm: adjusted for the {len(effects)} variants; the verdict is on "
        "macro-F1's Holm p.",
        "",
        *table1,
        "",
        "The original work's conclusions, each checked as one paired comparison of two configurations that differ "
        "only in that factor (the base's other settings), on the ablation's folds: a claim that something helps "
        "holds when the 95% interval of the difference lies above 0, and is contradicted when it lies below; "
        f"'as good as' holds when the whole interval lies within ±{MARGIN} macro-F1. No Holm adjustment here "
        "(each claim is read on its own), so these are at most as strict as the table above.",
        "",
        *table2,
        "",
        _summary(claims, effects, plan),
        "",
        f"Speed: the base and {len(speed_variants)} variants "
        f"({', '.join(f'{f}={value_text(v)}' for f, v in speed_variants)}), {args.speed_folds} folds, "
        f"{args.speed_epochs} epochs, as one `python -m study.ablate` against `python -m study.evaluate` once per "
        "configuration one after another (each side from an empty Word2Vec cache, the evaluate runs sharing theirs; "
        "wall time of the processes, Ray's start and each process's imports included; CPU time of every process "
        "each side started, Ray's workers included; Ray's workers at nice 0 like the evaluate processes, see `_env` "
        f"in the script). The two paths' fold scores agree to {diff:.1e}: the same folds, Word2Vec and seeds.",
        "",
        verdict_text,
        "",
        *table3,
        *closing(args, 1, f"; total {walls['total'] / 60:.1f} min"),
    ]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes, to check that it runs; writes only to --output")
    p.add_argument("--num-samples", type=int, default=30, help="trials of the study (default: 30)")
    p.add_argument("--study-epochs", type=int, default=6, help="the study's max epochs (default: 6)")
    p.add_argument("--folds", type=int, default=5, help="folds of the preset ablation (default: 5)")
    p.add_argument("--max-epochs", type=int, default=None, help="epochs per fold (default: the study's)")
    p.add_argument("--speed-folds", type=int, default=4, help="folds of the speed comparison (default: 4)")
    p.add_argument("--speed-epochs", type=int, default=3, help="epochs of the speed comparison (default: 3)")
    p.add_argument("--rounds", type=int, default=2, choices=(1, 2), help="speed rounds, alternating (default: 2)")
    p.add_argument("--vector-size", type=int, default=300, help="Word2Vec dimension (default: 300)")
    p.add_argument(
        "--base",
        action="append",
        default=[],
        metavar="FACTOR=VALUE",
        help="change the winner before ablating it (e.g. batch_size=256 to fit a time budget); repeatable",
    )
    add_output_arguments(p, SECTION, "a paragraph added under the tables")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.quick:
        args.num_samples, args.study_epochs, args.folds, args.vector_size = 4, 1, 2, 32
        args.speed_folds, args.speed_epochs, args.rounds = 2, 1, 1
    console = Console(stderr=True)
    if data_folder_missing(args.data_dir, console):
        return 2
    greek = args.data_dir / GREEK
    data = ["--train", str(greek / "valid_set.csv"), "--unlabelled", str(greek / "test_set.csv")]
    data += ["--vector-size", str(args.vector_size)]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ablation-bench-") as d:
        tmp = Path(d)
        folder, base, study_wall = run_study(args, data, tmp, console)
        base = with_changes(base, args.base)
        console.log(f"base: {base['source']}: {base['params']}")
        info, rows, preset_wall = run_preset(args, folder, base, tmp, console)
        for e in info["effects"]:
            console.print(e["line"], markup=False)
        claims = [judge(c, rows, info["plan"]) for c in CLAIMS]
        for c in claims:
            console.print(f"{c['claim']}: {c['verdict']}", markup=False)
        rounds, diff, cores = run_speed(args, folder, base, data, info, tmp, console)
    walls = {"study": study_wall, "preset": preset_wall, "total": time.perf_counter() - t0}
    publish(SECTION, markdown(args, base, info, rows, claims, rounds, diff, cores, walls), args, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
