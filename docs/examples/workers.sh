#!/usr/bin/env bash
# How-to: many workers on one study in PostgreSQL.
# Usage: workers.sh URL [STUDY_FILE] [RUN_DIR] [WORKERS]
set -euo pipefail
URL=$1
STUDY=${2:-my_study.toml}
OUT=${3:-runs/my_study}
WORKERS=${4:-2}
NAME=$(python -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["name"])' "$STUDY")

# 1. create the study in the storage and enqueue its cells; nothing is trained
noisereg study "$STUDY" --storage "$URL" --out "$OUT" --no-train
# 2. start the workers, here or on other machines (same noisereg version, same data files)
pids=()
for i in $(seq "$WORKERS"); do
    noisereg worker --storage "$URL" --study "$NAME" --models "$OUT/models" --quiet &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done  # fails if any worker failed
# 3. the report from the storage alone (no torch), and robustness from the saved weights
noisereg report "$OUT" --storage "$URL" --quiet
noisereg robustness "$OUT" --storage "$URL" --quiet
