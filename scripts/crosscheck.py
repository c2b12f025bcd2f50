#!/usr/bin/env python3
"""Read microscope files with defectscope and with RosettaSciIO and compare them.

Usage: crosscheck.py DEFECTSCOPE_BINARY FILE_OR_FOLDER...

Formats: DM3/DM4 (`rsciio.digitalmicrograph`), TIA SER (`rsciio.tia`) and EMD, Velox and NCEM
(`rsciio.emd`). For each file: `defectscope info FILE --json --npy TMP` against RosettaSciIO's
reader (the largest real-valued signal of 2 or 3 dimensions; for Velox the image stack with the
most frames, as defectscope picks it): shape, every pixel value (exact, as float32), the pixel
size in nm and, where both have one, the frame interval. NCEM EMD: RosettaSciIO transposes the
stored axes and stacks groups, so there the values are compared as sorted lists and the shapes as
sets of sides. Files that defectscope refuses are listed with its message, and count as agreeing
when RosettaSciIO finds no real-valued 2-D/3-D image either (complex, RGB, spectra, a stack along
a non-time axis). Exits 1 on any disagreement.

Nion Swift .ndata/.h5 files have no RosettaSciIO reader; they are compared with the NAME.npy and
NAME.expected.json that scripts/make_nion_examples.py writes beside them with Nion Swift's own
writers.

Needs `pip install rosettasciio h5py sparse` (real example files: the HyperSpy 1.7 wheels ship
them under hyperspy/tests/io/: dm3_*/, dm4_*/, FEI_old/, FEI_new/, emd_files/ and
emd_files/fei_emd_files.zip).
"""
import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
from rsciio import digitalmicrograph, emd, tia

NM = {"nm": 1.0, "pm": 1e-3, "Å": 0.1, "A": 0.1, "µm": 1e3, "um": 1e3, "μm": 1e3, "mm": 1e6, "m": 1e9}


SUFFIXES = (".dm3", ".dm4", ".ser", ".emd", ".ndata", ".h5")


def reference(path):
    """The signal defectscope should read, or None."""
    best = None
    suffix = path.suffix.lower()
    if suffix == ".emd":
        signals = emd.file_reader(str(path), load_SI_image_stack=True)
    else:
        signals = (tia if suffix == ".ser" else digitalmicrograph).file_reader(str(path))
    for s in signals:
        d = np.asarray(s["data"])
        if d.ndim not in (2, 3) or d.dtype.kind not in "biuf" or d.dtype.names:
            continue
        if suffix == ".emd":
            # A movie: the image axes are lengths (or nothing has units) and a stack is along time.
            units = [(a.get("units") or "").strip("[]") for a in s["axes"]]
            if not (all(u == "" for u in units)
                    or units[-1] in NM and (d.ndim == 2 or units[0] in ("s", "ms"))):
                continue
        # EMD: the image stack with the most frames, then pixels; elsewhere the largest.
        key = (d.shape[0] if d.ndim == 3 else 1, d.size) if suffix == ".emd" else (d.size,)
        if best is None or key > best[2]:
            best = (d, s["axes"], key)
    return best and best[:2]


def nion_check(exe, f, npy):
    """A Nion file against the array and calibration Nion Swift wrote beside it."""
    name = f"{f.parent.name}/{f.name}"
    run = subprocess.run([exe, "info", str(f), "--json", "--npy", str(npy)], capture_output=True, text=True)
    if run.returncode != 0:
        print(f"FAIL {name}: refused ({run.stderr.strip()[-110:]})")
        return False
    info = json.loads(run.stdout)
    want = json.loads(f.with_suffix(".expected.json").read_text())
    data = np.load(f.with_suffix(".npy")).astype(np.float32)
    ours = np.load(npy)
    theirs = data.reshape((-1,) + data.shape[-2:])
    same = ours.shape == theirs.shape and np.array_equal(ours, theirs)
    close = lambda a, b: (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= 1e-6 * abs(b))  # noqa: E731
    acq = info["acquisition"]
    fields = {k: (info.get(k, acq.get(k)), v) for k, v in want.items() if k != "shape"}
    ok = same and all(close(a, b) if not isinstance(b, str) else a == b for a, b in fields.values())
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {info['format']}, shape {ours.shape}, values "
          f"{'equal' if same else 'DIFFER'}, " + ", ".join(f"{k} {a} vs {b}" for k, (a, b) in fields.items()))
    return ok


