"""The front door and the rooms: README.md stays short, the docs site builds strict (no broken link or
anchor), the CLI reference is the typer app's, and every ``pcbm ...`` example names real commands."""

from __future__ import annotations

import difflib
import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from pcbm.cli import app

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
README_MAX_BYTES = 12_000

_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


def _gen_cli_docs():
    spec = importlib.util.spec_from_file_location("gen_cli_docs", REPO / "scripts" / "gen_cli_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_is_short():
    size = README.stat().st_size
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes (at most {README_MAX_BYTES}): move detail into docs/"


def test_readme_relative_links_exist():
    links = [a or b for a, b in _LINK.findall(README.read_text(encoding="utf-8"))]
    relative = [x for x in links if not re.match(r"[a-z][a-z0-9+.-]*:", x) and not x.startswith("#")]
    assert relative, "no relative links found in README.md: the link pattern is broken"
    missing = [x for x in relative if not (REPO / x.split("#")[0]).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_mkdocs_builds_strict(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(REPO / "mkdocs.yml"),
         "--site-dir", str(tmp_path / "site")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    assert (tmp_path / "site" / "cli" / "index.html").exists()


def test_cli_reference_is_fresh():
    gen = _gen_cli_docs()
    committed = gen.CLI_MD.read_text(encoding="utf-8") if gen.CLI_MD.exists() else ""
    diff = list(difflib.unified_diff(committed.splitlines(), gen.generate().splitlines(), "docs/cli.md", "fresh", lineterm=""))
    assert not diff, "stale CLI reference docs/cli.md: run .venv/bin/python scripts/gen_cli_docs.py\n" + "\n".join(diff[:40])


def _command_lines(text: str) -> list[str]:
    """``pcbm ...`` lines of the code blocks (indented or fenced), continuation lines joined."""
    out, fenced, pending = [], False, ""
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not (fenced or line.startswith("    ")) and not pending:
            continue
        line = pending + line.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if line.startswith("pcbm "):
            out.append(line)
    return out


def _examples() -> list[tuple[str, str]]:
    pages = [README, *sorted(p for p in DOCS.glob("*.md") if p.name != "cli.md")]
    return [(p.relative_to(REPO).as_posix(), line) for p in pages for line in _command_lines(p.read_text(encoding="utf-8"))]


EXAMPLES = _examples()


def test_examples_were_found():
    assert len(EXAMPLES) >= 30, EXAMPLES


@pytest.mark.parametrize(("page", "line"), EXAMPLES, ids=[f"{p}:{line[:60]}" for p, line in EXAMPLES])
def test_example_names_real_commands_and_options(page: str, line: str):
    cmd = typer.main.get_command(app)
    words = shlex.split(line, comments=True)[1:]
    path = ["pcbm"]
    while words and hasattr(cmd, "commands") and not words[0].startswith("-"):
        name = words.pop(0)
        assert name in cmd.commands, f"{page}: '{' '.join(path)} {name}' is not a command (known: {sorted(cmd.commands)})"
        cmd = cmd.commands[name]
        path.append(name)
    known = {"--help"} | {o for p in cmd.params if p.param_type_name == "option" for o in p.opts + p.secondary_opts}
    unknown = [w.split("=")[0] for w in words if w.startswith("--") and w.split("=")[0] not in known]
    assert not unknown, f"{page}: '{' '.join(path)}' has no option {unknown}: {line}"
