import sys

from tlbench.cli.main import main

sys.exit(main())
