"""A second, commercial site for tech-transfer demos: other unit ids, other capacities, no coater.

Its bundle holds only the site's equipment hierarchy, which is what a receiving
site has before the product's knowledge arrives in a package.
"""

from __future__ import annotations

import csv
from pathlib import Path

__all__ = ["receiving_site_bundle"]

_EQUIPMENT = [
    ("ENT-02", "Exemplar Pharma Commercial", "Enterprise", "", "", "", ""),
    ("SITE-02", "Exemplar Pharma Lakeside commercial site", "Site", "ENT-02", "", "", ""),
    ("A-LOSD", "Lakeside oral solid dose", "Area", "SITE-02", "", "", ""),
    ("PC-LGRAN", "Lakeside granulation suite", "ProcessCell", "A-LOSD", "", "", ""),
    ("PC-LTAB", "Lakeside tableting suite", "ProcessCell", "A-LOSD", "", "", ""),
    ("L-DISP-01", "Dispensing booth L1", "Unit", "PC-LGRAN", "DispensingBooth", "", ""),
    ("L-GRN-01", "High-shear granulator L1", "Unit", "PC-LGRAN", "HighShearGranulator", "2400", "L"),
    ("L-DRY-01", "Fluid-bed dryer L1", "Unit", "PC-LGRAN", "FluidBedDryer", "1200", "kg"),
    ("L-DRY-02", "Fluid-bed dryer L2", "Unit", "PC-LGRAN", "FluidBedDryer", "500", "kg"),
    ("L-BLD-01", "Bin blender L1", "Unit", "PC-LGRAN", "BinBlender", "4000", "L"),
    ("L-TP-01", "Rotary tablet press L1", "Unit", "PC-LTAB", "RotaryTabletPress", "300000", "/h"),
]


def receiving_site_bundle(out_dir: str | Path) -> Path:
    """Write the commercial site's CSV bundle (equipment.csv only) into ``out_dir``; returns the folder."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "equipment.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "name", "level", "parent_id", "equipment_class", "capacity", "unit"])
        w.writerows(_EQUIPMENT)
    return out
