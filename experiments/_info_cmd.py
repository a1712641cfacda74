"""``byai info PATH [--verify]``: a dataset file's schema, shapes, PDE, tolerance and provenance."""

from __future__ import annotations

import json


def add_arguments(parser) -> None:
    parser.add_argument("path", help="a byai dataset file (.h5)")
    parser.add_argument("--verify", action="store_true", help="also recompute the SHA-256 of u")
    parser.add_argument("--json", action="store_true", help="print the description as one JSON object")


def describe(path, verify: bool = False) -> dict:
    """The facts ``byai info`` prints, as a dict (raises ``datasets.DatasetError`` on a bad file)."""
    import datasets
    from datasets._storage import json_attr

    ds = datasets.open(path, verify=verify, require_complete=False)
    try:
        a = ds.attrs
        complete = ds["complete"].values
        info = {
            "path": str(path),
            "schema": f"{a.get('byai_schema')} v{a.get('schema_version')}",
            "u": {"dims": list(ds["u"].dims), "shape": list(ds["u"].shape), "dtype": str(ds["u"].dtype)},
            "samples_complete": f"{int((complete == 1).sum())}/{complete.size}",
            ds["u"].dims[1]: {"n": int(ds.sizes[ds["u"].dims[1]]), "first": float(ds[ds["u"].dims[1]][0]),
                              "last": float(ds[ds["u"].dims[1]][-1])},  # "stage" for a steady map
            "channels": [str(c) for c in ds["channel"].values],
            "pde": str(a.get("pde")),
            "pde_params": json_attr(ds, "pde_params", {}),
            "grid": {"shape": [int(n) for n in _flat(a.get("grid_shape"))],
                     "length": [float(x) for x in _flat(a.get("grid_length"))]},
            "tolerance": _tolerance(a),
            "sha256": str(a.get("sha256")),
            "verified": bool(verify),
        }
        if "params" in ds:
            p = ds["params"].values
            info["params"] = {str(n): [float(p[:, j].min()), float(p[:, j].max())]
                              for j, n in enumerate(ds["param"].values)}
        for key in ("problem", "coefficient", "split", "seed", "ic", "redraw_count", "source", "source_file",
                    "time_spacing", "dropped", "extra_variables", "versions", "n_shards"):
            if key in a:
                v = json_attr(ds, key) if key in ("ic", "versions", "coefficient", "dropped", "extra_variables") \
                    else a[key]
                info[key] = v.item() if hasattr(v, "item") else v
        if "error_estimate" in ds and int(a.get("tolerance_known", 0)):
            info["max_error_estimate"] = float(ds["error_estimate"].max())
        return info
    finally:
        ds.close()


PREDICTIONS = "byai audit predictions"  # the ``source`` attribute of the audit's predictions.h5


def _tolerance(a):
    """The solver tolerance of the file's data, or why there is none."""
    if int(a.get("tolerance_known", 0)):
        return {"rtol": float(a["rtol"]), "atol": float(a["atol"]), "method": str(a.get("solver_method"))}
    if str(a.get("source", "")) == PREDICTIONS:
        return "none (surrogate predictions; the reference's tolerance is in the audit report)"
    return "unknown (imported data)"


def _flat(v):
    import numpy as np

    return np.atleast_1d(np.asarray(v)).tolist()


def run(args) -> int:
    info = describe(args.path, verify=args.verify)
    if args.json:
        print(json.dumps(info, default=str))
        return 0
    width = max(len(k) for k in info)
    for k, v in info.items():
        text = json.dumps(v, default=str) if isinstance(v, dict | list) else str(v)
        print(f"{k:<{width}}  {text}")
    return 0
