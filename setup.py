"""The package build's one step beyond pyproject.toml: the translation catalogs (``spp_viz/locales/*/LC_MESSAGES/
spp_viz.po``) compiled into the ``.mo`` files the wheel ships (``spp_viz.i18n`` reads them)."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithCatalogs(build_py):
    def run(self) -> None:
        super().run()
        from babel.messages.mofile import write_mo
        from babel.messages.pofile import read_po

        for po in sorted(Path("spp_viz/locales").glob("*/LC_MESSAGES/*.po")):
            target = Path(self.build_lib) / po.with_suffix(".mo")
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(po, "rb") as f, open(target, "wb") as out:
                write_mo(out, read_po(f))  # fuzzy entries left out, as `pybabel compile` does


setup(cmdclass={"build_py": BuildWithCatalogs})
