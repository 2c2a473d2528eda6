"""Where a job's workers come from. Importing this package imports no Dask.

- ``profiles``: the ``[cluster]`` table / ``--cluster`` parsed into a profile (pure parsing);
- ``connect``: ``connect(profile)`` attaches to a scheduler or starts the profile's cluster;
- ``local`` (embedded LocalCluster, one worker per GPU), ``jobqueue`` (SLURM/PBS batch jobs and
  the watch that replaces lost ones), ``kubernetes`` (DaskCluster through the operator);
- ``tls`` (certificate files and Security objects), ``handle`` (the connected ClusterHandle).
"""
