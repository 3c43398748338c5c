"""The docs stay honest: their Python runs, every public name is documented, links resolve.

1. Every ```python block in docs/**/*.md runs. Blocks of one file run in order in one shared
   namespace, in a fresh temporary working directory. A block fenced as ```python no-run, or
   preceded by the line ``<!-- no-run -->``, is skipped.
2. Every public name (``__all__`` of the public modules), every hook in ``salesprocess.hookspecs``
   and every exception in ``salesprocess.errors`` appears in backticks in some docs/reference page.
3. Every relative link between docs files points at a file that exists.
4. Every ``salesprocess`` command (group and action) appears in docs/reference/cli.md.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import re
import sys
import traceback
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference"

DOC_FILES = sorted(DOCS.rglob("*.md"))

# The public modules. Modules that do not exist (yet) are skipped; the direct children of the
# public packages are discovered as well (see ``public_modules``).
PUBLIC_MODULES = (
    "salesprocess",
    "salesprocess.errors",
    "salesprocess.money",
    "salesprocess.periods",
    "salesprocess.model",
    "salesprocess.guards",
    "salesprocess.process",
    "salesprocess.machine",
    "salesprocess.app",
    "salesprocess.hookspecs",
    "salesprocess.codec",
    "salesprocess.store",
    "salesprocess.processes",
    "salesprocess.kpi",
    "salesprocess.goals",
    "salesprocess.testing",
    "salesprocess.testing.strategies",
)
PUBLIC_PACKAGES = ("salesprocess", "salesprocess.testing", "salesprocess_adapters")


# ------------------------------------------------------------------------------------------------
# 1. Python blocks run
# ------------------------------------------------------------------------------------------------

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`\n]*)$")


class Block:
    __slots__ = ("code", "line", "skip")

    def __init__(self, line: int, code: str, skip: bool) -> None:
        self.line = line  # 1-based line of the first code line
        self.code = code
        self.skip = skip


def python_blocks(text: str) -> list[Block]:
    """The fenced ```python blocks of a Markdown text, in order."""
    lines = text.splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        fence, indent = m.group("fence"), m.group("indent")
        words = m.group("info").strip().split()
        start = i + 1
        j = start
        while j < len(lines):
            close = _FENCE.match(lines[j])
            if (
                close is not None
                and close.group("fence")[0] == fence[0]
                and len(close.group("fence")) >= len(fence)
                and not close.group("info").strip()
            ):
                break
            j += 1
        if words and words[0] in ("python", "py", "python3"):
            prev = next((ln.strip() for ln in reversed(lines[:i]) if ln.strip()), "")
            skip = "no-run" in words[1:] or prev == "<!-- no-run -->"
            body = [ln[len(indent):] if ln.startswith(indent) else ln for ln in lines[start:j]]
            out.append(Block(start + 1, "\n".join(body) + "\n", skip))
        i = j + 1
    return out


def _rel(p: Path) -> str:
    return p.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("doc", DOC_FILES, ids=[_rel(p) for p in DOC_FILES])
def test_python_blocks_run(doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = [b for b in python_blocks(doc.read_text(encoding="utf-8")) if not b.skip]
    if not blocks:
        pytest.skip("no runnable python blocks")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # blocks may add plugin directories
    modname = "_docs_" + re.sub(r"\W", "_", _rel(doc))
    module = types.ModuleType(modname)
    module.__file__ = str(doc)
    monkeypatch.setitem(sys.modules, modname, module)
    for b in blocks:
        # pad so that tracebacks show the Markdown file's own line numbers
        source = "\n" * (b.line - 1) + b.code
        failure: str | None = None
        try:
            code = compile(source, str(doc), "exec")
            exec(code, module.__dict__)
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # report the block, whatever it raised
            failure = "".join(traceback.format_exception(e))
        if failure is not None:
            pytest.fail(f"{_rel(doc)}:{b.line}: python block failed:\n{failure}", pytrace=False)


def test_block_parser_finds_blocks_and_skips() -> None:
    text = (
        "intro\n"
        "```python\n"
        "a = 1\n"
        "```\n"
        "<!-- no-run -->\n"
        "\n"
        "```python\n"
        "import missing\n"
        "```\n"
        "```python no-run\n"
        "import missing\n"
        "```\n"
        "````markdown\n"
        "```python\n"
        "not code\n"
        "```\n"
        "````\n"
        "```toml\n"
        "x = 1\n"
        "```\n"
        "- item\n"
        "\n"
        "  ```python\n"
        "  b = 2\n"
        "  ```\n"
    )
    blocks = python_blocks(text)
    assert [(b.line, b.code, b.skip) for b in blocks] == [
        (3, "a = 1\n", False),
        (8, "import missing\n", True),
        (11, "import missing\n", True),
        (24, "b = 2\n", False),
    ]


