"""Typed immutable records for the model's high-volume values (deals and their events).

A record declares its fields with class annotations, like attrs; it is stored as a tuple, so it is
as small as a slotted class while building one costs a single C call. Records compare equal only
to records of the same type, hash, pickle, and expose ``_fields``, ``_make``, ``_replace`` and
``as_dict``. Tuple behaviour that makes no sense for a record (ordering, concatenation) is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import itemgetter
from typing import Any, ClassVar, TypeVar

R = TypeVar("R", bound="Record")


class Record(tuple):  # type: ignore[type-arg]
    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "__slots__" not in cls.__dict__:
            raise TypeError(f"{cls.__name__} must declare __slots__ = ()")
        fields: list[str] = []
        defaults: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            ann = klass.__dict__.get("__annotations__", {})
            inherited = getattr(klass, "_defaults", {})
            for name, typ in ann.items():
                if name.startswith("_") or str(typ).startswith(("ClassVar", "typing.ClassVar")):
                    continue
                if name not in fields:
                    fields.append(name)
                raw = klass.__dict__.get(name)
                if klass is cls and name in klass.__dict__ and not isinstance(raw, property):
                    defaults[name] = raw
                elif name in inherited and klass is not cls:
                    defaults[name] = inherited[name]
        cls._fields = tuple(fields)
        cls._defaults = defaults
        for i, name in enumerate(fields):
            setattr(cls, name, property(itemgetter(i), doc=f"the {name} field"))

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        fields = cls._fields
        if len(args) > len(fields):
            raise TypeError(f"{cls.__name__} takes {len(fields)} fields, got {len(args)}")
        values = list(args)
        for name in fields[len(args):]:
            if name in kwargs:
                values.append(kwargs.pop(name))
            elif name in cls._defaults:
                values.append(cls._defaults[name])
            else:
                raise TypeError(f"{cls.__name__}: missing field {name!r}")
        if kwargs:
            raise TypeError(f"{cls.__name__}: unknown field(s) {', '.join(sorted(kwargs))}")
        cls._check(values)
        return tuple.__new__(cls, values)

    @classmethod
    def _check(cls, values: list[Any]) -> None:
        """Validate/normalise field values in place (public construction only)."""

    @classmethod
    def _make(cls: type[R], values: Iterable[Any]) -> R:
        """Build from values in field order, without checks (internal hot paths)."""
        return tuple.__new__(cls, values)

    def __getnewargs__(self) -> tuple[Any, ...]:
        return tuple(self)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented if not isinstance(other, Record) else False
        return tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple.__hash__(self)))

    def __repr__(self) -> str:
        body = ", ".join(f"{n}={v!r}" for n, v in zip(self._fields, self, strict=True))
        return f"{type(self).__name__}({body})"

    def __lt__(self, other: object) -> bool:
        raise TypeError(f"{type(self).__name__} values are not ordered")

    __le__ = __gt__ = __ge__ = __lt__

    def __add__(self, other: object) -> Any:
        raise TypeError(f"{type(self).__name__} values cannot be concatenated")

    __mul__ = __rmul__ = __add__

    def _replace(self: R, **changes: Any) -> R:
        """A copy with some fields changed (validated like the public constructor)."""
        d = dict(zip(self._fields, self, strict=True))
        unknown = set(changes) - d.keys()
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown field(s) {', '.join(sorted(unknown))}")
        d.update(changes)
        return type(self)(**d)

    def as_dict(self) -> dict[str, Any]:
        return dict(zip(self._fields, self, strict=True))
