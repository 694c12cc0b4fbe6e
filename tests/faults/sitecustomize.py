"""Run by Python at the start-up of every process that has this folder on PYTHONPATH (a study that a test starts
with `fault_points.environment`): the fault points' wrappers, where `RNN_STUDY_FAULT_HOOK` is set."""

from fault_points import install

install()
