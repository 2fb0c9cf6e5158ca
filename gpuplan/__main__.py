"""``python -m gpuplan``: the same CLI as the ``gpuplan`` command."""

import sys

from gpuplan.optimizer.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
