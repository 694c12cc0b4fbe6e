"""The default suite (the fast tier: a plain run leaves the slow tests out), and shared pytest fixtures: the real
(never committed) data, two tiny real studies, a study written without Ray whose final model is worse than its
baseline, headless Chromium."""

import os
from pathlib import Path

import pytest


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="run the slow end-to-end tier too (CI runs it: .ci/run)")


def pytest_collection_modifyitems(config, items):
    """A plain `python -m pytest` is the default suite, the fast tier: the tests marked slow are left out.

    Naming files or tests, `-m`, or `--slow` runs what is named; CI runs the slow tier with `-m slow`.
    """
    named = config.args_source == pytest.Config.ArgsSource.ARGS
    if named or config.option.markexpr or config.getoption("--slow"):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The project's shared real data at ../shared/data; skips where absent, fails instead when CI is set."""
    path = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not path.is_dir():
        reason = f"shared real data not found at {path}"
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI is set, so this is an error)")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def small_studies(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny real study (3 trials, 2 epochs, 300 demo tweets, seed 0) and a second study derived from it: one
    validation set, the second's predictions blurred and its final models' folds 0.01-0.02 lower.

    The real one is built once per session with the project's own `run_study` on a 2-CPU Ray started here (or
    the one already running); the second is written from its files (one real study is enough for the report and
    comparison tests).
    """
    import json
    import shutil

    import numpy as np
    import ray

    from study.config import StudyConfig
    from study.results import FINAL_SCHEMA, PREDICTIONS_SCHEMA, read_table, write_table
    from study.search.driver import run_study

    root = tmp_path_factory.mktemp("small_studies")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    try:
        config = dict(space="smoke", num_samples=3, max_epochs=2, demo_rows=300, vector_size=16, results_dir=str(root))
        a = run_study(
            StudyConfig.from_settings(**config, final_top=2, final_folds=2, seed=0, name="seed0")
        ).folder  # smoke's
    finally:
        if started:
            ray.shutdown()
    b = Path(shutil.copytree(a, root / "seed1", ignore=shutil.ignore_patterns("ray", "figures", "report.html")))
    rng = np.random.default_rng(1)
    preds = read_table(b / "predictions.parquet")
    preds["probs"] = [list(0.7 * np.asarray(p) + 0.3 * rng.dirichlet(np.ones(len(p)))) for p in preds["probs"]]
    write_table(preds.to_dict("records"), b / "predictions.parquet", PREDICTIONS_SCHEMA)
    final = read_table(b / "final.parquet")
    shift = np.where(final["kind"] == "rnn", -0.01 * final["fold"], 0.0)  # folds 1, 2: -0.01, -0.02
    final["macro_f1"] += shift
    write_table(final.to_dict("records"), b / "final.parquet", FINAL_SCHEMA)
    study = json.loads((b / "study.json").read_text())
    study["name"], study["settings"]["seed"], study["settings"]["name"] = "seed1", 1, "seed1"
    for c in study["final"]["candidates"]:
        for key in ("mean", "low", "high"):
            c["cv"][key] -= 0.015
    study["final"]["winner"]["cv"] = next(c["cv"] for c in study["final"]["candidates"]
                                          if c["trial_id"] == study["final"]["winner"]["trial_id"])  # fmt: skip
    (b / "study.json").write_text(json.dumps(study))
    return a, b


@pytest.fixture(scope="session")
def small_study(small_studies) -> Path:
    """The folder of one tiny real study (see `small_studies`)."""
    return small_studies[0]


@pytest.fixture(scope="session")
def worse_study(tmp_path_factory) -> Path:
    """A study folder written from rows and a dict, no Ray, whose final model is worse than its strongest baseline.

    8 trials of the smoke space (t3 the search's best, t5 the final stage's winner and saved model), epochs and
    validation predictions, the final stage's rows over 5 folds, study.json with its `final` block and the data's
    accounting (4 texts in both training and validation), a few tokens as its data summary. Read-only: copy it to
    change it.
    """
    import json

    import numpy as np

    from search_spaces import get_space
    from study.final import stats as cvstats
    from study.final.summary import BASELINE_NAMES, METRIC_NAMES
    from study.results import (
        BEST_METRIC,
        EPOCHS_SCHEMA,
        FINAL_SCHEMA,
        PREDICTIONS_SCHEMA,
        SCHEMA_VERSION,
        TRIALS_SCHEMA,
        write_table,
    )
    from trainables.metrics import METRIC
    from trainables.summary import CLEAN, DATA_FILE, DATA_SCHEMA, RAW

    WINNER, SEARCH_BEST, FOLDS = "t5", "t3", 5

    def _cv(scores):
        return vars(cvstats.cv_estimate(scores, FOLDS))

    folder = tmp_path_factory.mktemp("worse_study") / "worse"
    folder.mkdir()
    rng = np.random.default_rng(0)
    scores = {"t0": 0.41, "t1": 0.44, "t2": None, "t3": 0.52, "t4": 0.38, "t5": 0.50, "t6": 0.47, "t7": 0.35}
    trials, epochs = [], []
    for n, (tid, score) in enumerate(scores.items()):
        status = "errored" if score is None else "stopped_early" if n % 3 == 1 else "completed"
        run = {"errored": 1, "stopped_early": 1, "completed": 3}[status]
        params = {"cell": ("lstm", "gru")[n % 2], "hidden_size": 8 + 3 * n, "lr": 10 ** (-3 + n / 8), "dropout": n / 30}
        best_epoch = run if score is not None else None
        trials.append(
            {"trial_id": tid, "trial_number": n, "status": status, "best_epoch": best_epoch, "epochs_run": run,
             **{f"params_{k}": v for k, v in params.items()}, "params_num_layers": 1, "params_batch_size": 64,
             BEST_METRIC: score, "best_val_auc": None if score is None else score + 0.2,
             "best_val_accuracy": None if score is None else score + 0.1, "best_val_loss": 1.0, "time_total_s": 5.0}
        )  # fmt: skip
        for e in range(1, run + 1 if score is not None else 1):
            f1 = score - 0.05 * (run - e)
            epochs.append(
                {"trial_id": tid, "epoch": e, "train_loss": 1.1 - 0.1 * e, "train_macro_f1": f1 + 0.05,
                 "train_accuracy": f1 + 0.1, "val_loss": 1.0 + 0.01 * e, METRIC: f1, "val_accuracy": f1 + 0.1,
                 "val_auc": f1 + 0.2, "val_f1_per_class": [f1 - 0.1, f1, f1 + 0.1],
                 "val_recall_per_class": [f1 - 0.1, f1, f1 + 0.1], "epoch_time_s": 1.5}
            )  # fmt: skip
    y = np.arange(60) % 3
    predictions = [
        {"trial_id": tid, "epoch": 3, "row": i, "label": int(y[i]), "probs": list(p)}
        for tid in (SEARCH_BEST, WINNER, "t6")
        for i, p in enumerate(rng.dirichlet(np.ones(3), 60) + 0.5 * np.eye(3)[y])
    ]
    write_table(trials, folder / "trials.parquet", TRIALS_SCHEMA)
    write_table(epochs, folder / "epochs.parquet", EPOCHS_SCHEMA)
    write_table(predictions, folder / "predictions.parquet", PREDICTIONS_SCHEMA)
    # the data summary: a few tokens before and after cleaning, no map points (the report says so)
    tokens = {RAW: {"Η": 40, "ΝΔ": 30, "@user": 25, "εκλογές": 20}, CLEAN: {"νδ": 30, "εκλογες": 22, "ψηφος": 9}}
    data = [{"kind": k, "token": t, "count": c} for k, counts in tokens.items() for t, c in counts.items()]
    write_table(data, folder / DATA_FILE, DATA_SCHEMA)

    noise = np.array([0.01, -0.01, 0.005, -0.004, 0.0])
    folds = {SEARCH_BEST: 0.37 + noise, WINNER: 0.40 + noise}
    folds |= {b: 0.44 + 0.02 * j + noise[::-1] for j, b in enumerate(BASELINE_NAMES)}  # the last is the strongest
    rows = []
    for name, f1s in folds.items():
        rnn = name in (SEARCH_BEST, WINNER)
        for k, f1 in enumerate(f1s, 1):
            curve = [f1 - 0.06, f1 - 0.01, f1] if rnn else None
            rows.append(
                {"candidate": name, "kind": "rnn" if rnn else name, "rank": {SEARCH_BEST: 1, WINNER: 2}.get(name),
                 "split": "cv", "fold": k, "n_train": 480, "n_held_out": 120, "macro_f1": f1, "auc": f1 + 0.2,
                 "accuracy": f1 + 0.1, "loss": 1.0, "best_epoch": 3 if rnn else None, "epochs": 3 if rnn else None,
                 "curve": curve, "inner_curve": [c + 0.02 for c in curve] if rnn else None,
                 "held_out_best_macro_f1": f1 + 0.01 if rnn else None, "time_s": 2.0}
            )  # fmt: skip
    write_table(rows, folder / "final.parquet", FINAL_SCHEMA)

    strongest = list(BASELINE_NAMES)[-1]
    params = {t["trial_id"]: {k.removeprefix("params_"): t[k] for k in t if k.startswith("params_")} for t in trials}
    search = {SEARCH_BEST: 0.52, WINNER: 0.50}
    candidates = [
        {"trial_id": tid, "rank": rank, "search_score": search[tid], "params": params[tid], "cv": _cv(folds[tid]),
         "cv_auc": _cv(folds[tid] + 0.2), "cv_held_out_epoch": _cv(folds[tid] + 0.01), "epochs": 3,
         "optimism": search[tid] - float(np.mean(folds[tid])), "complete": True, "errors": []}
        for rank, tid in enumerate((SEARCH_BEST, WINNER), 1)
    ]  # fmt: skip
    comparison = {}
    for metric, shift in (("macro_f1", 0.0), ("auc", 0.2)):
        t = cvstats.paired(folds[WINNER] + shift, folds[strongest] + shift, FOLDS)
        line = cvstats.verdict_line(f"trial {WINNER}", BASELINE_NAMES[strongest], t, METRIC_NAMES[metric])
        comparison[metric] = {**vars(t), "line": line}
    winner = candidates[1]
    final = {
        "folds": FOLDS,
        "winner": winner,
        "candidates": candidates,
        "baselines": {b: {"cv": _cv(f), "cv_auc": _cv(f + 0.2)} for b, f in folds.items() if b in BASELINE_NAMES},
        "better_baseline": strongest,
        "comparison": comparison,
        "scored_by": "each fold's epoch is the best on an inner validation split of the fold's training part",
        "test": None,
        "headline": {"source": "cv", "macro_f1": winner["cv"]["mean"], "low": winner["cv"]["low"],
                     "high": winner["cv"]["high"], "auc": winner["cv_auc"]["mean"]},
        "model": "model",
    }  # fmt: skip
    accounting = {
        "files": [
            {"part": "train", "path": "train.csv", "rows_read": 500, "dropped_unmapped": 12, "dropped_empty": 3,
             "rows_kept": 485},
            {"part": "valid", "path": "valid.csv", "rows_read": 120, "dropped_unmapped": 0, "dropped_empty": 0,
             "rows_kept": 120},
        ],
        "duplicates": {"within": {"train": 7, "valid": 1, "test": 0},
                       "across": {"train/valid": 4, "train/test": 0, "valid/test": 0}},
    }  # fmt: skip
    settings = {"space": "smoke", "vector_size": 0, "vectors": "", "n_startup_trials": 0, "max_concurrent": 0,
                "max_epochs": 3, "grace_period": 1, "reduction_factor": 3, "data_seed": 0}  # fmt: skip
    study = {
        "schema_version": SCHEMA_VERSION,
        "name": "worse",
        "status": "completed",
        "settings": settings,
        "space": get_space("smoke").to_dict(),
        "classes": ["NEGATIVE", "NEUTRAL", "POSITIVE"],
        "data": {"fingerprint": "f" * 20, "n_train": 485, "n_valid": 120, "vectors": None, "accounting": accounting},
        "ray": {"startup_trials": 3, "max_concurrent": 2},
        "wall_time_s": 60.0,
        "final": final,
    }
    (folder / "study.json").write_text(json.dumps(study))
    return folder


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@pytest.fixture  # per test: where Chromium is absent, each test that renders skips, and only it
def render_html():
    """A function that opens an HTML file in headless Chromium and says what loaded.

    It returns {"images_total", "images_loaded", "errors", "overflow"} (what the page's own script writes on
    <body>), "console" (console lines Chromium logged) and "screenshot" (a PNG written beside the page's
    temporary profile). Skips where Chromium is absent; fails instead when CI is set.
    """
    import re
    import shutil
    import subprocess

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        reason = "headless Chromium not found (Debian: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI is set, so this is an error)")
        pytest.skip(reason)

    def render(page: Path, tmp: Path, height: int = 4000) -> dict:
        profile = tmp / "chromium-profile"
        common = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
        url = Path(page).resolve().as_uri()
        dom = subprocess.run(
            [*common, "--enable-logging=stderr", "--v=0", "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=120,
        )
        body = re.search(r"<body([^>]*)>", dom.stdout)
        attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1))) if body else {}
        screenshot = tmp / f"{Path(page).stem}.png"
        subprocess.run(
            [*common, f"--screenshot={screenshot}", f"--window-size=1280,{height}", url],
            capture_output=True,
            timeout=120,
        )
        return {
            "images_total": int(attrs.get("images-total", -1)),
            "images_loaded": int(attrs.get("images-loaded", -1)),
            "errors": int(attrs.get("errors", -1)),
            "overflow": attrs.get("overflow"),  # "false" when nothing runs off the window's right edge
            "console": [ln for ln in dom.stderr.splitlines() if ":CONSOLE" in ln],
            "screenshot": screenshot,
        }

    return render
