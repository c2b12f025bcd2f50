#!/usr/bin/env bash
# The GPU measurements of the Speed section in one short run, for a machine lent with a GPU for a
# few minutes: what the GPU is, the bench's network cases on it, and the whole chain on it scored
# against a generated movie's known truth. Not part of CI.
#
#   bench/gpu.sh BINARY [OUT]        (DEVICE=cpu REPEATS=3 bench/gpu.sh … tries it without a GPU)
#
# Each step has its own time limit and writes its own files into OUT, so that a step that fails
# or runs out of time leaves the others' results.
set -u
bin=$1
out=${2:-gpu-results}
device=${DEVICE:-gpu}
repeats=${REPEATS:-20}
mkdir -p "$out"

{
    date -u
    nvidia-smi -L 2>&1
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
    # burn-wgpu needs a Vulkan driver for the GPU.
    ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>&1
    nproc
} >"$out/machine.txt"

# Training iterations (batch 8 and 32, 256² crops) and inference (512² and 1024² frames, 32 per
# pass) of the Sniffer; the first training iteration (kernel compilation) is not counted.
timeout 300 "$bin" bench train-sniffer infer-sniffer --device "$device" --repeats "$repeats" \
    --inference-batch 32 --json >"$out/bench.json" 2>"$out/bench.log"
echo "bench: exit $?" >>"$out/steps.txt"

# The whole chain with default settings (800 iterations) on the GPU, scored against the truth.
timeout 60 "$bin" synth --frames 30 --size 512 --seed 1 --out "$out/movie" >"$out/synth.log" 2>&1
echo "synth: exit $?" >>"$out/steps.txt"
timeout 240 "$bin" analyze "$out/movie/movie.tif" --truth "$out/movie/truth.csv" --device "$device" \
    --out "$out/analyze" >"$out/analyze.log" 2>&1
echo "analyze: exit $?" >>"$out/steps.txt"
rm -rf "$out/movie"
