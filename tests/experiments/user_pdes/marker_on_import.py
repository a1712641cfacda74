"""A module that leaves a marker file when imported: a data file naming it must never import it."""

import os
from pathlib import Path

Path(os.environ["BYAI_TEST_IMPORT_MARKER"]).write_text("imported")


class Evil:
    name = "marker_on_import:Evil"
