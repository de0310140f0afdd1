"""A view is declared once per side: the registries, the view modules, the facade and ARCHITECTURE.md agree.

A view module in one registry and not the other, a facade method whose parameters drift from its view's, or
an "Adding a view" list that names a file a view does not have fails here.
"""

import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import tb_cnnviz.views
from tb_cnnviz import CNNViz, analyze, metadata
from tb_cnnviz.views import registry
from tb_cnnviz.views.declaration import View

ROOT = Path(__file__).resolve().parent.parent
FRONTEND = ROOT / "frontend"


def view_modules() -> dict:
    """Every module of tb_cnnviz/views that declares a VIEW, by module name."""
    import importlib

    found = {}
    for info in pkgutil.iter_modules(tb_cnnviz.views.__path__):
        module = importlib.import_module(f"tb_cnnviz.views.{info.name}")
        if isinstance(getattr(module, "VIEW", None), View):
            found[info.name] = module.VIEW
    return found


def frontend_registry() -> list[str]:
    source = (FRONTEND / "registry.js").read_text()
    names = re.search(r"const NAMES = \[(.*?)\];", source, re.S)
    assert names, "frontend/registry.js has no NAMES list"
    return re.findall(r"'([a-z_0-9]+)'", names.group(1))


def test_every_view_module_is_registered_once_under_its_own_stem():
    modules = view_modules()
    assert sorted(modules) == sorted(registry.STEMS), "a view module in views/ and registry.py must be the same set"
    for name, view in modules.items():
        assert view.stem == name, f"views/{name}.py declares stem {view.stem!r}: a view's module is named by its stem"
    assert [view.stem for view in registry.declarations()] == list(registry.STEMS)


def test_the_frontend_registers_the_same_views_in_the_same_order_each_with_its_module():
    assert frontend_registry() == list(registry.STEMS)
    for stem in registry.STEMS:
        module = FRONTEND / "views" / f"{stem}.js"
        assert module.is_file(), f"frontend/views/{stem}.js missing for view {stem!r}"
        assert re.search(rf"kind:\s*'{stem}'", module.read_text()), f"{module.name}'s descriptor must say kind '{stem}'"


def test_the_on_disk_kinds_are_the_stems_and_former_kinds_are_read_as_them():
    assert list(metadata.DATA_CLASS) == list(registry.STEMS)
    assert set(metadata.BLOB_KINDS) | set(metadata.TENSOR_KINDS) == set(registry.STEMS)
    for view in registry.VIEWS:
        for former in view.formerly:
            assert metadata.canonical_kind(former) == view.stem and former not in metadata.DATA_CLASS


@pytest.mark.parametrize("call", [call for view in registry.declarations() for call in view.calls],
                         ids=lambda call: call.__name__)
def test_each_logging_function_has_a_facade_method_of_its_name_and_signature(call):
    """The facade's documented method (IDE completion, help(CNNViz)) passes its arguments by name: they must be
    the view function's keyword-only parameters, with the same defaults."""
    method = getattr(CNNViz, call.__name__, None)
    assert method is not None, f"CNNViz has no method {call.__name__}"
    view_parameters = list(inspect.signature(call).parameters.values())
    assert view_parameters[0].name == "run"
    assert all(p.kind is p.KEYWORD_ONLY for p in view_parameters[1:]), f"{call.__name__}: parameters after run are keyword-only"
    facade = [(p.name, p.default) for p in list(inspect.signature(method).parameters.values())[1:]]
    assert sorted(facade) == sorted((p.name, p.default) for p in view_parameters[1:])
    assert method.__doc__ and call.__doc__


def test_analyze_offers_every_view_that_declares_how_it_is_logged():
    declared = {view.stem for view in registry.declarations() if view.analyze is not None}
    assert set(analyze.VIEWS) == declared
    assert {"top", "saliency", "occlusion"} <= set(analyze.VIEW_NAMES)  # the former --views names still work


def test_adding_a_view_in_architecture_md_names_files_every_view_has():
    """The "Adding a view" list, read as paths with <stem>: each exists for every registered view (or is one of
    the two registries), and the list names both registries."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    section = text.split("## Adding a view", 1)[1].split("\n## ", 1)[0]
    paths = re.findall(r"`((?:tb_cnnviz|frontend)/[^`]*)`", section)
    assert "tb_cnnviz/views/registry.py" in paths and "frontend/registry.js" in paths
    per_view = [path for path in paths if "<stem>" in path]
    assert {"tb_cnnviz/views/<stem>.py", "frontend/views/<stem>.js"} <= set(per_view)
    for path in per_view:
        for stem in registry.STEMS:
            assert (ROOT / path.replace("<stem>", stem)).exists(), f"ARCHITECTURE.md names {path}; missing for {stem!r}"
    for path in paths:
        if "<" not in path:
            assert (ROOT / path).exists(), f"ARCHITECTURE.md names {path}, which does not exist"


def test_no_source_file_is_over_400_lines():
    sources = [*ROOT.joinpath("tb_cnnviz").rglob("*.py"), *FRONTEND.rglob("*.js")]
    long = {str(path.relative_to(ROOT)): n for path in sources if (n := len(path.read_text().splitlines())) > 400}
    assert not long, f"split these files (at most 400 lines each): {long}"
