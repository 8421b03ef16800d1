"""`marts`: the command line for what people run by hand (click, as Dagster and dbt use).

seed, backfill a date range, reprocess late data, sync (the automation loop, headless), check,
freshness, report, snapshots / show / rollback (time travel), sql, demo, summary. Long work
prints a line per step as it finishes; `dagster asset materialize --partition-range` works
beside it on the same instance.
"""

import atexit
import contextlib
import datetime as dt
import json
import os
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import click
from dagster import DagsterInstance
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from marts_project import commands
from marts_project.cluster import supervisor
from marts_project.commands import OperatorError, count
from marts_project.core.contracts import DOMAINS
from marts_project.core.partitions import SIZED_CHUNK_MAX_DAYS, DayWindow, last_closed_day
from marts_project.core.processes import alive
from marts_project.definitions import build_definitions
from marts_project.deployment import open_resource
from marts_project.execution.check_table import check_table
from marts_project.execution.runs import (
    BadDateRangeError,
    ChunkWorkerDied,
    RunInterrupted,
    instance_for,
    parse_day,
    refresh_days,
)
from marts_project.governance.access import policies as access_policies
from marts_project.governance.access import render as render_policy
from marts_project.marts import ALL_MARTS
from marts_project.observability.failures import failed_partitions
from marts_project.observability.freshness import partition_freshness
from marts_project.observability.slo import SloReport
from marts_project.observability.slo_history import mart_slo
from marts_project.observability.summary import mart_summary
from marts_project.planning.planner import facts_of, plan_for, ranges, stale_partitions
from marts_project.process import leave
from marts_project.resources.audit_trail import audited
from marts_project.resources.data_folder import foreign_warehouse, make_private
from marts_project.resources.duck import connect
from marts_project.resources.iceberg import CATALOG_NAME
from marts_project.resources.iceberg_io import table_identifier
from marts_project.resources.landing import LandingSnapshot
from marts_project.resources.read_only_query import (
    QueryInterrupted,
)
from marts_project.resources.relocation import relocate as relocate_tables
from marts_project.settings import Settings
from marts_project.simulator import SimConfig, land


class Day(click.ParamType):
    """A calendar day, YYYY-MM-DD."""

    name = "YYYY-MM-DD"

    def convert(self, value, param, ctx) -> dt.date:
        if isinstance(value, dt.date):
            return value
        try:
            return parse_day(value)
        except BadDateRangeError as exc:
            self.fail(str(exc), param, ctx)


DAY = Day()
POSITIVE = click.IntRange(min=1)


def _yesterday() -> dt.date:
    return last_closed_day(dt.datetime.now(dt.UTC))


def _settings() -> Settings:
    return click.get_current_context().obj


def _last_days(end: dt.date, count: int) -> tuple[dt.date, dt.date]:
    return end - dt.timedelta(days=count - 1), end


SELECT_HELP = (
    "dbt's selectors: a table name, +name (with what it reads), name+ (with what reads it), "
    "group:G, domain:D, layer:L; repeat or space-separate for several"
)


def _seed_options(command):
    command = click.option("--seed", type=int, default=7, show_default=True, help="simulator seed")(
        command
    )
    command = click.option(
        "--rows-per-day", type=POSITIVE, default=200, show_default=True, help="ad rows per day"
    )(command)
    return click.option(
        "--days", type=POSITIVE, default=14, show_default=True, help="how many closed days"
    )(command)


def _run_options(command):
    command = click.option(
        "--log-level",
        type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
        default=None,
        help="Dagster's own run log on stderr, with stack traces (off by default: each step "
        "prints, a failed one with its error)",
    )(command)
    command = click.option(
        "--workers",
        type=POSITIVE,
        default=None,
        help="daily runs side by side (embedded deployment), each holding a chunk in memory "
        "(default: one per core when the range's landing files fill more than one run, as "
        "many as the free memory holds; else 1)",
    )(command)
    command = click.option("--select", "selectors", multiple=True, help=SELECT_HELP)(command)
    return click.option(
        "--chunk-days",
        type=POSITIVE,
        default=None,
        help=f"at most N days per daily run (default: as many as MARTS_CHUNK_MB of landing "
        f"files allow, up to {SIZED_CHUNK_MAX_DAYS}); a run holds its chunk in memory",
    )(command)


