"""Apache Beam entry points. `python -m beam_jobs.build --help` lists the build job's flags."""
