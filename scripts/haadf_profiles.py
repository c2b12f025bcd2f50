#!/usr/bin/env python3
"""Radial HAADF profiles of single atomic columns by multislice (abTEM), for `synth`.

    pip install abtem
    python3 scripts/haadf_profiles.py                # writes assets/haadf_profiles.csv
    python3 scripts/haadf_profiles.py --validate     # full multislice of a defective WS2 patch

Each profile is the fraction of the incident probe's electrons that reach the annular detector
when the probe sits at a distance r from an isolated column (the column alone in a periodic cell
large enough that neighbouring images do not matter), averaged over frozen-phonon
configurations. `synth` places these profiles at every column of its lattice and sums them
(incoherent imaging). `--validate` checks that sum against a full multislice of a small WS2 patch
holding a Mo dopant, a single and a double S vacancy and a W vacancy, and prints how far the two
differ at every column.

Settings (the defaults of a Nion UltraSTEM 100 as used for TMD movies): 100 kV, probe
semi-angle 30 mrad, no aberrations, defocus 0, HAADF 80–200 mrad, Lobato potentials,
0.5 Å slices, 16 frozen-phonon configurations.
"""

import argparse
import sys

import numpy as np

ENERGY_EV = 100e3
SEMIANGLE_MRAD = 30.0
DETECTOR_MRAD = (80.0, 200.0)
SAMPLING_A = 0.04  # potential sampling: resolves scattering to ~300 mrad at 100 kV
SLICE_A = 0.5
CELL_A = 16.0  # isolated-column cell side
PHONON_CONFIGS = 16
# Room-temperature rms displacements (Å) of the atoms in TMD monolayers.
PHONON_SIGMAS = {"W": 0.05, "Mo": 0.06, "S": 0.08, "Se": 0.07, "C": 0.1}
# Intra-column distance of the two chalcogens in a 2H monolayer (Å).
CHALCOGEN_DZ = {"S": 3.14, "Se": 3.34}
R_MAX_A = 4.0
R_STEP_A = 0.05

# Column kinds: name -> the atoms stacked along the beam.
COLUMNS = {
    "W": ["W"],
    "Mo": ["Mo"],
    "S": ["S"],
    "S2": ["S", "S"],
    "Se": ["Se"],
    "Se2": ["Se", "Se"],
    "SSe": ["S", "Se"],
    "C": ["C"],
}


def setup():
    import abtem

    abtem.config.set({"device": "cpu", "fft": "fftw", "precision": "float32"})
    return abtem


def column_atoms(symbols, cell=CELL_A, depth=12.0):
    from ase import Atoms

    dz = CHALCOGEN_DZ.get(symbols[0], 3.14)
    z0 = depth / 2 - dz * (len(symbols) - 1) / 2
    positions = [(cell / 2, cell / 2, z0 + i * dz) for i in range(len(symbols))]
    return Atoms(symbols, positions=positions, cell=[cell, cell, depth], pbc=True)


def multislice(abtem, atoms, scan, configs=PHONON_CONFIGS, seed=1):
    phonons = abtem.FrozenPhonons(
        atoms, num_configs=configs, sigmas=PHONON_SIGMAS, seed=seed
    )
    potential = abtem.Potential(
        phonons, sampling=SAMPLING_A, slice_thickness=SLICE_A, parametrization="lobato"
    )
    probe = abtem.Probe(energy=ENERGY_EV, semiangle_cutoff=SEMIANGLE_MRAD)
    detector = abtem.AnnularDetector(inner=DETECTOR_MRAD[0], outer=DETECTOR_MRAD[1])
    measurement = probe.scan(potential, scan=scan, detectors=detector)
    return np.asarray(measurement.compute(progress_bar=False).array)


def profiles(abtem):
    r = np.arange(0.0, R_MAX_A + 1e-9, R_STEP_A)
    out = {}
    for name, symbols in COLUMNS.items():
        atoms = column_atoms(symbols)
        c = CELL_A / 2
        scan = abtem.CustomScan(np.stack([c + r, np.full_like(r, c)], axis=1))
        out[name] = multislice(abtem, atoms, scan)
        print(f"{name:4s} peak {out[name][0]:.5f}", file=sys.stderr)
    return r, out


def write_table(path, r, table):
    names = list(table)
    with open(path, "w") as f:
        f.write("# Radial HAADF profiles of isolated atomic columns, by scripts/haadf_profiles.py (abTEM)\n")
        f.write(
            f"# {ENERGY_EV / 1e3:.0f} kV, probe semi-angle {SEMIANGLE_MRAD:.0f} mrad, no aberrations, "
            f"HAADF {DETECTOR_MRAD[0]:.0f}-{DETECTOR_MRAD[1]:.0f} mrad, Lobato potentials, "
            f"{SLICE_A} A slices, {SAMPLING_A} A sampling, {PHONON_CONFIGS} frozen phonons\n"
        )
        f.write("# values: fraction of incident electrons on the detector with the probe at r (A) from the column\n")
        f.write("r_A," + ",".join(names) + "\n")
        for i, ri in enumerate(r):
            f.write(f"{ri:.3f}," + ",".join(f"{table[n][i]:.6e}" for n in names) + "\n")