# commands that only read a lake: refused (not given an empty new folder) when there is none
READS_A_LAKE = {
    "audit",
    "freshness",
    "plan",
    "report",
    "rollback",
    "show",
    "slo",
    "snapshots",
    "sql",
    "summary",
}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """marts: build, check and serve the data marts."""
    ctx.obj = Settings.from_env()
    if missing := ctx.obj.missing_secrets():
        verb = "is" if len(missing) == 1 else "are"
        raise OperatorError(
            f"{' and '.join(missing)} {verb} not set: this deployment (warehouse "
            f"{ctx.obj.warehouse}, executor {ctx.obj.executor}) reads its secrets from the "
            "environment (never from a file of this project)"
        )
    if ctx.invoked_subcommand in READS_A_LAKE and not ctx.obj.data_dir.exists():
        raise OperatorError(
            f"no data folder at {ctx.obj.data_dir} (MARTS_DATA_DIR): run `marts demo` to build "
            "one, or point MARTS_DATA_DIR at an existing one"
        )
    make_private(ctx.obj)
    if ctx.invoked_subcommand != "relocate" and (elsewhere := foreign_warehouse(ctx.obj)):
        raise OperatorError(
            f"the Iceberg catalog in {ctx.obj.data_dir} holds tables of {elsewhere}, not of "
            "this folder's warehouse: the data folder was copied or moved, and Iceberg "
            "metadata keeps absolute paths. Run `marts relocate` once to adopt the copy here "
            "(the original is neither read nor changed)"
        )


@cli.command()
def relocate() -> None:
    """Adopt a copied or moved data folder: rewrite its tables' current rows under its own
    warehouse (their build records kept), so it works here without touching the original."""
    settings = _settings()
    elsewhere = foreign_warehouse(settings)
    if elsewhere is None:
        click.echo(f"nothing to relocate: the catalog's tables live in {settings.warehouse}")
        return
    trail = open_resource(settings, "audit", commands.instance_of(settings))
    with audited(trail, "relocate", f"{elsewhere} -> {settings.warehouse}", {}) as outcome:
        moved = relocate_tables(
            open_resource(settings, "warehouse"),
            elsewhere,
            open_resource(settings, "landing").fingerprints(),
            lambda table, rows: click.echo(f"  {table:<48} {_rows(rows)}"),
        )
        outcome["result"] = f"ok: {len(moved)} tables"
    click.echo(
        f"relocated {len(moved)} tables from {elsewhere} to {settings.warehouse}; their "
        "history before the move stays with the original"
    )


@cli.command()
@_seed_options
@click.option("--end", type=DAY, help="last day (default: yesterday, UTC)")
def seed(days: int, rows_per_day: int, seed: int, end: dt.date | None) -> None:
    """Write simulated landing files for the last N days."""
    commands.seed_days(_settings(), days, rows_per_day, seed, end or _yesterday(), click.echo)


@cli.command()
@click.option("--start", type=DAY, required=True, help="first day")
@click.option("--end", type=DAY, help="last day, inclusive (default: start)")
@_run_options
def backfill(
    start: dt.date,
    end: dt.date | None,
    chunk_days: int | None,
    workers: int | None,
    log_level: str | None,
    selectors: tuple[str, ...],
) -> int:
    """Refresh a day range everywhere it flows: daily tables, weeks, months, dimensions."""
    options = commands.RunOptions(chunk_days, workers, log_level, selectors)
    return commands.audited_backfill(
        _settings(), "backfill", start, end or start, options, click.echo
    )


cli.add_command(backfill, "materialize")


