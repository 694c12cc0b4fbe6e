"""The representation store on a real Ray, and a tiny `wide`-space study from start to saved model."""

import json

import pandas as pd
import pytest

from study.config import StudyConfig
from study.search.representations import base_params, start_store
from trainables.data_settings import DataSettings
from trainables.inputs import load_dataset
from trainables.prepare import prepare
from trainables.vectorize import SEARCHED, representation_key


@pytest.fixture(scope="module")
def ray_2_cpus(tmp_path_factory):
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield
    if started:
        ray.shutdown()


def test_representation_key_is_canonical_and_ignores_other_parameters():
    a = representation_key({"vector_size": 100, "vectorizer": "fasttext", "lr": 0.1})
    b = representation_key({"vectorizer": "fasttext", "vector_size": 100, "cell": "gru"})
    assert a == b and a != representation_key({"vectorizer": "fasttext", "vector_size": 300})
    assert set(SEARCHED) == {"vectorizer", "vector_size", "window", "sg", "min_count"}


@pytest.mark.slow
def test_the_store_builds_each_representation_once_however_many_trials_ask_at_once(ray_2_cpus, tmp_path):
    import ray

    from trainables.trainable import representation_data

    settings = DataSettings.from_settings(demo_rows=120, vector_size=8, w2v_epochs=1)
    dataset = load_dataset(settings, tmp_path)
    base = settings.vector_config
    data = prepare(dataset.train, dataset.valid, dataset.unlabelled, settings.clean_config(), base, tmp_path)
    store = start_store(dataset, settings.clean_config(), base, tmp_path, data)

    @ray.remote(num_cpus=0)
    def trial(store, params):  # what a trial does: ask, wait, read the arrays
        d = representation_data(store, params)
        return d.fingerprint, d.input_size, len(d.y_train)

    wanted = {**base_params(base), "vectorizer": "fasttext", "vector_size": 12}
    answers = ray.get([trial.remote(store, wanted) for _ in range(4)])  # four trials at once
    assert len(set(answers)) == 1 and answers[0][1] == 12 and answers[0][2] == len(dataset.train)
    assert ray.get(store.built.remote()) == [representation_key(wanted)]  # one build for four requests
    again = ray.get(trial.remote(store, wanted))
    assert again == answers[0] and ray.get(store.built.remote()) == [representation_key(wanted)]

    own = ray.get(trial.remote(store, base_params(base)))  # the study's own representation: known, never built
    assert own[0] == data.fingerprint and len(ray.get(store.built.remote())) == 1
    other = {**wanted, "window": 2}
    assert ray.get(trial.remote(store, other))[0] != answers[0][0]
    assert ray.get(store.built.remote()) == [representation_key(wanted), representation_key(other)]


@pytest.mark.slow
def test_a_tiny_study_searches_the_representation_and_saves_the_winners(ray_2_cpus, tmp_path):
    from study.search.driver import run_study
    from trainables.saved_model import load_model

    space = tmp_path / "representations.toml"  # every representation setting but the window, and two options
    space.write_text(
        'description = "the representation in the search"\n[params]\n'
        'hidden_size = { type = "int", low = 8, high = 16 }\n'
        'vectorizer = { type = "categorical", choices = ["word2vec", "fasttext"] }\n'
        'vector_size = { type = "categorical", choices = [8, 12] }\n'
        'sg = { type = "categorical", choices = [false, true] }\n'
        'min_count = { type = "categorical", choices = [1, 2] }\n'
        'lr_schedule = { type = "categorical", choices = ["none", "cosine"] }\n'
        'weight_decay = { type = "float", low = 1e-6, high = 1e-2, log = true }\n'
    )
    cfg = StudyConfig.from_settings(
        space=str(space),
        num_samples=3,
        n_startup_trials=3,
        max_epochs=1,
        demo_rows=300,
        w2v_epochs=1,
        final_top=2,
        final_folds=2,
        name="wide",
        results_dir=str(tmp_path),
    )
    outcome = run_study(cfg)
    trials = pd.read_parquet(outcome.folder / "trials.parquet")
    assert len(trials) == 3 and (trials["status"] != "errored").all()
    for name in ("vectorizer", "vector_size", "sg", "min_count", "lr_schedule", "weight_decay"):
        assert trials[f"params_{name}"].notna().all(), name
    study = json.loads((outcome.folder / "study.json").read_text())
    final = study["final"]
    winner = final["winner"]
    assert {"vectorizer", "vector_size", "sg", "min_count"} <= set(winner["params"])
    folds = pd.read_parquet(outcome.folder / "final.parquet")
    assert folds[folds["kind"] == "rnn"]["error"].isna().all()
    model = load_model(outcome.folder / "model")
    p = winner["params"]
    assert model.vectors.kind == p["vectorizer"] and model.vectors.vector_size == p["vector_size"]
    assert model.vectors.window == 5  # the study's own: the space does not search the window
    assert (model.vectors.sg, model.vectors.min_count) == (p["sg"], p["min_count"])
    assert model.hp.lr_schedule == p["lr_schedule"] and model.hp.weight_decay == pytest.approx(p["weight_decay"])
    assert model.network.embedding.weight.shape[1] == p["vector_size"]
    assert (model.words.ngrams is not None) == (p["vectorizer"] == "fasttext")
    assert model.predict_proba(["Καλή μέρα σε όλους"]).shape == (1, 3)


@pytest.mark.slow
def test_a_wide_study_with_fasttext_searches_fasttext_representations(ray_2_cpus, tmp_path):
    """`--vectorizer fasttext --space wide`: wide's grid (min_count at 100-d) is built with FastText, as the space
    file says, and the saved model carries the n-gram vectors."""
    from study.search.driver import run_study
    from trainables.saved_model import load_model

    cfg = StudyConfig.from_settings(
        space="wide",
        vectorizer="fasttext",
        num_samples=2,
        n_startup_trials=2,
        max_epochs=1,
        demo_rows=300,
        w2v_epochs=1,
        final_top=1,
        final_folds=2,
        name="wide-fasttext",
        results_dir=str(tmp_path),
    )
    outcome = run_study(cfg)
    trials = pd.read_parquet(outcome.folder / "trials.parquet")
    assert (trials["status"] != "errored").all() and set(trials["params_min_count"]) <= {1, 2}
    winner = json.loads((outcome.folder / "study.json").read_text())["final"]["winner"]["params"]
    model = load_model(outcome.folder / "model")
    assert model.vectors.kind == "fasttext" and model.words.ngrams is not None
    assert (model.vectors.vector_size, model.vectors.min_count) == (100, winner["min_count"])
