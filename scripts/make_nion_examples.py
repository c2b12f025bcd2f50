#!/usr/bin/env python3
"""Write Nion Swift example files with Nion Swift's own writers, for scripts/crosscheck.py.

    pip install nionswift
    python scripts/make_nion_examples.py OUT_DIR

Writes, each as .ndata (NDataHandler) and .h5 (HDF5Handler), with the data item's properties as
Nion Swift stores them (DataItem.write_to_dict):
  seq_u16   a sequence of 5 frames of 40 x 56 uint16, 0.021 nm pixels, 0.5 s per frame,
            60 kV, MAADF, 2 us dwell;
  image_f32 one 33 x 47 float32 image, 0.1 nm pixels.
Next to each file, NAME.expected.json holds the array's shape and the calibration it carries,
and NAME.npy the array itself.
"""
import datetime
import json
import pathlib
import sys

import numpy as np
from nion.data import Calibration, DataAndMetadata
from nion.swift.model import DataItem, HDF5Handler, NDataHandler


def item(data, calibrations, metadata, sequence):
    xd = DataAndMetadata.new_data_and_metadata(
        data,
        dimensional_calibrations=[Calibration.Calibration(0, s, u) for s, u in calibrations],
        metadata=metadata,
        data_descriptor=DataAndMetadata.DataDescriptor(sequence, 0, 2),
    )
    return DataItem.new_data_item(xd).write_to_dict()


def main(out):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    cases = {
        "seq_u16": (
            rng.integers(0, 60000, size=(5, 40, 56)).astype(np.uint16),
            [(0.5, "s"), (0.021, "nm"), (0.021, "nm")],
            {"instrument": {"high_tension": 60000.0},
             "hardware_source": {"hardware_source_name": "MAADF", "channel_name": "MAADF",
                                 "pixel_time_us": 2.0}},
            True,
            {"pixel_size_nm": 0.021, "frame_interval_s": 0.5, "beam_energy_kev": 60.0,
             "detector": "MAADF", "dwell_time_us": 2.0},
        ),
        "image_f32": (
            rng.normal(size=(33, 47)).astype(np.float32),
            [(0.1, "nm"), (0.1, "nm")],
            {},
            False,
            {"pixel_size_nm": 0.1, "frame_interval_s": None},
        ),
    }
    when = datetime.datetime(2024, 5, 6, 7, 8, 9)
    for name, (data, cal, md, seq, expected) in cases.items():
        props = item(data, cal, md, seq)
        NDataHandler.write_zip(str(out / f"{name}.ndata"), data, props)
        h = HDF5Handler.HDF5Handler(out / f"{name}.h5")
        h.write_properties(props, when)
        h.write_data(data, when)
        h.close()
        np.save(out / f"{name}.npy", data)
        expected["shape"] = list(data.shape)
        (out / f"{name}.expected.json").write_text(json.dumps(expected))
        print("wrote", name)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "nion_examples")