@cli.command()
@click.option("--days", type=POSITIVE, default=7, show_default=True, help="how many closed days")
@_run_options
def reprocess(
    days: int,
    chunk_days: int | None,
    workers: int | None,
    log_level: str | None,
    selectors: tuple[str, ...],
) -> int:
    """Re-materialize the last N closed days everywhere they flow (late data nobody saw)."""
    start, end = _last_days(_yesterday(), days)
    options = commands.RunOptions(chunk_days, workers, log_level, selectors)
    return commands.audited_backfill(_settings(), "reprocess", start, end, options, click.echo)


@cli.command()
def sync() -> int:
    """Tick the landing sensor and automation until the marts match the landing zone.

    Exits 0 only when every run succeeded and no partition is left failed (by this sync or an
    earlier one); failed partitions are retried by automation at their retry time.
    """
    result = commands.sync(_settings())
    for outcome in result.outcomes:
        status = "succeeded" if outcome.success else "FAILED"
        click.echo(
            f"  run {outcome.run_id[:8]} {status}  checks failed: {len(outcome.checks_failed)}"
        )
    if result.problem:
        click.echo(f"NOT in sync: {result.problem}")
    if result.failed:
        _echo_failures(result.failed, "NOT in sync")
    if not result.in_sync:
        runs_failed = sum(not o.success for o in result.outcomes)
        click.echo(f"{len(result.outcomes)} runs, {runs_failed} failed")
        return 1
    click.echo(f"in sync: {len(result.outcomes)} runs")
    return 0


