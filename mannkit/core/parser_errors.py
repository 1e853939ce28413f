"""jsonargparse's nested error reports, read back as one :class:`Problem`: the field, what is wrong, the fix.

LightningCLI reports a bad value as an indented tree (``Parser key "model":`` / ``Problem with given
class_path ...`` / the alternatives of a ``Union``) that ends in the whole config it was given.
:func:`explain` walks that tree to the innermost complaint the user meant (the first non-``None``
alternative), keeps the dotted field as it is typed on the command line
(``model.init_args.core.init_args.memory``) and looks classes up in the registry, so that a typo on a
dotted override gets the same "did you mean" as in YAML and a class of the wrong kind is named as such.

>>> problem = explain('''Parser key "model":
...   Does not validate against any of the Union subtypes
...   Subtypes: [<class 'lightning.pytorch.core.module.LightningModule'>, <class 'NoneType'>]
...   Errors:
...     - Problem with given class_path 'mannkit.cell.MemoryCell':
...         Parser key "checkpoint_every":
...           Does not validate against any of the Union subtypes
...           Subtypes: [<class 'int'>, <class 'NoneType'>]
...           Errors:
...             - Expected a <class 'int'>
...             - Expected a <class 'NoneType'>
...           Given value type: <class 'str'>
...           Given value: abc
...     - Expected a <class 'NoneType'>
...   Given value: {'class_path': 'MemoryCell', 'init_args': {'checkpoint_every': 'abc'}}''')
>>> problem.field, problem.message
('model.init_args.checkpoint_every', "expected an integer or null, got 'abc'")
"""

from __future__ import annotations

import importlib
import inspect
import re
import typing
from dataclasses import dataclass, field
from typing import Any

from mannkit.core.errors import suggest

__all__ = ["Problem", "explain", "explain_class", "checkpoint_mismatch", "expected_classes", "class_choices"]

#: How a type is named in a sentence.
_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "NoneType": "null",
    "list": "a list",
    "dict": "a mapping",
}
_DOTTED = re.compile(r"Expected a dot import path string: (\S+)")
_PATH_ALTERNATIVE = "Expected a path but"
_TYPE = re.compile(r"Expected an? <class '([\w.]+)'>(?:\. Got value: (.*))?$")
_CLASS_REPR = re.compile(r"<class '([\w.]+)'>")
_LITERAL = re.compile(r"Expected an? typing\.Literal\[(.*)\]$")


@dataclass
class Problem:
    """One complaint of the parser, in words.

    Attributes:
        field: the dotted option as typed on the command line (``model.init_args.core.init_args.memory``).
        kind: ``unknown_class``, ``wrong_class``, ``unknown_option``, ``bad_value``, ``required`` or ``other``.
        message: what is wrong, naming the value (no field, no fix, no final full stop).
        fix: how to fix it, or empty when the caller should say where to fix it.
        value: the value the user gave, when the report names it.
        owner: the class whose option this is, when known.
    """

    field: str
    kind: str
    message: str
    fix: str = ""
    value: str | None = None
    owner: type | None = field(default=None, repr=False)

    def sentence(self, default_fix: str = "") -> str:
        """``field: message; fix.`` (``message? Fix.`` after a question such as "did you mean 'X'?").

        >>> Problem("a.b", "unknown_class", "unknown class 'Y'; did you mean 'X'?", "give X").sentence()
        "a.b: unknown class 'Y'; did you mean 'X'? Give X."
        """
        fix = self.fix or default_fix
        prefix = f"{self.field}: " if self.field else ""
        if not fix:
            return f"{prefix}{self.message}."
        if self.message.endswith("?"):
            return f"{prefix}{self.message} {fix[0].upper()}{fix[1:]}."
        return f"{prefix}{self.message}; {fix}."


@dataclass
class _Node:
    text: str
    children: list[_Node]


