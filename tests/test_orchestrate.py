"""build_tuner and Ray's internals: the callbacks of a restored Tuner (cluster planning: test_resources.py)."""


def test_rays_private_run_config_of_a_restored_tuner_is_what_fit_uses(tmp_path):
    """Tuner.restore takes no callbacks and brings back the pickled ones; build_tuner sets them through the
    restored tuner's private `_local_tuner`. When Ray adds a public way or moves the run config, this fails."""
    import inspect

    from ray import tune

    class Marker(tune.Callback):
        pass

    def trainable(config):
        tune.report({"x": 1})

    tune.Tuner(trainable, run_config=tune.RunConfig(name="e", storage_path=str(tmp_path), callbacks=[Marker()]))
    assert "callbacks" not in inspect.signature(tune.Tuner.restore).parameters
    restored = tune.Tuner.restore(str(tmp_path / "e"), trainable=trainable)
    run_config = restored._local_tuner.get_run_config()
    assert [type(c).__name__ for c in run_config.callbacks] == ["Marker"]  # the pickled ones come back
    ours = [Marker()]
    run_config.callbacks = ours
    assert restored._local_tuner._run_config.callbacks is ours  # the run config that fit() passes to tune.run
    assert "callbacks=self._run_config.callbacks" in inspect.getsource(type(restored._local_tuner)).replace(" ", "")
