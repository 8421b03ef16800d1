"""Contract files are typed models: a malformed one fails at definition load, saying which file,
which field and which rule it breaks."""

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from marts_project.checks.registry import CHECKS
from marts_project.core.column_types import arrow_type, duckdb_type
from marts_project.core.contracts import ContractFileError, load_contract
from marts_project.core.yaml_files import read_yaml
from marts_project.raw.sources import SourceSpec, source_specs
from marts_project.transform import sql_layer

pytestmark = pytest.mark.quick  # the unit tier: `pytest -m quick`

MART = Path(__file__).parents[1] / "marts_project/marts/finance/fin_revenue_daily_fact.yml"


def _write(tmp_path: Path, change) -> Path:
    body = yaml.safe_load(MART.read_text())
    change(body)
    path = tmp_path / "contract.yml"
    path.write_text(yaml.safe_dump(body))
    return path


@pytest.mark.parametrize(
    ("change", "told"),
    [
        (lambda b: b["columns"][0].update(colour="red"), "columns.0.colour"),
        (lambda b: b["columns"][1].update(type="money"), "unknown type 'money'"),
        (lambda b: b["checks"].update(unique_key="maybe"), "check policy 'maybe'"),
        (lambda b: b["checks"].update(vibes="warn"), "unknown check 'vibes'"),
        (lambda b: b.update(unique_key=["no_such_column"]), "['no_such_column']"),
        (lambda b: b.update(freshness_sla_hours=0), "freshness_sla_hours"),
        (lambda b: b.update(partitioning="hourly"), "partitioning"),
        (lambda b: b.pop("partition_column"), "disagree"),
    ],
)
def test_a_malformed_contract_is_refused_naming_the_file_and_the_field(tmp_path, change, told):
    path = _write(tmp_path, change)
    with pytest.raises(ContractFileError) as refused:
        load_contract(path, known_checks=frozenset(CHECKS))
    assert str(path) in str(refused.value) and told in str(refused.value)


def test_every_shipped_contract_and_source_reads_with_one_type_vocabulary():
    marts = Path(__file__).parents[1] / "marts_project/marts"
    contracts = [load_contract(p) for p in sorted(marts.glob("*/*.yml"))]
    types = {c.type for contract in contracts for c in contract.columns}
    types |= {c.type for spec in source_specs().values() for c in spec.columns}
    assert "varchar" not in types and "string" in types
    assert all(arrow_type(t) is not None for t in types)
    assert duckdb_type("string") == "varchar" and duckdb_type("decimal(18,2)") == "decimal(18,2)"


def test_a_source_that_names_a_column_it_does_not_list_is_refused():
    body = source_specs()["mkt_ad_stats"].model_dump()
    with pytest.raises(ValidationError, match=r"names columns it does not list: \['exported_at'\]"):
        SourceSpec.model_validate({**body, "latest": ["exported_at"]})
    with pytest.raises(ValidationError, match="extra_columns"):
        SourceSpec.model_validate({**body, "extra_columns": "keep"})


def test_a_layer_table_without_its_sql_is_refused(tmp_path):
    (tmp_path / "tables.yml").write_text(
        "stg_a: {partition_column: d, description: A.}\n"
        "stg_b: {partition_column: d, description: B.}\n"
    )
    (tmp_path / "stg_a.sql").write_text("select * from raw_a")
    (tmp_path / "stg_c.sql").write_text("select * from raw_c")
    with pytest.raises(
        ValueError, match=r"tables without SQL \['stg_b'\], SQL without a table \['stg_c'\]"
    ):
        sql_layer("staging", tmp_path)


def test_every_shipped_yaml_file_reads_the_same_with_libyaml_as_with_pyyaml():
    root = Path(__file__).parents[1] / "marts_project"
    files = sorted(root.rglob("*.yml"))
    assert len(files) >= 14
    for path in files:
        assert read_yaml(path) == yaml.safe_load(path.read_text()), path
