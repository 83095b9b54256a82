"""Machinery the stages and the pipelines share: where Dask work runs (:mod:`.dask`), Slurm batch
scripts and job records (:mod:`.slurm`, :mod:`.slurm_jobs`), cores and devices (:mod:`.hardware`)
and figure helpers (:mod:`.plots`). Nothing here imports a stage, a pipeline or a CLI."""
