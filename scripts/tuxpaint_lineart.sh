#!/usr/bin/env bash
# Real line art nobody in this project drew: Tux Paint's colouring-book "starters" (Debian package tuxpaint-data,
# GPL), put into data/raw/tuxpaint/lineart/ for benchmarks/tuxpaint.yaml:
#
#   scripts/tuxpaint_lineart.sh && ./run_all.sh benchmarks/tuxpaint.yaml     # after ./run_all.sh cpu
#
# Nine drawings (animals, a penguin on a tractor, a flower, a palm-tree silhouette; the SVG ones rendered to 512 px
# PNG with cairosvg, as a user would export them) and one colour photograph among them by mistake, which step 01
# must refuse ("looks like a colour image"). Needs apt-get (Debian/Ubuntu) and the project's environment.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
out=data/raw/tuxpaint
mkdir -p "$out/lineart"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download tuxpaint-data >/dev/null && dpkg-deb -x tuxpaint-data_*.deb x)
src="$work/x/usr/share/tuxpaint/starters"
cp "$src/chicken.png" "$src/frog.png" "$src/tux_farmer.png" "$src/pansy.png" "$out/lineart/"
cp "$src/skyline-sf-dusk.png" "$out/lineart/skyline.png"
cp "$src/skyline-sf-dusk-back.jpeg" "$out/lineart/sf_photo.jpeg"
for n in manatee bald_eagle desert_tortoise woodpecker; do
  "$PY" -c "import cairosvg, sys; cairosvg.svg2png(url=sys.argv[1], write_to=sys.argv[2], output_width=512)" \
    "$src/$n.svg" "$out/lineart/$n.png"
done
echo "tuxpaint: $(ls "$out/lineart" | wc -l) files in $out/lineart"
