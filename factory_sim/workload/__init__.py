"""The request generator: turns a workload (config/workload.py) into the requests of a run.

- arrivals.py: when requests arrive (open loop, diurnal, trace replay);
- lengths.py: how many tokens they read and write;
- sessions.py: multi-turn conversations whose prompts share prefixes;
- trace_files.py: reading real traces (Azure, Mooncake) into one schema;
- generate.py: all of it together, one RequestBatch per run.
"""
