"""Runs of many steps: runs compared side by side (`compare`), a run retrained from its
params.json (`reproduce`), the notebooks executed with papermill and exported as HTML
(`pipeline`), a combination's finished folders handed from a worker to the client
(`handover`), a sweep's combinations as tasks on a Dask cluster (`cluster`), and sweeps over
parameter grids (`sweep`).
Imports the stages before it; only the command line (`charlib.cli`) imports it.
"""