@cli.command()
@click.option("--select", "selectors", multiple=True, help=SELECT_HELP)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def plan(selectors: tuple[str, ...], as_json: bool) -> int:
    """What is out of date and why, per asset and partition range, with what it last cost;
    exits 0 when nothing is, 1 when something is (what `marts sync` then builds)."""
    settings = _settings()
    defs, instance = build_definitions(settings), commands.instance_of(settings)
    result = plan_for(
        defs.assets,
        open_resource(settings, "warehouse"),
        open_resource(settings, "serving"),
        open_resource(settings, "landing"),
        failed_partitions(defs, instance),
        commands.selected(defs, selectors),
    )
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return 1 if result.stale or result.failed else 0
    for item in result.kept[:1]:
        click.echo(
            f"kept: {len(result.kept)} partitions built with older code, left so by their "
            f"contract's on_change (e.g. {'.'.join(item.asset.path)} {item.partition}); "
            "`marts backfill --select` rebuilds them"
        )
    if not result.stale and not result.failed:
        click.echo("up to date: nothing to build")
        return 0
    rows = ranges(result, facts_of(defs.assets))
    total_rows = sum(s.rows for s in result.stale)
    seconds = sum(s.seconds for s in result.stale)
    tables = len({s.asset for s in result.stale})
    click.echo(
        f"out of date: {count(len(result.stale), 'partition')} of {count(tables, 'table')} "
        f"(about {count(total_rows, 'row')} and {seconds:.1f} s of transforms by their last "
        "builds)"
    )
    for item, span in rows:
        why = item.reason + (f": {item.detail}" if item.detail else "")
        click.echo(
            f"  {'.'.join(item.asset.path):<44} {span:<24} {why}"
            + (f"  (~{_rows(item.rows)})" if item.rows else "")
        )
    _echo_failures(result.failed, "failed")
    return 1


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def freshness(as_json: bool) -> int:
    """Per-partition freshness of every partitioned mart (table, or JSON with --json); exits 1
    while a failed refresh is unrepaired."""
    settings = _settings()
    serving = open_resource(settings, "serving")
    landing = open_resource(settings, "landing").snapshot()  # one listing for every mart
    failed = _unrepaired(settings)
    stale = _stale(settings, landing)
    now = dt.datetime.now(dt.UTC)
    report = {
        m.contract.name: [
            p.as_json()
            for p in partition_freshness(
                m, serving, landing, now, failed=failed, stale=stale, built=_built(settings, m)
            )
        ]
        for m in ALL_MARTS
        if m.asset.partitions_def
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return 1 if failed else 0
    days = [row["day"] for row in next(iter(report.values()))]
    width = max(5, *(len(r["status"]) for rows in report.values() for r in rows))
    click.echo(f"{'mart':<36} " + " ".join(f"{d[5:]:<{width}}" for d in days))
    for name, rows in report.items():
        click.echo(f"{name:<36} " + " ".join(f"{r['status']:<{width}}" for r in rows))
    _echo_failures(failed)
    return 1 if failed else 0


def _unrepaired(settings: Settings) -> dict[str, list[str]]:
    """The failures no run has repaired yet (`failures.failed_partitions`)."""
    return failed_partitions(build_definitions(settings), instance_for(settings.instance_home))


def _built(settings: Settings, mart) -> dict:
    """A mart's build records (`versions.py`)."""
    return open_resource(settings, "warehouse").build_records(table_identifier(mart.asset.key))


def _stale(settings: Settings, landing: LandingSnapshot | None = None) -> set:
    """The out-of-date (asset, partition) pairs (`planning.planner.stale_partitions`), against
    `landing` when the caller listed the landing zone already."""
    assets = build_definitions(settings).assets
    warehouse = open_resource(settings, "warehouse")
    landing = landing or open_resource(settings, "landing").snapshot()
    return stale_partitions(assets, warehouse, open_resource(settings, "serving"), landing)


def _echo_failures(failed: dict[str, list[str]], headline: str = "NOT healthy") -> None:
    """The unrepaired failures, one asset a line, after what they mean and how they end."""
    if not failed:
        return
    count = sum(len(p) for p in failed.values())
    click.echo(
        f"{headline}: {count} partitions failed and are not repaired yet; automation retries "
        "them every 15 minutes (the daemon, or `marts sync`), or repair them with "
        "`marts backfill`:"
    )
    for key, partitions in failed.items():
        shown = ", ".join(partitions[:8]) + (" …" if len(partitions) > 8 else "")
        click.echo(f"  {key:<46} {shown}")


@cli.command()
@click.option("--days", type=POSITIVE, default=3, show_default=True, help="days to check")
@click.option(
    "--rows-per-day", type=POSITIVE, default=100, show_default=True, help="ad rows per day"
)
@click.option("--seed", type=int, default=7, show_default=True, help="simulator seed")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="keep the data here (default: a scratch folder)",
)
def check(days: int, rows_per_day: int, seed: int, data_dir: Path | None) -> int:
    """Materialize a small simulated range in a scratch folder and run every check.

    Exits non-zero if a run fails or any ERROR-severity check fails (what CI runs).
    """

    with tempfile.TemporaryDirectory(prefix="marts-check-") as scratch:
        local = Settings.local(data_dir or Path(scratch))
        start, end = _last_days(_yesterday(), days)
        every = [start + dt.timedelta(days=i) for i in range(days)]
        cfg = SimConfig(seed=seed, rows_per_day=rows_per_day)
        land(open_resource(local, "landing"), every, dt.datetime.now(dt.UTC), cfg)
        click.echo(f"checking {start} .. {end} ({rows_per_day} rows/day) in {local.data_dir}")
        with DagsterInstance.ephemeral() as instance:
            outcomes = refresh_days(build_definitions(local), instance, start, end)
    rows = [row for outcome in outcomes for row in outcome.checks]
    click.echo(check_table(rows))
    failed_runs = [o.job_name for o in outcomes if not o.success]
    if failed_runs:
        click.echo(f"failed runs: {', '.join(failed_runs)}")
    return 1 if failed_runs or any(o.checks_failed for o in outcomes) else 0


def _mart(name: str):
    names = {m.contract.name: m for m in ALL_MARTS if m.contract.kind == "table"}
    if name not in names:
        raise OperatorError(f"unknown mart {name!r}; marts: {', '.join(sorted(names))}")
    return names[name]


