#!/usr/bin/env python3
"""Reference values for the NIfTI test files, from an independent reader (nibabel + numpy).

Run from the repository root:

    python3 -m venv /tmp/nifti-ref && /tmp/nifti-ref/bin/pip install nibabel==5.4.2 numpy
    /tmp/nifti-ref/bin/python testdata/nifti/make_reference.py

Writes testdata/nifti/reference.json: per file the header size (348 NIfTI-1, 540 NIfTI-2), the
shape, voxel sizes, the affine nibabel uses (sform, else qform), and per time point (the 4th
axis) the sum, min and max of the scaled float32 voxels, a SHA-256 of them (i fastest, little
endian) and a few voxels.
"""

import hashlib
import json
import os

import nibabel as nib
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def describe(name):
    image = nib.load(os.path.join(HERE, name))
    data = np.asarray(image.dataobj, dtype=np.float64).astype(np.float32)
    if data.ndim == 3:
        data = data[..., np.newaxis]
    volumes = []
    rng = np.random.default_rng(18)
    for t in range(data.shape[3]):
        v = data[..., t]
        picks = [tuple(int(rng.integers(0, n)) for n in v.shape) for _ in range(8)]
        volumes.append({
            "sum": float(v.astype(np.float64).sum()),
            "min": float(v.min()),
            "max": float(v.max()),
            # Fortran order: i fastest, as on disk and in med_volumes::Volume::data.
            "sha256": hashlib.sha256(v.astype("<f4").tobytes(order="F")).hexdigest(),
            "voxels": [[i, j, k, float(v[i, j, k])] for i, j, k in picks],
        })
    return {
        "file": name,
        "sizeof_hdr": int(image.header["sizeof_hdr"]),
        "shape": [int(n) for n in image.shape],
        "zooms": [float(z) for z in image.header.get_zooms()],
        "affine": image.affine.tolist(),
        "volumes": volumes,
    }


def main():
    names = sorted(n for n in os.listdir(HERE) if n.endswith((".nii", ".nii.gz")))
    reference = {
        "generator": f"nibabel {nib.__version__}, numpy {np.__version__} (testdata/nifti/make_reference.py)",
        "files": [describe(n) for n in names],
    }
    with open(os.path.join(HERE, "reference.json"), "w") as f:
        json.dump(reference, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
