"""The plugin host: checks each plugin as it loads, calls each clinic's own set, checks answers."""

from __future__ import annotations

import difflib
import importlib.metadata
import inspect
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pluggy

from core.errors import DomainError, Problem
from core.hooks import answers, specs
from core.hooks.views import VIEW_OF

log = logging.getLogger(__name__)

hookimpl = pluggy.HookimplMarker(specs.PROJECT)

#: Plugins every clinic gets, whatever its tenants/ file says. They register
#: their hooks ``trylast``, so a clinic's own plugin answers first.
CORE_DEFAULTS: frozenset[str] = frozenset({"default_policy", "default_jurisdiction"})

#: Where pluggy's marker keeps a hook implementation's options.
_IMPL_ATTR = specs.PROJECT + "_impl"


class PluginFailed(Problem):
    """A plugin raised, answered wrongly, or could not be loaded: its clinics' rules are unavailable.

    Answered as a 503 problem naming the plugin and the hook; nothing was changed.
    """

    def __init__(self, plugin: str, hook: str, reason: str) -> None:
        super().__init__(
            503,
            f"The clinic's rules could not be applied: plugin {plugin!r} failed in {hook} "
            f"({reason}). Nothing was changed.",
            kind="plugin-failed",
            title="Clinic rules unavailable",
            plugin=plugin,
            hook=hook,
        )
        self.plugin = plugin
        self.hook = hook
        self.reason = reason


class PluginRefused(ValueError):
    """A plugin does not keep the hook contract, so it was not registered."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"plugin {name!r} refused: {reason}")
        self.name = name
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Impl:
    """One plugin's implementation of one hook, ready to call."""

    plugin_name: str
    function: Callable[..., Any]
    argnames: tuple[str, ...]


def contract_problems(plugin: object) -> list[str]:
    """Return what in ``plugin`` breaks the hook contract: unknown hooks, wrong arguments.

    Each problem is a sentence an author can act on; an unknown hook name
    comes with the nearest real one.
    """
    problems = []
    spec_names = specs.hook_names()
    for attr in sorted(dir(plugin)):
        try:
            value = getattr(plugin, attr)
        except Exception:  # a property that raises is not a hook
            continue
        if not callable(value):
            continue
        opts = getattr(value, _IMPL_ATTR, None)
        name = (opts or {}).get("specname") or attr
        if opts is None:
            if attr in spec_names:
                problems.append(f"{attr} is not marked with @hookimpl, so it would never be called")
            continue
        if name not in spec_names:
            near = difflib.get_close_matches(name, spec_names, n=1, cutoff=0.6)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            problems.append(f"{name!r} is not a hook{hint}")
            continue
        if opts.get("hookwrapper") or opts.get("wrapper"):
            problems.append(f"{name} is a wrapper; plugins answer hooks, they do not wrap them")
            continue
        allowed = specs.argnames(name)
        try:
            parameters = inspect.signature(value).parameters
        except (TypeError, ValueError):
            problems.append(f"{name}'s arguments cannot be read")
            continue
        for parameter in parameters.values():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            if parameter.default is not parameter.empty:
                continue  # never passed (pluggy passes only arguments without a default)
            if parameter.kind is parameter.KEYWORD_ONLY:
                problems.append(
                    f"{name} takes {parameter.name!r} after '*'; hooks pass their arguments "
                    "by position, so take it as an ordinary argument"
                )
            elif parameter.name not in allowed:
                problems.append(
                    f"{name} takes {parameter.name!r}, which the hook does not pass "
                    f"(it passes {', '.join(allowed) or 'nothing'})"
                )
    return problems