@cli.command()
@click.argument("mart")
@click.option(
    "--steps", is_flag=True, help="also the delete that opens each overwrite (never served alone)"
)
def snapshots(mart: str, steps: bool) -> None:
    """The snapshot history of a mart: what each commit did and which run made it."""
    identifier = table_identifier(_mart(mart).asset.key)
    for row in open_resource(_settings(), "warehouse").history(identifier):
        if row["published"]:
            marker = "*" if row["current"] else " "
        elif row["step"]:  # the first half of an overwrite: its delete, then its rows
            if not steps:
                continue
            marker = "-"
        else:
            marker = "x"  # staged for an audit that refused it
        window = DayWindow.parse(str(row["partitions"]))
        days = window.label if window else str(row["partitions"]) or "whole table"
        click.echo(
            f"{marker} {row['snapshot_id']:>20}  {row['committed_at']:%Y-%m-%d %H:%M:%S}  "
            f"{row['operation']:<9} {days:<24}  run {str(row['run_id'])[:8]}"
        )
    legend = "* current   x refused by an audit (never published)"
    click.echo(legend + ("   - a step inside a write" if steps else ""))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def tables(as_json: bool) -> None:
    """Every Iceberg table as another engine finds it: the catalog (name `marts`), and each
    table's rows and current metadata file (DuckDB's iceberg_scan reads that file)."""
    settings = _settings()
    found = open_resource(settings, "warehouse").current_tables()
    catalog = {
        "name": CATALOG_NAME,
        "uri": make_url(settings.catalog_uri).render_as_string(hide_password=True),
        "warehouse": settings.warehouse,
    }
    if as_json:
        click.echo(json.dumps({"catalog": catalog, "tables": found}, indent=2))
        return
    click.echo(f"catalog {catalog['name']} (pyiceberg SqlCatalog) at {catalog['uri']}")
    width = max((len(str(t["table"])) for t in found), default=5)
    for t in found:
        click.echo(f"{t['table']:<{width}}  {_rows(int(t['rows'])):>12}  {t['metadata']}")


@cli.command()
@click.argument("bucket", default="BUCKET")
def policies(bucket: str) -> None:
    """The S3 policy documents of the pipeline and of each serving database's readers, for a
    bucket (what docker/policies/ ships for `BUCKET`)."""
    for name, policy in access_policies(bucket, [m.contract for m in ALL_MARTS]).items():
        click.echo(f"# {name}\n{render_policy(policy)}")


def slo_table(reports: list[SloReport]) -> Table:
    """One row per mart and SLI: value, objective, budget left, burn rate, incidents."""
    table = Table(title="SLOs (budget left: 1 untouched, 0 spent, below 0 missed)")
    for column in ("mart", "sli", "value", "objective", "budget left", "burn rate", "incidents"):
        table.add_column(column, justify="left" if column in ("mart", "sli") else "right")
    for report in reports:
        for i in report.indicators:
            if i.objective is None and i.value is None:
                continue
            count = sum(1 for x in report.incidents if x.sli == i.name)
            style = "red" if i.met is False else None
            table.add_row(
                report.mart,
                i.name,
                _figure(i.value, hours=i.name == "latency"),
                _figure(i.objective, hours=i.name == "latency"),
                _figure(i.budget_left),
                _figure(i.burn_rate, suffix="x"),
                str(count),
                style=style,
            )
    return table


def _figure(value: float | None, hours: bool = False, suffix: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:.1f} h" if hours else f"{value:.4f}{suffix}"


def _print_rows(columns: list[str], rows: list[tuple]) -> None:
    """A result as tab-separated lines under a header (easy to pipe into other tools)."""
    if not columns:
        return
    click.echo("\t".join(columns))
    for row in rows:
        click.echo("\t".join("" if v is None else str(v) for v in row))


