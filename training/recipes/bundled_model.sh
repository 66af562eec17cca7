#!/usr/bin/env bash
# The bundled default model (facerecon_core/data/model/, see MODEL_CARD.md), from a fresh clone:
#   make setup && .venv/bin/python -m facerecon_core assets build && bash training/recipes/bundled_model.sh
# Every step resumes: data generation skips finished shards, training continues from RUNS/*/last.pt
# (run it again after an interruption). Generated data goes to data/, runs to runs/ (neither committed).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
RUNS=${RUNS:-runs/bundled}
CONFIG=training/configs/cpu.yaml
PHOTOS=@training/recipes/train_photos.txt  # training photos: never the evaluation sets
fr() { "$PY" -m facerecon_core "$@"; }

# 1. data (res 128, the cpu config's input, ASM and texture size)
fr data synth --kind texture --count 1200 --seed 21 --res 128 --photos $PHOTOS --fits data/fits \
    --out data/texture128 --workers 2
fr data synth --kind profiled --count 2000 --seed 31 --res 128 --photos $PHOTOS --fits data/fits \
    --out data/profiled128 --workers 2
fr data synth --kind asm --count 16000 --seed 12 --res 128 --photos $PHOTOS --out data/asm128 --workers 2
# wider head poses (pitch ±45°, roll ±30°, yaw ±80°) for the second warm restart: real photos tilt further
fr data synth --kind asm --count 4000 --seed 13 --res 128 --photos $PHOTOS --pose-range 80 45 30 \
    --out data/asm128_wide --workers 2
# for the texture and fusion stages: triplets of the training photos and of muxspace_fer's 248 in-the-wild
# colour crops (movie stills: more lighting and skin than the 380 photos give the texture stream)
fr data synth --kind texture --count 2400 --seed 22 --res 128 --photos $PHOTOS ../shared/faces/muxspace_fer \
    --fits data/fits --out data/texture128_mux --workers 2
# profiled views of the muxspace photos, for the third warm restart: the geometry stream sees their faces too
fr data synth --kind profiled --count 1000 --seed 32 --res 128 --photos ../shared/faces/muxspace_fer \
    --fits data/fits --out data/profiled128_mux --workers 2
# 10,000 more random faces for the geometry warm restart from the fusion-trained model (run runs/s13 (2026-11-25))
fr data synth --kind asm --count 10000 --seed 16 --res 128 --photos $PHOTOS --out data/asm128_s16 --workers 2
# for run runs/s15 (2026-12-02)'s geometry warm restart: 8,000 faces in the widest poses (yaw ±90°, pitch ±45°, roll ±40°), and
# 2,000 profiled views of the 628 photos whose heads also tilt up or down (the photos are seldom taken in pitch)
fr data synth --kind asm --count 8000 --seed 17 --res 128 --photos $PHOTOS --pose-range 90 45 40 \
    --out data/asm128_x --workers 2
fr data synth --kind profiled --count 2000 --seed 33 --res 128 --photos $PHOTOS ../shared/faces/muxspace_fer \
    --fits data/fits --pitch-turn 40 --out data/profiled128_pitch --workers 2
# for run runs/s17 (2026-12-03)'s geometry warm restart: 3,000 views of the 628 photos at any yaw within ±90° (uniform,
# whatever the photo's), heads also tilted within ±30° in pitch
fr data synth --kind profiled --count 3000 --seed 34 --res 128 --photos $PHOTOS ../shared/faces/muxspace_fer \
    --fits data/fits --yaw-range 90 --pitch-turn 30 --out data/profiled128_yaw --workers 2
# for run runs/s20 (2026-12-03)'s geometry warm restart: 20,000 new random faces (as asm128; replaces asm128_s16, whose faces
# the earlier runs had seen many times over; 5 min to generate)
fr data synth --kind asm --count 20000 --seed 18 --res 128 --photos $PHOTOS --out data/asm128_s18 --workers 2
# for run runs/s21 (2026-12-03)'s: 20,000 new random faces again (replacing asm128_s18), and 10,000 more framed as a face detector
# that misses frames them (the crop's side × 0.7–1.3, its centre moved by σ = 0.08 × side; 2 min to generate)
fr data synth --kind asm --count 20000 --seed 19 --res 128 --photos $PHOTOS --out data/asm128_s19 --workers 2
fr data synth --kind asm --count 10000 --seed 20 --res 128 --photos $PHOTOS --crop-jitter 0.3 0.08 \
    --out data/asm128_j20 --workers 2
