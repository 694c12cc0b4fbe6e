"""Quality benchmark: what the study's answer scores against TF-IDF baselines, on the Greek and the vaccine data.

What it measures, side by side for each data set:
- TF-IDF + logistic regression on words (1-2-grams) and on characters (2-5-grams), on the same folds / split as
  the study's final model (they come from the `default` study's final stage: the same code, the same folds);
- the original work's best configuration (bidirectional LSTM, hidden 16, 3 layers, skip, attention, dropout 0.3,
  clip 0.4, lr 1e-4, batch 2048, `mean` encoding of 300-d Word2Vec), `study.evaluate`'s protocol;
- the final model of a `default` study and of a `wide` study (the representation searched too) with the same
  trial budget.
Greek election tweets (`valid_set.csv`, 5,232 labelled, `test_set.csv` as unlabelled text): the final stage's
5-fold stratified CV on every labelled row (seed 0; each fold's vectors trained without its held-out fold).
Vaccine tweets: `--train vaccine_train_set.csv --test vaccine_validation_set.csv`: the study searches and runs its
final stage on the training file only, and the saved final model scores the validation file, as do the baselines
fitted on the whole training file (the study's headline).
Also the wall time of the `wide` study against the `default` study (target: at most 1.3x).

Each study runs as `python -m study.run` in its own process (Ray workers at the driver's priority,
`RAY_worker_niceness=0`), one after the other, so that each step stays within about 45 minutes and can be rerun:

    python benchmarks/quality.py study greek-default     # then greek-wide, vaccine-default, vaccine-wide
    python benchmarks/quality.py original                # the original's configuration on both data sets
    python benchmarks/quality.py publish                 # the table into BENCHMARKS.md
    python benchmarks/quality.py study greek-default --quick   # a tiny study: checks that it runs

Studies go to `--results-dir` (default results/quality); an existing study of the same name is reused by
`publish`, never overwritten.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sections import add_output_arguments, closing, data_folder_missing, markdown_table, publish  # noqa: E402

SECTION = "quality"
GREEK, VACCINE = "greek-election-tweets-ys19-2023", "vaccine-sentiment-ys19"
BUDGET = {"greek": ("40", "8"), "vaccine": ("24", "6")}  # trials and max epochs per study, the same for both spaces
GOAL_MARGIN, GOAL_RATIO = 0.01, 1.3
STRETCH = {"greek": (0.42, 0.60), "vaccine": (0.72, None)}  # macro-F1 and AUC


def data_flags(name: str, data_dir: Path) -> list[str]:
    if name == "greek":
        g = data_dir / GREEK
        return ["--train", str(g / "valid_set.csv"), "--unlabelled", str(g / "test_set.csv")]
    v = data_dir / VACCINE
    return [
        *("--train", str(v / "vaccine_train_set.csv"), "--test", str(v / "vaccine_validation_set.csv")),
        *("--text-column", "tweet", "--label-column", "label", "--party-column", ""),
        *("--label-map", "0=neutral,1=anti,2=pro", "--final-top", "2", "--final-folds", "3"),
    ]


def run_study(which: str, args: argparse.Namespace) -> None:
    data, space = which.split("-")
    trials, epochs = ("4", "2") if args.quick else BUDGET[data]
    name = f"{which}-quick" if args.quick else which
    command = [
        *(sys.executable, "-m", "study.run", *data_flags(data, args.data_dir), "--space", space),
        *("--num-samples", trials, "--max-epochs", epochs, "--name", name, "--results-dir", str(args.results_dir)),
    ]
    if args.quick:
        command += ["--demo-rows", "300", "--final-top", "1", "--final-folds", "2", "--w2v-epochs", "1"]
        command = [c for c in command if c not in data_flags(data, args.data_dir)]
    env = {**os.environ, "RAY_worker_niceness": "0", "PYTHONPATH": str(REPO)}
    started, load = time.time(), os.getloadavg()[0]
    done = subprocess.run(command, cwd=REPO, env=env, check=False)
    record = {
        "wall_s": time.time() - started,
        "load_start": load,
        "load_end": os.getloadavg()[0],
        "rc": done.returncode,
    }
    (args.results_dir / name / "benchmark.json").write_text(json.dumps(record))
    print(json.dumps(record))


ORIGINAL = {
    **{"cell": "lstm", "hidden_size": 16, "num_layers": 3, "bidirectional": True, "skip": True, "attention": True},
    **{"dropout": 0.3, "clip": 0.4, "lr": 1e-4, "batch_size": 2048, "seed": 0, "num_threads": 1},
}


def run_original(args: argparse.Namespace) -> None:
    """The original's best configuration, `study.evaluate`'s protocol: Greek 5-fold CV, vaccine train -> valid."""
    from study.config import DataSettings
    from study.cv import cross_validate, evaluate_split, summarise
    from study.dataset import load_dataset
    from trainables.train import HParams

    hp = HParams(**ORIGINAL, max_epochs=1 if args.quick else args.epochs_original)
    size = 32 if args.quick else 300
    g, v = args.data_dir / GREEK, args.data_dir / VACCINE
    out = {}
    greek = DataSettings(
        train=str(g / "valid_set.csv"), unlabelled=(str(g / "test_set.csv"),), encoding="mean", vector_size=size
    )
    ds = load_dataset(greek)
    t0 = time.perf_counter()
    results = cross_validate(hp, ds.labelled, ds.unlabelled, greek, 2 if args.quick else 5)
    out["greek"] = {**_summary(summarise(results, ds.labelled.classes)), "wall_s": time.perf_counter() - t0}
    vaccine = replace(
        greek,
        train=str(v / "vaccine_train_set.csv"),
        valid=str(v / "vaccine_validation_set.csv"),
        unlabelled=(),
        text_column="tweet",
        label_column="label",
        party_column="",
        label_map="0=neutral,1=anti,2=pro",
    )
    vs = load_dataset(vaccine)
    t0 = time.perf_counter()
    result = evaluate_split(hp, vs.train, vs.valid, vs.unlabelled, vaccine, None)
    out["vaccine"] = {**_summary(summarise([result], vs.train.classes)), "wall_s": time.perf_counter() - t0}
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "original.json").write_text(json.dumps({"epochs": hp.max_epochs, **out}))
    print(json.dumps(out))


def _summary(s: dict) -> dict:
    return {
        "macro_f1": s["macro_f1_mean"],
        "macro_f1_std": s["macro_f1_std"],
        "auc": s["auc_mean"],
        "auc_std": s["auc_std"],
        "folds": s["folds"],
        "best_epoch": s["best_epoch_mean"],
    }


# ------------------------------------------------------------------------------------------- publish


def _study(folder: Path) -> dict | None:
    path = folder / "study.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _span(folder: Path) -> float:
    """Seconds from the final stage's first fold task to its last (final.parquet)."""
    import pandas as pd

    rows = pd.read_parquet(folder / "final.parquet")
    return float(rows["finished_at"].max() - rows["started_at"].min())