def _tree(message: str) -> list[_Node]:
    """The indented report as a tree (a ``- `` item's own deeper lines are its children)."""
    root = _Node("", [])
    stack: list[tuple[int, _Node]] = [(-1, root)]
    for raw in message.splitlines():
        if not raw.strip():
            continue
        indent = len(raw) - len(raw.lstrip())
        text = raw.strip()
        if text.startswith("- "):
            text = text[2:]
        while stack[-1][0] >= indent:
            stack.pop()
        node = _Node(text, [])
        stack[-1][1].children.append(node)
        stack.append((indent, node))
    return root.children


def _load(path: str) -> type | None:
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None


def expected_classes(owner: type | None, option: str | None) -> list[type]:
    """The component classes ``owner``'s constructor option ``option`` takes (``X | None`` and ``list[X]`` give X).

    >>> from mannkit.cell import MemoryCell
    >>> [c.__name__ for c in expected_classes(MemoryCell, "memory")]
    ['Memory']
    """
    if owner is None or option is None:
        return []
    try:
        hints = typing.get_type_hints(inspect.unwrap(owner.__init__))
    except Exception:  # noqa: BLE001  (an annotation this Python cannot evaluate: no hint, no harm)
        return []
    found: list[type] = []

    def collect(hint: Any) -> None:
        if isinstance(hint, type) and hint is not type(None) and hint.__module__ != "builtins":
            found.append(hint)
        for arg in typing.get_args(hint):
            collect(arg)

    collect(hints.get(option))
    return found


def class_choices(expected: list[type]) -> list[str]:
    """Registered short names of the classes that fit one of ``expected`` (all names when nothing is expected)."""
    from mannkit.core.registry import registry

    if not expected:
        return registry.names()
    return sorted({e.name for e in registry.entries() if isinstance(e.cls, type) and issubclass(e.cls, tuple(expected))})


def explain_class(name: str, where: str, owner: type | None = None, option: str | None = None) -> Problem:
    """``name``, given for ``owner``'s option ``option`` (when known), as an unknown class or one of the wrong kind.

    >>> from mannkit.cell import MemoryCell
    >>> p = explain_class("MatrixMemroy", "memory.class_path", MemoryCell, "memory")
    >>> p.message, p.fix.startswith("give one of") and "MatrixMemory" in p.fix
    ("unknown class 'MatrixMemroy'; did you mean 'MatrixMemory'?", True)
    """
    return _class_problem(name, where, expected_classes(owner, option), False, owner)


def _class_problem(name: str, where: str, expected: list[type], none_ok: bool, owner: type | None) -> Problem:
    """``name`` was given as a class: unknown (with a suggestion among the fitting classes) or of the wrong kind."""
    from mannkit.core.config import resolve_class
    from mannkit.core.errors import ConfigError

    choices = class_choices(expected)
    give = _give(choices, none_ok)
    try:
        cls = resolve_class(name, where)
    except ConfigError:
        hint = suggest(name.rpartition(".")[2], choices)  # "; did you mean 'X'?", as the registry says it
        return Problem(where, "unknown_class", f"unknown class '{name}'{hint}", give, name, owner)
    if expected and not (isinstance(cls, type) and issubclass(cls, tuple(expected))):
        wanted = " or ".join(c.__name__ for c in expected) + (" or null" if none_ok else "")
        whose = f"{owner.__name__} expects" if owner is not None else "this option takes"
        base = _interface_of(cls)
        what = f"is a {base.__name__}" if base is not None and not any(issubclass(e, base) for e in expected) else "is not one"
        return Problem(where, "wrong_class", f"{whose} a {wanted} here, but {name} {what}", give, name, owner)
    return Problem(where, "other", f"the class '{name}' was not accepted", give, name, owner)


def _give(choices: list[str], none_ok: bool) -> str:
    """``give one of A, B or C`` (or null); the registry listing when there are too many to name."""
    if not choices or len(choices) > 12:
        return "run 'mannkit plugins' to list the registered classes"
    names = [*choices, "null"] if none_ok else list(choices)
    if len(names) == 1:
        return f"give {names[0]}"
    return f"give one of {', '.join(names[:-1])} or {names[-1]}"