class PluginHost:
    """Own the pluggy ``PluginManager`` and hand each clinic a caller of its plugins.

    Built-in and third-party plugins alike come from the entry-point group
    ``clinic_saas``. Each is checked against the hook contract as it loads;
    one that fails (cannot be imported, names an unknown hook, takes an
    argument no hook passes) is refused and kept in :attr:`refused` with the
    reason. Clinics that enable it answer 503 naming it; every other clinic
    works as before.
    """

    def __init__(self, *, load_entrypoints: bool = True) -> None:
        self._pm = pluggy.PluginManager(specs.PROJECT)
        self._pm.add_hookspecs(specs)
        #: Plugins that could not be registered, by name, with the reason.
        self.refused: dict[str, str] = {}
        self._impl_cache: dict[tuple[str, frozenset[str]], list[_Impl]] = {}
        if load_entrypoints:
            self.load_entrypoints()

    def load_entrypoints(self) -> None:
        """Load and check every plugin installed under the ``clinic_saas`` entry-point group."""
        for entry_point in importlib.metadata.entry_points(group=specs.PROJECT):
            if self._pm.get_plugin(entry_point.name) is not None:
                continue
            try:
                plugin = entry_point.load()
            except Exception as error:
                self._refuse(
                    entry_point.name,
                    f"cannot be imported ({type(error).__name__}: {error})",
                )
                continue
            try:
                self.register(plugin, entry_point.name)
            except PluginRefused as refusal:
                self._refuse(entry_point.name, refusal.reason)

    def _refuse(self, name: str, reason: str) -> None:
        log.error("plugin %s refused: %s", name, reason)
        self.refused[name] = reason
        self._impl_cache.clear()

    # -- registry ---------------------------------------------------------

    def plugin_names(self) -> list[str]:
        """Return the names of every registered plugin, sorted."""
        return sorted(name for name, plugin in self._pm.list_name_plugin() if plugin is not None)

    def has_plugin(self, name: str) -> bool:
        """Return whether a plugin called ``name`` is registered."""
        return self._pm.get_plugin(name) is not None

    def get_plugin(self, name: str) -> object | None:
        """Return the plugin registered as ``name``, or None."""
        return self._pm.get_plugin(name)

    def register(self, plugin: object, name: str) -> None:
        """Check ``plugin`` against the hook contract and register it as ``name``.

        Raises :class:`PluginRefused`, saying why, when it breaks the contract
        or the name is taken.
        """
        if self._pm.get_plugin(name) is not None:
            raise PluginRefused(name, "a plugin of that name is already registered")
        problems = contract_problems(plugin)
        if problems:
            raise PluginRefused(name, "; ".join(problems))
        try:
            self._pm.register(plugin, name=name)
        except (ValueError, pluggy.PluginValidationError) as error:
            if self._pm.get_plugin(name) is not None:
                self._pm.unregister(name=name)
            raise PluginRefused(name, str(error)) from None
        self.refused.pop(name, None)
        self._impl_cache.clear()

    def unregister(self, name: str) -> object | None:
        """Remove the plugin registered as ``name`` and return it (None if there was none)."""
        plugin = self._pm.get_plugin(name)
        if plugin is not None:
            self._pm.unregister(name=name)
        self._impl_cache.clear()
        return plugin

    @contextmanager
    def registered(self, plugin: object, name: str) -> Iterator[object]:
        """Register ``plugin`` as ``name`` for a block, in place of any installed one.

        For tests and experiments: a plugin already installed under ``name``
        (the same plugin, from its entry point) steps aside and comes back after.
        """
        installed = self.unregister(name)
        try:
            self.register(plugin, name)
            yield plugin
        finally:
            self.unregister(name)
            if installed is not None:
                self.register(installed, name)

    @property
    def pm(self) -> pluggy.PluginManager:
        """The underlying pluggy manager, for inspection only.

        Register and unregister through the host, never here: the host checks
        each plugin and caches each clinic's hook callers, and must see every change.
        """
        return self._pm

    def hooks_of(self, name: str) -> list[str]:
        """Return the hook names the plugin ``name`` implements."""
        plugin = self._pm.get_plugin(name)
        if plugin is None:
            return []
        return sorted(caller.name for caller in self._pm.get_hookcallers(plugin) or [])

    def settings_schema(self, name: str) -> Any:
        """Return the settings schema of plugin ``name`` (a marshmallow Schema), or None."""
        plugin = self._pm.get_plugin(name)
        if plugin is None:
            raise KeyError(name)
        for impl in self._pm.hook.clinic_settings_schema.get_hookimpls():
            if impl.plugin is plugin:
                try:
                    schema = impl.function()
                except Exception as error:
                    raise PluginFailed(
                        name, "clinic_settings_schema", type(error).__name__
                    ) from error
                reason = answers.settings_schema_problem(schema)
                if reason is not None:
                    raise PluginFailed(name, "clinic_settings_schema", reason)
                return schema
        return None

    # -- calling ----------------------------------------------------------

    def for_clinic(self, clinic: Any) -> ClinicHooks:
        """Return the hook caller for ``clinic``: its enabled plugins plus the core defaults.

        A clinic that enables a plugin which is refused or not installed
        cannot have its rules applied: :class:`PluginFailed` (503) names it.
        """
        enabled = frozenset(clinic.enabled_plugins or ())
        for name in sorted(enabled) + sorted(CORE_DEFAULTS):
            if name in self.refused:
                raise PluginFailed(name, "(loading)", self.refused[name])
            if not self.has_plugin(name):
                raise PluginFailed(name, "(loading)", "the plugin is not installed")
        return ClinicHooks(self, enabled | CORE_DEFAULTS)

    def unavailable(self, clinic: Any) -> str | None:
        """Return why ``clinic``'s rules cannot be applied (a plugin refused or missing), or None."""
        try:
            self.for_clinic(clinic)
        except PluginFailed as failure:
            return f"plugin {failure.plugin!r}: {failure.reason}"
        return None

    def _impls(self, hook_name: str, allowed: frozenset[str]) -> list[_Impl]:
        """The clinic's implementations of ``hook_name``, in the order they are asked."""
        key = (hook_name, allowed)
        found = self._impl_cache.get(key)
        if found is None:
            caller = getattr(self._pm.hook, hook_name)
            # pluggy asks the last registered first, tryfirst before and trylast after.
            found = [
                _Impl(str(impl.plugin_name), impl.function, tuple(impl.argnames))
                for impl in reversed(caller.get_hookimpls())
                if impl.plugin_name in allowed
            ]
            self._impl_cache[key] = found
        return found


