"""A griffe extension for the API reference (mkdocs.yml): adalif's docstrings use a few
reStructuredText forms that markdown would show as written; this rewrites them as the site
renders them. Written here because no maintained extension converts these roles to markdown.

* ``:math:`x``` -> ``$x$`` and a ``.. math::`` block -> ``$$ ... $$`` (MathJax, as the pages);
* ``:func:`~a.b``` (and ``:class:``, ``:mod:``, ``:meth:``, ``:attr:``, ``:data:``, ``:exc:``,
  ``:obj:``) -> `` `b` `` (`` `a.b` `` without the ``~``);
* ````literal```` -> `` `literal` ``;
* a paragraph ending in ``::`` and the indented block after it -> the paragraph ending in ``:``
  and a fenced Python block.
"""

from __future__ import annotations

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


class RestToMarkdown(griffe.Extension):
    """Rewrites every docstring griffe reads (:func:`to_markdown`)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
