"""The integrator walk-throughs (docs/integrators/adding-*.md) work when followed literally.

Each page is executed in a temporary copy of the repository (config/, routes/, mappings/,
protocols/, docs/, with .venv linked), block by block, in order:
- ```sh: run with bash -e; the previous block's output is kept for a following ```text block;
- ```text: every non-empty line must appear in the output of the ```sh block before it;
- ```<lang> file=PATH: the file's whole content; append=PATH: added at the end;
  after="LINE" file=PATH: inserted after the first line equal to LINE;
  into=NAME file=PATH: entries added to the dict literal NAME (`NAME: ... = {`);
  import file=PATH: `from pkg import name` merged into the module's import of pkg.
The copy's mappings/ and protocols/ come first on PYTHONPATH, as the checkout's own would.
Then each page's result is checked beyond what the page itself shows.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "integrators"
FENCE = re.compile(r"^```([A-Za-z]+)([^\n]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass
class Block:
    lang: str
    attrs: dict[str, str]
    text: str
    line: int


def blocks(page: Path) -> list[Block]:
    source = page.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(source):
        attrs = {}
        for word in shlex.split(m.group(2)):
            key, _, value = word.partition("=")
            attrs[key] = value
        out.append(Block(m.group(1), attrs, m.group(3), source.count("\n", 0, m.start()) + 1))
    return out


def into_dict(text: str, name: str, entries: str) -> str:
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if re.match(rf"^{re.escape(name)}\b[^=]*=\s*\{{", line):
            if line.rstrip().endswith("{}"):
                lines[i] = line.rstrip()[:-1] + "\n" + entries + "}\n"
            else:
                lines.insert(i + 1, entries)
            return "".join(lines)
    raise AssertionError(f"no dict literal {name} = {{ ... }} to add entries to")


def merge_import(text: str, statement: str) -> str:
    m = re.fullmatch(r"from (\S+) import (\w+)", statement.strip())
    assert m, f"an `import` block holds one `from X import Y` line, not {statement!r}"
    package, name = m.groups()
    existing = re.search(rf"^from {re.escape(package)} import ([\w, ]+)$", text, re.MULTILINE)
    if existing is None:
        return statement.strip() + "\n" + text
    names = sorted({*(n.strip() for n in existing.group(1).split(",")), name})
    return text[:existing.start()] + f"from {package} import {', '.join(names)}" + text[existing.end():]


def apply_file_block(root: Path, block: Block) -> None:
    attrs = block.attrs
    target = root / (attrs.get("file") or attrs.get("append"))
    if "append" in attrs:
        with target.open("a", encoding="utf-8") as f:
            f.write(block.text)
        return
    if "after" in attrs:
        lines = target.read_text(encoding="utf-8").splitlines(keepends=True)
        at = next(i for i, line in enumerate(lines) if line.strip() == attrs["after"])
        lines.insert(at + 1, block.text)
        target.write_text("".join(lines), encoding="utf-8")
    elif "into" in attrs:
        target.write_text(into_dict(target.read_text(encoding="utf-8"), attrs["into"], block.text), encoding="utf-8")
    elif "import" in attrs:
        target.write_text(merge_import(target.read_text(encoding="utf-8"), block.text), encoding="utf-8")
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.text, encoding="utf-8")


def walk(page: Path, root: Path, env: dict[str, str]) -> list[str]:
    """Follow a page literally in `root`; returns the output of each ```sh block."""
    outputs: list[str] = []
    last = ""
    for block in blocks(page):
        where = f"{page.name}:{block.line}"
        if block.lang == "sh":
            done = subprocess.run(["bash", "-e", "-c", block.text], cwd=root, env=env, capture_output=True,
                                  text=True, timeout=240)
            last = done.stdout + done.stderr
            outputs.append(last)
            assert done.returncode == 0, f"{where}: the commands failed (exit {done.returncode}):\n{last}"
        elif block.lang == "text":
            for line in filter(None, (x.strip() for x in block.text.splitlines())):
                assert line in last, f"{where}: {line!r} is not in the output of the commands before it:\n{last}"
        elif block.attrs:
            apply_file_block(root, block)
    return outputs


@pytest.fixture
def checkout(tmp_path: Path):
    root = tmp_path / "repo"
    root.mkdir()
    for folder in ("config", "routes", "mappings", "protocols", "docs"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (root / ".venv").symlink_to(REPO / ".venv")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_") and k != "VIRTUAL_ENV"}
    env.update(PATH=f"{REPO / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}", PYTHONPATH=str(root))
    return root, env


def hub(root: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run([str(REPO / ".venv" / "bin" / "hub"), *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_every_walk_through_is_tested():
    pages = {p.name for p in DOCS.glob("adding-*.md")}
    assert pages == {"adding-a-province.md", "adding-a-route.md", "adding-a-mapping.md",
                     "adding-a-message-type.md"}


def test_adding_a_province(checkout, new_vhost, broker):
    root, env = checkout
    vhost = new_vhost(create=False)  # `hub topology apply` in the walk-through creates it
    env.update(HUB_VHOST=vhost, HUB_USER_PREFIX=f"{vhost}.")
    walk(DOCS / "adding-a-province.md", root, env)
    assert "'4401'" in (root / "docs" / "asyncapi.yaml").read_text(encoding="utf-8")
    assert (root / "var" / "secrets" / f"{vhost}.node-4401.password").is_file()
    assert "no drift" in hub(root, env, "topology", "diff")


def test_adding_a_route(checkout):
    root, env = checkout
    outputs = walk(DOCS / "adding-a-route.md", root, env)
    passed = re.search(r"(\d+) passed, 0 failed", outputs[2])
    assert passed and int(passed.group(1)) > 2, outputs[2]  # both files ran, not just the new one
    assert "notice-escalation: notice.text" in (root / "docs" / "routes.md").read_text(encoding="utf-8")
    assert "notice-escalation" in hub(root, env, "routes", "show")


def test_adding_a_mapping(checkout):
    root, env = checkout
    walk(DOCS / "adding-a-mapping.md", root, env)
    registry = (root / "mappings" / "registry.py").read_text(encoding="utf-8")
    assert '"notice_tag_sender": notice_tags.tag_sender,' in registry
    # the mapping is used: a wrong expectation fails the fixture
    fixtures = root / "routes" / "hq-notices.fixtures.yaml"
    fixtures.write_text(fixtures.read_text(encoding="utf-8").replace("【44】月报", "月报"), encoding="utf-8")
    done = subprocess.run(["hub", "routes", "test", str(fixtures)], cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 1 and "+    equals: 【44】月报" in done.stdout, done.stdout


def test_adding_a_message_type(checkout):
    root, env = checkout
    outputs = walk(DOCS / "adding-a-message-type.md", root, env)
    assert int(outputs[-1].strip().splitlines()[-1]) > 0   # grep -c: the contract lists the new type
    assert "claims:  outage.report from group second_line" in hub(root, env, "routes", "show")
    assert "3 passed, 0 failed" in hub(root, env, "routes", "test", "routes/outages.fixtures.yaml")
