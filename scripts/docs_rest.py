"""A griffe extension for the API reference (mkdocs.yml): adalif's docstrings use a few
reStructuredText forms that markdown would show as written; this rewrites them as the site
renders them. Written here because no maintained extension converts these roles to markdown.

* ``:math:`x``` -> ``$x$`` and a ``.. math::`` block -> ``$$ ... $$`` (MathJax, as the pages);
* ``:func:`~a.b``` (and ``:class:``, ``:mod:``, ``:meth:``, ``:attr:``, ``:data:``, ``:exc:``,
  ``:obj:``) -> `` `b` `` (`` `a.b` `` without the ``~``);
* ````literal```` -> `` `literal` ``;
* a paragraph ending in ``::`` and the indented block after it -> the paragraph ending in ``:``
  and a fenced Python block.

It also shows a default written as a private name (``decay: float = _ARLIF.decay``, a module's
defaults taken from its functional record) as the value it stands for (``0.5``).
"""

from __future__ import annotations

import importlib
import re
import textwrap

import griffe

_MATH = re.compile(r":math:`([^`]+)`")
_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|exc|obj):`(~?)([^`]+)`")
_LITERAL = re.compile(r"``([^`\n]+)``")


def _role(match: re.Match) -> str:
    short, target = match.group(1), match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


def _blocks(text: str) -> str:
    """``.. math::`` and ``::`` blocks: the indented lines after them, fenced."""
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        line = lines[i]
        stripped = line.rstrip()
        math = stripped.strip().startswith(".. math::")
        same_line = stripped.strip()[len(".. math::"):].strip() if math else ""
        literal = not math and stripped.endswith("::")
        if not (math or literal):
            out.append(line)
            i += 1
            continue
        indent = len(line) - len(line.lstrip())
        block, j = [], i + 1
        while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent):
            block.append(lines[j])
            j += 1
        while block and not block[-1].strip():
            block.pop()
        body = textwrap.dedent("\n".join(block)).strip("\n")
        if same_line:  # ``.. math:: formula`` on one line
            body = same_line + ("\n" + body if body else "")
        pad = " " * indent
        if math:
            out += [f"{pad}$$", *(pad + b for b in body.split("\n")), f"{pad}$$", ""]
        else:
            head = stripped[:-1] if not stripped.endswith(" ::") else stripped[:-3]
            if head.strip():
                out.append(head)
            out += ["", f"{pad}```python", *(pad + b for b in body.split("\n")), f"{pad}```", ""]
        i = j
    return "\n".join(out)


def to_markdown(text: str) -> str:
    """A docstring's reStructuredText forms as markdown (the module docstring lists them)."""
    text = _MATH.sub(lambda m: f"${m.group(1)}$", text)
    text = _ROLE.sub(_role, text)
    text = _LITERAL.sub(lambda m: f"`{m.group(1)}`", text)
    return _blocks(text)  # last: the fences it writes are not inline literals


_PRIVATE_DEFAULT = re.compile(r"_[A-Za-z]\w*(\.\w+)+")


def _resolve_defaults(func: griffe.Object) -> None:
    """Defaults such as ``_ARLIF.decay`` (a private name, meaningless on the page) as their values."""
    for param in func.parameters:
        text = str(param.default) if param.default is not None else ""
        if _PRIVATE_DEFAULT.fullmatch(text):
            module = importlib.import_module(func.module.path)
            param.default = repr(eval(text, vars(module)))  # noqa: S307 (our own module's names)


class RestToMarkdown(griffe.Extension):
    """Rewrites every docstring griffe reads (:func:`to_markdown`) and private defaults."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
        if obj.is_function:
            _resolve_defaults(obj)
