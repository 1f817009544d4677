import sys

from seqrec.compare.cli import main

sys.exit(main())