def read_table(path):
    with open(path) as f:
        lines = [l for l in f if not l.startswith("#")]
    header = lines[0].strip().split(",")
    data = np.array([[float(v) for v in l.split(",")] for l in lines[1:]])
    return data[:, 0], {n: data[:, i + 1] for i, n in enumerate(header[1:])}


def ws2_patch():
    """A 4 × 2 orthogonal WS2 patch (12.7 × 11.0 Å) with Mo_W, V_S1, V_S2 and a W vacancy."""
    from ase import Atoms

    a = 3.18
    b = a * np.sqrt(3)
    dz = CHALCOGEN_DZ["S"]
    z = 6.0
    # Orthogonal cell of 2H-WS2: two metals and two S2 columns.
    metal = [(0.0, 0.0), (a / 2, b / 2)]
    chalc = [(0.0, b / 3 * 2), (a / 2, b / 6)]
    symbols, pos, columns = [], [], []
    for i in range(4):
        for j in range(2):
            o = np.array([i * a, j * b])
            for m in metal:
                p = o + m
                columns.append(("W", p))
            for s in chalc:
                p = o + s
                columns.append(("S2", p))
    # Defects (index into columns): pick columns away from the cell edge.
    kinds = [k for k, _ in columns]
    metal_idx = [i for i, k in enumerate(kinds) if k == "W"]
    chalc_idx = [i for i, k in enumerate(kinds) if k == "S2"]
    kinds[metal_idx[5]] = "Mo"
    kinds[metal_idx[10]] = "vac"
    kinds[chalc_idx[6]] = "S"
    kinds[chalc_idx[9]] = "vac"
    for k, p in zip(kinds, (c[1] for c in columns)):
        if k in ("W", "Mo"):
            symbols.append(k)
            pos.append((p[0], p[1], z))
        elif k == "S2":
            symbols += ["S", "S"]
            pos += [(p[0], p[1], z - dz / 2), (p[0], p[1], z + dz / 2)]
        elif k == "S":
            symbols.append("S")
            pos.append((p[0], p[1], z - dz / 2))
    atoms = Atoms(symbols, positions=pos, cell=[4 * a, 2 * b, 2 * z], pbc=True)
    return atoms, [(k, p) for k, p in zip(kinds, (c[1] for c in columns))]


def validate(abtem, table_path):
    """Probe at every column of the patch (the column and four points 0.15 A around it) and
    along one line across it, by full multislice and by the profile sum; print both."""
    r, table = read_table(table_path)
    atoms, columns = ws2_patch()
    lx, ly = atoms.cell[0, 0], atoms.cell[1, 1]
    ring = [(0.0, 0.0), (0.15, 0.0), (-0.15, 0.0), (0.0, 0.15), (0.0, -0.15)]
    points = [(p[0] + dx, p[1] + dy) for _, p in columns for dx, dy in ring]
    line = [(x, ly / 2 - 1.0) for x in np.linspace(0.0, lx, 64, endpoint=False)]
    pos = np.array(points + line)
    full = multislice(abtem, atoms, abtem.CustomScan(pos), configs=8)

    def model_at(x, y):
        v = 0.0
        for k, p in columns:
            if k == "vac":
                continue
            for ox in (-lx, 0, lx):
                for oy in (-ly, 0, ly):
                    v += np.interp(np.hypot(x - p[0] - ox, y - p[1] - oy), r, table[k], right=0.0)
        return v

    model = np.array([model_at(x, y) for x, y in pos])
    n = len(points)
    print(f"patch {lx:.2f} x {ly:.2f} A, {len(columns)} columns, 8 phonon configurations")
    print("column  multislice  profile-sum  sum/multislice   (mean of the column and 4 points 0.15 A around it)")
    peaks = {}
    for i, (k, p) in enumerate(columns):
        f, m = full[5 * i : 5 * i + 5].mean(), model[5 * i : 5 * i + 5].mean()
        peaks.setdefault(k, []).append((f, m))
        print(f"{k:4s} ({p[0]:5.2f},{p[1]:5.2f})  {f:.5f}  {m:.5f}  {m / f if f > 0 else float('nan'):.3f}")
    mean = {k: np.mean(v, axis=0) for k, v in peaks.items()}
    for a, b in (("S2", "S"), ("Mo", "W"), ("vac", "S2")):
        if a in mean and b in mean:
            print(f"{a}/{b}: multislice {mean[a][0] / mean[b][0]:.3f}, profile-sum {mean[a][1] / mean[b][1]:.3f}")
    lf, lm = full[n:], model[n:]
    print(f"line across the patch: rms difference / mean {np.sqrt(np.mean((lf - lm) ** 2)) / lf.mean():.3f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="assets/haadf_profiles.csv")
    ap.add_argument("--validate", action="store_true")
    args = ap.parse_args()
    abtem = setup()
    if args.validate:
        validate(abtem, args.out)
    else:
        r, table = profiles(abtem)
        write_table(args.out, r, table)
        if table["S"][0] > 0:
            print(f"S2/S peak ratio {table['S2'][0] / table['S'][0]:.3f}", file=sys.stderr)


if __name__ == "__main__":
    main()
