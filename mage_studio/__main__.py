"""`python -m mage_studio [COMMAND ...]`: the same as the `mage-studio` command."""

import sys

from mage_studio.entry import main

sys.exit(main())
