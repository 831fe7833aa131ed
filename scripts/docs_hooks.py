"""MkDocs hooks of the documentation site (mkdocs.yml).

- The front page, docs/index.md, is README.md: its line ``--8<-- "README.md"`` is replaced by the
  file when the site is built. README's links point into ``docs/`` as seen from the repository
  root; on the site those pages sit next to the front page, so ``](docs/`` becomes ``](``. (The
  include is done here rather than by pymdownx.snippets because snippets expands after the hooks
  and after MkDocs' link check has read the page.)
- Every tutorial, docs/tutorials/NAME.py in jupytext's percent format, is run cell by cell when
  the site is built, and becomes the page tutorials/NAME.md: its markdown cells, then each code
  cell followed by what it printed and the figures it saved: a PNG that the cell wrote (new or
  changed) in the tutorial's working folder is copied into the site as tutorials/NAME/FIGURE.png
  and shown after the cell. A cell that raises fails the build, naming the tutorial and the cell.
"""

import contextlib
import io
import logging
import os
import re
import tempfile
import time
import traceback

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.hooks.adalif")

_INCLUDE = re.compile(r'^--8<-- "([^"]+)"\s*$', re.MULTILINE)
_DOCS_LINK = re.compile(r"\]\(docs/")
_CELL = re.compile(r"^# %%(.*)$", re.MULTILINE)


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri != "index.md":
        return markdown
    root = os.path.dirname(config.config_file_path)

    def include(match):
        with open(os.path.join(root, match.group(1)), encoding="utf-8") as f:
            return _DOCS_LINK.sub("](", f.read())

    return _INCLUDE.sub(include, markdown)


def cells(source: str):
    """``(kind, text)`` for each cell of a percent-format script: ``"markdown"`` (its ``# ``
    prefixes removed) or ``"code"``; text before the first ``# %%`` is a code cell."""
    marks = list(_CELL.finditer(source))
    pieces = [("code", source[:marks[0].start()] if marks else source)]
    for i, mark in enumerate(marks):
        body = source[mark.end() + 1:marks[i + 1].start() if i + 1 < len(marks) else len(source)]
        if "[markdown]" in mark.group(1):
            pieces.append(("markdown", re.sub(r"^# ?", "", body, flags=re.MULTILINE)))
        else:
            pieces.append(("code", body))
    return [(kind, text.strip("\n")) for kind, text in pieces if text.strip()]


def pngs(folder: str) -> dict:
    """``{name: (mtime, size)}`` of the PNG files at the top of ``folder``."""
    return {entry.name: (entry.stat().st_mtime_ns, entry.stat().st_size)
            for entry in os.scandir(folder) if entry.name.endswith(".png") and entry.is_file()}


def run_tutorial(path: str, name: str) -> tuple:
    """The page of one tutorial, ``(markdown, figures)``: its cells run in order in one namespace,
    in a fresh folder; ``figures`` maps the file names the page shows (in the folder
    ``tutorials/NAME/``, next to the page) to the bytes of the PNGs the cells wrote."""
    namespace = {"__name__": "__main__", "__file__": path}
    parts, figures = [], {}
    stem = os.path.basename(name)
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="adalif-tutorial-") as folder:
        os.chdir(folder)
        try:
            for number, (kind, text) in enumerate(cells(open(path, encoding="utf-8").read()), 1):
                if kind == "markdown":
                    parts.append(text)
                    continue
                printed = io.StringIO()
                before = pngs(folder)
                try:
                    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
                        exec(compile(text + "\n", f"{path} (cell {number})", "exec"), namespace)
                except Exception as error:
                    raise PluginError(f"tutorial {name}: cell {number} raised {type(error).__name__}: {error}\n"
                                      f"{traceback.format_exc()}") from error
                parts.append(f"```python\n{text}\n```")
                if printed.getvalue().strip():
                    parts.append(f"```text\n{printed.getvalue().rstrip()}\n```")
                for png, stamp in sorted(pngs(folder).items()):
                    if before.get(png) != stamp:   # written by this cell
                        shown = png if png not in figures else f"{png[:-4]}-cell{number}.png"
                        with open(png, "rb") as f:
                            figures[shown] = f.read()
                        parts.append(f"![{png[:-4]}]({stem}/{shown})\n\n*Figure: `{png}`, written by the cell above.*")
        finally:
            os.chdir(here)
    page = "\n\n".join(parts) + f"\n\n[Download this tutorial as a script]({os.path.basename(path)}).\n"
    return page, figures


def on_files(files, config):
    for file in list(files):
        if file.src_uri.startswith("tutorials/") and file.src_uri.endswith(".py"):
            name = file.src_uri[:-3]
            start = time.perf_counter()
            content, figures = run_tutorial(file.abs_src_path, name)
            log.info("tutorial %s ran in %.1f s", name, time.perf_counter() - start)
            files.append(File.generated(config, f"{name}.md", content=content))
            for figure, data in figures.items():
                files.append(File.generated(config, f"{name}/{figure}", content=data))
    return files
