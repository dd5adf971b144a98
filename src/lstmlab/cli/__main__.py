"""`python -m lstmlab.cli ...` (what torchrun starts): the `lstmlab` command."""

import sys

from lstmlab.cli import main

sys.exit(main())
