import json
from dataclasses import fields

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from search_spaces import SPACES, get_space, saved_space_setting, space_from_record
from search_spaces.rnn import HYPERPARAMETERS, STUDY_SETTINGS, SearchSpace, check_values
from study.config import build_config
from trainables.hparams import HParams
from trainables.settings import ConfigError
from trainables.vectorize import SEARCHED, VectorConfig, split_params, with_params

# `default` as it was declared in Python before the spaces became TOML files
DEFAULT = SearchSpace(
    name="default",
    description="cell, attention and skip plus hidden size, layers, dropout, clip, lr (log) and batch size",
    params={
        "cell": CategoricalDistribution(["rnn", "lstm", "gru"]),
        "attention": CategoricalDistribution([True, False]),
        "skip": CategoricalDistribution([True, False]),
        "hidden_size": IntDistribution(16, 256, log=True),
        "num_layers": IntDistribution(1, 3),
        "dropout": FloatDistribution(0.0, 0.5),
        "clip": FloatDistribution(0.1, 5.0, log=True),
        "lr": FloatDistribution(1e-4, 1e-2, log=True),
        "batch_size": CategoricalDistribution([32, 64, 128, 256, 512]),
    },
    fixed={"bidirectional": True},
)

# A space of one's own, as README's "Search spaces of your own" shows it: every kind of distribution and option
MINE = """\
description = "small GRUs around a learning rate of 1e-3"

[params]
hidden_size = { type = "int", low = 8, high = 16, log = true }
num_layers = { type = "int", low = 1, high = 3, step = 2 }
lr = { type = "float", low = 1e-3, high = 1e-2, log = true }
dropout = { type = "float", low = 0.0, high = 0.3, step = 0.1 }
attention = { type = "categorical", choices = [true, false] }

[fixed]
cell = "gru"
clip = 1
batch_size = 64

[[enqueue]]
hidden_size = 8
num_layers = 1
lr = 1e-3
dropout = 0.0
attention = true
"""
MINE_IN_PYTHON = SearchSpace(
    name="mine",
    description="small GRUs around a learning rate of 1e-3",
    params={
        "hidden_size": IntDistribution(8, 16, log=True),
        "num_layers": IntDistribution(1, 3, step=2),
        "lr": FloatDistribution(1e-3, 1e-2, log=True),
        "dropout": FloatDistribution(0.0, 0.3, step=0.1),
        "attention": CategoricalDistribution([True, False]),
    },
    fixed={"cell": "gru", "clip": 1, "batch_size": 64},
    enqueue=({"hidden_size": 8, "num_layers": 1, "lr": 1e-3, "dropout": 0.0, "attention": True},),
)


def _inside(dist, value) -> bool:
    """Whether `value` lies in `dist`, checked against its public bounds and choices."""
    if isinstance(dist, CategoricalDistribution):
        return value in dist.choices
    return dist.low <= value <= dist.high