# ------------------------------------------------------------------------------------------------
# 2. Public names are documented
# ------------------------------------------------------------------------------------------------


def _reference_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(REFERENCE.glob("*.md")))


def _code_spans(text: str) -> set[str]:
    """Identifiers a backticked span names: ``Money``, ``Money(amount, currency)``,
    ``salesprocess.Money`` and ``Money.zero`` all name ``Money`` (the last also ``zero``)."""
    names: set[str] = set()
    for span in re.findall(r"`([^`\n]+)`", text):
        head = re.match(r"\s*@?([A-Za-z_][\w.]*)", span)
        if head is None:
            continue
        parts = head.group(1).split(".")
        names.update(p for p in parts if p)
    return names


def _is_private(name: str) -> bool:
    return any(part.startswith("_") for part in name.split("."))


def public_modules() -> Iterator[str]:
    """The listed modules, then every non-private direct child of the public packages.

    A sub-package's own modules (``salesprocess.kpi.engine``) are its implementation: the
    sub-package's ``__all__`` (``salesprocess.kpi``) is its public face.
    """
    seen: set[str] = set()
    for name in PUBLIC_MODULES:
        seen.add(name)
        yield name
    for pkg_name in PUBLIC_PACKAGES:
        pkg = _import(pkg_name)
        if pkg is None:
            continue
        for info in pkgutil.iter_modules(pkg.__path__, prefix=pkg_name + "."):
            if info.name in seen or _is_private(info.name) or info.name == "salesprocess.cli":
                continue
            seen.add(info.name)
            yield info.name


def _import(name: str) -> types.ModuleType | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name is not None and (e.name == name or name.startswith(e.name + ".")):
            return None  # the module does not exist (yet)
        raise


def test_public_names_are_documented() -> None:
    documented = _code_spans(_reference_text())
    missing: list[str] = []
    checked = 0
    for modname in public_modules():
        mod = _import(modname)
        if mod is None:
            continue
        for name in getattr(mod, "__all__", ()):
            checked += 1
            if name not in documented:
                missing.append(f"{modname}.{name}")
    assert checked >= len(importlib.import_module("salesprocess").__all__)
    assert not missing, (
        "public names missing from docs/reference/*.md (write each as `name`):\n  "
        + "\n  ".join(sorted(set(missing)))
    )


def test_hooks_are_documented() -> None:
    from salesprocess import hookspecs

    hooks = [n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("salesprocess_")]
    assert "salesprocess_before_transition" in hooks
    documented = _code_spans(_reference_text())
    missing = [h for h in hooks if h not in documented]
    assert not missing, f"hooks missing from docs/reference: {missing}"


def test_errors_are_documented() -> None:
    from salesprocess import errors

    names = list(errors.__all__)
    for n in names:
        obj = getattr(errors, n)
        assert isinstance(obj, type)
    assert "SalesProcessError" in names
    # every exception class defined in the module is public
    defined = {
        n for n, c in inspect.getmembers(errors, inspect.isclass)
        if issubclass(c, BaseException) and c.__module__ == errors.__name__
    }
    assert defined <= set(names), f"exceptions not in errors.__all__: {sorted(defined - set(names))}"
    text = (REFERENCE / "errors.md").read_text(encoding="utf-8")
    missing = [n for n in names if n not in _code_spans(text)]
    assert not missing, f"exceptions missing from docs/reference/errors.md: {missing}"


def test_name_check_catches_an_undocumented_name() -> None:
    spans = _code_spans("Use `Money(amount, currency)`, `salesprocess.Rate` and `Deal.with_amount`.")
    assert {"Money", "Rate", "Deal", "with_amount"} <= spans
    assert "Period" not in spans
    assert "DealFilter" not in _code_spans("`Deal` and `DealFilterX`")


