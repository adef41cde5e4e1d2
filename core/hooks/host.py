"""The plugin host: loads plugins from entry points and calls each clinic's own set."""

from __future__ import annotations

import logging
import types
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pluggy

from core.errors import DomainError, Problem
from core.hooks import specs

log = logging.getLogger(__name__)

hookimpl = pluggy.HookimplMarker(specs.PROJECT)

#: Plugins every clinic gets, whatever its tenants/ file says. They register
#: their hooks ``trylast``, so a clinic's own plugin answers first.
CORE_DEFAULTS: frozenset[str] = frozenset({"default_policy", "default_jurisdiction"})


class PluginFailed(Problem):
    """A plugin raised, or a clinic needs one that is not installed: fail closed."""

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


class PluginHost:
    """Own the pluggy ``PluginManager`` and hand each clinic a caller of its plugins.

    Built-in and third-party plugins alike register under the entry-point
    group ``clinic_saas``; ``check_pending()`` runs at start so a misspelled
    hook name fails loudly instead of never being called.
    """

    def __init__(self, *, load_entrypoints: bool = True) -> None:
        self._pm = pluggy.PluginManager(specs.PROJECT)
        self._pm.add_hookspecs(specs)
        if load_entrypoints:
            self._pm.load_setuptools_entrypoints(specs.PROJECT)
        self._pm.check_pending()
        self._subset_cache: dict[tuple[str, frozenset[str]], Any] = {}

    # -- registry ---------------------------------------------------------

    def plugin_names(self) -> list[str]:
        """Return the names of every registered plugin, sorted."""
        return sorted(name for name, plugin in self._pm.list_name_plugin() if plugin is not None)

    def has_plugin(self, name: str) -> bool:
        """Return whether a plugin called ``name`` is registered."""
        return self._pm.get_plugin(name) is not None

    def register(self, plugin: object, name: str) -> None:
        """Register ``plugin`` under ``name`` and check its hooks against the specs."""
        self._pm.register(plugin, name=name)
        self._pm.check_pending()
        self._subset_cache.clear()

    def unregister(self, name: str) -> None:
        """Remove the plugin registered as ``name``."""
        self._pm.unregister(name=name)
        self._subset_cache.clear()

    @contextmanager
    def registered(self, plugin: object, name: str) -> Iterator[object]:
        """Register ``plugin`` for the duration of a block: for tests and experiments."""
        self.register(plugin, name)
        try:
            yield plugin
        finally:
            self.unregister(name)

    @property
    def pm(self) -> pluggy.PluginManager:
        """The underlying pluggy manager, for inspection only.

        Register and unregister through the host, never here: the host caches
        each clinic's hook callers and must see every change.
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
                return impl.function()
        return None

    # -- calling ----------------------------------------------------------

    def for_clinic(self, clinic: Any) -> ClinicHooks:
        """Return the hook caller for ``clinic``: its enabled plugins plus the core defaults."""
        enabled = frozenset(clinic.enabled_plugins or ())
        missing = sorted(name for name in enabled if not self.has_plugin(name))
        if missing:
            raise PluginFailed(missing[0], "(loading)", "the plugin is not installed")
        return ClinicHooks(self, enabled | CORE_DEFAULTS)

    def _caller(self, hook_name: str, allowed: frozenset[str]) -> Any:
        key = (hook_name, allowed)
        caller = self._subset_cache.get(key)
        if caller is None:
            removed = [
                plugin
                for name, plugin in self._pm.list_name_plugin()
                if plugin is not None and name not in allowed
            ]
            caller = self._pm.subset_hook_caller(hook_name, remove_plugins=removed)
            self._subset_cache[key] = caller
        return caller

    def _culprit(self, hook_name: str, allowed: frozenset[str], error: BaseException) -> str:
        """Name the plugin whose hook implementation raised ``error``.

        Only the clinic's own plugins are candidates; two plugins sharing one
        function (instances of one class) are told apart by ``self``.
        """
        impls = [
            impl
            for impl in getattr(self._pm.hook, hook_name).get_hookimpls()
            if impl.plugin_name in allowed
        ]
        tb = error.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            for impl in impls:
                if _code_of(impl.function) is frame.f_code and (
                    not hasattr(impl.function, "__self__")
                    or frame.f_locals.get("self") is impl.function.__self__
                ):
                    return str(impl.plugin_name)
            tb = tb.tb_next
        return "unknown"


def _code_of(function: Callable[..., Any]) -> types.CodeType | None:
    function = getattr(function, "__func__", function)
    return getattr(function, "__code__", None)


class ClinicHooks:
    """Call hooks for one clinic: only its enabled plugins and the core defaults answer.

    ``hooks.clinic_cancellation_decision(clinic=..., ...)`` calls the hook;
    if a plugin raises, :class:`PluginFailed` names it and no caller goes on
    as if the rule had said yes.
    """

    def __init__(self, host: PluginHost, allowed: frozenset[str]) -> None:
        self._host = host
        self.plugin_names = allowed

    def __getattr__(self, hook_name: str) -> Callable[..., Any]:
        if not hook_name.startswith("clinic_") or not hasattr(self._host._pm.hook, hook_name):
            raise AttributeError(hook_name)
        caller = self._host._caller(hook_name, self.plugin_names)

        def call(**kwargs: Any) -> Any:
            try:
                return caller(**kwargs)
            except (Problem, DomainError):
                raise  # a plugin's refusal, answered to the client as any other
            except Exception as error:
                plugin = self._host._culprit(hook_name, self.plugin_names, error)
                log.exception("plugin %s failed in %s", plugin, hook_name)
                raise PluginFailed(plugin, hook_name, type(error).__name__) from error

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
