#!/usr/bin/env bash
# The training-stability study of docs/performance.md ("Training for stability"): does
# `stability.weight` cost quality, beyond the spread between seeds?
#
#   scripts/stability_study.sh OUTPUT "0 100 30:0" "0 1 2" [key=value ...]
#
# For each variant (WEIGHT or WEIGHT:NOISE) and seed: train starry_night for 400 steps of 4 at 128 px
# (scripts/learning_curve.py, which scores Kodak 1-6 at 128 px against Gatys-50, cached once and
# shared by every run), then measure the network's own frame-by-frame flicker on the synthetic pans
# and zoom (scripts/measure_video.py with no stabilisation). Extra key=value pairs go to every run.
# A finished run is skipped, an interrupted one resumes from its checkpoint, so the study can be
# stopped and started again. One JSON line per run on stdout and in OUTPUT/study.jsonl.
set -euo pipefail
output=${1:?OUTPUT folder}
variants=${2:-"0 100"}
seeds=${3:-"0 1 2"}
shift $(( $# < 3 ? $# : 3 ))
cd "$(dirname "$0")/.."
mkdir -p "$output"
for variant in $variants; do
  weight=${variant%%:*}
  noise=$([[ $variant == *:* ]] && echo "${variant#*:}" || echo 0.02)
  for seed in $seeds; do
    run="$output/w${weight}_n${noise}_s${seed}"
    [[ -f "$run/done.json" ]] && { cat "$run/done.json"; continue; }
    mkdir -p "$run"
    [[ -f "$output/gatys.json" && ! -f "$run/gatys.json" ]] && cp "$output/gatys.json" "$run/gatys.json"
    score=$(python3 scripts/learning_curve.py --config configs/starry_night.yaml --milestones 400 --count 6 \
      --size 128 --photos ../shared/data/eval/kodak24 --output "$run" \
      init_from=null image_size=128 batch_size=4 style_size=256 checkpoint_every=100 validation.every=0 validation.size=128 \
      data.preload=false data.workers=0 seed="$seed" stability.weight="$weight" stability.noise="$noise" "$@" \
      | tail -n 1)
    [[ -f "$output/gatys.json" ]] || cp "$run/gatys.json" "$output/gatys.json"
    flicker=$(python3 scripts/measure_video.py --model "$run/train/model.safetensors" --size 256x192 --frames 16 \
      --stability '' --clips 'pan_3px,pan_1.3px_diagonal,zoom_1%' | python3 -c '
import json, sys
lines = [json.loads(line) for line in sys.stdin if line.startswith("{\"")]
print(json.dumps({name: round(entry["frame_by_frame_flicker"], 3) for line in lines for name, entry in line.items()}))')
    python3 -c 'import json, sys
score, flicker = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(json.dumps({"weight": float(sys.argv[3]), "noise": float(sys.argv[4]), "seed": int(sys.argv[5]),
                  "ratio": round(score["ratio"], 4), "network": score["network"], "gatys_50": score["gatys_50"],
                  "train_seconds": score["train_seconds"], "flicker": flicker}))' \
      "$score" "$flicker" "$weight" "$noise" "$seed" | tee "$run/done.json" >> "$output/study.jsonl"
    cat "$run/done.json"
  done
done