@cli.command()
@click.argument("mart")
@click.option("--as-of", type=int, help="snapshot id to read")
@click.option("--day", type=DAY, help="only this partition day")
@click.option("--limit", type=POSITIVE, default=20, show_default=True, help="rows to print")
def show(mart: str, as_of: int | None, day: dt.date | None, limit: int) -> None:
    """Rows of a mart now or, with --as-of, at an earlier snapshot (time travel); on a
    regulated mart the read is recorded in the audit trail before anything is printed."""
    settings = _settings()
    chosen = _mart(mart)
    warehouse = open_resource(settings, "warehouse")
    identifier = table_identifier(chosen.asset.key)
    con = connect()
    where, params = "", []
    if day:
        where = f' where "{chosen.contract.partition_column}" = ?'
        params.append(day)
    request = {"as_of": as_of, "day": day, "limit": limit}
    with contextlib.ExitStack() as stack:
        if chosen.contract.regulated:
            trail = open_resource(settings, "audit")
            outcome = stack.enter_context(audited(trail, "show", identifier, request))
        table = warehouse.read_as_of(identifier, as_of) if as_of else warehouse.read(identifier)
        con.register("mart", table)
        cursor = con.execute(f"select * from mart{where} limit {int(limit)}", params)
        rows = cursor.fetchall()
        if chosen.contract.regulated:
            outcome["result"] = f"ok: {_rows(len(rows))}"
    _print_rows([d[0] for d in cursor.description], rows)


@cli.command()
@click.argument("mart")
@click.option("--to", "snapshot_id", type=int, required=True, help="snapshot id")
def rollback(mart: str, snapshot_id: int) -> None:
    """Point a mart's main branch back at a published snapshot and re-serve it."""
    settings = _settings()
    identifier = table_identifier(_mart(mart).asset.key)
    warehouse = open_resource(settings, "warehouse")
    trail = open_resource(settings, "audit")
    with audited(trail, "rollback", identifier, {"snapshot_id": snapshot_id}):
        warehouse.rollback(identifier, snapshot_id)
        data = warehouse.read(identifier)
        open_resource(settings, "serving").publish(identifier, data, lambda: data)
    click.echo(
        f"{identifier}: main is now snapshot {snapshot_id} ({data.num_rows} rows); serving updated"
    )


@cli.command()
@click.option(
    "--mart", "mart_name", help="one mart (default: every mart whose contract has an SLO)"
)
@click.option("--json", "as_json", is_flag=True, help="print JSON, incidents included")
def slo(mart_name: str | None, as_json: bool) -> int:
    """Each mart's SLIs against its contract's SLOs: budget left, burn rate, what burned it.
    Exits 1 when a mart is out of budget or a failure is not repaired yet."""
    settings = _settings()
    marts = [_mart(mart_name)] if mart_name else [m for m in ALL_MARTS if m.contract.slo]
    instance = instance_for(settings.instance_home)
    warehouse, landing = open_resource(settings, "warehouse"), open_resource(settings, "landing")
    now = dt.datetime.now(dt.UTC)
    reports = [mart_slo(m, instance, warehouse, landing, now) for m in marts]
    failed = failed_partitions(build_definitions(settings), instance)
    if as_json:
        click.echo(json.dumps([r.as_json() for r in reports], indent=2))
    else:
        Console(width=140).print(slo_table(reports))
        _echo_failures(failed)
    return 1 if failed or any(r.out_of_budget for r in reports) else 0


@cli.command()
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), help="folder (default: data/report)"
)
def report(out: Path | None) -> None:
    """Write the freshness and cost page (HTML) and its data (JSON)."""
    from marts_project.observability.report import (  # Jinja2: 0.16 s of start-up
        build_report,
        write_report,
    )

    settings = _settings()
    landing = open_resource(settings, "landing").snapshot()  # one listing for every mart
    data = build_report(
        instance_for(settings.instance_home),
        open_resource(settings, "serving"),
        landing,
        open_resource(settings, "warehouse"),
        dt.datetime.now(dt.UTC),
        _unrepaired(settings),
        _stale(settings, landing),
    )
    page, raw = write_report(data, out or settings.data_dir / "report")
    click.echo(f"wrote {page} and {raw}")


