"""How far the simulator is from measured systems, and fitting its stack constants to them.

- measured.py: measured operating points (one deployment, closed loop, measured TTFT/TPOT);
- mlperf.py: published throughput results (MLPerf Offline/Server/Interactive);
- inferencex.py: InferenceX frontier points (throughput vs interactivity over concurrency);
- deployments.py: from a row of any of them to the replica that ran it;
- report.py: error tables and figures; calibrate.py: fitting stack profiles to the rows.
"""
