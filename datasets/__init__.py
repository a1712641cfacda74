"""byai datasets: seeded reference data with honest tolerances, as netCDF4-compatible HDF5.

``generate(spec, out_dir)`` solves seeded samples in device-sharded batches and
writes ``train.h5``, ``val.h5``, ``calibration.h5``, ``test.h5`` (resumable,
deterministic); ``open(path)`` reads one as a lazily backed ``xarray.Dataset``;
``write`` stores in-memory trajectories with the same schema; ``Loader`` yields
normalised (input, target) windows on the device mesh; ``import_pdebench`` and
``import_the_well`` convert foreign files (tolerance marked unknown).
A steady problem (``pde = "darcy"``) gives a *steady map* file instead of trajectories:
``/u`` holds (coefficient ``a``, solution ``u``) along a ``stage`` axis (attribute
``problem = "steady_map"``). See ``datasets/_storage.py`` for the file schema.
"""

import solvers  # noqa: F401  (enables float64 JAX, which the data needs)

from ._generate import generate
from ._importers import import_pdebench, import_the_well
from ._loader import Loader, Normalization, compute_stats
from ._pdes import build_pde
from ._spec import PDES, SPLITS, STEADY, CoefficientSpec, DatasetSpec, ICSpec, SplitSizes
from ._storage import SCHEMA, SCHEMA_VERSION, DatasetError, map_source, open, pde_from_attrs, problem_of, write

__all__ = [
    "DatasetSpec", "ICSpec", "CoefficientSpec", "SplitSizes", "PDES", "SPLITS", "STEADY",
    "generate", "open", "write", "pde_from_attrs", "problem_of", "map_source",
    "DatasetError", "Loader", "Normalization", "compute_stats", "import_pdebench", "import_the_well", "build_pde",
    "SCHEMA", "SCHEMA_VERSION",
]
