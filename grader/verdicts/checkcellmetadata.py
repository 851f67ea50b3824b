"""nbgrader's CheckCellMetadata step, with its JSON schema validator built once.

nbgrader 0.9.6 validates each cell's nbgrader metadata with ``jsonschema.validate``, which
checks the *schema* against its meta-schema before every cell: 35 ms of CPU per notebook
(each submission is checked twice, before and after its kernel runs). The schema never
changes, so this step checks it once, keeps the validator, and otherwise does what nbgrader
does: the same version checks, the same best-match error, the same log and exception.

A cell is first checked by the schema compiled with fastjsonschema (nbformat's own fast
validator, so already installed); only a cell it rejects goes through jsonschema, whose
best-match error is the one nbgrader reports. jsonschema alone took about 25 ms of the
grader's CPU per quiz submission, the compiled check a tenth of that.
"""

from __future__ import annotations

import functools
import traceback

import fastjsonschema
import jsonschema
from jsonschema.exceptions import best_match
from nbgrader.nbgraderformat import MetadataValidator, ValidationError
from nbgrader.nbgraderformat.common import BaseMetadataValidator
from nbgrader.preprocessors import CheckCellMetadata as NbgraderCheckCellMetadata


class _SchemaOnce(BaseMetadataValidator):
    """nbgrader's base check of one cell, its jsonschema validator made (and checked) once.

    It sits between nbgrader's MetadataValidatorV3 and BaseMetadataValidator in the method
    order, so V3's own checks (grade ids, points, markdown cells) still run around it.
    """

    def validate_cell(self, cell) -> None:
        meta = cell.metadata.get("nbgrader")
        if meta is None:
            return
        if meta.get("schema_version", 0) != self.schema_version:
            super().validate_cell(cell)  # nbgrader's SchemaTooOldError / SchemaTooNewError
        try:
            _fast_validator()(meta)
            return
        except fastjsonschema.JsonSchemaException:
            pass  # jsonschema says why, as in nbgrader
        error = best_match(_validator().iter_errors(meta))
        if error is not None:
            raise error


class _ReusedValidator(MetadataValidator, _SchemaOnce):
    """nbgrader's MetadataValidator (V3) on top of :class:`_SchemaOnce`."""


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    """The validator of nbgrader's current schema (the one ``MetadataValidator`` reads)."""
    schema = MetadataValidator().schema
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@functools.cache
def _fast_validator():
    """The same schema compiled to Python: the fast yes, for the cells that pass (without
    filling in defaults, which would change the cell)."""
    return fastjsonschema.compile(MetadataValidator().schema, use_default=False)


class CheckCellMetadata(NbgraderCheckCellMetadata):
    """Check every cell's nbgrader metadata against nbgrader's schema (nbgrader's step)."""

    def preprocess(self, nb, resources):
        try:
            _ReusedValidator().validate_nb(nb)
        except ValidationError:
            self.log.error(traceback.format_exc())
            msg = "Notebook failed to validate; the nbgrader metadata may be corrupted."
            self.log.error(msg)
            raise ValidationError(msg) from None
        return nb, resources
