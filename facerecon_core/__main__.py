import sys

from facerecon_core.cli import main

sys.exit(main())
