"""The support matrix: versioned data saying which scheme runs on which NPU generation."""

from quantspec.matrix.load import default_matrix_path, load_matrix, parse_matrix
from quantspec.matrix.model import (
    Constraint,
    ConstraintId,
    DiffusionSupport,
    MatrixEntry,
    Requirement,
    RequirementKind,
    StatusByGen,
    SupportMatrix,
)

__all__ = [
    "Constraint",
    "ConstraintId",
    "DiffusionSupport",
    "MatrixEntry",
    "Requirement",
    "RequirementKind",
    "StatusByGen",
    "SupportMatrix",
    "default_matrix_path",
    "load_matrix",
    "parse_matrix",
]
