#!/usr/bin/env python3
"""Read microscope files with defectscope and with RosettaSciIO and compare them.

Usage: crosscheck.py DEFECTSCOPE_BINARY FILE_OR_FOLDER...

Formats: DM3/DM4 (`rsciio.digitalmicrograph`) and TIA SER (`rsciio.tia`). For each file:
`defectscope info FILE --json --npy TMP` against RosettaSciIO's reader (the largest real-valued
signal of 2 or 3 dimensions): shape, every pixel value (exact, as float32) and the pixel size in
nm. Files that
defectscope refuses are listed with its message, and count as agreeing when RosettaSciIO finds no
real-valued 2-D/3-D image either (complex, RGB, spectra). Exits 1 on any disagreement.

Needs `pip install rosettasciio` (real example files: the HyperSpy 1.7 wheels ship them under
hyperspy/tests/io/: dm3_*/, dm4_*/, FEI_old/, FEI_new/).
"""
import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
from rsciio import digitalmicrograph, tia

NM = {"nm": 1.0, "pm": 1e-3, "Å": 0.1, "A": 0.1, "µm": 1e3, "um": 1e3, "μm": 1e3, "mm": 1e6, "m": 1e9}


def reference(path):
    """The signal defectscope should read, or None."""
    best = None
    reader = tia if path.suffix.lower() == ".ser" else digitalmicrograph
    for s in reader.file_reader(str(path)):
        d = np.asarray(s["data"])
        if d.ndim not in (2, 3) or d.dtype.kind not in "biuf" or d.dtype.names:
            continue
        if best is None or d.size > best[0].size:
            best = (d, s["axes"])
    return best


def main():
    exe = sys.argv[1]
    files = []
    for a in sys.argv[2:]:
        p = pathlib.Path(a)
        files += sorted(f for f in p.rglob("*") if f.suffix.lower() in (".dm3", ".dm4", ".ser")) if p.is_dir() else [p]
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        npy = pathlib.Path(tmp) / "frames.npy"
        for f in files:
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
            if ref is None:
                print(f"FAIL {name}: read by defectscope {ours.shape}, rsciio finds no image {ref_err or ''}")
                bad += 1
                continue
            data, axes = ref
            theirs = data.astype(np.float32).reshape((-1,) + data.shape[-2:])
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
            ok = same_shape and same_values and same_cal
            bad += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {name}: {info['format']}, shape {ours.shape}"
                  f"{'' if same_shape else f' vs {theirs.shape}'}, values {'equal' if same_values else 'DIFFER'}, "
                  f"pixel {ours_nm} nm vs {ref_nm} ({x['scale']} {unit})")
    print(f"{len(files) - bad} of {len(files)} files agree")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
