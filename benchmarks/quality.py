"""Quality benchmark: what the study's answer scores against TF-IDF baselines, on the Greek and the vaccine data,
under the old protocol and the new one side by side (issue 20).

The new protocol (the final stage, `study.evaluate` and `study.ablate` alike): each fold's epoch is chosen on an
inner validation split of its training part and the held-out fold is scored once, at that epoch; the baselines
read the raw texts (lowercased, URLs and mentions normalised) with C chosen by an inner CV, word, character and
both; folds keep identical texts together. The old protocol: each fold's best epoch chosen on the held-out fold
itself (the final stage keeps that number as `held_out_best_macro_f1`), and baselines on the RNN's cleaned tokens
with C = 1 (`old-baselines` recomputes them on the same folds and test rows).

What it measures, for each data set:
- TF-IDF + logistic regression on words (1-2-grams), characters (2-5-grams) and both, on the same folds / test
  rows as the study's final stage;
- the original work's best configuration (bidirectional LSTM, hidden 16, 3 layers, skip, attention, dropout 0.3,
  clip 0.4, lr 1e-4, batch 2048, `mean` encoding of 300-d Word2Vec), `study.evaluate`'s protocol;
- the final model of a `default` study (and of a `wide` study where one was run) with the same trial budget.
Greek election tweets (`valid_set.csv`, 5,232 labelled, `test_set.csv` as unlabelled text): the final stage's
5-fold stratified CV on every labelled row (seed 0; each fold's vectors trained without its held-out fold).
Vaccine tweets: `--train vaccine_train_set.csv --test vaccine_validation_set.csv`: the study searches and runs its
final stage on the training file only (3-fold CV), and the saved final model scores the validation file, as do the
baselines fitted on the whole training file (the study's headline).

Each study runs as `python -m study.run` in its own process (Ray workers at the driver's priority,
`RAY_worker_niceness=0`), one after the other, so that each step stays within about 45 minutes and can be rerun:

    python benchmarks/quality.py study greek-default     # then vaccine-default (greek-wide, vaccine-wide)
    python benchmarks/quality.py old-baselines greek-default     # the old baselines on that study's folds
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sections import add_output_arguments, closing, data_folder_missing, markdown_table, publish  # noqa: E402

SECTION = "quality"
GREEK, VACCINE = "greek-election-tweets-ys19-2023", "vaccine-sentiment-ys19"
BUDGET = {"greek": ("40", "8"), "vaccine": ("24", "6")}  # trials and max epochs per study, the same for both spaces
GOAL_RATIO = 1.3


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
    from study.config import StudyConfig
    from study.final.evaluation import evaluate
    from trainables.data_settings import flat_settings
    from trainables.hparams import HParams

    hp = HParams(**ORIGINAL, max_epochs=1 if args.quick else args.epochs_original)
    size = 32 if args.quick else 300
    g, v = args.data_dir / GREEK, args.data_dir / VACCINE
    out = {}
    greek = StudyConfig.from_settings(
        train=str(g / "valid_set.csv"), unlabelled=(str(g / "test_set.csv"),), encoding="mean", vector_size=size
    )
    t0 = time.perf_counter()
    out["greek"] = {**_summary(evaluate(greek, hp, 2 if args.quick else 5)), "wall_s": time.perf_counter() - t0}
    vaccine = StudyConfig.from_settings(
        **{
            **flat_settings(greek),
            "train": str(v / "vaccine_train_set.csv"),
            "valid": str(v / "vaccine_validation_set.csv"),
            "unlabelled": (),
            "text_column": "tweet",
            "label_column": "label",
            "party_column": "",
            "label_map": "0=neutral,1=anti,2=pro",
        }
    )
    t0 = time.perf_counter()
    out["vaccine"] = {**_summary(evaluate(vaccine, hp, None)), "wall_s": time.perf_counter() - t0}
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
        "held_out_best_macro_f1": s["held_out_best_macro_f1_mean"],
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


OLD_BASELINES = ("tfidf_word", "tfidf_char")  # the old protocol had no union
OLD_BASELINES_FILE = "old_baselines.json"


def _old_proba(kind: str, train_tokens, labels, test_tokens, n_classes: int):
    """The old protocol's baseline: TF-IDF on the RNN's cleaned tokens, logistic regression with C = 1 (lbfgs)."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    if kind == "tfidf_word":
        vec = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"\S+")
    else:
        vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)
    clf = LogisticRegression(C=1.0, max_iter=2000, random_state=0).fit(vec.fit_transform(train_tokens), labels)
    probs = np.zeros((len(test_tokens), n_classes))
    probs[:, clf.classes_] = clf.predict_proba(vec.transform(test_tokens))
    return probs