@cli.command()
@click.option("--verify", is_flag=True, help="check that no entry was edited or removed")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.option("--limit", type=POSITIVE, default=50, show_default=True, help="latest N entries")
def audit(verify: bool, as_json: bool, limit: int) -> int:
    """The audit trail: who backfilled, reprocessed, rolled back or launched what by hand,
    when, and how it ended."""
    trail = open_resource(_settings(), "audit")
    if verify:
        problems = trail.verify()
        for problem in problems:
            click.echo(problem, err=True)
        click.echo(f"{len(trail.entries())} entries, {'intact' if not problems else 'TAMPERED'}")
        return 1 if problems else 0
    actions = trail.actions()[-limit:]
    if as_json:
        click.echo(json.dumps([asdict(e) for e in actions], indent=2))
        return 0
    table = Table(title=f"audit trail ({trail.root})")
    for column in ("when (UTC)", "who", "action", "target", "params", "result"):
        table.add_column(column)
    for e in actions:
        params = " ".join(f"{k}={v}" for k, v in e.params.items())
        table.add_row(e.at[:19].replace("T", " "), e.who, e.action, e.target, params, e.result)
    Console(width=160).print(table)
    return 0


@cli.command()
@click.argument("query", required=False)
@click.option(
    "--domain", type=click.Choice(DOMAINS), help="that domain's serving database (its analysts')"
)
@click.option("--mart", "mart_name", help="a regulated mart's own database (each query audited)")
def sql(query: str | None, domain: str | None, mart_name: str | None) -> None:
    """SQL on a serving database (read-only): one query, or one per line from stdin.

    `--domain D` opens the database of D's analysts (D's marts and those granted to D),
    `--mart M` a regulated mart's own database, and neither the operator's view of every
    domain's database. The connection is read-only and locked down: no file, network or
    extension access and no settings can change, so nothing outside it can be read or written.
    """
    settings = _settings()
    serving = open_resource(settings, "serving")
    queries = [query] if query else [q for q in sys.stdin.read().split(";\n") if q.strip()]
    if domain and mart_name:
        raise OperatorError("--domain and --mart each name one database: give one of them")
    if mart_name:
        contract = _mart(mart_name).contract
        if not contract.regulated:
            raise OperatorError(
                f"{mart_name} is not regulated: it is served in `--domain {contract.domain}`"
            )
        database = serving.home(f"{contract.domain}.{contract.name}")
        trail = open_resource(settings, "audit")
        with commands.serving_connection(serving, database) as con:
            for text in queries:
                with audited(trail, "sql", database, {"query": text}) as outcome:
                    columns, rows = commands.run_query(con, text, settings.sql_timeout_seconds)
                    outcome["result"] = f"ok: {_rows(len(rows))}"
                _print_rows(columns, rows)
        return
    if not domain and not any(serving.path(d).exists() for d in DOMAINS):
        raise OperatorError(f"no serving database under {settings.serving_dir}: run `marts demo`")
    opened = commands.serving_connection(serving, domain) if domain else serving.operator_view()
    with opened as con:
        for text in queries:
            _print_rows(*commands.run_query(con, text, settings.sql_timeout_seconds))


def _rows(n: int) -> str:
    return count(n, "row")


@cli.command()
def summary() -> int:
    """Print a short summary of the marts, and the failures not repaired yet (exit 1)."""
    settings = _settings()
    click.echo(mart_summary(open_resource(settings, "serving")))
    failed = _unrepaired(settings)
    _echo_failures(failed)
    return 1 if failed else 0


@cli.command()
@_seed_options
@_run_options
def demo(
    days: int,
    rows_per_day: int,
    seed: int,
    chunk_days: int | None,
    workers: int | None,
    log_level: str | None,
    selectors: tuple[str, ...],
) -> int:
    """Seed the last N days, materialize everything for them, run the checks, summarize."""
    settings = _settings()
    end = _yesterday()
    commands.seed_days(settings, days, rows_per_day, seed, end, click.echo)
    start, end = _last_days(end, days)
    options = commands.RunOptions(chunk_days, workers, log_level, selectors)
    status = commands.audited_backfill(settings, "demo", start, end, options, click.echo)
    click.echo(mart_summary(open_resource(settings, "serving")))
    return status


@cli.group()
def cluster() -> None:
    """The cluster deployment on this host: daemon, webserver and Celery workers."""


