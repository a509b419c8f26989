"""Reports across runs: collect run records into a DataFrame, tables, plots (`lossbench report`)."""
