"""A VOC-format writer for the detection reader's tests: the inverse of spp_viz.detection.data.read_voc."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from spp_viz.detection.data import DetectionSet


def write_voc(root: str | Path, sets: dict[str, DetectionSet], quality: int = 92) -> Path:
    """Write detection sets as one VOC-format folder (JPEG images, XML annotations, a list per split).

    The reader's tests write their VOC folders with it (the built-in scenes, and real photos).
    """
    root = Path(root)
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for split, data in sets.items():
        ids = []
        for item in data.images:
            image_id = item.name
            ids.append(image_id)
            item.image().save(root / "JPEGImages" / f"{image_id}.jpg", "JPEG", quality=quality)
            ann = ET.Element("annotation")
            ET.SubElement(ann, "filename").text = f"{image_id}.jpg"
            size = ET.SubElement(ann, "size")
            for tag, v in zip(("width", "height", "depth"), (*item.size, 3), strict=True):
                ET.SubElement(size, tag).text = str(v)
            for box, label, hard in zip(item.boxes, item.labels, item.difficult, strict=True):
                obj = ET.SubElement(ann, "object")
                ET.SubElement(obj, "name").text = data.classes[int(label)]
                ET.SubElement(obj, "difficult").text = "1" if hard else "0"
                bnd = ET.SubElement(obj, "bndbox")
                x0, y0, x1, y1 = (int(round(float(v))) for v in box)
                for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), (x0 + 1, y0 + 1, x1, y1), strict=True):
                    ET.SubElement(bnd, tag).text = str(v)
            ET.ElementTree(ann).write(root / "Annotations" / f"{image_id}.xml")
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root
