"""Every problem of a raw TOML mapping against frozen msgspec structs, not only the first.

``msgspec.convert`` stops at the first error; a user fixing a config file wants the whole list. This
walker follows the struct's fields, tuples, dicts, unions and ``Annotated`` constraints, hands each
scalar to ``msgspec.convert`` (so the rules are msgspec's own), and reports ``(key path, reason)``
pairs such as ``("webhooks[1].rate_limit_per_min", "got 0: expected int >= 1")``. Values of keys named
in ``secret_keys`` are never quoted.
"""

from __future__ import annotations

import difflib
import enum
import re
import types
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import msgspec

Problems = list[tuple[str, str]]

_HIDDEN = "<hidden>"


def collect_problems(raw: Mapping[str, Any], root: type[msgspec.Struct], *, secret_keys: frozenset[str]) -> Problems:
    """All problems of ``raw`` against ``root``; an empty list means ``msgspec.convert`` will succeed."""
    problems: Problems = []
    _Walker(problems, secret_keys).check(raw, root, "")
    return problems


class _Walker:
    def __init__(self, problems: Problems, secret_keys: frozenset[str]) -> None:
        self.problems = problems
        self.secret_keys = secret_keys

    def add(self, path: str, reason: str) -> None:
        self.problems.append((path or "(top level)", reason))

    def show(self, path: str, value: Any, tp: Any = None) -> str:
        """``value`` as an error message may quote it: never a secret key's, and where ``tp`` (what belongs at
        ``path``) holds secrets, a bare value only by its type (``webhooks = "https://..."`` is likely one)."""
        if _last_key(path) in self.secret_keys:
            return _HIDDEN
        if tp is not None and not isinstance(value, dict | list) and self.holds_secrets(tp):
            return f"a {type(value).__name__}"
        text = repr(_redacted(value, self.secret_keys))  # a table given whole (``[webhooks]``) holds secrets too
        return text if len(text) <= 80 else text[:77] + "..."

    def holds_secrets(self, tp: Any) -> bool:
        """True if a value of type ``tp`` may contain a secret key (a struct with one, or a container of those)."""
        inner, _ = _strip_annotated(tp)
        if isinstance(inner, type) and issubclass(inner, msgspec.Struct):
            return bool(self.secret_keys & {f.encode_name for f in msgspec.structs.fields(inner)})
        return any(self.holds_secrets(arg) for arg in get_args(inner) if arg is not Ellipsis)

    def check(self, value: Any, tp: Any, path: str) -> None:
        """Report every problem of ``value`` against type ``tp`` at ``path``."""
        before = len(self.problems)
        inner, constrained = _strip_annotated(tp)
        origin = get_origin(inner)
        if isinstance(inner, type) and issubclass(inner, msgspec.Struct):
            self.check_struct(value, inner, path)
        elif origin in (Union, types.UnionType) and not _is_scalar_union(inner):
            options = [a for a in get_args(inner) if a is not type(None)]
            if len(options) == 1:
                self.check(value, options[0], path)
            else:  # unions of containers are not used by our config; let msgspec judge them whole
                self.check_leaf(value, inner, path)
        elif origin is tuple:
            self.check_tuple(value, inner, path)
        elif origin is dict:
            self.check_dict(value, inner, path)
        else:
            self.check_leaf(value, tp, path)
            return
        if constrained and len(self.problems) == before:
            # The container's own constraints (min_length...) once its items are known to be valid.
            try:
                msgspec.convert(value, tp, strict=True)
            except msgspec.ValidationError as exc:
                self.add(path, f"got {self.show(path, value, tp)}: {_reason(str(exc))}")

    def check_struct(self, value: Any, struct: type[msgspec.Struct], path: str) -> None:
        fields = {f.encode_name: f for f in msgspec.structs.fields(struct)}
        if not isinstance(value, dict):
            self.add(path, f"got {self.show(path, value, struct)}: expected a table")
            return
        for key in value:
            if key not in fields:
                hint = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
                suggestion = f" (did you mean {hint[0]!r}?)" if hint else f" (known keys: {', '.join(fields)})"
                self.add(_join(path, str(key)), f"unknown key{suggestion}")
        for name, field in fields.items():
            if name in value:
                self.check(value[name], field.type, _join(path, name))
            elif field.required:
                self.add(_join(path, name), "missing required key")

    def check_tuple(self, value: Any, tp: Any, path: str) -> None:
        if not isinstance(value, list):
            self.add(path, f"got {self.show(path, value, tp)}: expected an array")
            return
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            for i, item in enumerate(value):
                self.check(item, args[0], f"{path}[{i}]")
            return
        if len(value) != len(args):
            self.add(path, f"got {self.show(path, value, tp)}: expected an array of {len(args)} items")
            return
        for i, (item, item_tp) in enumerate(zip(value, args, strict=True)):
            self.check(item, item_tp, f"{path}[{i}]")

    def check_dict(self, value: Any, tp: Any, path: str) -> None:
        if not isinstance(value, dict):
            self.add(path, f"got {self.show(path, value, tp)}: expected a table")
            return
        key_tp, value_tp = get_args(tp)
        for key, item in value.items():
            try:
                msgspec.convert(key, key_tp, strict=True)
            except msgspec.ValidationError as exc:
                choices = _choices(key_tp)
                reason = f"expected one of {choices}" if choices else _reason(str(exc))
                self.add(_join(path, str(key)), f"unknown key: {reason}")
                continue
            self.check(item, value_tp, _join(path, str(key)))

    def check_leaf(self, value: Any, tp: Any, path: str) -> None:
        try:
            msgspec.convert(value, tp, strict=True)
        except msgspec.ValidationError as exc:
            choices = _choices(tp)
            reason = f"expected one of {choices}" if choices else _reason(str(exc))
            self.add(path, f"got {self.show(path, value)}: {reason}")


