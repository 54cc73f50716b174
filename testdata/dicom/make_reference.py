#!/usr/bin/env python3
"""Reference values for the DICOM test corpus, from an independent reader (pydicom + numpy).

Run from the repository root (about a minute, network for the first pip install):

    python3 -m venv /tmp/dicom-ref && /tmp/dicom-ref/bin/pip install \
        pydicom==3.0.2 numpy pylibjpeg==2.1.0 pylibjpeg-libjpeg==2.5.0 \
        pylibjpeg-openjpeg==2.6.0 pylibjpeg-rle==2.2.0
    /tmp/dicom-ref/bin/python testdata/dicom/make_reference.py

It first writes the generated files (testdata/dicom/generated/: an enhanced multi-frame CT built
from ct2_series, and MR_small without its preamble, with and without the file meta group), then
testdata/dicom/reference.json: for every file, what pydicom reads (geometry, photometric
interpretation, window) and what its decoders give (the modality values, RescaleSlope and
RescaleIntercept applied, as float32; or 8-bit RGB for colour images, YBR converted and palette
applied): shape, sum, min, max, a SHA-256 of the array (frame, row, column, sample order, little
endian) and a few pixels. The Rust tests in crates/med-volumes compare with these numbers.
"""

import hashlib
import json
import os
import sys

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_color_lut, apply_modality_lut
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

HERE = os.path.dirname(os.path.abspath(__file__))
LOSSLESS = {
    "1.2.840.10008.1.2",  # implicit VR little endian
    "1.2.840.10008.1.2.1",  # explicit VR little endian
    "1.2.840.10008.1.2.1.99",  # deflated
    "1.2.840.10008.1.2.2",  # explicit VR big endian
    "1.2.840.10008.1.2.5",  # RLE
    "1.2.840.10008.1.2.4.57",  # JPEG lossless, process 14
    "1.2.840.10008.1.2.4.70",  # JPEG lossless, process 14 SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless only
}


def floats(value):
    if value is None:
        return None
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return [float(v) for v in value]
    return [float(value)]


def write_generated():
    out = os.path.join(HERE, "generated")
    os.makedirs(out, exist_ok=True)
    mr = os.path.join(HERE, "files", "MR_small.dcm")
    raw = open(mr, "rb").read()
    assert raw[128:132] == b"DICM"
    # The file meta group with no preamble before it.
    with open(os.path.join(out, "MR_small_no_preamble"), "wb") as f:
        f.write(raw[132:])
    # No preamble, no file meta group: an implicit VR little endian data set from byte 0.
    ds = pydicom.dcmread(mr)
    ds.file_meta = FileMetaDataset()
    ds.preamble = None
    ds.save_as(
        os.path.join(out, "MR_small_raw_implicit"),
        implicit_vr=True,
        little_endian=True,
        enforce_file_format=False,
    )
    write_enhanced_ct(os.path.join(out, "enhanced_ct.dcm"))


def write_enhanced_ct(path):
    """An Enhanced CT Image (one file, 4 frames) from the ct2_series slices: geometry, rescale
    and window in the Shared and Per-frame Functional Groups, frames stored top slice first."""
    folder = os.path.join(HERE, "ct2_series")
    slices = [pydicom.dcmread(os.path.join(folder, n)) for n in sorted(os.listdir(folder))]
    slices.sort(key=lambda s: -float(s.ImagePositionPatient[2]))
    first = slices[0]
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.18001"
    ds.StudyInstanceUID = first.StudyInstanceUID
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.18002"
    ds.FrameOfReferenceUID = first.get("FrameOfReferenceUID", "1.2.826.0.1.3680043.8.498.18003")
    ds.Modality = "CT"
    ds.PatientName = "Anonymous"
    ds.PatientID = "18"
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = first.Rows
    ds.Columns = first.Columns
    ds.BitsAllocated = 16
    ds.BitsStored = first.BitsStored
    ds.HighBit = first.HighBit
    ds.PixelRepresentation = first.PixelRepresentation
    ds.NumberOfFrames = len(slices)
    measures = Dataset()
    measures.PixelSpacing = first.PixelSpacing
    measures.SliceThickness = first.SliceThickness
    orientation = Dataset()
    orientation.ImageOrientationPatient = first.ImageOrientationPatient
    rescale = Dataset()
    rescale.RescaleSlope = first.RescaleSlope
    rescale.RescaleIntercept = first.RescaleIntercept
    rescale.RescaleType = "HU"
    voi = Dataset()
    voi.WindowCenter = 40
    voi.WindowWidth = 400
    shared = Dataset()
    shared.PixelMeasuresSequence = [measures]
    shared.PlaneOrientationSequence = [orientation]
    shared.PixelValueTransformationSequence = [rescale]
    shared.FrameVOILUTSequence = [voi]
    ds.SharedFunctionalGroupsSequence = [shared]
    per_frame = []
    for s in slices:
        position = Dataset()
        position.ImagePositionPatient = s.ImagePositionPatient
        item = Dataset()
        item.PlanePositionSequence = [position]
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    ds.PixelData = b"".join(s.pixel_array.astype(first.pixel_array.dtype).tobytes() for s in slices)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.save_as(path, enforce_file_format=True)