def _interface_of(cls: Any) -> type | None:
    """The mannkit interface ``cls`` implements (``Memory``, ``Controller``, ``RecurrentCell`` ...), if any."""
    for base in getattr(cls, "__mro__", ())[1:]:
        if base.__module__ in ("mannkit.core.interfaces", "mannkit.core.models"):
            return base
    return None


def _type_words(names: list[str]) -> str:
    words = [_TYPE_WORDS.get(n.rpartition(".")[2], n.rpartition(".")[2]) for n in names]
    return " or ".join(dict.fromkeys(words))


def _union(nodes: list[_Node], path: list[str], owner: type | None, option: str | None) -> Problem | None:
    """A ``Does not validate against any of the Union subtypes`` block: follow the alternative the user meant."""
    texts = [n.text for n in nodes]
    errors = next((n.children for n in nodes if n.text == "Errors:"), [])
    given = next((t[len("Given value: "):] for t in texts if t.startswith("Given value: ")), None)
    subtypes = next((t for t in texts if t.startswith("Subtypes:")), "")
    intent = [e for e in errors if "'NoneType'" not in e.text]
    for item in intent:
        if item.children or item.text.startswith(("Problem with given class_path", "Parser key")):
            return _walk([item], path, owner, option)
    for item in intent:
        dotted = _DOTTED.search(item.text)
        if dotted:
            listed = [c for c in (_load(p) for p in _CLASS_REPR.findall(subtypes)) if c is not None and c is not type(None)]
            expected = listed or expected_classes(owner, option)
            return _class_problem(dotted.group(1), ".".join(path), expected, "'NoneType'" in subtypes, owner)
    kinds = [m.group(1) for m in (_TYPE.match(e.text) for e in errors) if m]
    choices = [m.group(1) for m in (_LITERAL.match(e.text) for e in errors) if m]  # "'code', 'paper'"
    if kinds + choices and len(kinds) + len(choices) == len(errors) and given is not None and not given.startswith("NestedArg("):
        words = " or ".join(filter(None, [_type_words(kinds) if kinds else "", *(f"one of {c}" for c in choices)]))
        return Problem(".".join(path), "bad_value", f"expected {words}, got {given!r}", value=given, owner=owner)
    return _walk(intent, path, owner, option) if intent else None


def _walk(nodes: list[_Node], path: list[str], owner: type | None, option: str | None) -> Problem | None:
    """The innermost complaint under ``nodes``; ``path`` is the dotted field so far, ``owner`` the class it belongs to."""
    if any(n.text.startswith("Does not validate against any of the Union subtypes") for n in nodes):
        return _union(nodes, path, owner, option)
    for node in nodes:
        if node.text == "Errors:":  # alternatives without a Union header: the first non-None one is meant
            return _walk([c for c in node.children if "'NoneType'" not in c.text] or node.children, path, owner, option)
        key = re.match(r'Parser key "([^"]+)"', node.text)
        if key:
            return _walk(node.children, path + key.group(1).split("."), owner, key.group(1).split(".")[-1])
        given = re.match(r"Problem with given class_path '([^']+)'", node.text)
        if given:
            cls = _load(given.group(1))
            if cls is None and not any(c.text.startswith("Parser key") for c in node.children):
                why = node.children[0].text.rstrip(".") if node.children else "it cannot be imported"
                where = ".".join([*path, "class_path"])
                return Problem(where, "unknown_class", f"the class '{given.group(1)}' cannot be imported ({why})",
                               "install the plugin that defines it", given.group(1), owner)
            return _walk(node.children, [*path, "init_args"], cls, None)
    where = ".".join(path)
    for node in nodes:
        dotted = _DOTTED.search(node.text)
        if dotted:
            return _class_problem(dotted.group(1), where, expected_classes(owner, option), False, owner)
    for node in nodes:
        text = node.text.rstrip(".")
        unknown = re.match(r"Option '([^']+)' is not accepted", text)
        if unknown:
            return _unknown_option(unknown.group(1), path, owner)
        typed = _TYPE.match(text)
        if typed:
            value = typed.group(2)
            got = f", got {value!r}" if value is not None else ""
            return Problem(where, "bad_value", f"expected {_type_words([typed.group(1)])}{got}", value=value, owner=owner)
        required = re.match(r"the following arguments are required: (.+)$", text)
        if required:
            names = [n.strip() for n in required.group(1).split(",")]
            whose = owner.__name__ if owner is not None else "this component"
            quoted = " and ".join(f"'{n}'" for n in names)
            return Problem(".".join([*path, names[0]]), "required", f"{whose} needs the option {quoted}, which is missing",
                           f"add it under {whose}'s init_args", owner=owner)
    for node in nodes:
        if not node.text.startswith((_PATH_ALTERNATIVE, "Given value", "Subtypes:", "Errors:")):
            return Problem(where, "other", node.text.rstrip("."), owner=owner)
    return None


