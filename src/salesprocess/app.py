"""The plugin shell: :class:`SalesProcess` owns one pluggy ``PluginManager``.

It is the only place hooks fire. It registers the first-party plugins, loads the ``salesprocess``
entry-point group only when asked, blocks plugins by name, and runs ``check_pending()`` so a
misspelt hook implementation fails loudly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from . import hookspecs
from .errors import PluginError, PluginValidationError, Problem, TransitionNotAllowed
from .guards import GuardRegistry, builtin_registry
from .model import Deal, EventSource
from .process import Process

if TYPE_CHECKING:
    from .goals import Goal, Progress
    from .kpi.registry import KpiRegistry

__all__ = ["AdapterSpec", "SalesProcess"]

ADAPTER_KINDS = ("store", "crm", "notifier")
_NO_EXEC = object()
_BEFORE_ARGS = ("process", "deal", "target", "at", "actor", "reason")
_AFTER_ARGS = ("process", "before", "after", "events")


@attrs.frozen
class AdapterSpec:
    kind: str
    name: str
    factory: Callable[..., Any] = attrs.field(eq=False)
    description: str = ""
    plugin: str | None = None


class _ShippedProcesses:
    """First-party plugin: contributes the shipped processes."""

    @hookspecs.hookimpl
    def salesprocess_register_processes(self, register: Callable[..., None]) -> None:
        from . import processes

        for key in processes.SHIPPED:
            register(key, lambda guards, k=key: processes.load(k, guards=guards))


class _FeedbackKpis:
    """First-party plugin: the complaint KPIs of :mod:`salesprocess.feedback` (loaded on use)."""

    @hookspecs.hookimpl
    def salesprocess_register_kpis(self, register: Callable[..., None]) -> None:
        from .feedback import FEEDBACK_KPIS

        for kpi in FEEDBACK_KPIS:
            register(kpi)


class SalesProcess:
    """The plugin shell. Create one per application (there is no global plugin manager).

    :param plugins: plugin objects or modules to register.
    :param load_entrypoints: also load plugins from the ``salesprocess`` entry-point group.
    :param block: plugin names never to register (entry points included).
    """

    def __init__(
        self,
        plugins: Iterable[object] = (),
        *,
        load_entrypoints: bool = False,
        block: Iterable[str] = (),
    ) -> None:
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        self.pm = pm
        # pluggy's own hook executor; tracing and call monitoring replace it (see _single_impl)
        self._plain_exec: object = getattr(pm, "_inner_hookexec", _NO_EXEC)
        for name in block:
            pm.set_blocked(name)
        self.register(_ShippedProcesses(), name="salesprocess.processes")
        from .risk.book import CreditBook, CreditLimitGuard

        self.credit_book = CreditBook()  # read by the credit_within_limit guard
        self.register(CreditLimitGuard(self.credit_book), name="salesprocess.credit")
        self.register(_FeedbackKpis(), name="salesprocess.feedback")
        self._register_first_party()
        for p in plugins:
            self.register(p)
        if load_entrypoints:
            try:
                pm.load_setuptools_entrypoints(hookspecs.PROJECT)
            except Exception as e:  # an entry point that fails to import
                raise PluginError(f"could not load a salesprocess entry point: {e}") from e
            self._changed()
        pm.check_pending()

    def _register_first_party(self) -> None:
        try:
            from salesprocess_adapters import FIRST_PARTY
        except ImportError:  # pragma: no cover - adapters ship in the same wheel
            return
        import importlib

        for modname in FIRST_PARTY:
            if self.pm.is_blocked(modname):
                continue
            self.register(importlib.import_module(modname), name=modname)

    # --- registration ----------------------------------------------------------------------------
    def register(self, plugin: object, name: str | None = None) -> str | None:
        """Register a plugin; returns its name, or ``None`` if it is blocked."""
        try:
            n = self.pm.register(plugin, name=name)
            self.pm.check_pending()
        except pluggy.PluginValidationError as e:
            if name is not None or plugin is not None:
                try:
                    self.pm.unregister(plugin)
                except Exception:
                    pass
            raise PluginValidationError(str(e), plugin=name or getattr(plugin, "__name__", None)) from e
        except ValueError as e:
            raise PluginError(str(e), plugin=name) from e
        self._changed()
        return n

    def unregister(self, plugin: object = None, name: str | None = None) -> None:
        self.pm.unregister(plugin, name=name)
        self._changed()

    def plugin_names(self) -> list[str]:
        return sorted(n for n, p in self.pm.list_name_plugin() if p is not None)

    def _changed(self) -> None:
        h = self.pm.hook
        self._has_before = bool(h.salesprocess_before_transition.get_hookimpls())
        self._has_after = bool(h.salesprocess_after_transition.get_hookimpls())
        self._has_saved = bool(h.salesprocess_deal_saved.get_hookimpls())
        self._before_hook = h.salesprocess_before_transition
        self._after_hook = h.salesprocess_after_transition
        self._before_impl = self._single_impl(self._before_hook, _BEFORE_ARGS)
        self._after_impl = self._single_impl(self._after_hook, _AFTER_ARGS)
        self._guards: GuardRegistry | None = None
        self._kpis: KpiRegistry | None = None
        self._adapters: dict[tuple[str, str], AdapterSpec] | None = None
        self._processes: dict[str, Callable[[GuardRegistry], Process]] | None = None
        self._risk_signals: Any = None

    def _single_impl(self, caller: pluggy.HookCaller, argnames: tuple[str, ...]) -> Any:
        """The hook's only implementation when calling it directly is what pluggy would do: one
        plain implementation (no wrapper) taking every argument in the spec's order. ``None``
        otherwise; the hook is then called through pluggy."""
        if self._plain_exec is _NO_EXEC:
            return None
        impls = caller.get_hookimpls()
        if len(impls) != 1:
            return None
        impl = impls[0]
        if (
            impl.wrapper or impl.hookwrapper or impl.kwargnames
            or tuple(impl.argnames) != argnames
        ):
            return None
        return impl

    def _direct(self, caller: pluggy.HookCaller, impl: Any) -> Callable[..., Any] | None:
        """``impl.function`` if ``impl`` is still the hook's only implementation and no tracing or
        monitoring wraps hook calls (plugins may be registered on ``pm`` directly)."""
        impls: Sequence[Any] = getattr(caller, "_hookimpls", ())
        if (
            len(impls) == 1 and impls[0] is impl
            and getattr(self.pm, "_inner_hookexec", None) is self._plain_exec
        ):
            return impl.function  # type: ignore[no-any-return]
        return None

    # --- contributions ---------------------------------------------------------------------------
    @property
    def guards(self) -> GuardRegistry:
        """Built-in guards plus every plugin's."""
        if self._guards is None:
            reg = builtin_registry()
            for impl in self.pm.hook.salesprocess_register_guards.get_hookimpls():
                def register(name: str, func: Any, description: str = "", _p: str = impl.plugin_name) -> None:
                    reg.register(name, func, description, plugin=_p)

                impl.function(register=register)
            self._guards = reg
        return self._guards

    @property
    def kpis(self) -> KpiRegistry:
        """Built-in KPIs plus every plugin's (a :class:`~salesprocess.kpi.KpiRegistry`)."""
        if self._kpis is None:
            from .kpi.builtins import builtin_registry as builtin_kpis

            kreg = builtin_kpis()
            for impl in self.pm.hook.salesprocess_register_kpis.get_hookimpls():
                def register_kpi(kpi: Any, _p: str = impl.plugin_name) -> None:
                    kreg.register(kpi, plugin=_p)

                impl.function(register=register_kpi)
            self._kpis = kreg
        return self._kpis

    def adapters(self, kind: str | None = None) -> dict[tuple[str, str], AdapterSpec]:
        """Adapters by (kind, name), optionally of one kind."""
        if self._adapters is None:
            found: dict[tuple[str, str], AdapterSpec] = {}
            for impl in self.pm.hook.salesprocess_register_adapters.get_hookimpls():
                def register(
                    kind_: str, name: str, factory: Any, description: str = "", _p: str = impl.plugin_name
                ) -> None:
                    if kind_ not in ADAPTER_KINDS:
                        raise PluginValidationError(
                            f"adapter kind must be one of {ADAPTER_KINDS}, got {kind_!r}",
                            plugin=_p, hook="salesprocess_register_adapters",
                        )
                    if not callable(factory):
                        raise PluginValidationError(
                            f"adapter {kind_}/{name} factory is not callable",
                            plugin=_p, hook="salesprocess_register_adapters",
                        )
                    if (kind_, name) in found:
                        raise PluginValidationError(
                            f"adapter {kind_}/{name} registered twice (by {found[(kind_, name)].plugin} and {_p})",
                            plugin=_p, hook="salesprocess_register_adapters",
                        )
                    found[(kind_, name)] = AdapterSpec(kind_, name, factory, description, _p)

                impl.function(register=register)
            self._adapters = found
        if kind is None:
            return dict(self._adapters)
        return {k: v for k, v in self._adapters.items() if k[0] == kind}

    def adapter(self, kind: str, name: str) -> AdapterSpec:
        try:
            return self.adapters()[(kind, name)]
        except KeyError:
            have = ", ".join(sorted(n for k, n in self.adapters() if k == kind)) or "none"
            raise PluginError(f"no {kind} adapter named {name!r} (registered: {have})") from None

    def open_store(self, url: str | Path, **options: Any) -> Any:
        """Open a store by URL: a SQLite path (``x.sqlite``, ``sqlite:///x.db``), ``postgresql://…``
        or ``memory:``; the scheme picks the store adapter."""
        s = str(url)
        if s in ("memory:", ":memory:") or s.startswith("memory:"):
            scheme = "memory"
        elif "://" in s:
            scheme = s.split("://", 1)[0]
            scheme = {"postgres": "postgresql", "sqlite3": "sqlite"}.get(scheme, scheme)
        else:
            scheme = "sqlite"
        return self.adapter("store", scheme).factory(s, app=self, **options)

    def process_keys(self) -> list[str]:
        return sorted(self._process_loaders())

    def _process_loaders(self) -> dict[str, Callable[[GuardRegistry], Process]]:
        if self._processes is None:
            found: dict[str, Callable[[GuardRegistry], Process]] = {}
            for impl in self.pm.hook.salesprocess_register_processes.get_hookimpls():
                def register(key: str, loader: Any, _p: str = impl.plugin_name) -> None:
                    if key in found:
                        raise PluginValidationError(f"process {key!r} registered twice", plugin=_p)
                    found[key] = loader

                impl.function(register=register)
            self._processes = found
        return self._processes

    def process(self, key: str) -> Process:
        """A contributed process by key (``b2b``, ``saas``, or a plugin's)."""
        loaders = self._process_loaders()
        if key not in loaders:
            raise PluginError(f"no process {key!r} (available: {', '.join(sorted(loaders))})")
        p = loaders[key](self.guards)
        if not isinstance(p, Process):
            raise PluginValidationError(f"process loader for {key!r} returned {type(p).__name__}")
        return p

    def process_from_toml(self, text_or_path: str | Path) -> Process:
        """Load a process with this shell's guards (built-in and plugins')."""
        return Process.from_toml(text_or_path, guards=self.guards)

    def process_from_dict(self, data: dict[str, Any]) -> Process:
        return Process.from_dict(data, guards=self.guards)

    def load_process(self, ref: str | Path) -> Process:
        """A contributed process key or a path to a process TOML file."""
        s = str(ref)
        if s in self._process_loaders():
            return self.process(s)
        return self.process_from_toml(Path(s))

    # --- the machine with hooks -------------------------------------------------------------------
    def advance(
        self,
        process: Process,
        deal: Deal,
        to: str,
        *,
        at: datetime,
        actor: str,
        reason: str | None = None,
        source: EventSource = EventSource.USER,
        activities: Sequence[Any] = (),
    ) -> Deal:
        """:meth:`Process.advance` plus the ``before_transition`` veto and ``after_transition``
        notification hooks. With no plugin implementing them, it costs one attribute check each."""
        after = process.advance(
            deal, to, at=at, actor=actor, reason=reason, source=source, activities=activities
        )
        if self._has_before:
            hook = self._before_hook
            impl = self._before_impl
            fn = None if impl is None else self._direct(hook, impl)
            if fn is not None:
                v = fn(process, deal, to, at, actor, reason)
                vetoes = [v] if v else []
            else:
                vetoes = [
                    v
                    for v in hook(
                        process=process, deal=deal, target=to, at=at, actor=actor, reason=reason
                    )
                    if v
                ]
            if vetoes:
                raise TransitionNotAllowed(
                    deal.id, deal.stage, to, [Problem("veto", "veto", str(v)) for v in vetoes]
                )
        if self._has_after:
            hook = self._after_hook
            events = after[-1][len(deal[-1]):]  # after.events_since(deal); events is the last field
            impl = self._after_impl
            impls: Sequence[Any] = getattr(hook, "_hookimpls", ())
            if (  # self._direct(hook, impl), inlined: this is the hot path with one listener
                impl is not None and len(impls) == 1 and impls[0] is impl
                and getattr(self.pm, "_inner_hookexec", None) is self._plain_exec
            ):
                impl.function(process, deal, after, events)
            else:
                hook(process=process, before=deal, after=after, events=events)
        return after

    def check(self, process: Process, deal: Deal, to: str, **kw: Any) -> list[Problem]:
        """:meth:`Process.check` plus plugin vetoes (as problems with code ``veto``)."""
        probs = process.check(deal, to, **kw)
        if self._has_before and process.edge(deal.stage, to) is not None:
            # plugins are asked only about moves the process graph has (as in advance)
            at = kw.get("at") or deal.updated_at
            for v in self.pm.hook.salesprocess_before_transition(
                process=process, deal=deal, target=to, at=at, actor=kw.get("actor", ""),
                reason=kw.get("reason"),
            ):
                if v:
                    probs.append(Problem("veto", "veto", str(v)))
        return probs

    def goal_progress(
        self,
        goal: Goal,
        store: Any,
        asof: datetime,
        *,
        since: datetime | None = None,
        data: Any = None,
        **options: Any,
    ) -> Progress:
        """:func:`salesprocess.goals.progress` of ``goal`` at ``asof`` (computed from ``data`` when
        given, else from ``store``), firing ``salesprocess_goal_milestone`` for each milestone
        newly reached: reached at ``asof`` but not at ``since`` when ``since`` is given; otherwise
        reached and not yet recorded in the store document ``("goal_milestone", goal.id)``, which
        is updated after every listener returned (a listener that raises sees the milestone
        again on the next call). ``options`` go to ``progress`` (``pace``, ``calendar``, ``tz``...).
        """
        from decimal import Decimal

        from .goals import progress

        src = store if data is None else data
        p = progress(goal, src, asof, registry=self.kpis, **options)
        if since is not None:
            before = progress(goal, src, since, registry=self.kpis, **options)
            new = [m for m in p.milestones if m not in before.milestones]
            record = None
        else:
            doc = store.get_document("goal_milestone", goal.id) or {}
            done = {Decimal(x) for x in doc.get("reached", [])}
            new = [m for m in p.milestones if m not in done]
            record = sorted(done | set(new))
        for m in new:
            self.pm.hook.salesprocess_goal_milestone(goal=goal, milestone=m, progress=p)
        if record is not None and new:
            store.put_document("goal_milestone", goal.id, {"reached": [str(m) for m in record]})
        return p

    # --- risk ----------------------------------------------------------------------------------------
    @property
    def risk_signals(self) -> Any:
        """The built-in risk signals plus every plugin's (a :class:`~salesprocess.risk.SignalRegistry`)."""
        if self._risk_signals is None:
            from .risk.signals import builtin_signals

            reg = builtin_signals()
            for impl in self.pm.hook.salesprocess_register_risk_signals.get_hookimpls():
                def register(name: str, func: Any, description: str = "", applies_to: str = "deal",
                             _p: str = impl.plugin_name) -> None:
                    reg.register(name, func, description, applies_to, plugin=_p)

                impl.function(register=register)
            self._risk_signals = reg
        return self._risk_signals

    def assess_risk(self, source: Any, *, asof: datetime, **options: Any) -> Any:
        """:func:`salesprocess.risk.assess` with this shell's plugin signals; the customers' credit
        assessments also update :attr:`credit_book` (read by the ``credit_within_limit`` guard)."""
        from .risk.engine import assess

        report = assess(source, asof=asof, signals=self.risk_signals, **options)
        self.credit_book.update(c.credit for c in report.customers if c.credit is not None)
        return report

    def run_risk_alerts(
        self, store: Any, report: Any, *, at: datetime, rules: Sequence[Any] | None = None,
        config: Any = None, clear_missing: bool = True,
    ) -> Any:
        """Evaluate alert rules (``rules``, else ``config.alerts``, else the default rules) on a risk
        report, fire ``salesprocess_risk_alert`` once per newly raised alert, then save the alert
        state (store documents of kind ``risk_alert``). Returns the
        :class:`~salesprocess.risk.AlertRun`."""
        from .risk.alerts import ALERT_KIND, evaluate_alerts
        from .risk.config import RiskConfig

        if rules is None:
            rules = (config or RiskConfig.default()).alerts
        previous = dict(store.documents(ALERT_KIND))
        run = evaluate_alerts(report, rules, previous, at=at, clear_missing=clear_missing)
        for alert in run.raised:
            self.pm.hook.salesprocess_risk_alert(alert=alert)
        if run.changed:
            with store.transaction():
                for key, doc in run.changed.items():
                    store.put_document(ALERT_KIND, key, doc)
        return run

    def notify_saved(self, deal: Deal, events: Sequence[Any], store: Any) -> None:
        """Fire ``salesprocess_deal_saved`` for a save that committed (no-op without listeners)."""
        if self._has_saved:
            self.pm.hook.salesprocess_deal_saved(deal=deal, events=events, store=store)

    def save_deal(self, store: Any, deal: Deal, *, expected_version: int | None) -> Deal:
        """Save ``deal`` in ``store`` (optimistic concurrency) and, once the write committed, fire
        ``salesprocess_deal_saved`` with the events that were new. Inside an open
        ``store.transaction()`` the hook fires when this call returns, before the outer commit."""
        saved: Deal = store.save_deal(deal, expected_version=expected_version)
        self.notify_saved(saved, saved.events[expected_version or 0 :], store)
        return saved

    # --- automation, feedback, lifecycle -----------------------------------------------------------
    def run_rules(
        self, rules: Any, store: Any, asof: datetime, *, notifiers: Any = None,
        dry_run: bool = False,
    ) -> Any:
        """Run automation rules (a :class:`~salesprocess.automation.RuleEngine`, a
        :class:`~salesprocess.automation.RuleSet` or a sequence of rules) with
        :meth:`~salesprocess.automation.RuleEngine.run_due`. Stage moves go through
        :meth:`advance`, so plugin vetoes apply. After a real run, ``salesprocess_deal_saved``
        fires for every deal the actions saved and ``salesprocess_rule_fired`` for every firing.
        ``notifiers`` maps names to notifiers (see
        :func:`~salesprocess.automation.open_notifiers`). Returns the
        :class:`~salesprocess.automation.RunReport`."""
        from .automation import RuleEngine

        engine = rules if isinstance(rules, RuleEngine) else RuleEngine(rules)
        report = engine.run_due(asof, store, notifiers or {}, dry_run=dry_run, advance=self.advance)
        if not dry_run:
            for deal, events in report.saved:
                self.notify_saved(deal, events, store)
            for firing in report.fired:
                self.pm.hook.salesprocess_rule_fired(firing=firing, store=store)
        return report

    def record_survey_response(self, store: Any, response: Any, **links: Any) -> Any:
        """:func:`salesprocess.feedback.record_response` plus ``salesprocess_feedback_received``."""
        from .feedback import record_response

        linked = record_response(store, response, **links)
        self.pm.hook.salesprocess_feedback_received(kind="survey_response", item=linked, store=store)
        return linked

    def open_complaint(self, store: Any, complaint: Any) -> Any:
        """:func:`salesprocess.feedback.open_complaint` plus ``salesprocess_feedback_received``."""
        from .feedback import open_complaint

        saved = open_complaint(store, complaint)
        self.pm.hook.salesprocess_feedback_received(kind="complaint", item=saved, store=store)
        return saved

    def set_lifecycle_stage(self, store: Any, account_id: str, stage: Any, *, at: datetime,
                            actor: str = "", reason: str = "") -> Any:
        """:func:`salesprocess.lifecycle.set_stage` plus ``salesprocess_lifecycle_changed``
        (when the stage changed)."""
        from .lifecycle import set_stage

        change = set_stage(store, account_id, stage, at=at, actor=actor, reason=reason)
        if change is not None:
            self.pm.hook.salesprocess_lifecycle_changed(change=change, store=store)
        return change

    def sync_lifecycle(self, store: Any, *, asof: datetime, actor: str = "lifecycle") -> list[Any]:
        """:func:`salesprocess.lifecycle.sync_from_deals` plus ``salesprocess_lifecycle_changed``
        for each change."""
        from .lifecycle import sync_from_deals

        changes = sync_from_deals(store, asof=asof, actor=actor)
        for ch in changes:
            self.pm.hook.salesprocess_lifecycle_changed(change=ch, store=store)
        return changes