# for run runs/s28 (2026-12-06)'s: 20,000 new random faces with the whole BFM head rendered around them (forehead, ears, neck)
# and 10,000 more in off-centre crops, in asm128_s19's and asm128_j20's place, and 10,000 new faces alone beside
# them (the runs runs/s24-26; 6, 3 and 2 min to generate)
fr data synth --kind asm --count 20000 --seed 23 --res 128 --photos $PHOTOS --head --out data/asm128_h23 --workers 2
fr data synth --kind asm --count 10000 --seed 24 --res 128 --photos $PHOTOS --head --crop-jitter 0.3 0.08 \
    --out data/asm128_hj24 --workers 2
fr data synth --kind asm --count 10000 --seed 25 --res 128 --photos $PHOTOS --out data/asm128_s25 --workers 2
# for run runs/s29 (2026-12-06)'s: new views of the 628 photos (new seeds; the same kinds and counts as profiled128,
# profiled128_mux, profiled128_pitch, profiled128_yaw and texture128_mux, and 2,000 more in off-centre crops) in
# place of the views the earlier runs had seen many times over (8 min to generate with the fits)
fr data synth --kind profiled --count 2000 --seed 41 --res 128 --photos $PHOTOS --fits data/fits \
    --out data/profiled128_41 --workers 2
fr data synth --kind profiled --count 2000 --seed 47 --res 128 --photos $PHOTOS --fits data/fits \
    --crop-jitter 0.3 0.08 --out data/profiled128_j47 --workers 2
fr data synth --kind profiled --count 1000 --seed 42 --res 128 --photos ../shared/faces/muxspace_fer \
    --fits data/fits --out data/profiled128_mux42 --workers 2
fr data synth --kind profiled --count 2000 --seed 43 --res 128 --photos $PHOTOS ../shared/faces/muxspace_fer \
    --fits data/fits --pitch-turn 40 --out data/profiled128_pitch43 --workers 2
fr data synth --kind profiled --count 3000 --seed 44 --res 128 --photos $PHOTOS ../shared/faces/muxspace_fer \
    --fits data/fits --yaw-range 90 --pitch-turn 30 --out data/profiled128_yaw44 --workers 2
fr data synth --kind texture --count 2400 --seed 46 --res 128 --photos $PHOTOS ../shared/faces/muxspace_fer \
    --fits data/fits --out data/texture128_m46 --workers 2
# held out for choosing, never trained on: 300 views at any yaw of 82 photos of people that no training photo
# shows (every 4th of jaffe and yalefaces), their fits' landmarks as labels (run runs/s21 (2026-12-03); 3 min with the fits)
fr data synth --kind profiled --count 300 --seed 35 --res 128 --photos @training/recipes/heldout_photos.txt \
    --fits data/fits --yaw-range 90 --pitch-turn 30 --out data/heldout128_yaw --workers 2

# 2. the paper's three stages; each starts from the previous stage's best checkpoint (held-out
#    synthetic validation, every 20th sample); --max-steps counts all steps of a run
resume() { [ -f "$1/last.pt" ] && echo --resume || echo "${@:2}"; }
fr train --stage geometry --config $CONFIG --data data/asm128 data/profiled128 data/texture128 \
    --out "$RUNS/geometry" --max-steps 14000 --decay-steps 1000 --workers 1 $(resume "$RUNS/geometry")
# a warm restart: the rate back at lr_geometry, a fresh optimizer, then a longer decay
fr train --stage geometry --config $CONFIG --data data/asm128 data/profiled128 data/texture128 \
    --out "$RUNS/geometry2" --max-steps 6000 --decay-steps 3000 --workers 1 \
    $(resume "$RUNS/geometry2" --init "$RUNS/geometry/best.pt")
# and another, with the wide-pose faces added and a longer decay
fr train --stage geometry --config $CONFIG --data data/asm128 data/asm128_wide data/profiled128 data/texture128 \
    --out "$RUNS/geometry3" --max-steps 6000 --decay-steps 4000 --workers 1 \
    $(resume "$RUNS/geometry3" --init "$RUNS/geometry2/best.pt")
# and a third, with all 628 fitted photos in the data (as taken, and profiled views of the muxspace ones)
fr train --stage geometry --config $CONFIG \
    --data data/asm128 data/asm128_wide data/profiled128 data/profiled128_mux data/texture128_mux \
    --out "$RUNS/geometry4" --max-steps 6000 --decay-steps 4000 --workers 1 \
    $(resume "$RUNS/geometry4" --init "$RUNS/geometry3/best.pt")
fr train --stage texture --config $CONFIG --data data/texture128_mux \
    --out "$RUNS/texture" --max-steps 1700 --workers 1 $(resume "$RUNS/texture" --init "$RUNS/geometry4/best.pt")
