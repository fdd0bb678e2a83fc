"""Butane `variant: flatcar` (1.0.0 -> Ignition 3.3.0, 1.1.0 -> 3.4.0) translated in Python.

`translate(text, files_dir=..., strict=...)` runs the same pipeline as the butane tool: read the
YAML with Butane's semantics, warn about unknown keys, run Butane's checks, translate, refuse what
the flatcar variant forbids (clevis), and check the resulting Ignition config. Every error and
warning carries its path in the source ($.storage.files.0.mode) and, where known, line and column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .. import ignition_check
from . import checks, schema, yamlsrc
from .decode import Decoded, decode
from ..report import Entry, Report, path_string
from .translate import Translator

__all__ = ["ButaneError", "Result", "translate", "Entry", "Report", "path_string"]

NO_VARIANT = "error parsing variant; must be specified"
INVALID_VERSION = "error parsing version; must be a valid semver"
VERSIONS = {"1.0.0": schema.V1_0, "1.1.0": schema.V1_1}


class ButaneError(Exception):
    """The config was refused; `report` holds every error (and warning) found."""

    def __init__(self, report: Report):
        self.report = report
        first = report.errors[0] if report.errors else (report.entries[0] if report.entries else None)
        super().__init__(str(first) if first else "invalid config")

    @property
    def entries(self) -> list[Entry]:
        return self.report.entries


@dataclass
class Result:
    config: dict
    report: Report  # warnings (a result is only returned when there are no errors)

    @property
    def warnings(self) -> list[Entry]:
        return self.report.warnings


def translate(text: str | bytes, files_dir: str | None = None, strict: bool = False,
              auto_compression: bool = True) -> Result:
    """Translate a Butane document into an Ignition config (dict); raises ButaneError."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    try:
        root = yamlsrc.parse(text)
    except yamlsrc.YamlError as exc:
        report = Report([Entry("error", (), f"yaml: {exc.message}", exc.line, exc.column)])
        raise ButaneError(report) from None
    version = _spec_version(root)
    decoded = decode(root, schema.Config, version, schema.BASE_NAME[version], checks.VALIDATORS)
    if decoded.type_errors.fatal:
        raise ButaneError(_located(decoded.type_errors, decoded))
    report = decoded.report
    if report.fatal:
        raise ButaneError(_located(report, decoded))
    translator = Translator(version, files_dir, auto_compression)
    config = translator.config(decoded.value)  # type: ignore[arg-type]
    report.merge(translator.report)
    if not report.fatal:
        report.merge(_from_json(checks.flatcar_filters(config), translator))
    if not report.fatal:
        report.merge(_from_json(ignition_check.check(config), translator))
    _located(report, decoded)
    if report.fatal or (strict and report.entries):
        raise ButaneError(report)
    return Result(config, report)


def _spec_version(root: yamlsrc.Node | None) -> tuple:
    fields = {}
    if isinstance(root, yamlsrc.Mapping):
        fields = {key: node for key, node, _, _ in root.items if isinstance(node, yamlsrc.Scalar)}
    variant = fields.get("variant")
    version = fields.get("version")

    def fail(path, message, node):
        line, column = (node.line, node.column) if node is not None else (None, None)
        raise ButaneError(Report([Entry("error", path, message, line, column)]))

    if variant is None or not variant.text:
        fail(("variant",), NO_VARIANT, variant)
    if version is None or not _is_semver(version.text):
        fail(("version",), INVALID_VERSION, version)
    if variant.text != "flatcar" or version.text not in VERSIONS:
        fail(("version",), f"No translator exists for variant {variant.text} with version {version.text}", version)
    return VERSIONS[version.text]


_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")


def _is_semver(text: str) -> bool:
    return bool(_SEMVER.match(text))


def _from_json(report: Report, translator: Translator) -> Report:
    for entry in report.entries:
        entry.path = translator.translations.source_of(entry.path)
    return report


def _located(report: Report, decoded: Decoded) -> Report:
    for entry in report.entries:
        if entry.line is None:
            entry.line, entry.column = decoded.position(entry.path)
    return report