def run_old_baselines(which: str, args: argparse.Namespace) -> None:
    """The old protocol's baselines on a finished study's folds (and test rows): `<study>/old_baselines.json`."""
    import numpy as np

    from study.config import StudyConfig, saved_settings
    from trainables.data import text_groups
    from trainables.folds import plan_folds
    from trainables.inputs import load_dataset
    from trainables.metrics import classification_metrics
    from trainables.preprocess import clean_corpus

    folder = args.results_dir / (f"{which}-quick" if args.quick else which)
    study = _study(folder)
    cfg = StudyConfig.from_settings(**saved_settings(study["settings"], str(folder)))
    ds = load_dataset(cfg)
    labelled, clean = ds.labelled, cfg.clean_config()
    tokens = np.array([" ".join(t) for t in clean_corpus(labelled.texts, clean)], dtype=object)
    n = len(labelled.classes)
    out: dict = {"cv": {b: [] for b in OLD_BASELINES}, "test": {}}
    groups = text_groups(labelled, clean)
    for fold in plan_folds(labelled.labels, groups, study["final"]["folds"], cfg.data_seed):
        tr, ho = fold.train, fold.held_out
        for b in OLD_BASELINES:
            probs = _old_proba(b, tokens[tr], labelled.labels[tr], tokens[ho], n)
            out["cv"][b].append(classification_metrics(labelled.labels[ho], probs, "")["macro_f1"])
    if ds.test is not None:
        test_tokens = [" ".join(t) for t in clean_corpus(ds.test.texts, clean)]
        for b in OLD_BASELINES:
            probs = _old_proba(b, tokens, labelled.labels, test_tokens, n)
            out["test"][b] = classification_metrics(ds.test.labels, probs, "")
    (folder / OLD_BASELINES_FILE).write_text(json.dumps(out))
    print(json.dumps(out))


def _folds(folder: Path, candidate: str, column: str) -> list[float]:
    import pandas as pd

    rows = pd.read_parquet(folder / "final.parquet")
    mine = rows[(rows["candidate"] == candidate) & (rows["split"] == "cv")].sort_values("fold")
    return mine[column].astype(float).tolist()


def _verdict(a: list[float], b: list[float], folds: int) -> str:
    from study.final.stats import paired

    r = paired(a, b, folds)
    return f"{r.difference:+.3f} [{r.low:+.3f}, {r.high:+.3f}], p {r.p_value:.2f}: {r.verdict}"


def _data_rows(data: str, space: str, folder: Path, original: dict | None) -> tuple[list[list[str]], list[str]]:
    """The table rows and verdict lines of one study: old and new protocol side by side."""
    import numpy as np

    from study.final.summary import BASELINE_NAMES

    study = _study(folder)
    label = data.capitalize()
    if study is None or not (study.get("final") or {}).get("winner"):
        return [[label, f"`{space}` study", "", "not run", "not run", "", ""]], []
    final, w = study["final"], study["final"]["winner"]
    old_path = folder / OLD_BASELINES_FILE
    old = json.loads(old_path.read_text()) if old_path.is_file() else None
    k = final["folds"]
    strongest = final["better_baseline"]
    best_new = final["baselines"][strongest]["cv"]["mean"]
    cv = f"{k}-fold CV"
    rows = []
    for b in final["baselines"]:
        new = final["baselines"][b]
        old_f1 = f"{np.mean(old['cv'][b]):.3f}" if old and b in old["cv"] else "—"
        rows.append(
            [
                label,
                BASELINE_NAMES[b],
                cv,
                old_f1,
                _fmt(new["cv"]["mean"], new["cv"]["std"]),
                f"{new['cv_auc']['mean']:.3f}",
                f"{new['cv']['mean'] - best_new:+.3f}",
            ]
        )
    model = f"`{space}` study, final model"
    rows.append(
        [
            label,
            model,
            cv,
            f"{w['cv_held_out_epoch']['mean']:.3f}",
            _fmt(w["cv"]["mean"], w["cv"]["std"]),
            f"{w['cv_auc']['mean']:.3f}",
            f"{w['cv']['mean'] - best_new:+.3f}",
        ]
    )
    lines = [f"- {label}, `{space}`, new protocol: {final['comparison']['macro_f1']['line']}"]
    if old:
        old_best = max(OLD_BASELINES, key=lambda b: np.mean(old["cv"][b]))
        mine = _folds(folder, w["trial_id"], "held_out_best_macro_f1")
        lines.append(
            f"- {label}, `{space}`: old protocol, the final model against {BASELINE_NAMES[old_best]} "
            f"(cleaned tokens, C = 1): {_verdict(mine, old['cv'][old_best], k)}"
        )
    test = final.get("test")
    if test and test.get("model"):
        n = f"test ({test['n']} rows)"
        best_test = max(v["macro_f1"] for v in test["baselines"].values())
        for b, v in test["baselines"].items():
            old_f1 = f"{old['test'][b]['macro_f1']:.3f}" if old and b in old["test"] else "—"
            rows.append(
                [
                    label,
                    BASELINE_NAMES[b],
                    n,
                    old_f1,
                    f"{v['macro_f1']:.3f}",
                    f"{v['auc']:.3f}",
                    f"{v['macro_f1'] - best_test:+.3f}",
                ]
            )
        m = test["model"]
        rows.append(
            [label, model, n, "", f"{m['macro_f1']:.3f}", f"{m['auc']:.3f}", f"{m['macro_f1'] - best_test:+.3f}"]
        )
    o = (original or {}).get(data)
    if o and space == "default":
        protocol = "5-fold CV" if data == "greek" else "train → valid"
        rows.append(
            [
                label,
                "original's best configuration (`study.evaluate`)",
                protocol,
                f"{o.get('held_out_best_macro_f1', float('nan')):.3f}",
                _fmt(o["macro_f1"], o["macro_f1_std"]),
                f"{o['auc']:.3f}",
                "",
            ]
        )
    return rows, lines


