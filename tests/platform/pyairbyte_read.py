"""Reads every stream of a local-executable source with PyAirbyte into its default
DuckDB cache (in the current folder), then prints, as JSON, the records processed and
each stream's row count and distinct primary keys in the cache.

Usage: pyairbyte_read.py EXECUTABLE CONFIG_JSON   (AIRBYTE_OFFLINE_MODE=1 must be set)
"""

import json
import sys

import airbyte as ab
from sqlalchemy import text


def main(executable, config_path):
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    source = ab.get_source(
        "source-runtime-orders",
        local_executable=executable,
        config=config,
        install_if_missing=False,
    )
    source.select_all_streams()
    cache = ab.get_default_cache()
    result = source.read(cache=cache)
    out = {"processed": result.processed_records, "rows": {}, "distinct": {}}
    catalog = source.discovered_catalog
    keys = {s.name: s.source_defined_primary_key for s in catalog.streams}
    with cache.get_sql_engine().connect() as conn:
        for name in source.get_selected_streams():
            table = cache[name].to_sql_table()
            full = f"{cache.schema_name}.{table.name}"
            out["rows"][name] = conn.execute(text(f"SELECT COUNT(*) FROM {full}")).scalar()
            cols = ", ".join(k[0] for k in keys[name] or [])
            if cols:
                out["distinct"][name] = conn.execute(
                    text(f"SELECT COUNT(*) FROM (SELECT DISTINCT {cols} FROM {full})")
                ).scalar()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
