"""Where a job's workers come from: profiles (pure parsing) and connecting to or starting a
Dask cluster. Importing this package imports no Dask; its submodules that connect do."""