def publish_table(args: argparse.Namespace, console) -> str:
    path = args.results_dir / "original.json"
    original = json.loads(path.read_text()) if path.is_file() else None
    rows, verdicts, notes = [], [], []
    for data in ("greek", "vaccine"):
        for space in ("default", "wide"):
            folder = args.results_dir / f"{data}-{space}"
            if space == "wide" and not folder.is_dir():
                continue
            r, v = _data_rows(data, space, folder, original)
            rows += r
            verdicts += v
            study = _study(folder)
            if study and (study.get("final") or {}).get("winner"):
                notes.append(f"- {data}, `{space}`: {_winner_line(study)}")
    header = ("data", "model", "scored on", "old protocol", "new protocol", "AUC (new)", "new − strongest baseline")
    epochs = f"{original['epochs']} epochs per fold" if original else "not run"
    body = [
        "## Quality",
        "",
        "`python benchmarks/quality.py study greek-default` (and `vaccine-default`), `python benchmarks/quality.py "
        "old-baselines greek-default` (and `vaccine-default`), `python benchmarks/quality.py original`, then "
        "`publish`. Greek: `valid_set.csv` (5,232 labelled tweets, `test_set.csv` as unlabelled text), scored by "
        "the final stage's 5-fold stratified CV on every labelled row (seed 0); mean ± std over folds. Vaccine: "
        "the study searches and runs its final stage on `vaccine_train_set.csv` only (`--test "
        "vaccine_validation_set.csv`, final stage top 2, 3 folds); its saved final model and the baselines "
        "(fitted on the whole training file) score `vaccine_validation_set.csv`. Studies: "
        + ", ".join(f"{d} {t} trials of at most {e} epochs" for d, (t, e) in BUDGET.items())
        + ". **New protocol** (issue 20): each fold's epoch chosen on an inner validation split (1/7) of its "
        "training part, the held-out fold scored once at that epoch; baselines on the raw texts (lowercased, URLs "
        "and mentions normalised), C chosen by a 3-fold inner CV; identical texts kept in one fold. **Old "
        "protocol**, on the same folds and test rows: the model's epoch chosen on the held-out fold itself (the "
        "same run's `held_out_best_macro_f1`), baselines on the RNN's cleaned tokens with C = 1. The original's "
        f"configuration: {epochs} (`study.evaluate`).",
        "",
        *markdown_table(header, rows),
        "",
        "Verdicts (corrected paired t-test over the folds, 95%):",
        "",
        *verdicts,
        *_ratio(args),
        "",
        "Final models:",
        "",
        *notes,
        *closing(args, 1),
    ]
    return "\n".join(body)


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
    p.add_argument("step", choices=["study", "old-baselines", "original", "publish"])
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
    elif args.step == "old-baselines":
        run_old_baselines(args.which, args)
    elif args.step == "original":
        run_original(args)
    else:
        text = publish_table(args, console)
        console.print(text)
        publish(SECTION, text, args, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