def _representations(folder: Path) -> int:
    import pandas as pd

    from trainables.vectorize import SEARCHED

    trials = pd.read_parquet(folder / "trials.parquet")
    cols = [f"params_{k}" for k in SEARCHED]
    return int(trials[cols].astype(str).drop_duplicates().shape[0]) if trials[cols].notna().all().all() else 1


def _fmt(mean: float, std: float | None = None) -> str:
    return f"{mean:.3f}" + (f" ± {std:.3f}" if std is not None else "")


def _winner_line(study: dict) -> str:
    w = study["final"]["winner"]
    p = w["params"]
    rep = f", {p['vectorizer']} {p['vector_size']}-d window {p['window']} {'sg' if p['sg'] else 'cbow'} " \
          f"min_count {p['min_count']}" if "vectorizer" in p else ""  # fmt: skip
    extra = "".join(
        f", {k} {p[k]:.3g}" if isinstance(p.get(k), float) else f", {k} {p[k]}"
        for k in ("freeze_embeddings", "embedding_dropout", "weight_decay", "lr_schedule", "label_smoothing")
        if k in p
    )
    return (
        f"{p['cell']} h{p['hidden_size']}x{p['num_layers']}, attention {p['attention']}, skip {p['skip']}, "
        f"dropout {p['dropout']:.2f}, lr {p['lr']:.2g}, batch {p['batch_size']}{rep}{extra}; {w['epochs']} epochs"
    )