@cluster.command("up")
@click.option("--workers", type=POSITIVE, default=2, show_default=True, help="Celery workers")
@click.option(
    "--max-runs",
    type=POSITIVE,
    help="runs at once, at most one per worker (queued beyond)  [default: one per worker]",
)
@click.option("--port", type=POSITIVE, default=3000, show_default=True, help="webserver port")
def cluster_up(workers: int, max_runs: int | None, port: int) -> None:
    """Start the cluster (settings from the environment) and wait until it is ready."""
    max_runs = max_runs or workers
    try:
        env = dict(os.environ)
        env["MARTS_CHUNK_DAYS"] = str(commands.cluster_chunk_days(env))
        started, fixed = supervisor.up(workers, max_runs, port, env)
    except supervisor.ClusterError as exc:
        raise OperatorError(str(exc)) from exc
    for process in started:
        click.echo(f"  {process.name:<10} pid {process.pid:<8} log {process.log}")
    click.echo(
        f"cluster up: UI on http://127.0.0.1:{port}, {workers} workers of "
        f"{fixed['MARTS_THREADS']} threads (MARTS_THREADS), {max_runs} runs at once; "
        f"backfills launched from the UI run {fixed['MARTS_CHUNK_DAYS']} days a run "
        "(MARTS_CHUNK_DAYS)"
    )


@cluster.command("down")
def cluster_down() -> None:
    """Stop every process of the cluster and all they started."""
    stopped = supervisor.down(_settings().instance_home)
    click.echo(f"cluster down: stopped {len(stopped)} processes and their children")


@cluster.command("status")
def cluster_status() -> int:
    """The cluster's processes and whether each is alive; 1 if any died."""
    processes = supervisor.recorded(_settings().instance_home)
    for process in processes:
        state = "up" if alive(process.pid) else "DEAD"
        again = f" (restarted {count(process.restarts, 'time')})" if process.restarts else ""
        click.echo(f"  {process.name:<10} pid {process.pid:<8} {state}{again}")
    if not processes:
        click.echo("cluster down")
    return 0 if all(alive(p.pid) for p in processes) else 1


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status: 0 done, 1 a run or check failed, 2 the request was
    refused (usage, unknown mart, bad dates, missing credentials) before anything changed."""
    try:
        status = cli.main(args=argv, prog_name="marts", standalone_mode=False)
    except click.exceptions.Exit as exc:  # --help
        return exc.exit_code
    except click.ClickException as exc:  # usage errors: a bad option or value
        exc.show()
        return exc.exit_code
    except (OperatorError, BadDateRangeError, LookupError) as exc:
        click.echo(f"marts: error: {exc}", err=True)
        return 2
    except ChunkWorkerDied as exc:  # what was built stays; the rest is on record as failed
        click.echo(f"marts: error: {exc}", err=True)
        return 1
    except click.exceptions.Abort as exc:  # click's word for Ctrl-C during a command
        if not isinstance(exc.__cause__, KeyboardInterrupt):
            raise
        return _interrupted(exc.__cause__)
    except (QueryInterrupted, KeyboardInterrupt) as exc:
        return _interrupted(exc)
    return status if isinstance(status, int) else 0


def _interrupted(exc: BaseException) -> int:
    """Ctrl-C: one line (what a stopped run left, for a backfill), exit status 130."""
    detail = f": {exc}" if isinstance(exc, RunInterrupted) else ""
    click.echo(f"marts: interrupted{detail}", err=True)
    return 130


def run() -> None:
    """The `marts` command: `main`, then the end of the process without Python's teardown
    (`process.leave`: more than a tenth of a one-day refresh). Everything a command writes is
    committed and closed before `main` returns, so after the exit handlers (logging, thread
    pools, libraries' own) nothing is left to do. `atexit._run_exitfuncs` is
    CPython's own way to run them early, private but unchanged since Python 2; `main` stays the
    entry point for callers in-process (tests). `marts_project.__main__` is the command's
    process entry: it imports this module with the garbage collector paused.
    """
    status = main()
    atexit._run_exitfuncs()
    leave(status)


if __name__ == "__main__":
    run()