def _unknown_option(name: str, path: list[str], owner: type | None) -> Problem:
    where = ".".join([*path, name])
    if owner is None:
        return Problem(where, "unknown_option", f"there is no option '{name}'", value=name)
    params = [p for p in inspect.signature(owner.__init__).parameters if p != "self"]
    return Problem(
        where, "unknown_option",
        f"{owner.__name__} has no option '{name}'{suggest(name, params)} (its options: {', '.join(params) or 'none'})",
        value=name, owner=owner,
    )


def explain(message: str) -> Problem | None:
    """Read a jsonargparse error report; None when it has no ``Parser key`` tree (a plain argparse message).

    A dotted command-line override (``--model.init_args.core.init_args.memory.class_path X``) keeps its
    ``.class_path`` in the field, so the field is the one the user typed.
    """
    nodes = _tree(message)
    if not nodes or not nodes[0].text.startswith("Parser key"):
        return None
    problem = _walk(nodes, [], None, None)
    if problem is None:
        return None
    override = re.search(r"Given value: NestedArg\(key='([^']*)', val='(.*)'\)\s*$", message)
    if override:
        if problem.kind in ("unknown_class", "wrong_class") and override.group(1).endswith("class_path") \
                and not problem.field.endswith("class_path"):
            problem.field += ".class_path"
        if problem.value is None and problem.kind == "other":
            problem.value = override.group(2)
    return problem


def _lookup(data: Any, field: str) -> Any:
    """The value at a dotted field of nested dicts (``model.init_args.core.init_args.x``), or None."""
    for key in field.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def checkpoint_mismatch(ckpt_path: str, model: dict[str, Any], message: str) -> str:
    """One sentence for a checkpoint whose saved model config this version cannot parse.

    Args:
        ckpt_path: the file given as ``--ckpt_path``.
        model: the ``{class_path, init_args}`` rebuilt from the checkpoint's ``hyper_parameters``.
        message: jsonargparse's report on it.
    """
    problem = explain(message)
    head = f"--ckpt_path {ckpt_path}: the checkpoint was written by another version of mannkit or its plugins"
    fix = "load it with the version that wrote it"
    if problem is None:
        return f"{head} and its model config does not fit this version ({message.strip().splitlines()[-1]}); {fix}."
    value = _lookup({"model": model}, problem.field)
    if problem.kind == "unknown_option":
        owner = problem.owner.__name__ if problem.owner is not None else "its class"
        return (
            f"{head} and holds the argument {problem.field} = {value!r}, which {owner} no longer has; "
            f"{fix}, or delete that argument from the checkpoint's hyper_parameters."
        )
    if problem.kind == "unknown_class":
        return (
            f"{head} and names the class '{problem.value}' at {problem.field}, which is not installed here; "
            f"install the plugin that defines it, or {fix}."
        )
    shown = f" = {value!r}" if value is not None and not isinstance(value, dict) else ""
    return (
        f"{head} and its argument {problem.field}{shown} does not fit this version ({problem.message}); "
        f"{fix}, or fix that argument in the checkpoint's hyper_parameters."
    )