def _scores(data: str, studies: dict, original: dict | None) -> dict[str, tuple[float, float | None, float] | None]:
    """Model -> (macro-F1, its std over folds or None, AUC), None where it has not been run."""
    from study.final_summary import BASELINE_NAMES

    cv = data == "greek"
    scores: dict[str, tuple[float, float | None, float] | None] = {}
    base = (studies.get("default") or {}).get("final")
    for b in ("tfidf_word", "tfidf_char"):
        if base is None:
            scores[BASELINE_NAMES[b]] = None
        elif cv:
            e = base["baselines"][b]
            scores[BASELINE_NAMES[b]] = (e["cv"]["mean"], e["cv"]["std"], e["cv_auc"]["mean"])
        else:
            e = base["test"]["baselines"][b]
            scores[BASELINE_NAMES[b]] = (e["macro_f1"], None, e["auc"])
    o = (original or {}).get(data)
    original_score = (o["macro_f1"], o["macro_f1_std"] if cv else None, o["auc"]) if o else None
    scores["original's best configuration"] = original_score
    for space in ("default", "wide"):
        final = (studies.get(space) or {}).get("final")
        if final is None or final.get("winner") is None:
            scores[f"`{space}` study, final model"] = None
        elif cv:
            w = final["winner"]
            scores[f"`{space}` study, final model"] = (w["cv"]["mean"], w["cv"]["std"], w["cv_auc"]["mean"])
        else:
            h = final["headline"]
            scores[f"`{space}` study, final model"] = (h["macro_f1"], None, h["auc"])
    return scores


def publish_table(args: argparse.Namespace, console) -> str:
    from study.final_summary import BASELINE_NAMES

    path = args.results_dir / "original.json"
    original = json.loads(path.read_text()) if path.is_file() else None
    rows, notes, goals = [], [], []
    for data in ("greek", "vaccine"):
        studies = {space: _study(args.results_dir / f"{data}-{space}") for space in ("default", "wide")}
        scores = _scores(data, studies, original)
        protocol = "5-fold CV" if data == "greek" else "train → valid"
        baselines = [scores[BASELINE_NAMES[b]] for b in ("tfidf_word", "tfidf_char")]
        better = max(b[0] for b in baselines) if all(baselines) else None
        for model, score in scores.items():
            if score is None:
                rows.append([data.capitalize(), model, protocol, "not run", "", ""])
                continue
            f1, std, auc = score
            vs = f"{f1 - better:+.3f}" if better is not None else ""
            rows.append([data.capitalize(), model, protocol, _fmt(f1, std), f"{auc:.3f}", vs])
        for space, study in studies.items():
            if study and (study.get("final") or {}).get("winner"):
                notes.append(f"- {data}, `{space}`: {_winner_line(study)}")
        finals = {s: scores[f"`{s}` study, final model"] for s in ("default", "wide")}
        finals = {s: v for s, v in finals.items() if v is not None}
        if better is None or not finals:
            goals.append(f"- {data.capitalize()}: not measured.")
            continue
        best_model = max(finals, key=lambda s: finals[s][0])
        f1, _, auc = finals[best_model]
        gap = f1 - better - GOAL_MARGIN
        goals.append(
            f"- {data.capitalize()}: the better final model (`{best_model}`, {f1:.3f}) against the better TF-IDF "
            f"baseline ({better:.3f}): {f1 - better:+.3f}; goal +{GOAL_MARGIN}: "
            + ("**met**" if gap >= 0 else f"**not met** ({-gap:.3f} short)")
            + _stretch(data, f1, auc)
        )
    header = ("data", "model", "protocol", "macro-F1", "AUC", "vs better TF-IDF")
    epochs = f"{original['epochs']} epochs per fold" if original else "not run"
    body = [
        "## Quality",
        "",
        "`python benchmarks/quality.py study greek-default` (and `greek-wide`, `vaccine-default`, `vaccine-wide`), "
        "`python benchmarks/quality.py original`, then `publish`. Greek: `valid_set.csv` (5,232 labelled tweets, "
        "`test_set.csv` as unlabelled text), scored by the final stage's 5-fold stratified CV on every labelled "
        "row (seed 0), TF-IDF baselines on the same folds; mean ± std over folds. Vaccine: the study searches and "
        "runs its final stage on `vaccine_train_set.csv` only (`--test vaccine_validation_set.csv`, final stage "
        "top 2, 3 folds); its saved final model and the baselines (fitted on the whole training file) score "
        "`vaccine_validation_set.csv`. Studies: "
        + ", ".join(f"{d} {t} trials of at most {e} epochs" for d, (t, e) in BUDGET.items())
        + ", the same for `default` and `wide`. The original's configuration: "
        f"{epochs} (`study.evaluate`'s protocol, best epoch's score).",
        "",
        *markdown_table(header, rows),
        "",
        "Goals (issue 12):",
        "",
        *goals,
        *_ratio(args),
        "",
        "Final models:",
        "",
        *notes,
        *closing(args, 1),
    ]
    return "\n".join(body)