def _strip_annotated(tp: Any) -> tuple[Any, bool]:
    if get_origin(tp) is Annotated:
        return get_args(tp)[0], True
    return tp, False


def _is_scalar_union(tp: Any) -> bool:
    """True for unions msgspec can judge at once (``bool | Literal["auto"]``, ``float | None``)."""
    for arg in get_args(tp):
        inner, _ = _strip_annotated(arg)
        if isinstance(inner, type) and issubclass(inner, msgspec.Struct):
            return False
        if get_origin(inner) in (tuple, dict, list):
            return False
    return True


def _choices(tp: Any) -> str | None:
    """``'a', 'b'`` for enums, literals and unions made only of them (plus bools); None otherwise."""
    inner, _ = _strip_annotated(tp)
    options: list[str] = []
    parts = get_args(inner) if get_origin(inner) in (Union, types.UnionType) else (inner,)
    for annotated in parts:
        part, _ = _strip_annotated(annotated)
        if part is type(None):
            continue
        if part is bool:
            options += ["true", "false"]
        elif get_origin(part) is Literal:
            options += [repr(a) for a in get_args(part)]
        elif isinstance(part, type) and issubclass(part, enum.Enum):
            options += [repr(m.value) for m in part]
        else:
            return None
    return ", ".join(options) if options else None


_AT_PATH = re.compile(r" - at `\$[^`]*`$")


def _reason(message: str) -> str:
    """msgspec's ``Expected `int` >= 1`` as ``expected int >= 1``."""
    message = _AT_PATH.sub("", message).replace("`", "")
    message = re.sub(r", got \w+$", "", message)
    message = message.replace("Expected", "expected", 1).replace(" | null", "")  # TOML has no null
    return message


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _redacted(value: Any, secret_keys: frozenset[str]) -> Any:
    """``value`` with the values of ``secret_keys`` at any depth replaced by a marker (for quoting it)."""
    if isinstance(value, dict):
        return {k: _HIDDEN if k in secret_keys else _redacted(v, secret_keys) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v, secret_keys) for v in value]
    return value


def _last_key(path: str) -> str:
    return re.sub(r"\[\d+\]$", "", path.rsplit(".", 1)[-1])
