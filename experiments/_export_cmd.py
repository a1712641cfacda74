"""``byai export MODEL_DIR --out FILE``: a trained surrogate as a ``jax.export`` program plus ``FILE.json``.

The program is the stepper ``step(u) -> u_next`` on one float32 state ``(*grid, C)``,
normalisation included (see ``surrogates/_export.py``); it runs without byai::

    jax.export.deserialize(open(FILE, "rb").read()).call(u)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from experiments._cli import UsageError, input_folder


def add_arguments(parser) -> None:
    parser.add_argument("model", help="trained model folder (byai train --out)")
    parser.add_argument("--out", required=True, help="file for the serialised program (metadata goes to FILE.json)")
    parser.add_argument("--latest", action="store_true",
                        help="export the latest checkpoint instead of the one with the best validation loss")


def run(args) -> int:
    import surrogates

    model = input_folder(args.model, "MODEL_DIR", "run byai train first")
    out = Path(args.out)
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a file name")
    program, meta = surrogates.export_stepper(model, best=not args.latest)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta_path = out.with_name(out.name + ".json")
    for path, data in ((out, program), (meta_path, json.dumps(meta, indent=2).encode())):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    state = "" if meta["window"] == 1 else f", a window of the last {meta['window']} states"
    print(f"exported {meta['call']} on float32 {tuple(meta['input']['u']['shape'])}{state} to {out} "
          f"(metadata {meta_path})")
    return 0