def main():
    exe = sys.argv[1]
    files = []
    for a in sys.argv[2:]:
        p = pathlib.Path(a)
        files += sorted(f for f in p.rglob("*") if f.suffix.lower() in SUFFIXES) if p.is_dir() else [p]
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        npy = pathlib.Path(tmp) / "frames.npy"
        for f in files:
            if f.suffix.lower() in (".ndata", ".h5"):
                bad += not nion_check(exe, f, npy)
                continue
            run = subprocess.run([exe, "info", str(f), "--json", "--npy", str(npy)],
                                 capture_output=True, text=True)
            try:
                ref = reference(f)
            except Exception as e:  # noqa: BLE001 - report whatever the reference reader says
                ref, ref_err = None, f"{type(e).__name__}: {e}"
            else:
                ref_err = None
            name = f"{f.parent.name}/{f.name}"
            if run.returncode != 0:
                msg = run.stderr.strip().splitlines()[-1][:110]
                # Refusing is right when RosettaSciIO finds no real image either, when its signal
                # is a spectrum (last axis not a length), or a stack along a non-time axis.
                ok = (ref is None
                      or (ref[1][-1].get("units") or "") not in NM
                      or ref[0].ndim == 3 and ref[1][0].get("units") not in ("s", "ms", "", None))
                print(f"{'ok  ' if ok else 'FAIL'} {name}: refused ({msg}); rsciio: "
                      f"{'no real 2-D/3-D image' if ref is None else ref[0].shape}"
                      f"{' ' + ref_err if ref_err else ''}")
                bad += not ok
                continue
            info = json.loads(run.stdout)
            ours = np.load(npy)
            if ref is None and info["format"].startswith("NCEM"):
                # RosettaSciIO stacks Prismatic's per-depth groups; check the one dataset read.
                import h5py
                with h5py.File(f, "r") as h:
                    path = info["acquisition"]["dataset"].split(" (")[0]
                    ref = (h[path][()], [{"units": ""}] * h[path].ndim)
                ref_err = f"(h5py {path}: rsciio stacks this group)"
            if ref is None:
                print(f"FAIL {name}: read by defectscope {ours.shape}, rsciio finds no image {ref_err or ''}")
                bad += 1
                continue
            data, axes = ref
            theirs = data.astype(np.float32).reshape((-1,) + data.shape[-2:])
            ncem = info["format"].startswith("NCEM")
            if ncem:  # stored axes transposed by RosettaSciIO: compare as sets
                same_shape = sorted(ours.shape) == sorted(data.shape + (1,) * (3 - data.ndim))
                same_values = same_shape and np.array_equal(np.sort(ours, axis=None), np.sort(theirs, axis=None))
            else:
                same_shape = ours.shape == theirs.shape
                same_values = same_shape and np.array_equal(ours, theirs)
            x = axes[-1]
            unit = x.get("units") or ""
            ref_nm = x["scale"] * NM[unit] if unit in NM else None
            ours_nm = info["pixel_size_nm"]
            # Pixel "sizes" above 1 mm are diffraction calibrations (1/m) that defectscope leaves out.
            if ref_nm is not None and ref_nm > 1e6 and ours_nm is None:
                ref_nm = None
            same_cal = (ref_nm is None and ours_nm is None) or (
                ref_nm is not None and ours_nm is not None and abs(ref_nm - ours_nm) <= 1e-6 * abs(ref_nm))
            if ncem and ref_nm is None:  # NCEM without units: defectscope must not invent one
                same_cal = ours_nm is None or unit in ("", "[]")
            t = axes[0] if data.ndim == 3 else {}
            ref_s = t["scale"] * {"s": 1.0, "ms": 1e-3}[t["units"]] if t.get("units") in ("s", "ms") else None
            ours_s = info["frame_interval_s"]
            same_t = ref_s is None or ours_s is None or abs(ref_s - ours_s) <= 1e-6 * ref_s
            ok = same_shape and same_values and same_cal and same_t
            bad += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {name}: {info['format']}, shape {ours.shape}"
                  f"{'' if same_shape else f' vs {theirs.shape}'}, values {'equal' if same_values else 'DIFFER'}, "
                  f"pixel {ours_nm} nm vs {ref_nm} ({x.get('scale')} {unit}), frame {ours_s} s vs {ref_s}"
                  f"{' ' + ref_err if ref_err else ''}")
    print(f"{len(files) - bad} of {len(files)} files agree")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
