import sys

from leadflow_cli.main import main

sys.exit(main())
