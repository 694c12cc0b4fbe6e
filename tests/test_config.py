import pytest

from study.config import StudyConfig, build_config, read_toml
from trainables.data_settings import flat_settings
from trainables.settings import ConfigError


def test_defaults_are_valid_and_smoke_preset_applies():
    assert StudyConfig().space == "default"
    cfg = build_config({"smoke": True})
    assert cfg.space == "smoke" and cfg.num_samples == 4 and cfg.max_epochs == 3
    cfg = build_config({"smoke": True, "num_samples": "7"})  # flags win over the preset
    assert cfg.num_samples == 7


def test_toml_takes_flag_names_and_flags_win(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text('num-samples = 9\nmax_epochs = 4\nspace = "seed"\nclean-off = ["remove_stopwords"]\n')
    cfg = build_config({"max_epochs": "5"}, str(path))
    assert (cfg.num_samples, cfg.max_epochs, cfg.space) == (9, 5, "seed")
    assert cfg.clean_off == ("remove_stopwords",)
    assert cfg.clean_config().remove_stopwords is False


@pytest.mark.parametrize(
    "flags,message",
    [
        ({"space": "nope"}, "`space` must be one of the known search spaces, but got 'nope'"),
        ({"max_epochs": "-1"}, "`max_epochs` must be >= 1, but got -1"),
        ({"num_samples": "0"}, "`num_samples` must be >= 1, but got 0"),
        ({"num_samples": "abc"}, "`num_samples` (flag --num-samples) must be an integer, but got 'abc'"),
        ({"cpus_per_trial": "0"}, "`cpus_per_trial` must be > 0"),
        ({"gpus_per_trial": "1.5"}, "`gpus_per_trial` must be a fraction of one GPU"),
        ({"grace_period": "9", "max_epochs": "3"}, "`grace_period` must be <= `max_epochs` (3)"),
        ({"reduction_factor": "1"}, "`reduction_factor` must be >= 2"),
        ({"valid_fraction": "1.2"}, "`valid_fraction` must be in (0, 1)"),
        ({"vectorizer": "bert"}, "`vectorizer` must be one of"),
        ({"clean_off": "remove_everything"}, "`clean_off` must name cleaning steps"),
        ({"label_map": "0-neutral"}, "--label-map"),
        ({"empty_texts": "ignore"}, "`empty_texts` must be one of"),
        ({"name": "../escape"}, "`name` must be 1-100 letters"),
        ({"name": "/abs/path"}, "`name` must be 1-100 letters"),
        ({"resume": "a/../../b"}, "`resume` must be 1-100 letters"),
        ({"name": "bad name"}, "`name` must be 1-100 letters"),
    ],
)
def test_bad_settings_name_the_setting(flags, message):
    with pytest.raises(ConfigError) as e:
        build_config(flags)
    assert message in str(e.value)


def test_toml_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("num_samples = [\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        read_toml(bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("num_trials = 3\n")
    with pytest.raises(ConfigError, match="unknown setting 'num_trials'.*num-samples"):
        read_toml(unknown)
    with pytest.raises(ConfigError, match="does not exist"):
        read_toml(tmp_path / "missing.toml")
    code = tmp_path / "code.toml"
    code.write_text("space = \"__import__('os').system('echo hi')\"\n")  # a string, never evaluated
    with pytest.raises(ConfigError, match="`space` must be one of"):
        build_config({}, str(code))


def test_startup_trials_fit_the_budget():
    assert StudyConfig.from_settings(num_samples=4).startup_trials() == 2
    assert StudyConfig.from_settings(num_samples=20).startup_trials() == 5
    assert StudyConfig.from_settings(num_samples=200).startup_trials() == 10
    assert StudyConfig.from_settings(num_samples=20, n_startup_trials=7).startup_trials() == 7


def test_a_study_json_with_a_setting_this_version_does_not_know_is_refused(tmp_path):
    import json

    from study.results import SCHEMA_VERSION
    from study.search.driver import resolve

    folder = tmp_path / "other"
    folder.mkdir()
    settings = {**flat_settings(StudyConfig()), "w2v_negative": 5}
    study = {"schema_version": SCHEMA_VERSION, "name": "other", "settings": settings}
    (folder / "study.json").write_text(json.dumps(study))
    with pytest.raises(ConfigError, match="w2v_negative, which this version does not know"):
        resolve(StudyConfig.from_settings(resume="other", results_dir=str(tmp_path)))


def test_evaluate_reads_a_spaces_representation_names():
    from study.evaluate import build_settings

    settings, _ = build_settings({}, ["encoding=mean", "window=3", "sg=true", "min_count=1"], None)
    v = settings.vector_config
    assert (v.mode, v.window, v.sg, v.min_count) == ("mean", 3, True, 1)


def test_vector_size_0_is_300_for_trained_vectors_and_the_files_for_pretrained_ones():
    assert StudyConfig().vector_config.vector_size == 300
    assert StudyConfig.from_settings(vectors="v.vec").vector_config.vector_size == 0
    assert build_config({"smoke": True}).vector_config.vector_size == 32
    assert (
        build_config({"smoke": True, "vectors": "v.vec"}).vector_config.vector_size == 0
    )  # the preset's 32 is not the file's


def test_the_demo_data_gets_a_smaller_final_stage_real_data_the_defaults(tmp_path):
    """No `train`: the demo's preset (said in the log); a file of one's own, or an explicit flag, gets its own."""
    from study.config import DEMO_PRESET

    demo = build_config({})
    assert (demo.final_top, demo.final_folds) == (DEMO_PRESET["final_top"], DEMO_PRESET["final_folds"])
    real = build_config({"train": str(tmp_path / "t.csv")})
    assert (real.final_top, real.final_folds) == (StudyConfig.final_top, StudyConfig.final_folds)
    assert build_config({"final_folds": 5}).final_folds == 5
    assert build_config({"smoke": True}).final_folds == 2  # the smoke preset wins over the demo's
