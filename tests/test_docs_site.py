"""The documentation site (mkdocs.yml) builds in strict mode, as `make docs` builds it: a broken link
or anchor, a missing page or a docstring the API reference cannot read fails this test. The pages
it makes hold the front page (README.md), the API reference generated from the docstrings and the
tutorials with the outputs their code printed during the build (run once, by the build)."""

import os
import re
import subprocess
import sys

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings_handlers.python")

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
API_PAGES = ["adalif", "definitions", "surrogate", "functional", "analysis", "memory", "export",
             "compat_spikingjelly", "models", "data", "train", "experiments"]


def first_line(obj) -> str:
    """The first line of a docstring as the page shows it (``code`` spans lose their backticks)."""
    return " ".join(obj.__doc__.strip().splitlines()[0].replace("`", "").split())


def text(path: str) -> str:
    html = open(path, encoding="utf-8").read()
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&para;", "")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                            os.path.join(ROOT, "mkdocs.yml"), "--site-dir", str(out)],
                           cwd=ROOT, capture_output=True, text=True, timeout=600,
                           env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert build.returncode == 0, build.stdout + build.stderr
    return out


def test_docs_site_builds_strict_with_every_api_page(site):
    for page in API_PAGES:
        assert os.path.isfile(os.path.join(site, "api", page, "index.html")), page
    for page in ("neurons", "kernels", "models", "training", "data", "analysis", "benchmarks",
                 "tutorials/neurons_in_your_model"):
        assert os.path.isfile(os.path.join(site, page, "index.html")), page


def test_docs_site_api_reference_holds_the_docstrings(site):
    import adalif.memory
    import adalif.train
    from adalif import DALIF

    memory = text(os.path.join(site, "api", "memory", "index.html"))
    assert 'id="adalif.memory.packed_spikes"' in open(os.path.join(site, "api", "memory", "index.html")).read()
    assert first_line(adalif.memory.packed_spikes) in memory
    # (its start: the rest of DALIF's first line has reStructuredText math roles)
    assert first_line(DALIF).startswith("Dual Adaptive LIF: learnable spatial decay")
    assert "Dual Adaptive LIF: learnable spatial decay" in text(os.path.join(site, "api", "adalif", "index.html"))
    train = open(os.path.join(site, "api", "train", "index.html"), encoding="utf-8").read()
    for name in adalif.train.__all__:
        assert f'id="adalif.train.{name}"' in train, name


def test_docs_site_front_page_is_the_readme_with_working_links(site):
    front = open(os.path.join(site, "index.html"), encoding="utf-8").read()
    assert "Use the neurons in your own code" in front
    assert 'href="neurons/"' in front and "docs/neurons.md" not in re.findall(r'href="([^"]+)"', front)


def test_docs_site_tutorial_ran_at_build_time(site):
    page = text(os.path.join(site, "tutorials", "neurons_in_your_model", "index.html"))
    # printed by the script's cells while the site was built, not written in the script
    assert "spikes (6, 4, 16) values [0.0, 1.0]" in page
    assert "fused spikes == reference spikes: True" in page
    assert os.path.isfile(os.path.join(site, "tutorials", "neurons_in_your_model.py"))


def test_docs_site_tutorials_show_the_figures_their_code_wrote(site):
    for page, figures in (("train_digits_from_the_command_line",
                           ["learning_curves", "firing_rates", "step_channel_rates", "parameters"]),
                          ("comparing_neurons", ["accuracy"])):
        html = open(os.path.join(site, "tutorials", page, "index.html"), encoding="utf-8").read()
        for figure in figures:
            assert f'src="{figure}.png"' in html, (page, figure)
            assert os.path.getsize(os.path.join(site, "tutorials", page, f"{figure}.png")) > 1000


def test_every_public_name_of_the_api_reference_has_a_docstring():
    """Every name the API pages document (a module's ``__all__``, or its public members) has a
    docstring, read statically by griffe as mkdocstrings reads it; attribute docstrings included."""
    griffe = pytest.importorskip("griffe")
    package = griffe.load("adalif", search_paths=[os.path.join(ROOT, "src")], resolve_aliases=True,
                          resolve_external=False)
    modules = []
    for page in sorted(os.listdir(os.path.join(ROOT, "docs", "api"))):
        if page.endswith(".md"):
            modules += re.findall(r"^:::\s*([\w.]+)", open(os.path.join(ROOT, "docs", "api", page),
                                                          encoding="utf-8").read(), re.M)
    assert "adalif.functional" in modules and "adalif.train" in modules, modules
    # Made at import time from the registered definitions (compat.spikingjelly's __getattr__), so
    # not statically visible; node_class documents them.
    dynamic = {"adalif.compat.spikingjelly.CLIFNode", "adalif.compat.spikingjelly.GLIFNode"}
    missing, checked = [], 0
    for name in modules:
        module = package if name == "adalif" else package[name[len("adalif."):]]
        if module.exports is not None:
            names = [str(n) for n in module.exports]
        else:
            names = [n for n, o in module.members.items() if o.is_public and not o.is_alias and not o.is_module]
        for member in names:
            path = f"{name}.{member}"
            if path in dynamic:
                continue
            obj = module.members.get(member)
            if obj is None:
                # Served by the module's __getattr__ (computed at each access): documented there.
                getattr_ = module.members.get("__getattr__")
                doc = getattr_.docstring.value if getattr_ is not None and getattr_.docstring else ""
                if f"``{member}``" not in doc:
                    missing.append(f"{path} (made by __getattr__, which does not document it)")
                checked += 1
                continue
            if obj.is_alias:
                try:
                    obj = obj.final_target
                except (griffe.AliasResolutionError, griffe.CyclicAliasError):
                    # A re-export from outside the package: not ours to document, and mkdocstrings
                    # renders it from its own source.
                    continue
            checked += 1
            if not (obj.docstring and obj.docstring.value.strip()):
                missing.append(f"{path} (defined at {obj.path})")
    assert checked > 100, checked
    assert not missing, "public names without a docstring:\n" + "\n".join(missing)


def test_docs_site_renders_the_docstrings_rest_forms_as_markdown(site):
    """:math:, :func: and ``literal`` of the docstrings are rendered (scripts/docs_rest.py), not
    shown as written; a literal block (``::``) becomes a code block."""
    import glob

    for page in glob.glob(os.path.join(site, "api", "*", "index.html")):
        rendered = text(page)
        for form in (":math:`", ":func:`", ":class:`", ":mod:`", "``"):
            assert form not in rendered, (page, form)
    memory = open(os.path.join(site, "api", "memory", "index.html")).read()
    assert "<code>with adalif.memory.packed_spikes(model):" in memory or "packed_spikes</span><span" in memory


def test_docs_site_signatures_show_default_values_not_private_names(site):
    """``ARLIF(decay: float = _ARLIF.decay)`` is shown with the value, 0.5 (scripts/docs_rest.py)."""
    import glob

    for page in glob.glob(os.path.join(site, "api", "*", "index.html")):
        assert not re.search(r"= _[A-Z]\w*\.\w+", text(page)), page
    api = text(os.path.join(site, "api", "adalif", "index.html"))
    assert "ARLIF ( decay : float = 0.5 , v_threshold : float = 1.0 , a_init : float = 0.0" in api
