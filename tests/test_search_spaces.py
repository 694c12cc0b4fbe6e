import optuna
import pytest
from optuna.distributions import CategoricalDistribution

from search_spaces import SPACES, get_space
from search_spaces.rnn import DEFAULT, SearchSpace
from trainables.train import HParams
from trainables.vectorize import SEARCHED, VectorConfig, split_params, with_params


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


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError) as e:
        get_space("nope")
    for name in SPACES:
        assert name in str(e.value)


def test_space_definition_errors():
    from optuna.distributions import IntDistribution

    with pytest.raises(ValueError, match="both searched and fixed"):
        SearchSpace("x", "", {"hidden_size": IntDistribution(1, 4)}, fixed={"hidden_size": 2})
    with pytest.raises(ValueError, match="outside"):
        SearchSpace("x", "", {"hidden_size": IntDistribution(1, 4)}, enqueue=({"hidden_size": 9},))


def test_wide_searches_default_plus_the_representation_and_training_options():
    wide = get_space("wide")
    assert set(DEFAULT.params) < set(wide.params) and all(wide.params[k] == v for k, v in DEFAULT.params.items())
    assert set(SEARCHED) <= set(wide.params)
    options = {"freeze_embeddings", "embedding_dropout", "weight_decay", "lr_schedule", "label_smoothing"}
    assert options <= set(wide.params)
    own = VectorConfig()  # the study's own representation is in the grid, so it is never built twice
    for name, field in SEARCHED.items():
        assert getattr(own, field) in wide.params[name].choices, name


def test_default_space_is_what_it_was():
    assert set(DEFAULT.params) == {"cell", "attention", "skip", "hidden_size", "num_layers", "dropout", "clip", "lr",
                                   "batch_size"} and DEFAULT.fixed == {"bidirectional": True}  # fmt: skip


def test_a_space_may_not_fix_a_representation_setting():
    from optuna.distributions import IntDistribution

    with pytest.raises(ValueError, match="may be searched, not fixed"):
        SearchSpace("x", "", {"hidden_size": IntDistribution(1, 4)}, fixed={"window": 3})
