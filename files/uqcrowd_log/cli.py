"""`uqcrowd-log`: the researcher's command line (export, import, sessions, withdraw, dead-letters).

Connection settings come from the same UQCROWD_* variables as the service (on a server the role's
wrapper reads them from /etc/uqcrowd-log/toolkit.env, with least-privilege users), or from options.
Every failure is one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import csv
import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, TypeVar

import click
import elastic_transport
import orjson
import redis
from elasticsearch import ApiError, Elasticsearch

from . import elastic, flags
from .config import ConfigError, ElasticsearchSettings, Settings
from .queue.side_lists import SideLists
from .stored_events import formats, imports, retention, sessions, withdraw
from .stored_events.selection import Selection, count, parse_moment, stream
from .withdrawn import Register

F = TypeVar("F", bound=Callable[..., Any])


def _failures(command: F) -> F:
    """Turn the ways a command fails into one line and exit code 1."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (ApiError, elastic_transport.TransportError, redis.RedisError, OSError, RuntimeError) as exc:
            raise click.ClickException(_message(exc, _now())) from None

    return run  # type: ignore[return-value]


def _now() -> Settings:
    """The settings the failing command used (with the user it picked)."""
    return click.get_current_context().obj


def _message(exc: Exception, settings: Settings) -> str:
    """One line saying what failed, with the server and the user the command used."""
    if isinstance(exc, elastic_transport.ConnectionError):
        return f"Elasticsearch at {settings.es.url} is unreachable: {_first_line(exc)}"
    if isinstance(exc, ApiError):
        return _api_error(exc, settings)
    if isinstance(exc, elastic_transport.TransportError):
        return f"Elasticsearch at {settings.es.url}: {_first_line(exc)}"
    if isinstance(exc, redis.RedisError):
        return f"Redis at {_safe_url(settings.redis.url)}: {_first_line(exc)}"
    return _first_line(exc)


def _api_error(exc: ApiError, settings: Settings) -> str:
    user = settings.es.username or "(no user)"
    reason = _first_line(exc.message if hasattr(exc, "message") else exc)
    if exc.meta.status == 401:
        return f"Elasticsearch refused the credentials of {user}"
    if exc.meta.status == 403:
        return f"{user} lacks the rights for this in Elasticsearch: {reason}"
    return f"Elasticsearch answered {exc.meta.status}: {reason}"


def _first_line(exc: object) -> str:
    return " ".join(str(exc).split())[:300]


def _safe_url(url: str) -> str:
    return url.split("@")[-1]


def _client(settings: Settings, role: str = "reader") -> Elasticsearch:
    """A client with the given user, or else with the least-privilege user of this kind of command
    from the server's toolkit settings (the reader for reading, the curator for sessions --store, the
    withdrawer for withdraw, the retention user for retention, the writer for import)."""
    if not settings.es.username and not settings.es.api_key and role in settings.toolkit.users:
        username, password = settings.toolkit.users[role]
        settings = settings.changed(es={"username": username, "password": password})
    click.get_current_context().obj = settings  # for the error messages
    return elastic.connect(settings)


def _selection(options: dict[str, Any]) -> Selection:
    return Selection(
        exp_id=options["exp_id"] or "",
        worker_id=options["worker_id"] or "",
        session_id=options["session_id"] or "",
        since=options["since"],
        until=options["until"],
    )