# ------------------------------------------------------------------------------------------------
# 3. Relative links resolve
# ------------------------------------------------------------------------------------------------

_LINK = re.compile(r"(?<!\!)\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REF_DEF = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)


def _strip_code(text: str, *, keep_inline: bool = False) -> str:
    """Text without fenced blocks and (unless ``keep_inline``) inline code: links there are
    examples, not links."""
    out: list[str] = []
    fence: str | None = None
    for line in text.splitlines():
        m = _FENCE.match(line)
        if m is not None:
            mark = m.group("fence")
            if fence is None:
                fence = mark
                continue
            if mark[0] == fence[0] and len(mark) >= len(fence) and not m.group("info").strip():
                fence = None
                continue
        if fence is None:
            out.append(line if keep_inline else re.sub(r"`[^`\n]*`", "", line))
    return "\n".join(out)


def relative_links(text: str) -> list[str]:
    body = _strip_code(text)
    targets = _LINK.findall(body) + _REF_DEF.findall(body)
    return [t for t in targets if not re.match(r"^(?:[a-z][a-z0-9+.-]*:|//)", t, re.IGNORECASE)]


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())  # links keep their text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Anchors of a Markdown text's headings (duplicates numbered -1, -2 ...)."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in _strip_code(text, keep_inline=True).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m is None:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def test_slug() -> None:
    assert slug("`replay(events) -> Deal`") == "replayevents---deal"
    assert slug("Criteria: `[stages.entry]` and `[stages.exit]`") == "criteria-stagesentry-and-stagesexit"
    assert slug("Business days, holidays and China's make-up days") == (
        "business-days-holidays-and-chinas-make-up-days"
    )
    assert slug("阶段 Stages") == "阶段-stages"
    assert anchors("# A\n## A\n```\n# not\n```\n") == {"a", "a-1"}


@pytest.mark.parametrize("doc", DOC_FILES, ids=[_rel(p) for p in DOC_FILES])
def test_relative_links_resolve(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    broken = []
    for target in relative_links(text):
        path, _, anchor = target.partition("#")
        path = path.split("?", 1)[0]
        resolved = (doc.parent / path).resolve() if path else doc
        missing_heading = (
            resolved.exists()
            and bool(anchor)
            and resolved.suffix == ".md"
            and anchor not in anchors(resolved.read_text(encoding="utf-8"))
        )
        if not resolved.exists() or missing_heading:
            broken.append(target)
    assert not broken, f"{_rel(doc)}: links to missing files or headings: {broken}"


def test_link_finder() -> None:
    text = (
        "See [the tutorial](../tutorial/getting-started.md#install) and [site](https://x.invalid/a).\n"
        "![img](pic.png) [anchor](#here) `[not](a-link.md)`\n"
        "```\n[nor](this.md)\n```\n"
        "[ref]: other.md\n"
    )
    assert relative_links(text) == ["../tutorial/getting-started.md#install", "#here", "other.md"]


def test_index_maps_every_page() -> None:
    index = DOCS / "index.md"
    linked = {
        (DOCS / t.partition("#")[0]).resolve()
        for t in relative_links(index.read_text(encoding="utf-8"))
        if t.partition("#")[0]
    }
    unlisted = [_rel(p) for p in DOC_FILES if p != index and p.resolve() not in linked]
    assert not unlisted, f"pages not linked from docs/index.md (add a line for each): {unlisted}"


def test_docs_tree_has_the_four_kinds() -> None:
    for part in ("tutorial", "how-to", "reference", "explanation"):
        assert list((DOCS / part).glob("*.md")), f"docs/{part} has no page"
    assert (DOCS / "index.md").is_file()


# ------------------------------------------------------------------------------------------------
# 4. Every CLI command is in the CLI reference
# ------------------------------------------------------------------------------------------------


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _commands(sub, (*prefix, name))


def test_cli_commands_are_documented() -> None:
    from salesprocess.cli.main import build_parser

    commands = list(_commands(build_parser()))
    assert ("process", "validate") in commands
    text = (REFERENCE / "cli.md").read_text(encoding="utf-8")
    missing = [" ".join(c) for c in commands if f"salesprocess {' '.join(c)}" not in text]
    assert not missing, f"commands missing from docs/reference/cli.md: {missing}"
