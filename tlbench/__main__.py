import sys

from tlbench.cli import main

sys.exit(main())
