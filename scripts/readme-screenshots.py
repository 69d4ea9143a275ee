"""Copies the console's end-to-end screenshots (test-artifacts/, written by `npm test`) into
docs/screenshots/ for the README, scaled to 1000 px wide and reduced to a 96-colour palette
so the repository stays small. Needs Pillow (`pip install pillow`)."""
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
PAGES = {
    "console-lineage-impact.png": "lineage.png",
    "console-runs-live.png": "runs.png",
    "console-models.png": "models.png",
    "console-deployments-canary.png": "deployments.png",
    "console-monitoring.png": "monitoring.png",
    "console-features.png": "features.png",
    "console-graphiql.png": "graphiql.png",
}

for source, target in PAGES.items():
    image = Image.open(ROOT / "test-artifacts" / source).convert("RGB")
    width = 1000
    image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    image = image.quantize(colors=96, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out = ROOT / "docs" / "screenshots" / target
    image.save(out, optimize=True)
    print(f"{out.relative_to(ROOT)}: {out.stat().st_size // 1024} KiB")