class Moment(click.ParamType):
    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_moment(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a date, an ISO 8601 time or epoch milliseconds", param, ctx)


def selection_options(command: F) -> F:
    for option in reversed(
        [
            click.option("--exp-id", help="Only this experiment."),
            click.option("--worker-id", help="Only this worker."),
            click.option("--session-id", help="Only this session."),
            click.option("--since", type=Moment(), help="From this time (date, ISO 8601 or epoch ms), UTC."),
            click.option("--until", type=Moment(), help="Before this time."),
        ]
    ):
        command = option(command)
    return command


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--es-url", help=f"Elasticsearch (default: UQCROWD_ES_URL, else {ElasticsearchSettings.url}).")
@click.option("--es-username", help="Its user (default: UQCROWD_ES_USERNAME, else the command's own).")
@click.option("--es-password", help="Its password (default: UQCROWD_ES_PASSWORD).")
@click.option("--es-ca-file", help="CA of an https Elasticsearch (default: UQCROWD_ES_CA_FILE).")
@click.option(
    "--index-prefix", help=f"Daily indices (default: UQCROWD_INDEX_PREFIX, else {ElasticsearchSettings.index_prefix})."
)
@click.pass_context
def main(ctx: click.Context, **given: str | None) -> None:
    """Get a study's events out of UQCrowd-Log, check its sessions, honour a withdrawal.

    Settings come from the UQCROWD_* environment (uqcrowd_log.config; the server's wrapper reads them
    from /etc/uqcrowd-log); these options override them."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    given = {name.removeprefix("es_"): value for name, value in given.items() if value is not None}
    ctx.obj = settings.changed(es=given)  # every option is one of the Elasticsearch settings


def _events_index(settings: Settings) -> str:
    return elastic.index_name(settings.es.index_prefix, "*")


def _sources(hits: Iterator[dict[str, Any]], bar: Any) -> Iterator[dict[str, Any]]:
    for hit in hits:
        bar.update(1)
        yield hit["_source"]


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def update(self, _: int) -> None:
        return None


def _bar(total: int, label: str) -> Any:
    """A progress bar on a terminal (stderr), none when it is not one."""
    if sys.stderr.isatty():
        return click.progressbar(length=total, label=label, file=sys.stderr)
    return _NoBar()


@main.command()
@selection_options
@click.option("--format", "fmt", type=click.Choice(formats.FORMATS), default="ndjson", show_default=True)
@click.option("-o", "--output", default="-", show_default=True, help="File to write, or - for standard output.")
@click.pass_obj
@_failures
def export(settings: Settings, fmt: str, output: str, **options: Any) -> None:
    """Export events, ordered by session then sequence number (NDJSON as stored; CSV and Parquet
    with nested fields flattened to dotted column names)."""
    client, selection = _client(settings), _selection(options)
    total = count(client, _events_index(settings), selection)
    if total == 0:
        raise click.ClickException(f"no events match {selection.describe()}")
    with _open(output, "wb") as out, _bar(total, f"exporting {total} events") as bar:
        written = formats.WRITERS[fmt](_sources(stream(client, _events_index(settings), selection), bar), out)
    click.echo(f"exported {written} events ({selection.describe()}) as {fmt} to {output}", err=True)


@contextmanager
def _open(name: str, mode: str) -> Iterator[IO[bytes]]:
    """The file `name` in binary `mode` ("rb" or "wb"), or standard input/output for "-"."""
    if name == "-":
        yield sys.stdin.buffer if mode == "rb" else sys.stdout.buffer
    else:
        with Path(name).open(mode) as file:
            yield file


@main.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.pass_obj
@_failures
def import_command(settings: Settings, files: tuple[str, ...]) -> None:
    """Load NDJSON files back (this system's exports or the original export.py's): ids kept, a
    second import adds nothing, and the events of withdrawn workers are left out."""
    client = _client(settings, "writer")
    register = Register.from_settings(settings)
    failed = False
    for name in files:
        with _open(name, "rb") as source:
            result = imports.import_ndjson(client, settings.es.index_prefix, source, register)
        click.echo(
            f"{name}: {result.read} read, {result.created} imported, {result.present} already stored, "
            f"{result.withdrawn} of withdrawn workers left out, {len(result.refused)} refused",
            err=True,
        )
        for line, why in result.refused[:10]:
            click.echo(f"  line {line}: {why}", err=True)
        failed = failed or bool(result.refused)
    if failed:
        raise click.ClickException("some events were not imported (see above)")


@main.command("sessions")
@selection_options
@click.option("--csv", "as_csv", is_flag=True, help="CSV on standard output instead of a table.")
@click.option("--store", is_flag=True, help="Write the reports of one day into the session index (cron).")
@click.option("--day", help="With --store: the day (YYYY-MM-DD, UTC) whose index to read; default yesterday.")
@click.option("--session-index-prefix", help="Session reports' indices (default: UQCROWD_SESSION_INDEX_PREFIX).")
@click.option("--flagged", is_flag=True, help="Only the sessions a flag of their experiment's marks (UQCROWD_FLAGS).")
@click.pass_obj
@_failures
def sessions_command(
    settings: Settings,
    as_csv: bool,
    store: bool,
    day: str | None,
    session_index_prefix: str | None,
    flagged: bool,
    **options: Any,
) -> None:
    """Per session: worker, HIT, assignment, experiment, times, events by type, gaps, duplicates,
    End Session's count against what is stored -> complete or not; the behavioural signals (active
    and hidden time, typing, pastes...) and the flags the experiment's rules raise."""
    try:
        rules = flags.rules_by_experiment(settings.toolkit.flags)
    except ValueError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    client, selection = _client(settings, "curator" if store else "reader"), _selection(options)
    if store:
        day = day or (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
        reports = sessions.read_reports(client, elastic.index_name(settings.es.index_prefix, day), selection)
        into = elastic.index_name(session_index_prefix or settings.toolkit.session_index_prefix, day)
        written = sessions.store(client, into, sessions.rows(reports, rules))
        click.echo(f"stored {written} session reports of {day} in {into}", err=True)
        return
    reports = sessions.read_reports(client, _events_index(settings), selection)
    if not reports:
        raise click.ClickException(f"no events match {selection.describe()}")
    rows = [row for row in sessions.rows(reports, rules) if row["flags"] or not flagged]
    if not rows:
        click.echo(f"none of the {len(reports)} sessions is flagged", err=True)
        return
    if as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        return
    columns = ["session_id", "worker_id", "exp_id", "duration_seconds", "stored", "declared", "missing", "duplicates"]
    columns += ["complete", "active_seconds", "paste_share", "flags"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    click.echo("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        click.echo("  ".join(str(row[c]).ljust(widths[c]) for c in columns))
    done = sum(r.complete for r in reports)
    marked = sum(bool(row["flags"]) for row in sessions.rows(reports, rules))
    click.echo(f"{done} of {len(reports)} sessions complete, {marked} flagged", err=True)


@main.command("withdraw")
@click.option("--worker-id", help="The worker (MTurk worker id or Prolific PID) whose consent was withdrawn.")
@click.option(
    "--undo", "undo_worker", metavar="WORKER_ID", help="Take a worker withdrawn by mistake out of the register."
)
@click.option("--dry-run", is_flag=True, help="Only show how many documents each index holds.")
@click.option("--session-index-prefix", help="Session reports' indices (default: UQCROWD_SESSION_INDEX_PREFIX).")
@click.pass_obj
@_failures
def withdraw_command(
    settings: Settings,
    worker_id: str | None,
    undo_worker: str | None,
    dry_run: bool,
    session_index_prefix: str | None,
) -> None:
    """Withdraw one worker for good: into the withdrawn-workers register (nothing of theirs is stored
    again: not at ingest, not from the queue, not by replay or import), out of the dead letters, the
    quarantine and every index (events and session reports), checked; audited in the server's root-only
    audit log (UQCROWD_AUDIT_LOG), written before anything changes. --undo WORKER_ID: their new events
    are stored again; nothing deleted comes back."""
    if bool(worker_id) == bool(undo_worker):
        raise click.UsageError("give either --worker-id or --undo")
    audit_log = Path(settings.toolkit.audit_log)
    register = Register.from_settings(settings)
    if undo_worker:
        was = withdraw.undo(register, undo_worker, audit_log)
        state = "taken out of" if was else "was not in"
        click.echo(f"worker {undo_worker} {state} the withdrawn register; audit line in {audit_log}", err=True)
        return
    assert worker_id is not None
    client = _client(settings, "withdrawer")
    prefixes = (settings.es.index_prefix, session_index_prefix or settings.toolkit.session_index_prefix)
    indices = ",".join(elastic.index_name(prefix, "*") for prefix in prefixes)
    if dry_run:
        planned = withdraw.plan(client, indices, worker_id)
        for index, n in sorted(planned.by_index.items()):
            click.echo(f"{index}\t{n}")
        click.echo(f"{planned.total} documents of worker {worker_id} would be removed (dry run)", err=True)
        return
    done = withdraw.withdraw(client, register, SideLists.from_settings(settings), indices, worker_id, audit_log)
    aside = done.set_aside or {}
    click.echo(
        f"removed {done.total} documents of worker {worker_id} (0 remain), {aside.get('dead_letters', 0)} dead "
        f"letters and {aside.get('quarantine', 0)} quarantined events; their events are dropped from now on; "
        f"audit line in {audit_log}",
        err=True,
    )


@main.command("retention")
@click.option("--days", type=click.IntRange(min=1), required=True, help="Keep this many days of indices.")
@click.option("--session-index-prefix", help="Session reports' indices (default: UQCROWD_SESSION_INDEX_PREFIX).")
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted.")
@click.pass_obj
@_failures
def retention_command(settings: Settings, days: int, session_index_prefix: str | None, dry_run: bool) -> None:
    """Delete the daily event and session indices older than --days (for clusters without ILM)."""
    prefixes = [settings.es.index_prefix, session_index_prefix or settings.toolkit.session_index_prefix]
    doomed = retention.apply(_client(settings, "retention"), prefixes, days, datetime.now(UTC).date(), dry_run)
    for name in doomed:
        click.echo(name)
    verb = "would be deleted (dry run)" if dry_run else "deleted"
    click.echo(f"{len(doomed)} indices older than {days} days {verb}", err=True)


@main.group("dead-letters")
def dead_letters() -> None:
    """Events kept aside: refused by Elasticsearch (dead letters) or at the door (quarantine)."""


@dead_letters.command("list")
@click.option("--quarantine", is_flag=True, help="The quarantine (invalid events of good batches) instead.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.pass_obj
@_failures
def dead_letters_list(settings: Settings, quarantine: bool, limit: int) -> None:
    """Print the oldest records as NDJSON (reason first)."""
    side_lists = SideLists.from_settings(settings)
    if quarantine:
        records, total = side_lists.quarantine_records(0, limit - 1), side_lists.quarantine_depth()
    else:
        records, total = side_lists.dead_letter_records(0, limit - 1), side_lists.dead_letter_depth()
    for record in records:
        click.echo(orjson.dumps(record).decode())
    click.echo(f"{len(records)} of {total} shown", err=True)


@dead_letters.command("replay")
@click.option("--count", "how_many", type=click.IntRange(min=1), default=100_000, show_default=True)
@click.pass_obj
@_failures
def dead_letters_replay(settings: Settings, how_many: int) -> None:
    """Put dead letters back in the queue (after fixing what made Elasticsearch refuse them)."""
    moved = SideLists.from_settings(settings).replay_dead_letters(how_many)
    click.echo(f"{moved} dead letters back in the queue", err=True)


@main.command("password-hash")
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the password from standard input (one line).")
def password_hash(from_stdin: bool) -> None:
    """A dashboard login's password hash (werkzeug's scrypt), for dashboard_users in the vault:
    the password is asked twice (or read from standard input), never shown, and only its hash printed."""
    from werkzeug.security import generate_password_hash

    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    if len(password) < 12:
        raise click.ClickException("a dashboard password has at least 12 characters")
    click.echo(generate_password_hash(password))


def run() -> None:
    main(prog_name="uqcrowd-log")


if __name__ == "__main__":
    run()