@pytest.mark.parametrize("name", sorted(SPACES))
def test_sampled_params_fall_inside_bounds_and_make_valid_hparams(name):
    space = get_space(name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for point in space.enqueue:
        study.enqueue_trial(point)
    for _ in range(20):
        trial = study.ask(space.params)
        for k, dist in space.params.items():
            assert _inside(dist, trial.params[k]), (k, trial.params[k])
        representation, rest = split_params({**space.fixed, **trial.params})
        HParams.from_dict(rest)  # raises if a value is invalid
        with_params(VectorConfig(), representation)  # and so does VectorConfig
        study.tell(trial, 0.5)
    assert set(space.params) | set(space.fixed) <= set(HParams.__dataclass_fields__) | set(SEARCHED)
    check_values(space, name)  # what a user's file gets checked by, the built-in ones pass too


def test_the_names_a_space_may_use_are_hparams_fields_less_the_studys_and_the_representation():
    from study.results import PARAM_TYPES

    assert set(STUDY_SETTINGS) <= {f.name for f in fields(HParams)}
    assert not set(STUDY_SETTINGS) & set(HYPERPARAMETERS)
    assert HYPERPARAMETERS["lr"] is float and HYPERPARAMETERS["attention"] is bool and HYPERPARAMETERS["cell"] is str
    assert {k: HYPERPARAMETERS[k] for k in SEARCHED} == {
        "vectorizer": str, "vector_size": int, "window": int, "sg": bool, "min_count": int
    }  # fmt: skip
    assert set(HYPERPARAMETERS) == set(PARAM_TYPES)  # every one has its trials.parquet column


def test_seed_space_enqueues_the_original_best_first():
    space = get_space("seed")
    assert space.enqueue[0] == {
        "hidden_size": 16,
        "num_layers": 3,
        "dropout": 0.3,
        "clip": 0.4,
        "lr": 1e-4,
        "batch_size": 2048,
    }
    assert space.fixed["cell"] == "lstm" and space.fixed["attention"] and space.fixed["skip"]


def test_default_space_searches_cell_attention_skip_and_sizes():
    assert {"cell", "attention", "skip", "hidden_size", "num_layers", "dropout", "clip", "lr", "batch_size"} <= set(
        get_space("default").params
    )
    assert get_space("default").params["lr"].log


def test_unknown_name_lists_the_known_ones_and_says_a_file_will_do():
    with pytest.raises(ValueError) as e:
        get_space("nope")
    for name in SPACES:
        assert name in str(e.value)
    assert ".toml file" in str(e.value)


def test_space_definition_errors():
    with pytest.raises(ValueError, match="both searched and fixed"):
        SearchSpace("x", "", {"hidden_size": IntDistribution(1, 4)}, fixed={"hidden_size": 2})
    with pytest.raises(ValueError, match="outside"):
        SearchSpace("x", "", {"hidden_size": IntDistribution(1, 4)}, enqueue=({"hidden_size": 9},))
    with pytest.raises(ValueError, match="space 'x': `params` names must be hyperparameters.*'hiden_size'"):
        SearchSpace("x", "", {"hiden_size": IntDistribution(1, 4)})  # Python declarations get the same rules
    with pytest.raises(ValueError, match="`fixed.seed` is a setting of the study.*--seed"):
        SearchSpace("x", "", {"hidden_size": IntDistribution(1, 4)}, fixed={"seed": 3})


def test_wide_searches_default_plus_the_representation_and_training_options():
    wide, default = get_space("wide"), get_space("default")
    assert set(default.params) < set(wide.params) and all(wide.params[k] == v for k, v in default.params.items())
    # what a probe found to matter for its cost (BENCHMARKS.md): min_count, at 100-d vectors; 2 representations
    grid = {k: wide.params[k].choices for k in set(SEARCHED) & set(wide.params)}
    assert grid == {"min_count": (1, 2), "vector_size": (100,)}
    options = {"freeze_embeddings", "embedding_dropout", "weight_decay", "lr_schedule", "label_smoothing"}
    assert options <= set(wide.params)


def test_default_space_is_what_it_was_in_python():
    assert get_space("default") == DEFAULT
    assert list(get_space("default").params) == list(DEFAULT.params)  # TPE's order too


def test_a_space_may_not_fix_a_representation_setting():
    with pytest.raises(ValueError, match="may be searched, not fixed"):
        SearchSpace("x", "", {"hidden_size": IntDistribution(1, 4)}, fixed={"window": 3})


def test_a_toml_file_loads_into_the_space_a_python_declaration_gives(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(MINE)
    space = get_space(str(path))
    assert space == MINE_IN_PYTHON and list(space.params) == list(MINE_IN_PYTHON.params)
    cfg = build_config({"space": str(path)})  # the flag, and a --config file's `space` key
    assert cfg.space == str(path)
    config = tmp_path / "study.toml"
    config.write_text(f"space = {json.dumps(str(path))}\nnum-samples = 3\n")
    assert get_space(build_config({}, str(config)).space) == MINE_IN_PYTHON


def test_the_readmes_example_file_is_a_valid_space(tmp_path):
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    (example,) = re.findall(r"```toml\n# my_space.toml\n(.*?)```", readme, re.S)
    (tmp_path / "my_space.toml").write_text(example)
    space = get_space(str(tmp_path / "my_space.toml"))
    assert space.name == "my_space" and space.fixed == {"cell": "gru", "batch_size": 64} and len(space.enqueue) == 1


@pytest.mark.parametrize("name", [*sorted(SPACES), "mine"])
def test_study_json_records_a_space_whole(tmp_path, name):
    space = MINE_IN_PYTHON if name == "mine" else get_space(name)
    study_json = tmp_path / "study.json"
    study_json.write_text(json.dumps({"space": space.to_dict()}))  # as study.run writes it
    assert space_from_record(json.loads(study_json.read_text())["space"], "study.json") == space
    assert get_space(str(study_json)) == space  # `--space results/NAME/study.json`: an earlier study's space


def test_a_resumed_study_reads_a_files_space_from_its_study_json(tmp_path):
    study_json = tmp_path / "study.json"
    assert saved_space_setting("seed", study_json) == "seed"
    assert saved_space_setting("gone/mine.toml", study_json) == str(study_json)


RANGE = 'lr = { type = "float", low = 1e-4, high = 1e-2, log = true }'


@pytest.mark.parametrize(
    "text,key,says",
    [
        ("[params\n", "", ("is not valid TOML", "Fix the file's syntax")),
        (f"[parms]\n{RANGE}\n", "'parms'", ("keys must be among description, params, fixed, enqueue", "'params'?")),
        ("params = 3\n", "`params`", ("must be a table ([params]",)),
        ("[params]\nlr = 0.001\n", "`params.lr`", ('must be a table such as { type = "float"',)),
        (
            '[params]\nlr = { type = "loguniform", low = 1e-4, high = 1e-2 }\n',
            "`params.lr.type`",
            ("must be one of 'float', 'int', 'categorical', but got 'loguniform'",),
        ),
        ("[params]\nlr = { low = 1e-4, high = 1e-2 }\n", "`params.lr.type`", ("but got no `type`",)),
        (
            '[params]\nlr = { type = "float", low = 1e-4 }\n',
            "`params.lr`",
            ("needs `low` and `high`, but `high` is missing", 'e.g. { type = "float", low = 0.0, high = 0.5 }'),
        ),
        (
            '[params]\nlr = { type = "float", low = 1e-2, high = 1e-3 }\n',
            "`params.lr.low`",
            ("must be <= `high` (0.001), but got 0.01; swap them",),
        ),
        (
            '[params]\nlr = { type = "float", low = 0.0, high = 1e-2, log = true }\n',
            "`params.lr`",
            ("`low > 0` must hold for `log=True`", "Change `low`, `high`, `log` or `step`"),
        ),
        (
            '[params]\nlr = { type = "float", low = 1e-4, high = 1e-2, base = 10 }\n',
            "`params.lr`",
            ("a float distribution takes low, high, log, step, but got 'base'",),
        ),
        ('[params]\ncell = { type = "categorical" }\n', "`params.cell`", ("needs `choices`, a non-empty list",)),
        ('[params]\ncell = { type = "categorical", choices = [] }\n', "`params.cell`", ("but got []",)),
        (
            '[params]\nhidden_size = { type = "int", low = 8.5, high = 64 }\n',
            "`params.hidden_size.low`",
            ('must be an integer in an int distribution (or use type = "float"), but got 8.5',),
        ),
        (
            '[params]\nhidden_size = { type = "float", low = 8, high = 64 }\n',
            "`params.hidden_size.type`",
            ("must be 'int' or 'categorical' (a value of `hidden_size` is an integer), but got 'float'",),
        ),
        (
            '[params]\ncell = { type = "categorical", choices = ["lstm", 2] }\n',
            "`params.cell.choices`",
            ("each of `params.cell.choices` must be a string, but got 2",),
        ),
        (
            '[params]\nhiden_size = { type = "int", low = 8, high = 64 }\n',
            "'hiden_size'",
            ("`params` names must be hyperparameters (HParams fields", "Did you mean 'hidden_size'?"),
        ),
        (
            f"[params]\n{RANGE}\n[fixed]\nmax_epochs = 3\n",
            "`fixed.max_epochs`",
            ("a setting of the study", "--max-epochs"),
        ),
        (f"[params]\n{RANGE}\n[fixed]\nlr = 1e-3\n", "['lr']", ("both searched and fixed", "remove them")),
        (f"[params]\n{RANGE}\n[fixed]\nwindow = 3\n", "['window']", ("may be searched, not fixed",)),
        (
            f"[params]\n{RANGE}\n[fixed]\nbidirectional = 1\n",
            "`fixed.bidirectional`",
            ("must be a boolean (true or false), but got 1",),
        ),
        (f'[params]\n{RANGE}\n[fixed]\ncell = ["gru"]\n', "`fixed.cell`", ("a string, a number or a boolean",)),
        (f"[params]\n{RANGE}\n[[enqueue]]\nlr = 0.5\n", "outside the space", ("widen the range",)),
        (f"[params]\n{RANGE}\n[[enqueue]]\nlr = 1e-3\ncell = 'gru'\n", "['cell', 'lr']", ("must set exactly",)),
        ('[fixed]\ncell = "gru"\n', "`params`", ("at least one",)),
        (
            '[params]\ndropout = { type = "float", low = 0.0, high = 1.0 }\n',
            "`params.dropout.high`",
            ("is 1.0, which training refuses: `dropout` must be in [0, 1)", "Change it"),
        ),
        (f'[params]\n{RANGE}\n[fixed]\ncell = "transformer"\n', "`fixed.cell`", ("`cell` must be one of",)),
        (
            '[params]\nvectorizer = { type = "categorical", choices = ["word2vec", "bert"] }\n',
            "`params.vectorizer.choices`",
            ("'bert', which training refuses: `vectorizer` must be one of",),
        ),
    ],
)
def test_a_bad_space_file_is_refused_naming_the_file_the_key_and_the_fix(tmp_path, text, key, says):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        build_config({"space": str(path)})  # StudyConfig's checks, before any work
    message = str(e.value)
    assert message.startswith(f"`space` file {str(path)!r}"), message
    for part in (key, *says):
        assert part in message, (part, message)


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"`space` file '.*gone\.toml' does not exist .*give an existing \.toml"):
        build_config({"space": str(tmp_path / "gone.toml")})


def test_a_file_name_that_cannot_name_a_study_folder_is_refused(tmp_path):
    path = tmp_path / "my space.toml"
    path.write_text(MINE)
    with pytest.raises(ConfigError, match="must be 1-81 letters, digits.*but got 'my space'; rename the file"):
        build_config({"space": str(path)})


def test_the_command_line_refuses_a_bad_file_before_anything_is_written(tmp_path, capsys):
    from study.run import main

    path = tmp_path / "bad.toml"
    path.write_text('[params]\nlr = { type = "float", low = 1e-2, high = 1e-3 }\n')
    results = tmp_path / "results"
    assert main(["--space", str(path), "--results-dir", str(results)]) == 2
    assert "`params.lr.low` must be <= `high`" in " ".join(capsys.readouterr().err.split())
    assert not results.exists()


@pytest.mark.slow
def test_a_study_with_a_file_space_keeps_it_for_report_ablate_and_resume(tmp_path, capsys):
    """A tiny real study with `--space mine.toml`; the file then goes, and what reads the study still works."""
    import ray

    from study.ablation.driver import study_settings
    from study.config import StudyConfig
    from study.report.__main__ import main as report
    from study.report.load import load_results, searched_params
    from study.results import read_study
    from study.run import main
    from study.search.driver import resolve

    path = tmp_path / "mine.toml"
    path.write_text(MINE)
    results = tmp_path / "results"
    tiny = ["--num-samples", "2", "--max-epochs", "1", "--demo-rows", "300", "--vector-size", "16", "--final-top", "0"]
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        assert main(["--space", str(path), *tiny, "--results-dir", str(results)]) == 0
        (folder,) = results.iterdir()
        assert folder.name.startswith("mine-")  # the default name: the space's name, not its path
        path.unlink()  # what reads the study from here on needs no file
        study = read_study(folder)
        assert study["settings"]["space"] == str(path) and study["space"] == MINE_IN_PYTHON.to_dict()
        assert searched_params(load_results(folder)) == MINE_IN_PYTHON.params
        cfg, _, _ = resolve(StudyConfig.from_settings(resume=folder.name, results_dir=str(results)))
        assert get_space(cfg.space) == MINE_IN_PYTHON
        assert get_space(study_settings(study, folder, None, None).space) == MINE_IN_PYTHON  # study.ablate's
        assert main(["--resume", folder.name, "--results-dir", str(results)]) == 0  # complete: nothing to run
    finally:
        ray.shutdown()
    again = read_study(folder)
    assert again["settings"]["space"] == str(path) and again["space"] == study["space"]
    assert len(again["resumed_at"]) == 1
    assert report([str(folder)]) == 0 and (folder / "report.html").is_file()
