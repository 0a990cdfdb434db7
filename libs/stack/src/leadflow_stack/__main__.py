import sys

from leadflow_stack.cli import main

sys.exit(main())