# fusion keeps the encoder, the ASM decoders and the pose fixed (cpu.yaml's train.fusion_frozen): light,
# albedo and texture learn from the photos. The split PSN gives light and albedo a hidden layer of their own,
# and appearance_layers a copy of the encoder's last 3 layers (both copies of the geometry stream's at the
# start), which fusion retrains while the pose's stay fixed
FUSION=(--stage fusion --config $CONFIG --set model.geometry.psn_split=true --set model.geometry.appearance_layers=3
        --data data/texture128_mux data/profiled128 --workers 1)
fr train "${FUSION[@]}" --out "$RUNS/fusion" --max-steps 3000 --decay-steps 1500 \
    $(resume "$RUNS/fusion" --init "$RUNS/texture/best.pt")
# four more fusion runs (the runs runs/s10 and 11), each a warm restart (fresh Adam state, the rate back at lr_fusion, then a
# decay) from the previous run's inference-only bundle, the form in which a model ships (so a fresh machine
# continues from the shipped model; training starts from a bundle's ONNX graphs exactly, BatchNorm frozen)
previous=fusion
for run in "fusion2 4000 2000" "fusion3 3000 1500" "fusion4 3000 1500" "fusion5 3000 1500"; do
    read -r name steps decay <<< "$run"
    fr export --checkpoint "$RUNS/$previous/best.pt" --out "$RUNS/model_$previous" --half --no-weights --overwrite
    fr train "${FUSION[@]}" --out "$RUNS/$name" --max-steps "$steps" --decay-steps "$decay" \
        $(resume "$RUNS/$name" --init "$RUNS/model_$previous")
    previous=$name
done
# a geometry warm restart from fusion5's bundle (run runs/s13 (2026-11-25)): a quarter of the geometry rate, BatchNorm frozen,
# the appearance layers and the PSN's light and albedo layers kept as fusion taught them (geometry_frozen),
# the photo triplets (texture128_mux) three times an epoch (42 % of the samples real); then fusion refits the light to
# the changed encoder
GEOMETRY=(--stage geometry --config $CONFIG --freeze-bn --set model.geometry.psn_split=true
          --set model.geometry.appearance_layers=3 --set "train.geometry_frozen=[appearance,light]"
          --set train.lr_geometry=5.0e-5 --workers 1)
# a geometry warm restart from the bundle of fusion run BEFORE, then fusion on its best checkpoint:
#   restart BEFORE GEOMETRY_RUN FUSION_RUN STEPS DECAY_STEPS [geometry training options...]
restart() {
    local before=$1 geometry=$2 fusion=$3 steps=$4 decay=$5
    shift 5
    fr export --checkpoint "$RUNS/$before/best.pt" --out "$RUNS/model_$before" --half --no-weights --overwrite
    fr train "${GEOMETRY[@]}" "$@" --out "$RUNS/$geometry" --max-steps "$steps" --decay-steps "$decay" \
        $(resume "$RUNS/$geometry" --init "$RUNS/model_$before")
    fr train "${FUSION[@]}" --out "$RUNS/$fusion" --max-steps 2400 --decay-steps 1200 \
        $(resume "$RUNS/$fusion" --init "$RUNS/$geometry/best.pt")
}
restart fusion5 geometry5 fusion6 4000 2000 \
    --data data/asm128_s16 data/asm128_wide data/profiled128 data/profiled128_mux data/texture128_mux \
    --repeat 1 1 1 1 3
# another geometry warm restart from fusion6's bundle (run runs/s15 (2026-12-02)), the same settings, with the widest poses
# (asm128_x) and the pitched profiled views (twice an epoch) added (39 % of the samples real); then fusion again
restart fusion6 geometry6 fusion7 5000 2500 --data data/asm128_s16 data/asm128_x data/asm128_wide data/profiled128 \
    data/profiled128_mux data/profiled128_pitch data/texture128_mux --repeat 1 1 1 1 1 2 3
# and another from fusion7's bundle (run runs/s17 (2026-12-03)), the same settings, with the views at any yaw added and the
# photos oversampled more (profiled128 twice, the photo triplets five times an epoch: 55 % of the samples real)
ANY_YAW=(--data data/asm128_s16 data/asm128_x data/asm128_wide data/profiled128 data/profiled128_mux
         data/profiled128_pitch data/profiled128_yaw data/texture128_mux --repeat 1 1 1 2 1 2 2 5)