def functional(ds, frame, sequence, attribute):
    """An attribute from the Per-frame Functional Groups, else the Shared ones, else None."""
    for groups, index in (("PerFrameFunctionalGroupsSequence", frame), ("SharedFunctionalGroupsSequence", 0)):
        items = ds.get(groups)
        if items is None or len(items) <= index:
            continue
        inner = items[index].get(sequence)
        if inner is not None and len(inner) > 0 and attribute in inner[0]:
            return inner[0].get(attribute)
    return None


def geometry(ds, frames):
    enhanced = "PerFrameFunctionalGroupsSequence" in ds
    if enhanced:
        positions = [floats(functional(ds, f, "PlanePositionSequence", "ImagePositionPatient")) for f in range(frames)]
        orientation = floats(functional(ds, 0, "PlaneOrientationSequence", "ImageOrientationPatient"))
        spacing = floats(functional(ds, 0, "PixelMeasuresSequence", "PixelSpacing"))
        thickness = floats(functional(ds, 0, "PixelMeasuresSequence", "SliceThickness"))
        slope = functional(ds, 0, "PixelValueTransformationSequence", "RescaleSlope")
        intercept = functional(ds, 0, "PixelValueTransformationSequence", "RescaleIntercept")
        center = functional(ds, 0, "FrameVOILUTSequence", "WindowCenter")
        width = functional(ds, 0, "FrameVOILUTSequence", "WindowWidth")
    else:
        origin = floats(ds.get("ImagePositionPatient"))
        orientation = floats(ds.get("ImageOrientationPatient"))
        offsets = floats(ds.get("GridFrameOffsetVector"))
        if origin is not None and offsets is not None and orientation is not None:
            normal = np.cross(orientation[:3], orientation[3:])
            positions = [list(np.array(origin) + o * normal) for o in offsets]
        else:
            positions = [origin] * frames
        spacing = floats(ds.get("PixelSpacing"))
        thickness = floats(ds.get("SliceThickness"))
        slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
        center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    first = lambda v: None if v is None else floats(v)[0]
    return {
        "positions": positions,
        "orientation": orientation,
        "pixel_spacing": spacing,
        "slice_thickness": first(thickness),
        "rescale": [first(slope) if slope is not None else 1.0, first(intercept) if intercept is not None else 0.0],
        "window": None if center is None or width is None else [first(center), first(width)],
    }


def values(ds, info):
    arr = ds.pixel_array
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    photometric = ds.PhotometricInterpretation
    if photometric == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
        if arr.dtype != np.uint8:
            arr = (arr >> 8).astype(np.uint8)
    colour = arr.ndim == (4 if frames > 1 else 3) or photometric == "PALETTE COLOR"
    if frames == 1:
        arr = arr[np.newaxis]
    if colour:
        if arr.dtype != np.uint8:
            raise SystemExit(f"{info['file']}: colour with {arr.dtype} is not in the corpus")
        out = arr.astype(np.uint8)
        kind = "rgb8"
    else:
        slope, intercept = info["rescale"]
        out = (arr.astype(np.float64) * slope + intercept).astype(np.float32)[..., np.newaxis]
        kind = "modality_f32"
    flat = out.reshape(-1)
    rng = np.random.default_rng(18)
    picks = rng.integers(0, flat.size, 16)
    shape = list(out.shape)
    samples = []
    for p in sorted(set(int(p) for p in picks)):
        index = list(np.unravel_index(p, shape))
        samples.append([int(i) for i in index] + [float(flat[p])])
    little = out.astype(out.dtype.newbyteorder("<"))
    return {
        "kind": kind,
        "shape": shape,
        "sum": float(out.astype(np.float64).sum()),
        "min": float(out.min()),
        "max": float(out.max()),
        "sha256": hashlib.sha256(little.tobytes()).hexdigest(),
        "pixels": samples,
    }


def describe(rel):
    path = os.path.join(HERE, rel)
    ds = pydicom.dcmread(path, force=True)
    if "TransferSyntaxUID" not in ds.file_meta:
        # No file meta group: the standard's default, implicit VR little endian.
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    syntax = str(ds.file_meta.TransferSyntaxUID)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    info = {
        "file": rel,
        "transfer_syntax": syntax,
        "lossless": syntax in LOSSLESS,
        "photometric": ds.PhotometricInterpretation,
        "samples_per_pixel": int(ds.SamplesPerPixel),
        "frames": frames,
        "rows": int(ds.Rows),
        "cols": int(ds.Columns),
        "series_uid": str(ds.get("SeriesInstanceUID", "")),
    }
    info.update(geometry(ds, frames))
    try:
        info["values"] = values(ds, info)
    except Exception as e:  # truncated files: what pydicom says
        info["error"] = f"{type(e).__name__}: {e}"
    return info


def main():
    write_generated()
    names = []
    for folder in ("files", "generated", "ct2_series"):
        for name in sorted(os.listdir(os.path.join(HERE, folder))):
            names.append(f"{folder}/{name}")
    reference = {
        "generator": f"pydicom {pydicom.__version__}, numpy {np.__version__} (testdata/dicom/make_reference.py)",
        "files": [describe(n) for n in names],
    }
    with open(os.path.join(HERE, "reference.json"), "w") as f:
        json.dump(reference, f, indent=1)
        f.write("\n")
    print(f"{len(names)} files -> {os.path.join(HERE, 'reference.json')}", file=sys.stderr)


if __name__ == "__main__":
    main()
