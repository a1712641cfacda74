"""byai datasets: seeded reference data with honest tolerances, as netCDF4-compatible HDF5.

``generate(spec, out_dir)`` solves seeded samples in device-sharded batches and
writes ``train.h5``, ``val.h5``, ``calibration.h5``, ``test.h5`` (resumable,
deterministic); ``open(path)`` reads one as a lazily backed ``xarray.Dataset``;
``write`` stores in-memory trajectories with the same schema; ``Loader`` yields
normalised (input, target) windows on the device mesh, refusing damaged or
non-finite samples and checking the file's checksum (``Loader.verify``,
``verified_sha256(path)``); ``import_pdebench`` and
``import_the_well`` convert foreign files (tolerance marked unknown), ``import_splits`` into seeded
split files; ``uniform_spacing(t)`` reads the spacing of a stored axis up to its float rounding.
What a sample is depends on the problem kind, a type chosen by the PDE class:
:class:`Trajectory` (a time-dependent PDE) or :class:`SteadyMap` (Darcy's
coefficient -> solution map: ``/u`` holds ``a`` and ``u`` along a ``stage`` axis,
attribute ``problem = "steady_map"``); ``problem_of(attrs)`` gives a file's kind.
The PDE catalogue is the solvers' (``solvers.PDES``); a config may also name a
class of its own as ``"package.module:ClassName"``. See ``datasets/_storage.py``
for the file schema.
"""

import solvers  # noqa: F401  (enables float64 JAX, which the data needs)

from ._generate import generate
from ._importers import import_pdebench, import_splits, import_the_well
from ._loader import Loader, Normalization, compute_stats
from ._errors import DatasetError
from ._pdes import build_pde, pde_class
from ._problem import Problem, SteadyMap, Trajectory, problem_of
from ._spec import SPLITS, CoefficientSpec, DatasetSpec, ICSpec, SplitSizes
from ._storage import SCHEMA, SCHEMA_VERSION, map_source, open, pde_from_attrs, verified_sha256, write
from ._time import uniform_spacing

__all__ = [
    "DatasetSpec", "ICSpec", "CoefficientSpec", "SplitSizes", "SPLITS",
    "Problem", "Trajectory", "SteadyMap", "problem_of", "pde_class",
    "generate", "open", "write", "pde_from_attrs", "map_source", "verified_sha256",
    "DatasetError", "Loader", "Normalization", "compute_stats", "import_pdebench", "import_the_well", "import_splits",
    "uniform_spacing", "build_pde",
    "SCHEMA", "SCHEMA_VERSION",
]
