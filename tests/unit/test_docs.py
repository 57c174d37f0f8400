"""What the researchers' pages and the README show works as shown: every `uqcrowd-log` command parses
with the real command line, the tracker snippet and the Prolific URL use what the tracker reads (the
tracker's own tests, tests/service/test_tracker.py, load the same snippet and URL in Chromium), and the
README stays a page a researcher reads in two minutes."""

import re
import shlex
from pathlib import Path

import click
import pytest

from uqcrowd_log.cli import main as cli

ROOT = Path(__file__).resolve().parents[2]
SHOWN = [ROOT / "README.md", *sorted((ROOT / "docs/researchers").glob("*.md"))]
TRACKER = (ROOT / "files/uqcrowd_log/static/logger.js").read_text()


def commands() -> list[tuple[str, str]]:
    """(where, command line) of every `uqcrowd-log ...` line in a code block of the pages shown."""
    found = []
    for page in SHOWN:
        inside = False
        for number, line in enumerate(page.read_text().splitlines(), 1):
            if line.startswith("```"):
                inside = not inside
            elif inside and line.startswith("uqcrowd-log "):
                command = re.split(r"\s+#\s", line)[0].split(" > ")[0].strip()
                found.append((f"{page.relative_to(ROOT)}:{number}", command))
    return found


def test_the_pages_show_commands() -> None:
    assert len(commands()) >= 10


def parse(args: list[str]) -> None:
    """Parse a command line as `uqcrowd-log` would (its commands, options, arguments and choices),
    without running it."""
    group: click.Command = cli
    context = cli.make_context("uqcrowd-log", list(args))
    while isinstance(group, click.Group):
        rest = [*context._protected_args, *context.args]  # what the group left to its command (Click 8)
        name, command, rest = group.resolve_command(context, rest)
        assert command is not None, f"no command {name}"
        context = command.make_context(name, list(rest), parent=context)
        group = command


@pytest.mark.parametrize(("where", "command"), commands(), ids=[w for w, _ in commands()])
def test_every_command_shown_parses(where: str, command: str, tmp_path: Path, monkeypatch) -> None:
    args = shlex.split(command)[1:]
    monkeypatch.chdir(tmp_path)
    for arg in args:  # the files a command reads (import's): as the researcher would have them
        if not arg.startswith("-") and re.fullmatch(r"[\w.-]+\.(jl|ndjson|json)", arg):
            (tmp_path / arg).write_text("")
    parse(args)


def test_a_wrong_command_is_caught() -> None:
    """The check above can fail: an option the command does not have is refused."""
    with pytest.raises(click.NoSuchOption):
        parse(["export", "--no-such-option"])


def test_the_tracker_snippet_and_the_prolific_url_use_what_the_tracker_reads() -> None:
    text = "\n".join(page.read_text() for page in SHOWN)
    assert re.search(r'<script src="https://[^"]+/logger/logger\.js"></script>', text)
    assert "exp_id_preDefined" in TRACKER
    urls = set(re.findall(r"\?(PROLIFIC_PID=[^`\s]+)", text))
    assert urls, "the pages show the Prolific study URL"
    for url in urls:
        for name, value in (part.split("=", 1) for part in url.split("&")):
            assert f'"{name}"' in TRACKER, f"the tracker does not read {name}"
            assert value == f"{{{{%{name}%}}}}", f"{name}={value}: Prolific fills in {{{{%{name}%}}}}"


def test_the_readme_opens_with_the_two_set_up_commands_and_stays_short() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 150
    first_block = readme.split("```")[3]  # the diagram is the first block, the set-up the second
    assert [line.split()[:2] for line in first_block.strip().splitlines()] == [["make", "demo"], ["make", "test"]]
