"""Reads a tickvault partitioned lake with pyarrow.dataset, polars and DuckDB (Hive
partitioning), and checks row counts, column types and filters on date and exchange against
what the Rust test expects. Prints one JSON report on stdout; exits 1 on any mismatch.

Usage: check_lake.py LAKE_DIR EXPECTED_JSON

EXPECTED_JSON: {"tables": {DATA_TYPE: {"rows": N, "columns": [[name, kind], ...],
                 "by_date": {"YYYY-MM-DD": N}, "by_exchange": {EXCHANGE: N}}}}
kind is one of timestamp, string, double, bool.
"""

import datetime
import json
import os
import sys

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds

ARROW = {
    "timestamp": pa.timestamp("us", tz="UTC"),
    "string": pa.string(),
    "double": pa.float64(),
    "bool": pa.bool_(),
}
POLARS = {
    "timestamp": pl.Datetime("us", "UTC"),
    "string": pl.String,
    "double": pl.Float64,
    "bool": pl.Boolean,
}
DUCKDB = {
    "timestamp": "TIMESTAMP WITH TIME ZONE",
    "string": "VARCHAR",
    "double": "DOUBLE",
    "bool": "BOOLEAN",
}


def check_pyarrow(root, exp):
    d = ds.dataset(root, partitioning="hive")
    t = d.to_table()
    got = {"rows": t.num_rows, "columns": [f.name for f in t.schema]}
    got["types_ok"] = all(t.schema.field(n).type == ARROW[k] for n, k in exp["columns"])
    got["by_date"] = {
        day: d.to_table(filter=ds.field("date") == day).num_rows for day in exp["by_date"]
    }
    got["by_exchange"] = {
        ex: d.to_table(filter=ds.field("exchange") == ex).num_rows for ex in exp["by_exchange"]
    }
    return got


def check_polars(root, exp):
    lf = pl.scan_parquet(os.path.join(root, "**", "*.parquet"), hive_partitioning=True)
    schema = lf.collect_schema()
    got = {"rows": lf.select(pl.len()).collect().item(), "columns": list(schema.names())}
    got["types_ok"] = all(schema[n] == POLARS[k] for n, k in exp["columns"])
    got["by_date"] = {
        day: lf.filter(pl.col("date") == datetime.date.fromisoformat(day)).select(pl.len()).collect().item()
        for day in exp["by_date"]
    }
    got["by_exchange"] = {
        ex: lf.filter(pl.col("exchange") == ex).select(pl.len()).collect().item() for ex in exp["by_exchange"]
    }
    return got


def check_duckdb(root, exp):
    con = duckdb.connect()
    src = "read_parquet('{}', hive_partitioning=true)".format(os.path.join(root, "**", "*.parquet"))
    described = con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()
    types = {row[0]: row[1] for row in described}
    got = {"rows": con.execute(f"SELECT count(*) FROM {src}").fetchone()[0], "columns": [r[0] for r in described]}
    got["types_ok"] = all(types.get(n) == DUCKDB[k] for n, k in exp["columns"])
    got["by_date"] = {
        day: con.execute(f"SELECT count(*) FROM {src} WHERE date = CAST(? AS DATE)", [day]).fetchone()[0]
        for day in exp["by_date"]
    }
    got["by_exchange"] = {
        ex: con.execute(f"SELECT count(*) FROM {src} WHERE exchange = ?", [ex]).fetchone()[0]
        for ex in exp["by_exchange"]
    }
    return got


def main():
    lake, expected = sys.argv[1], json.loads(sys.argv[2])
    report = {
        "versions": {"pyarrow": pa.__version__, "polars": pl.__version__, "duckdb": duckdb.__version__},
        "tables": {},
    }
    ok = True
    for table, exp in expected["tables"].items():
        root = os.path.join(lake, table)
        want_columns = [n for n, _ in exp["columns"]] + ["date"]
        for name, check in [("pyarrow", check_pyarrow), ("polars", check_polars), ("duckdb", check_duckdb)]:
            try:
                got = check(root, exp)
                good = (
                    got["rows"] == exp["rows"]
                    and got["types_ok"]
                    and got["columns"] == want_columns
                    and got["by_date"] == exp["by_date"]
                    and got["by_exchange"] == exp["by_exchange"]
                )
            except Exception as e:  # a reader that chokes is a failure, reported
                got, good = {"error": f"{type(e).__name__}: {e}"}, False
            got["ok"] = good
            ok = ok and good
            report["tables"].setdefault(table, {})[name] = got
    print(json.dumps(report, sort_keys=True))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