def _stretch(data: str, f1: float, auc: float) -> str:
    target_f1, target_auc = STRETCH[data]
    ok = f1 >= target_f1 and (target_auc is None or auc >= target_auc)
    want = f"macro-F1 >= {target_f1}" + (f" with AUC >= {target_auc}" if target_auc else "")
    return f"; stretch ({want}): " + ("met" if ok else f"not met (macro-F1 {f1:.3f}, AUC {auc:.3f})")


def _ratio(args: argparse.Namespace) -> list[str]:
    lines = []
    for data in ("greek", "vaccine"):
        walls = {}
        for space in ("default", "wide"):
            folder = args.results_dir / f"{data}-{space}"
            study = _study(folder)
            if study is None or study.get("status") != "completed" or not (folder / "benchmark.json").is_file():
                break
            bench = json.loads((folder / "benchmark.json").read_text())
            walls[space] = (study["wall_time_s"], _span(folder), _representations(folder), bench["load_start"])
        if len(walls) < 2:
            lines.append(f"- {data.capitalize()} wall time, `wide` / `default`: not measured.")
            continue
        (d, df, dr, dl), (w, wf, wr, wl) = walls["default"], walls["wide"]
        ratio = w / d
        lines.append(
            f"- {data.capitalize()} wall time, `wide` / `default`: **{ratio:.2f}x** ({w / 60:.1f} against "
            f"{d / 60:.1f} min; the search alone {(w - wf) / 60:.1f} against {(d - df) / 60:.1f} min, the final stage "
            f"{wf / 60:.1f} against {df / 60:.1f}; {wr} distinct representations against {dr}; load average "
            f"{wl:.1f} and {dl:.1f} at the start); goal <= {GOAL_RATIO}x: "
            + ("**met**" if ratio <= GOAL_RATIO else f"**not met** ({ratio - GOAL_RATIO:.2f} over)")
        )
    return lines


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("step", choices=["study", "original", "publish"])
    p.add_argument("which", nargs="?", choices=["greek-default", "greek-wide", "vaccine-default", "vaccine-wide"])
    p.add_argument("--quick", action="store_true", help="a tiny run on the demo data that only checks it works")
    p.add_argument("--results-dir", type=Path, default=REPO / "results" / "quality")
    p.add_argument("--epochs-original", type=int, default=5, help="epochs of the original's configuration")
    add_output_arguments(p, SECTION, "a paragraph added under the table")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from rich.console import Console

    console = Console(stderr=True)
    if data_folder_missing(args.data_dir, console):
        return 2
    if args.step == "study":
        if args.which is None:
            console.print("[bold red]error:[/] `study` needs one of greek-default, greek-wide, vaccine-default, ...")
            return 2
        run_study(args.which, args)
    elif args.step == "original":
        run_original(args)
    else:
        text = publish_table(args, console)
        console.print(text)
        publish(SECTION, text, args, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
