"""``python -m batchseg.cli``: the same as the ``batchseg`` command."""

from batchseg.cli import main

main()
