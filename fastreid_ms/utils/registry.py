"""Name -> object registries (detectron2/FastReID style)."""
import difflib
from typing import Any, Callable, Dict, Iterator, Optional, Tuple


class UnknownNameError(KeyError, ValueError):
    """A name that is not registered (a bad config value such as ``DATASETS.NAMES`` or ``MODEL.BACKBONE.NAME``);
    a ``KeyError`` for dict-like use and a ``ValueError`` for the tools' one-line input errors."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Registry:
    """A mapping from names to classes or functions, filled with ``@REGISTRY.register()``.

    ``get(name)`` raises :class:`UnknownNameError` (a ``KeyError``) that lists every registered name and the closest
    matches.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._obj_map: Dict[str, Any] = {}

    def _do_register(self, name: str, obj: Any) -> None:
        if name in self._obj_map:
            raise KeyError(f"an object named {name!r} is already registered in the {self._name!r} registry")
        self._obj_map[name] = obj

    def register(self, obj: Optional[Any] = None) -> Any:
        """Register ``obj`` under its ``__name__``; without an argument, return a decorator doing so."""
        if obj is None:
            def deco(func_or_class: Callable) -> Callable:
                self._do_register(func_or_class.__name__, func_or_class)
                return func_or_class

            return deco
        self._do_register(obj.__name__, obj)
        return obj

    def get(self, name: str) -> Any:
        ret = self._obj_map.get(name)
        if ret is None:
            names = sorted(self._obj_map)
            close = difflib.get_close_matches(str(name), names, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise UnknownNameError(f"no object named {name!r} in the {self._name!r} registry{hint}; registered: "
                                   f"{', '.join(names)}")
        return ret

    def __contains__(self, name: str) -> bool:
        return name in self._obj_map

    def __iter__(self) -> Iterator[Tuple[str, Any]]:
        return iter(self._obj_map.items())

    def names(self):
        return sorted(self._obj_map)

    def __repr__(self) -> str:
        return f"Registry({self._name!r}, {self.names()})"