restart fusion7 geometry7 fusion8 8000 4000 "${ANY_YAW[@]}"
# and another from fusion8's bundle (run runs/s18 (2026-12-03)), the same data, at twice the rate (1e-4, half the config's;
# the later --set wins)
restart fusion8 geometry8 fusion9 7000 3500 "${ANY_YAW[@]}" --set train.lr_geometry=1.0e-4
# from fusion9's bundle (run runs/s19 (2026-12-03), not shipped itself) at the config's full rate (2e-4), longer; then from
# its fusion10 (run runs/s20 (2026-12-03)) at 1e-4, with the 20,000 new faces in place of asm128_s16
restart fusion9 geometry9 fusion10 9000 4500 "${ANY_YAW[@]}" --set train.lr_geometry=2.0e-4
restart fusion10 geometry10 fusion11 7000 3500 --data data/asm128_s18 data/asm128_x data/asm128_wide \
    data/profiled128 data/profiled128_mux data/profiled128_pitch data/profiled128_yaw data/texture128_mux \
    --repeat 1 1 1 2 1 2 2 5 --set train.lr_geometry=1.0e-4
# from fusion11's bundle (run runs/s21 (2026-12-03)), the same settings, with asm128_s19 in place of asm128_s18 and the
# off-centre crops added (15 % of the samples)
restart fusion11 geometry11 fusion12 7000 3500 --data data/asm128_s19 data/asm128_j20 data/asm128_x \
    data/asm128_wide data/profiled128 data/profiled128_mux data/profiled128_pitch data/profiled128_yaw \
    data/texture128_mux --repeat 1 1 1 1 2 1 2 2 5 --set train.lr_geometry=1.0e-4
# from fusion12's bundle (run runs/s28 (2026-12-06)), the same settings, with the head faces and the new faces alone in place of
# asm128_s19 and asm128_j20, and the real photos oversampled further (profiled128 and the pitched views 8×, the
# photo triplets 12× an epoch: 59 % of the samples real)
HEAD_FACES=(data/asm128_h23 data/asm128_hj24 data/asm128_s25 data/asm128_x data/asm128_wide)
restart fusion12 geometry12 fusion13 7000 3500 --data "${HEAD_FACES[@]}" data/profiled128 data/profiled128_mux \
    data/profiled128_pitch data/profiled128_yaw data/texture128_mux --repeat 1 1 1 1 1 8 2 8 4 12 \
    --set train.lr_geometry=1.0e-4
# from fusion13's bundle (run runs/s29 (2026-12-06)), the same settings and synthetic faces, the real photos seen in new views:
# the new-seed sets in place of the five above (the plain views split into centred and off-centre ones, 4× each)
restart fusion13 geometry13 fusion14 7000 3500 --data "${HEAD_FACES[@]}" data/profiled128_41 data/profiled128_j47 \
    data/profiled128_mux42 data/profiled128_pitch43 data/profiled128_yaw44 data/texture128_m46 \
    --repeat 1 1 1 1 1 4 4 2 8 4 12 --set train.lr_geometry=1.0e-4

# 3. the inference bundle (ONNX with float16-stored weights + manifest; no torch weights: < 25 MB): the last
#    geometry run's bundle, checked against the shipped one before it (fusion13's) on held-out data only (never
#    the test photos) by the rule in MODEL_CARD.md: the synthetic suite, 100 other synthetic faces (seed 5, which
#    the evaluation does not use) with the whole head rendered around them, and the landmark loss L_ali on every
#    real-photo set's held-out samples and on the held-out people (fusion leaves L_ali as the geometry run made it)
fr export --checkpoint "$RUNS/geometry13/best.pt" --out "$RUNS/model_geometry13" --half --no-weights --overwrite
BUNDLES=("$RUNS/model_fusion13" "$RUNS/model_geometry13")
for bundle in "${BUNDLES[@]}"; do
    fr eval --suite synthetic --count 100 --no-peers --model "$bundle" --out "$RUNS/choose_${bundle##*/}" --quiet
    fr eval --suite synthetic --seed 5 --count 100 --head --no-peers --model "$bundle" \
        --out "$RUNS/choose_head_${bundle##*/}" --quiet
done
fr validate --stage fusion --checkpoint "${BUNDLES[@]}" --data data/texture128_mux data/profiled128 \
    data/profiled128_mux data/profiled128_pitch data/profiled128_yaw
fr validate --stage fusion --checkpoint "${BUNDLES[@]}" --data data/texture128_mux --below 380
fr validate --stage fusion --checkpoint "${BUNDLES[@]}" --data data/heldout128_yaw --every 1
fr export --checkpoint "$RUNS/fusion14/best.pt" --out facerecon_core/data/model --half --no-weights --overwrite

# 4. the full evaluation beside the peers (MODEL_CARD.md)
fr eval --suite all --model facerecon_core/data/model --out "$RUNS/eval"
