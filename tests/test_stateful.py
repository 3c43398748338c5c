"""The stateful lifecycle machine, run on both shipped processes and on generated ones."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis.stateful import initialize

from salesprocess import Process, SalesProcess, hookimpl, processes
from salesprocess.process import ProbabilityPolicy
from salesprocess.testing import strategies as sps
from salesprocess.testing.stateful import DealLifecycleMachine

_SETTINGS = settings(
    max_examples=30,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class B2BMachine(DealLifecycleMachine):
    process = processes.load("b2b")


class SaaSMachine(DealLifecycleMachine):
    process = processes.load("saas")


class StageDefaultMachine(DealLifecycleMachine):
    """The SaaS process with the other two probability policies."""

    def make_process(self) -> object:  # type: ignore[override]
        import attrs

        return attrs.evolve(processes.load("saas"), probability_policy=self.policy)

    policy = ProbabilityPolicy.STAGE_DEFAULT


class KeepAnyMachine(StageDefaultMachine):
    policy = ProbabilityPolicy.KEEP_ANY


class _NoWinsOnFriday:
    """A plugin vetoing wins on Fridays (Shanghai time), to run the machine through the shell."""

    @hookimpl
    def salesprocess_before_transition(self, process, deal, target, at, actor, reason):  # type: ignore[no-untyped-def]
        if process.stage(target).kind == "won" and at.weekday() == 4:
            return "no wins on Fridays"
        return None


class ShellMachine(DealLifecycleMachine):
    process = processes.load("saas")
    app = SalesProcess([_NoWinsOnFriday()])


TestB2B = B2BMachine.TestCase
TestB2B.settings = _SETTINGS
TestSaaS = SaaSMachine.TestCase
TestSaaS.settings = _SETTINGS
TestStageDefault = StageDefaultMachine.TestCase
TestStageDefault.settings = settings(_SETTINGS, max_examples=15)
TestKeepAny = KeepAnyMachine.TestCase
TestKeepAny.settings = settings(_SETTINGS, max_examples=15)
TestShell = ShellMachine.TestCase
TestShell.settings = settings(_SETTINGS, max_examples=15)


class GeneratedProcessMachine(DealLifecycleMachine):
    """Generated processes (linear and explicit graphs, criteria on every stage)."""

    process = processes.load("saas")  # replaced by the initialize rule below

    @initialize(proc=sps.processes(max_open=4, with_criteria=True))
    def choose_process(self, proc: Process) -> None:
        self.proc = proc


TestGenerated = GeneratedProcessMachine.TestCase
TestGenerated.settings = settings(_SETTINGS, max_examples=20, stateful_step_count=20)