class ClinicHooks:
    """Call hooks for one clinic: only its enabled plugins and the core defaults answer.

    ``hooks.clinic_cancellation_decision(clinic=..., ...)`` calls the hook.
    Arguments named ``clinic``, ``service``, ``client``, ``booking`` and
    ``payment`` reach plugins as read-only views. Each answer is checked
    against the hook's contract; a plugin that raises or answers wrongly
    is named in :class:`PluginFailed`, and no caller goes on as if the rule
    had said yes.
    """

    def __init__(self, host: PluginHost, allowed: frozenset[str]) -> None:
        self._host = host
        self.plugin_names = allowed

    def __getattr__(self, hook_name: str) -> Callable[..., Any]:
        if not hook_name.startswith("clinic_") or hook_name not in specs.hook_names():
            raise AttributeError(hook_name)
        impls = self._host._impls(hook_name, self.plugin_names)
        first = specs.is_firstresult(hook_name)
        event = specs.is_event(hook_name)

        expected = specs.argnames(hook_name)

        def call(**kwargs: Any) -> Any:
            if set(kwargs) != set(expected):
                # The core's own mistake, not a plugin's: it is not blamed on one.
                raise TypeError(f"{hook_name} takes {expected}, was given {tuple(kwargs)}")
            shown = {
                name: VIEW_OF[name](value) if name in VIEW_OF and value is not None else value
                for name, value in kwargs.items()
            }
            results = []
            for impl in impls:
                try:
                    result = impl.function(*[shown[name] for name in impl.argnames])
                except (Problem, DomainError):
                    raise  # a plugin's refusal, answered to the client as any other
                except Exception as error:
                    log.exception("plugin %s failed in %s", impl.plugin_name, hook_name)
                    raise PluginFailed(impl.plugin_name, hook_name, type(error).__name__) from error
                if result is None or event:
                    continue
                reason = answers.problem(hook_name, result, shown.get("clinic"))
                if reason is not None:
                    log.error(
                        "plugin %s answered %s wrongly: %s", impl.plugin_name, hook_name, reason
                    )
                    raise PluginFailed(impl.plugin_name, hook_name, reason)
                if first:
                    return result
                results.append(result)
            return None if first else results

        call.__name__ = hook_name
        return call

    def answers(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """Call a non-firstresult hook and return its answers, flattened, ``None`` removed."""
        results = getattr(self, hook_name)(**kwargs)
        return list(_flatten(results))


def _flatten(results: Iterable[Any]) -> Iterator[Any]:
    for result in results:
        if result is None:
            continue
        if isinstance(result, list | tuple | set | frozenset):
            yield from (item for item in result if item is not None)
        else:
            yield result
