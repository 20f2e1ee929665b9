"""MAGE Studio from a checkout: `python main.py [COMMAND ...]`, the same as `mage-studio`.

No command opens the editor; sub-commands give the CLI (mage_studio/entry.py).
"""

import sys

from mage_studio.entry import main

if __name__ == "__main__":
    sys.exit(main())
